"""A small archive for the search, conversation and audit tests, written row by row.

The rows go through the real archive writer (``stage_table`` + ``commit``) so the manifest lists
them, and every field is chosen here: DLP verdicts, CJK text, participants, delivery attributes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from pipelines.archive import layout, writer
from pipelines.archive.ledger import Ledger
from pipelines.record import (
    Event,
    Record,
    content_sha256,
    no_verdict,
    record_id_for,
    record_to_row,
)
from pipelines.search.access import AccessRole, Identity

UTC = dt.UTC
DANA = {
    "id": "emp-1",
    "name": "Dana Whitfield",
    "role": "employee",
    "handle": "+12125550101",
    "groups": ["hk"],
}
WEI = {"id": "cust-1", "name": "Wei Zhang", "role": "customer", "handle": "+85291234567", "groups": []}
ALEX = {"id": "emp-2", "name": "Alex Chen", "role": "employee", "handle": "+85230001111", "groups": ["hk"]}
KENJI = {"id": "cust-2", "name": "Kenji Sato", "role": "customer", "handle": "U4af4980629", "groups": []}
MEI = {"id": "cust-3", "name": "李美", "role": "customer", "handle": "oX7Qp_wechat_3", "groups": []}
SYSTEM: dict[str, Any] = {
    "id": "system",
    "name": "WhatsApp Business",
    "role": "system",
    "handle": None,
    "groups": [],
}

CARD_FINDING = {
    "rule_id": "pii.card-number",
    "entity": "CREDIT_CARD",
    "detector": "regex",
    "start": 5,
    "end": 24,
    "score": 0.95,
    "action": "redact",
}
KEY_FINDING = {
    "rule_id": "secrets.cloud-key",
    "entity": "AWS_ACCESS_KEY_ID",
    "detector": "regex",
    "start": 8,
    "end": 28,
    "score": 1.0,
    "action": "block",
}


def at(day: int, hour: int, minute: int = 0, month: int = 1) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def row(
    event_id: str,
    when: dt.datetime,
    *,
    source_offset: int = 0,
    source_name: str = "input/day.jsonl",
    dlp: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A record row: an Event validated by the model, provenance, then the DLP fields given."""
    received = fields.pop("received_time") if "received_time" in fields else when + dt.timedelta(seconds=1)
    data: dict[str, Any] = {
        "event_id": event_id,
        "org": "acme",
        "sub_org": "wealth-hk",
        "channel": "whatsapp",
        "kind": "message",
        "direction": "outbound",
        "event_time": when,
        "received_time": received,
        "conversation_id": "conv-en",
        "thread_id": "thr-1",
        "participants": [DANA, WEI],
        "sender": DANA,
        "recipients": [WEI],
    }
    data.update(fields)
    event = Event.model_validate(data)
    verdict = no_verdict(event.body)
    verdict.update(dlp or {})
    record = Record(
        **event.model_dump(),
        record_id=record_id_for(event.org, event.channel, event.event_id),
        source_name=source_name,
        source_offset=source_offset,
        ingest_time=at(1, 0, month=3),
        content_sha256=content_sha256(event),
        **verdict,
    )
    return record_to_row(record)


def event_row(
    event_id: str,
    when: dt.datetime,
    event_type: str,
    sender: dict[str, Any],
    participants: list[Any],
    **fields: Any,
) -> dict[str, Any]:
    """An event record as a source sends one: kind event, direction system, no recipients."""
    return row(
        event_id,
        when,
        kind="event",
        event_type=event_type,
        direction="system",
        sender=sender,
        recipients=[],
        participants=participants,
        **fields,
    )


def employee_notice(
    event_id: str, when: dt.datetime, event_type: str, body: str, *, to: dict[str, Any] = DANA, **fields: Any
) -> dict[str, Any]:
    """An auto-message from the channel (or Vigil) to one employee, as a record row."""
    fields.setdefault("sender", SYSTEM)
    return row(
        event_id,
        when,
        kind="auto_message",
        event_type=event_type,
        audience="employee",
        direction="system",
        recipients=[to],
        body=body,
        **fields,
    )


def hold_notice(event_id: str, when: dt.datetime, held: str, **fields: Any) -> dict[str, Any]:
    """The notice telling the employee a message was held ("held for later (1 of 5)"), naming it
    in ``queued_event_id`` as the simulator's notices do."""
    return employee_notice(
        event_id,
        when,
        "message_queued",
        "Held for later (1 of 5): it goes out once the contact accepts.",
        attributes={"queued_event_id": held},
        **fields,
    )


