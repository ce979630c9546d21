"""DLP inside `vigil run`: verdicts archived with the original, notices for blocked messages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from factories import CUSTOMER, EMPLOYEE, event, write_jsonl
from helpers import fingerprint, ingest

from pipelines.archive import reader
from pipelines.archive.verify import verify
from pipelines.errors import PolicyError
from pipelines.record import record_id_for
from pipelines.search import conversation, embedded
from pipelines.search.access import AccessRole, Identity, shown_text
from pipelines.search.parse import parse_query

POLICY = """\
id: itest
description: Integration-test policy.
operator: {type: replace}
rules:
  - id: itest.card
    description: Cards never leave the firm
    severity: high
    action: block
    scope: {directions: [outbound]}
    detectors:
      - type: pattern
        entity: CREDIT_CARD
        regex: '(?<!\\d)\\d{4}(?:[ -]?\\d{4}){3}(?!\\d)'
        validator: luhn
  - id: itest.email
    description: E-mail addresses are redacted
    severity: medium
    action: redact
    detectors:
      - type: pattern
        entity: EMAIL_ADDRESS
        regex: '[\\w.+-]+@[\\w-]+\\.[\\w.]+'
  - id: itest.secrecy
    description: Secrecy requests are flagged for review
    severity: medium
    action: flag
    detectors:
      - type: lexicon
        entity: RISKY_PHRASE
        terms: ["keep this between us", "这事只有我们俩知道"]