def dataset() -> list[dict[str, Any]]:
    """The shared rows: an English WhatsApp conversation with DLP, opt-in, a join and a queued
    message; a Chinese WeChat one; a Japanese LINE one; and a few records on other days."""
    en = [
        row("en-1", at(5, 9), body="Please confirm the settlement date for order 42.", source_offset=0),
        row(
            "en-2",
            at(5, 9, 5),
            body="Settlement date is Friday; don't worry about the FX leg.",
            direction="inbound",
            sender=WEI,
            recipients=[DANA],
            source_offset=100,
        ),
        row(
            "en-3",
            at(5, 9, 7),
            body="Card 4111 1111 1111 1111 is the one for the deposit.",
            source_offset=200,
            dlp={
                "dlp_action": "redact",
                "dlp_rule_ids": ["pii.card-number"],
                "dlp_findings": [CARD_FINDING],
                "dlp_policy": "default@1234",
                "body_redacted": "Card <CREDIT_CARD> is the one for the deposit.",
            },
        ),
        row(
            "en-4",
            at(5, 9, 7),  # same instant as en-3: source order decides
            kind="auto_message",
            event_type="opted_in",
            audience="customer",
            direction="system",
            sender=SYSTEM,
            recipients=[WEI],
            body="You are now subscribed to messages from Acme Wealth.",
            source_offset=300,
        ),
        row(
            "en-5",
            at(5, 9, 20),
            kind="event",
            event_type="participant_added",
            direction="system",
            sender=SYSTEM,
            recipients=[],
            participants=[DANA, WEI, ALEX],
            attributes={"added": "emp-2"},
            source_offset=400,
        ),
        row(
            "en-6",
            at(5, 9, 25),
            body="My AWS key AKIAIOSFODNN7EXAMPLE opens the settlement portal.",
            sender=ALEX,
            participants=[DANA, WEI, ALEX],
            source_offset=500,
            dlp={
                "dlp_action": "block",
                "dlp_rule_ids": ["secrets.cloud-key"],
                "dlp_findings": [KEY_FINDING],
                "dlp_policy": "default@1234",
                "blocked": True,
                "body_redacted": "My AWS key <AWS_ACCESS_KEY_ID> opens the settlement portal.",
            },
        ),
        row(
            "en-7",
            at(5, 9, 30),
            body="Settling tomorrow <script>alert('x')</script> & more",
            participants=[DANA, WEI, ALEX],
            attributes={"delivery": "queued", "queue_position": "1"},
            source_offset=600,
        ),
        row(
            "en-8",
            at(5, 9, 40),
            kind="event",
            event_type="left_conversation",
            direction="system",
            sender=SYSTEM,
            recipients=[],
            participants=[WEI, ALEX],
            source_offset=700,
        ),
        row(
            "en-9",
            at(5, 9, 45),
            body="One more note after the window closed.",
            sender=ALEX,
            participants=[WEI, ALEX],
            attributes={"delivery": "refused", "refusal": "window_expired"},
            source_offset=800,
        ),
        employee_notice(
            "en-10",
            at(5, 9, 50),
            "window_expired",
            "The 24-hour window has closed; send an approved template to reopen it.",
            to=ALEX,
            participants=[WEI, ALEX],
            source_offset=900,
        ),
    ]
    wechat: dict[str, Any] = {
        "channel": "wechat",
        "conversation_id": "conv-zh",
        "participants": [ALEX, MEI],
        "sender": ALEX,
        "recipients": [MEI],
        "sub_org": "wealth-sh",
    }
    zh = [
        row("zh-1", at(6, 3), body="您好，请确认结算日期。", **wechat),
        row(
            "zh-2", at(6, 3, 4), body="iPhone价格是多少？", **{**wechat, "sender": MEI, "recipients": [ALEX]}
        ),
        row("zh-3", at(6, 3, 9), body="结算 日期 下周一", **wechat),
    ]
    line: dict[str, Any] = {
        "channel": "line",
        "conversation_id": "conv-ja",
        "participants": [DANA, KENJI],
        "recipients": [KENJI],
        "org": "acme",
        "sub_org": "wealth-tk",
    }
    ja = [
        row("ja-1", at(7, 1), body="決済日を確認してください。", **line),
        row(
            "ja-2",
            at(7, 1, 5),
            body="カード番号は送らないでください",
            **{**line, "sender": KENJI, "recipients": [DANA]},
        ),
    ]
    other = [
        row("o-1", at(3, 12), body="Early settlement draft.", channel="sms", conversation_id="conv-sms"),
        row(
            "o-2",
            at(20, 12),
            body="Settlement confirmed for the bond.",
            channel="sms",
            conversation_id="conv-sms",
        ),
        row(
            "o-3",
            at(2, 12, month=2),
            body="February settlement date moved.",
            channel="teams",
            org="globex",
            sub_org=None,
            direction="internal",
            conversation_id="conv-teams",
        ),
    ]
    key = [
        # redacted, not blocked, by a policy whose CRM view withholds the text: found by officers
        # and reviewers, never by the CRM role
        row(
            "k-1",
            at(8, 10),
            body="Rotate key AKIAIOSFODNN7EXAMPLE before Tuesday.",
            channel="teams",
            conversation_id="conv-key",
            direction="internal",
            recipients=[ALEX],
            participants=[DANA, ALEX],
            dlp={
                "dlp_action": "redact",
                "dlp_rule_ids": ["secrets.cloud-key"],
                "dlp_findings": [{**KEY_FINDING, "start": 11, "end": 31, "action": "redact"}],
                "dlp_policy": "default@1234",
                "body_redacted": "Rotate key <AWS_ACCESS_KEY_ID> before Tuesday.",
            },
        )
    ]
    id_finding = {
        "rule_id": "pii.national-id",
        "entity": "NATIONAL_ID",
        "detector": "regex",
        "start": 11,
        "end": 20,
        "score": 0.9,
        "action": "block",
    }
    blocked_at = dt.datetime(2026, 1, 8, 11, 0, 0, tzinfo=UTC)
    pair = [
        # a blocked message and its notice, 1 µs apart (as the pipeline writes them): one
        # millisecond holds both, so only microsecond times keep them in order on both engines;
        # the ids are chosen so that the record id order is the opposite of the time order
        row(
            "bl-1",
            blocked_at,
            body="My ID is S1234567D, please file it.",
            conversation_id="conv-block",
            source_offset=0,
            dlp={
                "dlp_action": "block",
                "dlp_rule_ids": ["pii.national-id"],
                "dlp_findings": [id_finding],
                "dlp_policy": "default@1234",
                "blocked": True,
                "body_redacted": "My ID is <NATIONAL_ID>, please file it.",
            },
        ),
        employee_notice(
            "bl-2",
            blocked_at + dt.timedelta(microseconds=1),
            "dlp_blocked_notice",
            "Your message was not delivered: it contained restricted content.",
            conversation_id="conv-block",
            source_offset=100,
        ),
    ]
    return en + zh + ja + other + key + pair