"""

CARD = "4539 1488 0343 6467"  # Luhn-valid


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "itest.yaml"
    path.write_text(POLICY)
    return path


def _input(tmp_path: Path) -> Path:
    inbound = {"direction": "inbound", "sender": CUSTOMER, "recipients": [EMPLOYEE]}
    items = [
        event(1, body=f"Card for the fee: {CARD}"),  # outbound, employee: blocked + notice
        event(2, body=f"my card is {CARD}", **inbound),  # inbound: the card rule is scoped to outbound
        event(3, body="write to ana.lima@example.com please"),  # redacted
        event(4, body="keep this between us"),  # flagged
        event(5, channel="wechat", body="这事只有我们俩知道，好吗？"),  # flagged, CJK lexicon
        event(6, body="nothing sensitive here"),
        event(
            7,
            body=None,
            attachments=[{"sha256": "b" * 64, "media_type": "image/png", "size": 3, "uri": "m://b"}],
        ),
        event(8, body="full-width ４５３９ １４８８ ０３４３ ６４６７ card"),  # normalised, still blocked
    ]
    write_jsonl(tmp_path / "in" / "day.jsonl", items)
    return tmp_path / "in"


def _rows(archive: Path) -> dict[str, dict]:
    return {r["event_id"]: r for r in reader.iter_rows(archive)}


def test_verdicts_are_archived_with_the_original(tmp_path: Path, policy: Path) -> None:
    archive = tmp_path / "archive"
    s = ingest(_input(tmp_path), archive, policy=str(policy))
    assert s.balanced and s.archived == 8 and s.notices == 2
    assert s.dlp == {"block": 2, "redact": 1, "flag": 2}
    assert s.dlp_policy and s.dlp_policy.startswith("itest@")
    rows = _rows(archive)

    blocked = rows["evt-000001"]
    assert (
        blocked["blocked"] and blocked["dlp_action"] == "block" and blocked["dlp_rule_ids"] == ["itest.card"]
    )
    assert blocked["body"] == f"Card for the fee: {CARD}"  # the archive keeps the original
    assert CARD not in blocked["body_redacted"]
    (finding,) = blocked["dlp_findings"]
    assert blocked["body"][finding["start"] : finding["end"]] == CARD
    assert set(finding) == {"rule_id", "entity", "detector", "start", "end", "score", "action"}  # no value

    assert rows["evt-000002"]["dlp_action"] == "none" and not rows["evt-000002"]["blocked"]
    redacted = rows["evt-000003"]
    assert (
        redacted["dlp_action"] == "redact" and redacted["body_redacted"] == "write to <EMAIL_ADDRESS> please"
    )
    assert (
        rows["evt-000004"]["dlp_action"] == "flag"
        and rows["evt-000004"]["body_redacted"] == "keep this between us"
    )
    assert rows["evt-000005"]["dlp_rule_ids"] == ["itest.secrecy"]
    assert rows["evt-000006"]["dlp_action"] == "none" and rows["evt-000006"]["dlp_policy"] == s.dlp_policy
    assert rows["evt-000007"]["body"] is None and rows["evt-000007"]["dlp_action"] == "none"
    fullwidth = rows["evt-000008"]
    assert fullwidth["blocked"]
    (f8,) = fullwidth["dlp_findings"]
    assert (
        fullwidth["body"][f8["start"] : f8["end"]] == "４５３９ １４８８ ０３４３ ６４６７"
    )  # offsets in the original


def test_blocked_outbound_message_gets_an_employee_notice(tmp_path: Path, policy: Path) -> None:
    archive = tmp_path / "archive"
    ingest(_input(tmp_path), archive, policy=str(policy))
    rows = _rows(archive)
    notice = rows["evt-000001:dlp-notice"]
    assert notice["kind"] == "auto_message" and notice["event_type"] == "dlp_blocked_notice"
    assert notice["audience"] == "employee" and notice["direction"] == "system"
    assert [p["id"] for p in notice["recipients"]] == [EMPLOYEE["id"]]
    assert notice["conversation_id"] == rows["evt-000001"]["conversation_id"]
    assert notice["event_time"] > rows["evt-000001"]["event_time"]
    assert "itest.card" in notice["body"] and CARD not in notice["body"]
    assert dict(notice["attributes"])["blocked_record_id"] == record_id_for("acme", "whatsapp", "evt-000001")


def test_rerun_with_dlp_adds_nothing(tmp_path: Path, policy: Path) -> None:
    archive = tmp_path / "archive"
    src = _input(tmp_path)
    ingest(src, archive, policy=str(policy))
    before = fingerprint(archive)
    again = ingest(src, archive, policy=str(policy), only_new_sources=False)
    assert again.archived == 0 and again.notices == 0 and again.duplicates == 8 and again.balanced
    assert fingerprint(archive) == before
    assert verify(archive).ok


def test_no_dlp_archives_without_a_verdict(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    s = ingest(_input(tmp_path), archive, dlp=False)
    assert s.dlp_policy is None and s.notices == 0 and s.archived == 8
    rows = _rows(archive)
    assert {r["dlp_action"] for r in rows.values()} == {"none"}
    assert {r["dlp_policy"] for r in rows.values()} == {None}
    # no policy looked at the text, so there is no redacted view: the card number is not handed to
    # the roles that may see only redacted text
    assert rows["evt-000001"]["body"] == f"Card for the fee: {CARD}"
    assert {r["body_redacted"] for r in rows.values()} == {None}
    found = {
        role: embedded.search(archive, parse_query("card"), Identity("u", role)).hits
        for role in (AccessRole.OFFICER, AccessRole.REVIEWER, AccessRole.CRM)
    }
    assert rows["evt-000001"]["record_id"] in {hit.record_id for hit in found[AccessRole.OFFICER]}
    assert found[AccessRole.REVIEWER] == [] and found[AccessRole.CRM] == []
    shown = shown_text(rows["evt-000001"], Identity("u", AccessRole.REVIEWER))
    assert shown.text is None and shown.withheld


def test_default_policy_is_the_shipped_active_set(tmp_path: Path) -> None:
    s = ingest(_input(tmp_path), tmp_path / "archive")
    assert s.dlp_policy and s.dlp_policy.startswith("active@")
    rows = _rows(tmp_path / "archive")
    assert any(rule.startswith("pii.") for rule in rows["evt-000003"]["dlp_rule_ids"])  # the e-mail address
    assert rows["evt-000001"]["dlp_action"] in ("redact", "block")  # the card number
    assert CARD not in rows["evt-000001"]["body_redacted"]


def test_a_broken_policy_stops_the_run_before_anything_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\ndescription: x\nrules:\n  - id: bad.one\n    action: explode\n")
    with pytest.raises(PolicyError, match=r"bad\.yaml"):
        ingest(_input(tmp_path), tmp_path / "archive", policy=str(bad))
    assert not (tmp_path / "archive" / "records").exists()


def test_the_writer_of_a_blocked_internal_message_is_told_and_a_customer_is_not(tmp_path: Path) -> None:
    path = tmp_path / "everywhere.yaml"
    path.write_text(POLICY.replace("    scope: {directions: [outbound]}\n", ""))  # cards blocked both ways
    colleague = {**EMPLOYEE, "id": "emp-2", "name": "Lee Ho", "handle": "lee@acme.example"}
    items = [
        event(1, channel="teams", direction="internal", recipients=[colleague], body=f"use {CARD}"),
        event(2, direction="inbound", sender=CUSTOMER, recipients=[EMPLOYEE], body=f"my card {CARD}"),
    ]
    write_jsonl(tmp_path / "in" / "day.jsonl", items)
    s = ingest(tmp_path / "in", tmp_path / "archive", policy=str(path))
    assert s.balanced and s.dlp == {"block": 2} and s.notices == 1
    rows = _rows(tmp_path / "archive")
    notice = rows["evt-000001:dlp-notice"]
    assert [p["id"] for p in notice["recipients"]] == [EMPLOYEE["id"]]
    assert notice["body"].startswith("Your Teams message was not delivered") and CARD not in notice["body"]
    assert "evt-000002:dlp-notice" not in rows


def test_an_input_event_named_like_a_notice_is_archived_beside_the_notice(
    tmp_path: Path, policy: Path
) -> None:
    # a source whose own event id happens to be the one Vigil gives the notice for a blocked evt-000001
    items = [event(1, body=f"Card for the fee: {CARD}"), event(2, body="an ordinary message")]
    items[1]["event_id"] = "evt-000001:dlp-notice"
    write_jsonl(tmp_path / "in" / "day.jsonl", items)
    archive = tmp_path / "archive"
    s = ingest(tmp_path / "in", archive, policy=str(policy))
    assert s.balanced and s.archived == 2 and s.duplicates == 0 and s.dead_lettered == 0 and s.notices == 1
    rows = list(reader.iter_rows(archive))
    assert len({r["record_id"] for r in rows}) == len(rows) == 3
    named = sorted(
        r["source_name"] == "vigil:dlp-notice" for r in rows if r["event_id"] == "evt-000001:dlp-notice"
    )
    assert named == [False, True]  # the input event and Vigil's notice, each its own record
    write_jsonl(tmp_path / "in" / "redelivered.jsonl", items)  # the same events again: duplicates only
    again = ingest(tmp_path / "in", archive, policy=str(policy))
    assert again.archived == 0 and again.duplicates == 2 and again.notices == 0


def test_a_message_blocked_at_the_last_instant_of_year_9999_gets_its_notice(tmp_path: Path) -> None:
    # the notice is stamped one microsecond after the attempt: past the last microsecond there is
    # none, so it is stamped at the same instant (and still shown after the message)
    last, leap = "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:60Z"  # a leap second is the last µs
    key = "use AKIAIOSFODNN7EXAMPLE for the upload"  # the shipped policy blocks cloud keys
    items = [
        event(1, event_time=last, received_time=last, body=key),
        event(2, event_time=leap, received_time=leap, body=key),
        event(3, body=key),
    ]
    write_jsonl(tmp_path / "in" / "day.jsonl", items)
    archive = tmp_path / "archive"
    s = ingest(tmp_path / "in", archive, future_skew=dt.timedelta(minutes=1e10))
    assert s.balanced and s.archived == 3 and s.dead_lettered == 0 and s.notices == 3
    rows = _rows(archive)
    for n in (1, 2):
        blocked, notice = rows[f"evt-00000{n}"], rows[f"evt-00000{n}:dlp-notice"]
        assert blocked["blocked"] and notice["event_type"] == "dlp_blocked_notice"
        assert notice["event_time"] == blocked["event_time"] == dt.datetime.max.replace(tzinfo=dt.UTC)
    assert rows["evt-000003:dlp-notice"]["event_time"] - rows["evt-000003"]["event_time"] == dt.timedelta(
        microseconds=1
    )
    order = [r["event_id"] for r in conversation.load_conversation(archive, "conv-1")]
    assert order[-4:-2] == ["evt-000001", "evt-000002"]  # the messages, then the notices about them
    assert sorted(order[-2:]) == ["evt-000001:dlp-notice", "evt-000002:dlp-notice"]
    assert verify(archive).ok