PARITY_ROLES = [
    Identity("o", AccessRole.OFFICER),
    Identity("r", AccessRole.REVIEWER),
    Identity("c", AccessRole.CRM),
]

#: One table of queries that both engines must answer alike, for every role
#: (tests/test_search_engines.py against the fake cluster, tests/test_es_live.py against a real one).
PARITY_QUERIES = [
    "settlement",
    '"settlement date"',
    "settl*",
    "settlement NOT date",
    "settlement AND (bond OR draft)",
    "card OR AKIAIOSFODNN7EXAMPLE",
    "AWS_ACCESS_KEY_ID",
    "Tuesday",
    "结算日期",
    '"结算 日期"',
    "价格",
    "確認",
    "カード",
    "ｶｰﾄﾞ",
    "NOT settlement channel:whatsapp",
    "participant:u4af4980629",
    'participant:"WEI ZHANG" participant:emp-2',
    "settlement from:2026-01-05 to:2026-01-05",
    "from:2026-01-05T09:05:00Z to:2026-01-05T09:07:00Z",
    "dlp:redact,block",
    "rule:pii",
    "rule:secrets.cloud-key channel:teams",
    "kind:auto_message",
    "type:opted_in",
    "direction:inbound",
    "org:acme/wealth-sh",
    "org:globex",
    "conversation:conv-ja",
    "conversation:conv-block",
    "NOT Tuesday conversation:conv-key",  # withheld from the CRM role: NOT must tell it nothing
    "Tuesday OR Rotate conversation:conv-key",
    "from:2026-01-08 to:2026-01-08T11:00:00.000001Z",
    "from:2026-01-08T11:00:00.000001Z to:2026-01-08",
    "NOT settlement",
    # DLP's blocked-message notice (bl-2): refused or left out for the CRM role on both engines
    "type:dlp_blocked_notice",
    "type:opted_in,dlp_blocked_notice",
    '"not delivered"',
    "restricted OR settlement",
    "",
]


def crm_refuses(query: Any) -> bool:
    """Whether the CRM role's query is refused: DLP verdicts, rules and DLP's blocked-message
    notices are what it may not ask about."""
    return bool(query.dlp_actions or query.rules or "dlp_blocked_notice" in query.event_types)


def write_archive(root: Path, rows: list[dict[str, Any]], *, commit: str | None = None) -> Path:
    """Commit ``rows`` to the archive at ``root``, one file per (event month, channel)."""
    root.mkdir(parents=True, exist_ok=True)
    writer.commit_rows(root, rows, kind=layout.RECORDS, action="test", commit_id=commit)
    return root


def by_event_id(rows: list[dict[str, Any]]) -> dict[str, str]:
    """event_id -> record_id, so tests can name records."""
    return {r["event_id"]: r["record_id"] for r in rows}


def vigil(*argv: str) -> int:
    """Run the ``vigil`` entry point in-process; its exit code (output goes to capsys)."""
    from pipelines.cli import main

    try:
        main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def audit_entries(archive: Path) -> list[dict[str, Any]]:
    """The archive's access-log entries, after checking that their chain holds."""
    ledger = Ledger(archive / layout.AUDIT)
    assert ledger.problems() == []
    return ledger.entries()


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No config file of the person running the tests (``$VIGIL_CONFIG``, ``~/.config/vigil``)
    decides a role: autouse in every module that imports it."""
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
