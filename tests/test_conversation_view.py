"""Reconstructing a conversation: order, presence, auto-messages, delivery, DLP, roles, HTML."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import stat
from pathlib import Path

import pytest
from dlp_helpers import rule, write_policy
from rich.console import Console
from search_support import (
    ALEX,
    DANA,
    KEY_FINDING,
    SYSTEM,
    WEI,
    at,
    dataset,
    employee_notice,
    event_row,
    hold_notice,
    row,
    vigil,
    write_archive,
)

from pipelines.dlp import Engine, load_policy_set
from pipelines.search.access import AccessRole, Identity
from pipelines.search.conversation import build_timeline, load_conversation, render_html, render_text

ROWS = dataset()
OFFICER = Identity("olivia", AccessRole.OFFICER)
REVIEWER = Identity("ravi", AccessRole.REVIEWER)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("conv") / "archive", ROWS)


def timeline(archive: Path, who: Identity = OFFICER, conversation: str = "conv-en", **window):
    rows = load_conversation(archive, conversation, **window)
    return build_timeline(conversation, rows, who, now=at(1, 0, month=3))


def terminal(t) -> str:
    out = io.StringIO()
    render_text(t, Console(file=out, width=200, color_system=None))
    return out.getvalue()


def test_records_come_in_event_time_then_source_order(tmp_path: Path) -> None:
    same = at(5, 9)
    rows = [
        row(f"s-{n}", same, body=f"message {n}", source_offset=offset, source_name="in/a.jsonl")
        for n, offset in ((1, 300), (2, 100), (3, 200))
    ] + [row("s-0", same - dt.timedelta(seconds=1), body="first", source_offset=999)]
    root = write_archive(tmp_path / "a", rows)
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    assert [e.text for e in t.entries] == ["first", "message 2", "message 3", "message 1"]


def test_the_whole_conversation_with_kinds_and_audiences(archive: Path) -> None:
    t = timeline(archive)
    assert [e.record_id for e in t.entries] == [
        r["record_id"] for r in ROWS if r["conversation_id"] == "conv-en"
    ]
    headings = [e.heading for e in t.entries]
    assert headings == [
        "message",
        "message",
        "message",
        "auto-message to customer · opted in",
        "event · participant added",
        "message",
        "message · queued (position 1)",
        "event · left conversation",
        "message · refused (window_expired)",
        "auto-message to employee · window expired",
    ]
    assert t.channels == ["whatsapp"] and t.orgs == ["acme/wealth-hk"]


def test_who_was_present_and_when_it_changed(archive: Path) -> None:
    t = timeline(archive)
    labels = lambda people: [p.id for p in people]  # noqa: E731
    assert labels(t.entries[0].present) == [DANA["id"], WEI["id"]]
    changes = [(i, labels(e.joined), labels(e.left)) for i, e in enumerate(t.entries) if e.joined or e.left]
    assert changes == [(4, [ALEX["id"]], []), (7, [], [DANA["id"]])]
    text = terminal(t)
    assert "Present: Dana Whitfield (+12125550101), Wei Zhang (+85291234567)" in text
    assert "+ Alex Chen (+85230001111) joined" in text
    assert "− Dana Whitfield (+12125550101) left" in text


def test_dlp_markers_and_what_an_officer_sees(archive: Path) -> None:
    t = timeline(archive)
    card, blocked = t.entries[2], t.entries[5]
    assert card.dlp is not None and card.dlp.label == "redacted by DLP: pii.card-number"
    assert (
        card.text.startswith("Card 4111")
        and card.redacted == "Card <CREDIT_CARD> is the one for the deposit."
    )
    assert (
        blocked.dlp is not None and blocked.dlp.label == "BLOCKED by DLP (not delivered): secrets.cloud-key"
    )
    text = terminal(t)
    assert "▲ redacted by DLP: pii.card-number" in text
    assert "4111 1111 1111 1111" in text and "redacted view: Card <CREDIT_CARD>" in text


def test_reviewers_see_the_redacted_text_only(archive: Path) -> None:
    t = timeline(archive, REVIEWER)
    text = terminal(t)
    assert "4111" not in text and "AKIAIOSFODNN7EXAMPLE" not in text
    assert "Card <CREDIT_CARD> is the one for the deposit." in text
    assert "▲ BLOCKED by DLP (not delivered): secrets.cloud-key" in text
    assert "viewed by ravi as reviewer" in text
    html = render_html(t)
    assert "4111" not in html and "AKIAIOSFODNN7EXAMPLE" not in html


def test_crm_sees_no_blocked_record_and_no_dlp_marker(archive: Path) -> None:
    crm = Identity("crm-sync", AccessRole.CRM)
    t = timeline(archive, crm)
    ids = {e.record_id for e in t.entries}
    blocked = {r["record_id"] for r in ROWS if r["blocked"]}
    assert blocked and not ids & blocked
    assert len(t.entries) == len(timeline(archive).entries) - 1  # en-6, and only it
    assert all(e.dlp is None for e in t.entries)
    shown = terminal(t)
    assert "DLP" not in shown and "AKIAIOSFODNN7EXAMPLE" not in shown and "portal" not in shown
    withheld = timeline(archive, crm, conversation="conv-key").entries[0]
    assert withheld.text is None and withheld.withheld  # the secrets policy's CRM view: withheld
    assert "[text withheld for this role]" in terminal(timeline(archive, crm, conversation="conv-key"))


def test_crm_sees_no_dlp_blocked_notice(archive: Path, tmp_path: Path) -> None:
    # the notice names the employee, the rule and why, and its time pins the blocked message
    crm = Identity("crm-sync", AccessRole.CRM)
    officer = timeline(archive, conversation="conv-block")
    assert [e.event_type for e in officer.entries] == [None, "dlp_blocked_notice"]
    for export in (False, True):
        rows = load_conversation(archive, "conv-block")
        t = build_timeline("conv-block", rows, crm, export=export)
        assert t.entries == []
        for shown in (terminal(t), render_html(t)):
            assert "not delivered" not in shown and "restricted content" not in shown
            assert "dlp blocked notice" not in shown and "0 records" in shown
    # a notice beside other records: the rest stays, the count in the header follows
    rows = load_conversation(archive, "conv-block") + load_conversation(archive, "conv-en")
    t = build_timeline("mixed", rows, crm)
    assert "dlp_blocked_notice" not in {e.event_type for e in t.entries}
    assert f"{len(t.entries)} records" in terminal(t) and len(t.entries) == 9


def test_terminal_control_characters_are_shown_not_obeyed(tmp_path: Path) -> None:
    nasty = "\x1b[2J\x1b[31mRED\x1b[0m \x9b31m \u202egnp.exe\u202c bell\x07 cr\r done\tok\nline two"
    evil = {**WEI, "name": "Wei\x1b]0;owned\x07 Zhang"}
    rows = [row("c-1", at(5, 9), body=nasty, sender=evil, recipients=[DANA], participants=[DANA, evil])]
    archive = write_archive(tmp_path / "archive", rows)
    out = terminal(build_timeline("conv-en", load_conversation(archive, "conv-en"), OFFICER))
    assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b[31mRED\\x1b[0m" in out and "\\x9b31m" in out
    assert "\\u202egnp.exe\\u202c" in out and "bell\\x07" in out and "cr\\x0d done" in out
    assert "Wei\\x1b]0;owned\\x07 Zhang" in out
    assert "    line two" in out  # newlines still break lines


def _inspected_row(policy: Path, body: str) -> dict:
    """A record of ``body`` with the verdict ``policy`` gives it, as the pipeline archives it."""
    verdict = Engine(load_policy_set(policy)).inspect(body)
    return row(
        "c-1",
        at(5, 9),
        body=body,
        dlp={
            "dlp_action": verdict.action.value,
            "dlp_rule_ids": sorted({f.rule_id for f in verdict.findings}),
            "dlp_findings": [f.model_dump() for f in verdict.findings],
            "dlp_policy": "policy@1234",
            "body_redacted": verdict.redacted_text,
        },
    )


def test_the_html_export_uses_the_policys_export_view(tmp_path: Path) -> None:
    # the rule masks (the archived redacted view), the policy exports labels and withholds the CRM view
    policy = write_policy(
        tmp_path / "rules",
        [
            rule(
                "p.card",
                [{"type": "presidio", "entity": "CREDIT_CARD"}],
                operator={"type": "mask", "keep_last": 4},
            )
        ],
        views={
            "delivery": "redacted",
            "export": {"show": "redacted", "operator": {"type": "replace"}},
            "crm": "withheld",
        },
    )
    body = "card 4012 8888 8888 1881 please"
    card = _inspected_row(policy, body)
    reviewer = Identity("ravi", AccessRole.REVIEWER, dlp_policy=str(policy))
    on_screen = build_timeline("conv-en", [card], reviewer).entries[0]
    exported = build_timeline("conv-en", [card], reviewer, export=True).entries[0]
    assert on_screen.text == "card ***************1881 please"
    assert exported.text == "card <CREDIT_CARD> please"  # the export view, no more than the screen
    # a role that sees nothing on screen exports nothing, whatever the export view would give
    crm = Identity("crm-sync", AccessRole.CRM, dlp_policy=str(policy))
    assert build_timeline("conv-en", [card], crm).entries[0].text is None
    withheld = build_timeline("conv-en", [card], crm, export=True).entries[0]
    assert withheld.text is None and withheld.withheld
    assert body not in render_html(build_timeline("conv-en", [card], crm, export=True))
    # a policy whose export view is the original never gives a reviewer more than on screen
    conduct = {
        "rule_id": "conduct.guarantee",
        "entity": "CONDUCT",
        "detector": "regex",
        "start": 0,
        "end": 4,
        "score": 0.9,
        "action": "redact",
    }
    flagged = row(
        "x-1",
        at(5, 9),
        body="Sure thing, guaranteed returns.",
        dlp={
            "dlp_action": "redact",
            "dlp_rule_ids": ["conduct.guarantee"],
            "dlp_findings": [conduct],
            "dlp_policy": "default@1234",
            "body_redacted": "<CONDUCT> thing, guaranteed returns.",
        },
    )
    entry = build_timeline("conv-en", [flagged], REVIEWER, export=True).entries[0]
    assert entry.text == "<CONDUCT> thing, guaranteed returns."


def test_an_export_view_that_masks_less_than_the_screen_gives_the_screen(tmp_path: Path) -> None:
    # the archived view keeps the last 4 digits; the export view would keep 8: the reviewer's file
    # must not show the 4 more digits the screen hides
    def policy_with(export_keep: int) -> Path:
        return write_policy(
            tmp_path / f"rules{export_keep}",
            [
                rule(
                    "p.card",
                    [{"type": "presidio", "entity": "CREDIT_CARD"}],
                    operator={"type": "mask", "keep_last": 4},
                )
            ],
            views={"export": {"show": "redacted", "operator": {"type": "mask", "keep_last": export_keep}}},
        )

    card = _inspected_row(policy_with(8), "card 4012 8888 8888 1881 please")
    for keep, expected in ((8, "card ***************1881 please"), (2, "card *****************81 please")):
        reviewer = Identity("ravi", AccessRole.REVIEWER, dlp_policy=str(policy_with(keep)))
        assert (
            build_timeline("conv-en", [card], reviewer).entries[0].text == "card ***************1881 please"
        )
        assert build_timeline("conv-en", [card], reviewer, export=True).entries[0].text == expected


def test_a_failed_html_export_is_not_logged(archive: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    log = archive / "_ledger" / "audit.jsonl"
    before = log.read_text(encoding="utf-8") if log.exists() else ""
    target = tmp_path / "missing" / "x.html"
    argv = ["conversation", "conv-en", "--archive", str(archive), "--role", "officer", "--html", str(target)]
    assert vigil(*argv) == 2
    err = capsys.readouterr().err
    assert "cannot write it" in err and f"the folder {target.parent} does not exist: create it" in err
    assert (log.read_text(encoding="utf-8") if log.exists() else "") == before
    target.parent.mkdir()
    assert vigil(*argv) == 0
    assert target.is_file() and [p.name for p in target.parent.iterdir()] == ["x.html"]
    last = json.loads(log.read_text(encoding="utf-8").splitlines()[-1])
    assert last["action"] == "export" and last["details"]["file"] == str(target.resolve())


@pytest.mark.parametrize(("first", "last"), [("20260105", "20260105"), ("2026-01-05", "20260105")])
def test_compact_dates_are_whole_days_in_the_conversation_window(
    archive: Path, tmp_path: Path, capsys, monkeypatch, first: str, last: str
) -> None:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    base = ["conversation", "conv-en", "--archive", str(archive), "--role", "officer"]
    assert vigil(*base, "--from", first, "--to", last) == 0
    assert "10 records" in capsys.readouterr().out
    assert vigil(*base, "--from", "20260109", "--to", "20260108") == 2
    assert "--from 2026-01-09 is after --to 2026-01-08" in capsys.readouterr().err


def test_a_window_cuts_the_view(archive: Path) -> None:
    t = timeline(
        archive,
        time_from=dt.datetime(2026, 1, 5, 9, 20, tzinfo=dt.UTC),
        time_to=dt.datetime(2026, 1, 5, 9, 31, tzinfo=dt.UTC),
    )
    assert [e.heading for e in t.entries] == [
        "event · participant added",
        "message",
        "message · queued (position 1)",
    ]


def test_html_escapes_untrusted_bodies(archive: Path) -> None:
    html = render_html(timeline(archive))
    assert "<script>alert" not in html
    assert "Settling tomorrow &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html


def test_html_is_self_contained(archive: Path) -> None:
    html = render_html(timeline(archive, conversation="conv-zh"))
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert not re.search(r"<script|<link|src=|https?://", html)
    assert "您好，请确认结算日期。" in html  # UTF-8 text as written
    assert html.count('class="entry ') == 3


def test_cli_prints_and_exports(archive: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    base = ["conversation", "conv-ja", "--archive", str(archive), "--role", "reviewer"]
    assert vigil(*base) == 0
    out = capsys.readouterr().out
    assert "Conversation conv-ja" in out and "決済日を確認してください。" in out
    target = tmp_path / "out" / "ja.html"
    target.parent.mkdir()
    assert vigil(*base, "--html", str(target)) == 0
    assert "wrote" in capsys.readouterr().out
    assert "カード番号は送らないでください" in target.read_text(encoding="utf-8")
    assert vigil(*base, "--from", "2026-01-09", "--to", "2026-01-08") == 2
    assert "swap them" in capsys.readouterr().err
    # an id the archive does not hold: exit 1 (a script can tell it from a view), no page, logged
    audit = archive / "_ledger" / "audit.jsonl"
    logged = audit.read_text(encoding="utf-8").count("\n")
    missing = tmp_path / "out" / "nope.html"
    assert vigil("conversation", "conv-nope", "--archive", str(archive), "--role", "officer") == 1
    assert "no records of conversation conv-nope: check the id" in capsys.readouterr().err
    assert vigil(*base[:1], "conv-nope", *base[2:], "--html", str(missing), "--from", "2026-01-05") == 1
    err = capsys.readouterr().err
    assert "conv-nope in the --from/--to window; no page written" in err and "and the window" in err
    assert not missing.exists()
    entries = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()[logged:]]
    assert [(e["action"], e["results"], e["role"]) for e in entries] == [
        ("conversation", 0, "officer"),
        ("export", 0, "reviewer"),  # an export attempted is logged as one, though no page was written
    ]
    assert entries[1]["details"]["format"] == "html"
    assert entries[1]["details"]["file"] == str(missing.resolve())
    for blank in ("", "  "):
        assert vigil("conversation", blank, "--archive", str(archive), "--role", "officer") == 2
        assert "the conversation id is empty" in capsys.readouterr().err


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_html_export_into_the_archive_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    archive = write_archive(tmp_path / "archive", ROWS)
    base = ["conversation", "conv-en", "--role", "reviewer"]
    assert vigil(*base, "--archive", str(archive)) == 0  # the audit log now has an entry to lose
    capsys.readouterr()
    (tmp_path / "ledger").symlink_to(archive / "_ledger")
    (tmp_path / "log.html").symlink_to(archive / "_ledger" / "audit.jsonl")
    (tmp_path / "alias").symlink_to(archive)
    (tmp_path / "elsewhere").mkdir()
    before = _files(archive)
    attempts = [
        (archive, archive / "_ledger" / "audit.jsonl"),
        (archive, archive / "_ledger" / "manifest.jsonl"),
        (archive, archive / "conv-en.html"),  # a new file is refused too: the folder is Vigil's
        (archive, tmp_path / "ledger" / "conv-en.html"),  # a symlinked folder
        (archive, tmp_path / "log.html"),  # a symlink to the log
        (archive, tmp_path / "elsewhere" / ".." / "archive" / "_ledger" / "audit.jsonl"),
        (tmp_path / "alias", archive / "_ledger" / "audit.jsonl"),  # the archive named by a symlink
        (archive, tmp_path / "alias" / "_ledger" / "audit.jsonl"),
    ]
    for where, target in attempts:
        assert vigil(*base, "--archive", str(where), "--html", str(target)) == 2, target
        err = capsys.readouterr().err
        assert err.startswith(f"error: --html {target}: this is inside the archive folder ")
        assert "write the file somewhere else" in err and err.count("\n") == 1
        assert _files(archive) == before  # nothing written, nothing logged, no temporary file
    assert (tmp_path / "log.html").is_symlink() and (tmp_path / "ledger").is_symlink()
    assert not list((tmp_path / "elsewhere").iterdir())
    outside = tmp_path / "elsewhere" / "conv-en.html"
    assert vigil(*base, "--archive", str(tmp_path / "alias"), "--html", str(outside)) == 0
    assert outside.is_file()


def test_attachment_names_and_free_text_attributes_only_for_officers(tmp_path: Path) -> None:
    # DLP scans bodies only: a file name or a refusal reason can carry a card number unseen, so
    # the roles that see DLP's views get the media type and size, and values the system writes
    card = "4532015112830366"
    files = [
        {
            "sha256": "0" * 64,
            "media_type": "application/pdf",
            "size": 1234,
            "uri": f"vigil-media://card-{card}",
            "name": "card 4532 0151 1283 0366.pdf",
        },
        {"sha256": "1" * 64, "media_type": f"application/x-{card}", "size": 5, "uri": "vigil-media://y"},
    ]
    rows = [
        row("a-1", at(5, 9), body="see attached", attachments=files),
        row(
            "a-2",
            at(5, 9, 1),
            body="one",
            attributes={"delivery": "refused", "refusal": f"card {card} rejected"},
        ),
        row("a-3", at(5, 9, 2), body="two", attributes={"delivery": "queued", "queue_position": card}),
        row(
            "a-4", at(5, 9, 3), body="three", attributes={"delivery": "refused", "refusal": "window_expired"}
        ),
        row("a-5", at(5, 9, 4), body="four", attributes={"delivery": "queued", "queue_position": "2"}),
    ]
    archive = write_archive(tmp_path / "archive", rows)
    loaded = load_conversation(archive, "conv-en")
    for who in (REVIEWER, Identity("crm-sync", AccessRole.CRM)):
        for export in (False, True):
            t = build_timeline("conv-en", loaded, who, export=export)
            assert t.entries[0].attachments == [
                "attachment (application/pdf, 1,234 bytes; name not shown)",
                "attachment (unknown type, 5 bytes; name not shown)",
            ]
            assert [e.heading for e in t.entries[1:]] == [
                "message · refused (reason not shown)",
                "message · queued",
                "message · refused (window_expired)",
                # the CRM role sees no position at all (a hidden held message would leave a gap)
                "message · queued (position 2)" if who.sees_dlp else "message · queued",
            ]
            for shown in (terminal(t), render_html(t)):
                assert "4532" not in shown and "0366" not in shown and "card" not in shown
    t = build_timeline("conv-en", loaded, OFFICER)
    assert t.entries[0].attachments[0] == "card 4532 0151 1283 0366.pdf (application/pdf, 1,234 bytes)"
    assert t.entries[1].heading == f"message · refused (card {card} rejected)"
    assert t.entries[2].heading == f"message · queued (position {card})"


def test_an_html_export_over_a_link_or_pipe_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    # the page is renamed into place: it would replace the link, pipe or device, not write into it
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    archive = write_archive(tmp_path / "archive", ROWS)
    base = ["conversation", "conv-en", "--role", "reviewer", "--archive", str(archive)]
    (tmp_path / "kept.html").write_text("mine")
    (tmp_path / "link.html").symlink_to(tmp_path / "kept.html")
    os.mkfifo(tmp_path / "pipe.html")
    before = _files(archive)
    for name in ("link.html", "pipe.html"):  # (a folder is refused by the option parser itself)
        target = tmp_path / name
        assert vigil(*base, "--html", str(target)) == 2, name
        err = capsys.readouterr().err
        assert err == (
            f"error: --html {target}: it exists and is not a plain file (a link, a folder, a pipe or a "
            "device); give the name of a new or ordinary file\n"
        )
    assert (tmp_path / "link.html").is_symlink() and (tmp_path / "kept.html").read_text() == "mine"
    assert stat.S_ISFIFO((tmp_path / "pipe.html").lstat().st_mode)
    assert _files(archive) == before  # nothing logged
    assert vigil(*base, "--html", str(tmp_path / "kept.html")) == 0  # an ordinary file is replaced
    assert "<html" in (tmp_path / "kept.html").read_text()


def test_html_shows_control_characters_as_escapes(tmp_path: Path) -> None:
    nasty = "\x1b[2J RED \x9b31m \u202egnp.exe\u202c \u2067x\u2069 del\x7f\nline two"
    evil = {**WEI, "name": "Wei \u202eZhang"}
    rows = [row("c-1", at(5, 9), body=nasty, sender=evil, recipients=[DANA], participants=[DANA, evil])]
    archive = write_archive(tmp_path / "archive", rows)
    html = render_html(build_timeline("conv-en", load_conversation(archive, "conv-en"), REVIEWER))
    for raw in ("\x1b", "\x9b", "\u202e", "\u202c", "\u2067", "\u2069", "\x7f"):
        assert raw not in html
    assert "\\x1b[2J RED \\x9b31m \\u202egnp.exe\\u202c \\u2067x\\u2069 del\\x7f\nline two" in html
    assert "Wei \\u202eZhang" in html


def test_a_window_ending_at_the_end_of_the_calendar(
    archive: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    base = ["conversation", "conv-en", "--archive", str(archive), "--role", "officer"]
    for end in ("9999-12-31", "9999-12-31T23:59:59.999999"):
        assert vigil(*base, "--from", "2026-01-05", "--to", end) == 0
        assert "10 records" in capsys.readouterr().out
    assert vigil(*base, "--from", "0001-01-01T00:00:00+01:00") == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --from 0001-01-01T00:00:00+01:00 is outside the calendar (years 1 to 9999 in UTC); "
        "write a date such as --from 2026-01-31\n"
    )


SYSTEM_SENDER = {"id": "system:wechat", "name": "WeChat Official Account", "role": "system"}


def wechat_notice(
    record_id: str, when: dt.datetime, event_type: str, audience: str, recipients: list, participants: list,
    body: str,
) -> dict:  # fmt: skip
    """An auto-message the WeChat account sends."""
    return row(
        record_id,
        when,
        kind="auto_message",
        event_type=event_type,
        audience=audience,
        direction="system",
        sender=SYSTEM_SENDER,
        recipients=recipients,
        participants=participants,
        channel="wechat",
        body=body,
    )


def test_when_the_last_one_leaves_nobody_is_present_until_someone_writes_again(tmp_path: Path) -> None:
    # a WeChat contact alone in the chat (the number is being validated) sends #LEAVE; its notice
    # still lists them; two hours later they write again
    only = [WEI]

    def notice(n: int, minute: int, event_type: str, body: str) -> dict:
        return wechat_notice(f"nb-{n}", at(5, 9, minute), event_type, "customer", only, only, body)

    rows = [
        event_row("nb-1", at(5, 9, 0), "conversation_started", WEI, only, channel="wechat"),
        notice(2, 1, "phone_validation_requested", "Please reply with your mobile number."),
        event_row("nb-3", at(5, 9, 2), "customer_leave", WEI, only, channel="wechat"),
        notice(4, 3, "customer_leave", "You have left the chat."),
        row(
            "nb-5",
            at(5, 11, 0),
            body="Hello again",
            sender=WEI,
            recipients=[],
            participants=only,
            channel="wechat",
            direction="inbound",
        ),
    ]
    root = write_archive(tmp_path / "a", rows)
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    changes = [(e.record_id, [p.id for p in e.joined], [p.id for p in e.left]) for e in t.entries]
    assert [c for c in changes if c[1] or c[2]] == [
        (rows[2]["record_id"], [], [WEI["id"]]),  # left once, on the #LEAVE
        (rows[4]["record_id"], [WEI["id"]], []),  # and back when writing again
    ]
    assert [e.present for e in t.entries][2:4] == [[], []]
    # a window that opens while nobody is there starts with nobody present
    later = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
    windowed = build_timeline("conv-en", load_conversation(root, "conv-en", time_from=later), OFFICER)
    assert windowed.present_at_start == []
    (entry,) = windowed.entries
    assert [p.id for p in entry.joined] == [WEI["id"]]


def test_a_contact_writing_again_after_leave_brings_back_those_their_message_lists(
    tmp_path: Path,
) -> None:
    both = [DANA, WEI]
    rows = [
        row("rs-1", at(5, 9, 0), body="hello", sender=WEI, recipients=[DANA], participants=both,
            channel="wechat", direction="inbound"),
        event_row("rs-2", at(5, 9, 1), "customer_leave", WEI, both, channel="wechat"),
        wechat_notice("rs-3", at(5, 9, 2), "customer_leave", "employee", [DANA], both,
                      "The contact left the chat."),
        row("rs-4", at(5, 11, 0), body="hello again", sender=WEI, recipients=[DANA], participants=both,
            channel="wechat", direction="inbound"),
    ]  # fmt: skip
    root = write_archive(tmp_path / "a", rows)
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    changes = [(e.record_id, {p.id for p in e.joined}, {p.id for p in e.left}) for e in t.entries]
    assert [c for c in changes if c[1] or c[2]] == [
        (rows[1]["record_id"], set(), {DANA["id"], WEI["id"]}),  # #LEAVE ends the chat for both
        (rows[3]["record_id"], {DANA["id"], WEI["id"]}, set()),  # writing again resumes it
    ]


def test_a_leave_shows_on_its_event_whatever_the_source_lists_as_present(tmp_path: Path) -> None:
    # this source lists the one leaving on the leave event and on the notices about it (the state
    # before the change); the customer's #LEAVE never changes the participants at all
    def event(n: int, minute: int, event_type: str, sender: dict, participants: list, **kw) -> dict:
        return event_row(
            f"lv-{n}", at(5, 9, minute), event_type, sender, participants, channel="wechat", **kw
        )

    def notice(n: int, minute: int, event_type: str, participants: list) -> dict:
        return wechat_notice(
            f"lv-{n}", at(5, 9, minute), event_type, "employee", [DANA], participants, "someone left"
        )

    everyone = [DANA, ALEX, WEI]
    rows = [
        event(1, 0, "left_conversation", ALEX, everyone),  # the window starts on a leave
        notice(2, 1, "left_conversation", everyone),
        row("lv-3", at(5, 9, 2), body="still here", participants=everyone, channel="wechat"),
        event(4, 3, "participant_added", DANA, everyone, attributes={"participant": ALEX["id"]}),
        event(5, 4, "participant_removed", DANA, everyone, attributes={"participant": ALEX["id"]}),
        row("lv-6", at(5, 9, 5), body="and now", participants=[DANA, WEI], channel="wechat"),
        event(7, 6, "customer_leave", WEI, [DANA, WEI]),
        row("lv-8", at(5, 9, 7), body="are you there?", participants=[DANA, WEI], channel="wechat"),
        row(
            "lv-9",
            at(5, 9, 8),
            body="back again",
            sender=WEI,
            recipients=[DANA],
            participants=[DANA, WEI],
            channel="wechat",
            direction="inbound",
        ),
    ]
    root = write_archive(tmp_path / "a", rows)
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    ids = lambda people: [p.id for p in people]  # noqa: E731
    assert ids(t.present_at_start) == [DANA["id"], ALEX["id"], WEI["id"]]
    number = {r["record_id"]: n for n, r in enumerate(rows, start=1)}
    changes = [(number[e.record_id], ids(e.joined), ids(e.left)) for e in t.entries if e.joined or e.left]
    assert changes == [
        (1, [], [ALEX["id"]]),  # on the leave itself, not on the next record
        (4, [ALEX["id"]], []),
        (5, [], [ALEX["id"]]),
        (7, [], [DANA["id"], WEI["id"]]),  # the contact's #LEAVE ends the chat for everyone
        (8, [DANA["id"]], []),  # an employee who writes again is back in it
        (9, [WEI["id"]], []),  # and so is the customer
    ]
    assert [ids(e.present) for e in t.entries][1:3] == [[DANA["id"], WEI["id"]]] * 2
    text = terminal(t)
    assert "Present: Dana Whitfield (+12125550101), Alex Chen (+85230001111), Wei Zhang" in text
    html = re.sub(r"</?bdi>", "", render_html(t))  # each name is isolated for right-to-left text
    assert "Present at the start: Dana Whitfield (+12125550101), Alex Chen (+85230001111), Wei Zhang" in html


def test_someone_who_left_is_back_when_they_restart_the_conversation(tmp_path: Path) -> None:
    # a source that keeps listing the one who left: only their own act brings them back, and
    # restarting the conversation is one (as writing a message is)
    both = [DANA, ALEX]

    def event(n: int, event_type: str, sender: dict, **kw) -> dict:
        return row(
            f"rs-{n}", at(6, 9, n), kind="event", event_type=event_type, direction="system",
            sender=sender, recipients=[], participants=both, channel="whatsapp", **kw,
        )  # fmt: skip

    rows = [
        row("rs-0", at(6, 9, 0), body="morning", participants=both, channel="whatsapp"),
        event(1, "left_conversation", ALEX),
        row("rs-2", at(6, 9, 2), body="Alex is out", participants=both, channel="whatsapp"),
        event(3, "conversation_restarted", ALEX),
        row("rs-4", at(6, 9, 4), body="welcome back", participants=both, channel="whatsapp"),
        event(5, "transferred", ALEX, attributes={"from": ALEX["id"], "to": DANA["id"]}),
    ]
    root = write_archive(tmp_path / "a", rows)
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    ids = lambda people: [p.id for p in people]  # noqa: E731
    number = {r["record_id"]: n for n, r in enumerate(rows)}
    changes = [(number[e.record_id], ids(e.joined), ids(e.left)) for e in t.entries if e.joined or e.left]
    print("CHANGES", changes)
    assert changes == [
        (1, [], [ALEX["id"]]),
        (3, [ALEX["id"]], []),  # the restart is Alex acting: present again
        (5, [], [ALEX["id"]]),  # and a transfer away from Alex takes him out once more
    ]
    assert ids(t.entries[4].present) == [DANA["id"], ALEX["id"]]


def test_an_arrival_named_only_by_an_attribute_is_not_shown_to_roles_without_original_text(
    tmp_path: Path,
) -> None:
    # who joins (participant_added's `participant`, transferred's `to`) is an attribute value: free
    # text DLP never scans, which only officers see whole. Someone an earlier record names is shown
    # as that person; an id no record names is shown only to officers.
    def event(n: int, event_type: str, attributes: dict) -> dict:
        return row(
            f"ar-{n}", at(7, 9, n), kind="event", event_type=event_type, direction="system",
            sender=SYSTEM_SENDER, recipients=[], participants=[DANA, WEI], attributes=attributes,
        )  # fmt: skip

    card, ssn = "4012 8888 8888 1881", "749 36 0887"
    rows = [
        row("ar-0", at(7, 9, 0), body="hello", recipients=[WEI, ALEX], participants=[DANA, WEI]),
        event(1, "participant_added", {"participant": f"card {card}"}),
        event(2, "transferred", {"from": DANA["id"], "to": f"SSN {ssn}"}),
        event(3, "participant_added", {"participant": ALEX["id"]}),
    ]
    root = write_archive(tmp_path / "a", rows)
    loaded = load_conversation(root, "conv-en")
    for who in (REVIEWER, Identity("crm-sync", AccessRole.CRM)):
        for export in (False, True):
            t = build_timeline("conv-en", loaded, who, export=export)
            assert [p.label for p in t.entries[1].joined] == [
                "someone the records do not list (id not shown)"
            ]
            assert [p.label for p in t.entries[3].joined] == ["Alex Chen (+85230001111)"]
            for shown in (terminal(t), render_html(t)):
                assert card not in shown and ssn not in shown and "8888" not in shown
    t = build_timeline("conv-en", loaded, OFFICER)
    assert [p.label for p in t.entries[1].joined] == [f"card {card}"]
    assert [p.label for p in t.entries[2].joined] == [f"SSN {ssn}"]
    assert f"+ SSN {ssn} joined" in terminal(t)


def test_a_long_group_conversation_is_not_held_as_python_objects_row_by_row(tmp_path: Path) -> None:
    # every record of a group chat carries the whole participant list: reading a long one as a
    # list of dicts (and a Person per listed party per record) took gigabytes. The records are
    # read as Arrow and made into dicts a batch at a time; each party is one Person.
    import tracemalloc

    from pipelines.search.conversation import iter_conversation

    group = [
        {"id": f"p{i}", "name": f"Person {i}", "role": "employee", "handle": f"+1555{i:07d}", "groups": []}
        for i in range(40)
    ]
    n = 4000
    rows = [
        row(f"g-{i}", at(5, 9) + dt.timedelta(seconds=i), body=f"message {i}", participants=group,
            sender=group[i % 40], recipients=group[:3], channel="teams")
        for i in range(n)
    ]  # fmt: skip
    root = write_archive(tmp_path / "a", rows)
    tracemalloc.start()
    try:
        t = build_timeline("conv-en", iter_conversation(root, "conv-en"), OFFICER)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(t.entries) == n and len({id(p) for e in t.entries for p in e.present}) == 40
    assert peak < 15_000 * n, f"{peak / n:,.0f} bytes per record"


# --- held messages and their release ---------------------------------------------------------


def _held(n: int, minute: int, **kw) -> dict:
    return row(
        f"q-{n}",
        at(5, 9, minute),
        body=f"held message {n}",
        attributes={"delivery": "queued", "queue_position": str(n)},
        **kw,
    )


def _release(event_id: str, when: dt.datetime, held: str, position: str) -> dict:
    return event_row(
        event_id,
        when,
        "queued_delivered",
        SYSTEM,
        [DANA, WEI],
        attributes={"queue_position": position, "queued_event_id": held},
    )


def test_a_release_names_the_held_message_and_the_held_message_its_release(tmp_path: Path) -> None:
    rows = [
        _held(1, 0),
        _held(2, 1),
        row("c-1", at(5, 11), body="yes", sender=WEI, recipients=[DANA], direction="inbound"),
        _release("d-1", at(5, 11, 0), "q-1", "1"),
        _release("d-2", at(6, 8), "q-2", "2"),  # the next day: the times carry their date
    ]
    root = write_archive(tmp_path / "a", rows)
    ids = {r["event_id"]: r["record_id"] for r in rows}
    for who in (OFFICER, REVIEWER, Identity("crm-sync", AccessRole.CRM)):
        t = build_timeline("conv-en", load_conversation(root, "conv-en"), who)
        headings = {e.record_id: e.heading for e in t.entries}
        # positions for the roles that see every held message (none for CRM: see
        # test_the_crm_role_sees_no_queue_positions_a_hidden_held_message_would_leave_a_gap_in)
        held, at_ = (" (position {})", " (held at position {})") if who.sees_dlp else ("", "")
        assert headings[ids["q-1"]] == f"message · queued{held.format(1)} · delivered at 11:00:00"
        assert headings[ids["q-2"]] == f"message · queued{held.format(2)} · delivered at 2026-01-06 08:00:00"
        assert headings[ids["d-1"]] == (
            f"event · queued delivered · releases the message of 09:00:00{at_.format(1)}"
        )
        assert headings[ids["d-2"]] == (
            f"event · queued delivered · releases the message of 2026-01-05 09:01:00{at_.format(2)}"
        )
        shown = terminal(t)
        assert f"[event · queued delivered · releases the message of 09:00:00{at_.format(1)}]" in shown
        page = render_html(t)
        # in-page links both ways, to anchors the page has
        for source, target in (("d-1", "q-1"), ("q-1", "d-1"), ("d-2", "q-2"), ("q-2", "d-2")):
            assert f'href="#r-{ids[target]}"' in page and f'id="r-{ids[target]}"' in page
            assert f'id="r-{ids[source]}"' in page
        assert "q-1" not in shown and "q-1" not in page  # the event id itself is never shown


def test_a_window_claims_only_what_it_shows(tmp_path: Path) -> None:
    rows = [_held(1, 0), _release("d-1", at(6, 8), "q-1", "1")]
    root = write_archive(tmp_path / "a", rows)
    ids = {r["event_id"]: r["record_id"] for r in rows}
    jan6 = dt.datetime(2026, 1, 6, tzinfo=dt.UTC)
    first = build_timeline("conv-en", load_conversation(root, "conv-en", time_to=jan6), OFFICER)
    assert [e.heading for e in first.entries] == ["message · queued (position 1)"]  # fate unknown here
    second = build_timeline("conv-en", load_conversation(root, "conv-en", time_from=jan6), OFFICER)
    assert [e.heading for e in second.entries] == [
        "event · queued delivered · releases a held message (position 1)"
    ]
    assert second.entries[0].queue is not None and second.entries[0].queue.target is None
    assert 'href="#r-' not in render_html(second)
    # a release naming a record that is not in this conversation: the same
    stray = write_archive(tmp_path / "b", [_release("d-9", at(6, 8), "elsewhere", "3")])
    (entry,) = build_timeline("conv-en", load_conversation(stray, "conv-en"), OFFICER).entries
    assert entry.heading == "event · queued delivered · releases a held message (position 3)"
    assert ids["q-1"] not in render_html(second)


def test_a_release_links_only_a_message_the_view_shows_held_before_it(tmp_path: Path) -> None:
    rows = [
        _held(1, 0),
        row("m-2", at(5, 9, 1), body="delivered at once", sender=WEI, recipients=[DANA], direction="inbound"),
        _release("d-1", at(5, 11), "q-1", "1"),
        _release("d-1b", at(5, 11, 5), "q-1", "1"),  # the same message released twice
        _release("d-2", at(5, 11, 6), "m-2", "2"),  # names a message that was never held
        _release("d-0", at(5, 8), "q-9", "9"),  # dated before the message it names
        _held(9, 30),
    ]
    root = write_archive(tmp_path / "a", rows)
    ids = {r["event_id"]: r["record_id"] for r in rows}
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    headings = {e.record_id: e.heading for e in t.entries}
    assert headings[ids["d-1"]].endswith("releases the message of 09:00:00 (held at position 1)")
    assert headings[ids["d-1b"]].endswith("releases the message of 09:00:00 again (held at position 1)")
    assert headings[ids["q-1"]].endswith("delivered at 11:00:00")  # the first release
    for odd in ("d-2", "d-0"):
        assert headings[ids[odd]].endswith("the records in view do not show as held before it (held at "
                                           f"position {2 if odd == 'd-2' else 9})")  # fmt: skip
    assert headings[ids["m-2"]] == "message"  # not claimed delivered by a release
    assert headings[ids["q-9"]] == "message · queued (position 9)"  # nor one released before it was held
    page = render_html(t)
    assert f'href="#r-{ids["m-2"]}"' not in page and f'href="#r-{ids["q-9"]}"' not in page


def _refused(
    event_id: str,
    when: dt.datetime,
    event_type: str = "consent_refused",
    conversation_id: str = "conv-en",
    **attributes: str,
) -> dict:
    return event_row(
        event_id, when, event_type, WEI, [DANA, WEI], attributes=attributes, conversation_id=conversation_id
    )


def test_held_messages_an_event_drops_say_they_were_not_delivered(tmp_path: Path) -> None:
    rows = [
        _held(1, 0),
        _held(2, 1),
        _refused("x-1", at(5, 10), dropped_queued="2"),
        _held(3, 2, conversation_id="conv-b"),
        _refused("x-2", at(5, 10), "customer_leave", dropped_queued="0", conversation_id="conv-b"),
        _held(4, 3, conversation_id="conv-c"),
        _held(5, 4, conversation_id="conv-c"),
        _refused("x-3", at(5, 10), "customer_leave", dropped_queued="1", conversation_id="conv-c"),
        _held(6, 5, conversation_id="conv-d"),
        _refused("x-4", at(5, 10), conversation_id="conv-d"),  # a refused opt-in: nothing left to send
        _held(7, 6, conversation_id="conv-e"),
        _refused("x-5", at(5, 10), "customer_leave", conversation_id="conv-e"),  # says nothing of a queue
    ]
    root = write_archive(tmp_path / "a", rows)

    def headings(cid: str, who: Identity = OFFICER) -> list[str]:
        return [e.heading for e in build_timeline(cid, load_conversation(root, cid), who).entries]

    for who in (OFFICER, REVIEWER):
        assert headings("conv-en", who)[:2] == [
            "message · queued (position 1) · not delivered: consent refused at 10:00:00",
            "message · queued (position 2) · not delivered: consent refused at 10:00:00",
        ]
    assert headings("conv-b")[0] == "message · queued (position 3)"  # the event dropped none
    assert headings("conv-c")[:2] == ["message · queued (position 4)", "message · queued (position 5)"]
    assert (
        headings("conv-d")[0] == "message · queued (position 6) · not delivered: consent refused at 10:00:00"
    )
    assert headings("conv-e")[0] == "message · queued (position 7)"
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    assert (
        f'href="#r-{t.entries[2].record_id}">not delivered: consent refused at 10:00:00</a>' in render_html(t)
    )


def _shown_by_role(tmp_path: Path, rows: list[dict]) -> dict[str, list[str]]:
    """The event ids of the entries each role's view of conv-en shows, in order."""
    root = write_archive(tmp_path / "a", rows)
    ids = {r["record_id"]: r["event_id"] for r in rows}
    loaded = load_conversation(root, "conv-en")
    return {
        who.role.value: [ids[e.record_id] for e in build_timeline("conv-en", loaded, who).entries]
        for who in (OFFICER, REVIEWER, Identity("crm-sync", AccessRole.CRM))
    }


def test_the_crm_role_does_not_see_the_hold_notice_of_a_blocked_held_message(tmp_path: Path) -> None:
    """Before, "Held for later (1 of 5)" stayed in the CRM view right after the one message it left
    out: it told that a message existed, when it was written, and its place in the queue."""
    blocked = {"dlp_action": "block", "blocked": True, "body_redacted": "key <AWS_ACCESS_KEY_ID>"}

    rows = [
        row("q-1", at(5, 9), body="key AKIAIOSFODNN7EXAMPLE", attributes={"delivery": "queued"}, dlp=blocked),
        hold_notice("n-1", at(5, 9) + dt.timedelta(seconds=1), "q-1"),
        row("q-2", at(5, 9, 1), body="two", attributes={"delivery": "queued"}),
        hold_notice("n-2", at(5, 9, 1) + dt.timedelta(seconds=1), "q-2"),
    ]
    assert _shown_by_role(tmp_path, rows) == {
        "officer": ["q-1", "n-1", "q-2", "n-2"],
        "reviewer": ["q-1", "n-1", "q-2", "n-2"],
        "crm": ["q-2", "n-2"],
    }


def test_the_crm_role_does_not_see_the_notice_that_a_blocked_message_was_not_sent(tmp_path: Path) -> None:
    """Before, "Not sent: ... 4 messages in a row" stood alone in the CRM view right where the
    blocked message it refused was left out; the notice names it (refused_event_id) now."""
    blocked = {"dlp_action": "block", "blocked": True, "body_redacted": "My SSN is <US_SSN>"}
    refused = {"delivery": "refused", "refusal": "consecutive_limit"}
    rows = [
        row("m-1", at(5, 9), body="My SSN is 780-92-8022", attributes=refused, dlp=blocked),
        employee_notice(
            "n-1",
            at(5, 9) + dt.timedelta(seconds=1),
            "consecutive_limit_reached",
            "Not sent: 4 messages in a row without an answer.",
            attributes={"refused_event_id": "m-1"},
        ),
        row("m-2", at(5, 9, 1), body="see you", attributes={"delivery": "refused", "refusal": "queue_full"}),
        employee_notice(
            "n-2",
            at(5, 9, 1) + dt.timedelta(seconds=1),
            "queue_full",
            "Not queued: 5 messages are already waiting.",
            attributes={"refused_event_id": "m-2"},
        ),
    ]
    assert _shown_by_role(tmp_path, rows) == {
        "officer": ["m-1", "n-1", "m-2", "n-2"],
        "reviewer": ["m-1", "n-1", "m-2", "n-2"],
        "crm": ["m-2", "n-2"],
    }


def test_a_hold_notice_timed_before_its_blocked_message_is_left_out_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The employee's phone clock ran behind: the hold notice is stamped two seconds before the
    blocked message it tells of. Before, the CRM view showed it (the message was not yet read when
    the notice came), while a search of the same role left it out."""
    rows = [
        row("h-0", at(5, 8), body="hello", sender=WEI, recipients=[DANA], direction="inbound"),
        hold_notice("n-1", at(5, 9), "q-1"),
        _blocked_held("q-1", at(5, 9) + dt.timedelta(seconds=2)),
        _release("r-1", at(5, 10), "q-1", "1"),
    ]
    root = write_archive(tmp_path / "a", rows)
    ids = {r["record_id"]: r["event_id"] for r in rows}
    crm = Identity("crm-sync", AccessRole.CRM)
    loaded = load_conversation(root, "conv-en")
    assert [ids[e.record_id] for e in build_timeline("conv-en", loaded, crm).entries] == ["h-0"]
    assert [ids[e.record_id] for e in build_timeline("conv-en", loaded, OFFICER).entries] == [
        "h-0", "n-1", "q-1", "r-1",
    ]  # fmt: skip
    # the command and a search of the role agree
    assert vigil("conversation", "conv-en", "--archive", str(root), "--role", "crm", "--user", "c") == 0
    out = capsys.readouterr().out
    assert "1 record" in out and "held" not in out.lower()
    assert (
        vigil(
            "search", "--archive", str(root), "--role", "crm", "--user", "c", "--json", "conversation:conv-en"
        )
        == 0
    )
    assert [json.loads(line)["record_id"] for line in capsys.readouterr().out.splitlines()] == [
        rows[0]["record_id"]
    ]


def test_a_window_ending_between_a_hold_notice_and_its_blocked_message_still_leaves_it_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--to`` falls after the notice that a message was queued and before the message, which DLP
    blocked. Before, the CRM view of that window showed the notice (the blocked message, outside
    the window, was never looked at), while the whole conversation and a search left it out."""
    rows = [
        row("h-0", at(5, 8), body="hello", sender=WEI, recipients=[DANA], direction="inbound"),
        hold_notice("n-1", at(5, 9), "q-1"),
        _blocked_held("q-1", at(5, 9, 5)),
    ]
    root = write_archive(tmp_path / "a", rows)
    ids = {r["record_id"]: r["event_id"] for r in rows}
    crm = Identity("crm-sync", AccessRole.CRM)
    window = at(5, 9, 1)
    loaded = load_conversation(root, "conv-en", time_to=window)
    assert [ids[e.record_id] for e in build_timeline("conv-en", loaded, crm).entries] == ["h-0"]
    assert [ids[e.record_id] for e in build_timeline("conv-en", loaded, OFFICER).entries] == ["h-0", "n-1"]
    argv = ["--archive", str(root), "--role", "crm", "--user", "c"]
    assert vigil("conversation", "conv-en", *argv, "--to", window.isoformat()) == 0
    out = capsys.readouterr().out
    assert "1 record" in out and "held" not in out.lower()
    assert vigil("search", *argv, "--json", "conversation:conv-en", f"to:{window.isoformat()}") == 0
    assert [json.loads(line)["record_id"] for line in capsys.readouterr().out.splitlines()] == [
        rows[0]["record_id"]
    ]


def _blocked_held(event_id: str, when: dt.datetime, **attributes: str) -> dict:
    """A held message DLP blocked (an AWS key id in it), with its verdict as the archive keeps it."""
    verdict = {
        "dlp_action": "block",
        "dlp_rule_ids": ["secrets.cloud-key"],
        "dlp_findings": [{**KEY_FINDING, "start": 4, "end": 24}],
        "blocked": True,
        "body_redacted": "key <AWS_ACCESS_KEY_ID>",
    }
    body = "key AKIAIOSFODNN7EXAMPLE"
    return row(event_id, when, body=body, attributes={"delivery": "queued", **attributes}, dlp=verdict)


def test_the_release_shows_a_position_only_as_the_role_may_see_it(tmp_path: Path) -> None:
    card = "4532015112830366"
    rows = [
        _blocked_held("q-1", at(5, 9)),
        row("q-2", at(5, 9, 1), body="two", attributes={"delivery": "queued", "queue_position": card}),
        _release("d-1", at(5, 11), "q-1", "1"),
        _release("d-2", at(5, 11, 1), "q-2", card),
    ]
    root = write_archive(tmp_path / "a", rows)
    loaded = load_conversation(root, "conv-en")
    officer = [e.heading for e in build_timeline("conv-en", loaded, OFFICER).entries]
    assert (
        officer[3] == f"event · queued delivered · releases the message of 09:01:00 (held at position {card})"
    )
    reviewer = [e.heading for e in build_timeline("conv-en", loaded, REVIEWER).entries]
    assert reviewer[2:] == [
        "event · queued delivered · releases the message of 09:00:00 (held at position 1)",
        "event · queued delivered · releases the message of 09:01:00",
    ]
    crm_sync = Identity("crm-sync", AccessRole.CRM)
    crm = build_timeline("conv-en", loaded, crm_sync)
    # the blocked message is not shown to the CRM role, nor its release: a release that named no
    # message in an unwindowed view (before: "releases a held message (position 1)") would point at it
    assert [e.heading for e in crm.entries] == [
        "message · queued · delivered at 11:01:00",
        "event · queued delivered · releases the message of 09:01:00",
    ]
    assert "09:00:00" not in terminal(crm) and "11:00:00" not in terminal(crm) + render_html(crm)
    # the same when the blocked message lies before the window and only its release inside it
    jan5_10 = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
    windowed = build_timeline("conv-en", load_conversation(root, "conv-en", time_from=jan5_10), crm_sync)
    assert [e.heading for e in windowed.entries] == [
        "event · queued delivered · releases a held message",  # q-2, before the window
    ]
    # DLP blocked the held message: the channel released it, but it was not delivered
    for who in (OFFICER, REVIEWER):
        assert (
            build_timeline("conv-en", loaded, who).entries[0].heading
            == "message · queued · released at 11:00:00"
        )


def test_the_crm_role_sees_no_queue_positions_a_hidden_held_message_would_leave_a_gap_in(
    tmp_path: Path,
) -> None:
    """Held at positions 1, 2 and 3 with the second blocked: "1" and "3" shown to the CRM role would
    say that something it cannot see was held in between."""
    rows = [
        _held(1, 0),
        _blocked_held("q-2", at(5, 9, 1), queue_position="2"),
        _held(3, 2),
        _release("d-1", at(5, 11), "q-1", "1"),
        _release("d-2", at(5, 11, 1), "q-2", "2"),
        _release("d-3", at(5, 11, 2), "q-3", "3"),
    ]
    loaded = load_conversation(write_archive(tmp_path / "a", rows), "conv-en")
    crm = build_timeline("conv-en", loaded, Identity("crm-sync", AccessRole.CRM))
    assert [e.heading for e in crm.entries] == [
        "message · queued · delivered at 11:00:00",
        "message · queued · delivered at 11:02:00",
        "event · queued delivered · releases the message of 09:00:00",
        "event · queued delivered · releases the message of 09:02:00",
    ]
    assert "position" not in terminal(crm) + render_html(crm)
    # the reviewer sees every record (the blocked one redacted), so its numbering has no gap
    reviewer = [e.heading for e in build_timeline("conv-en", loaded, REVIEWER).entries]
    assert reviewer[:3] == [
        "message · queued (position 1) · delivered at 11:00:00",
        "message · queued (position 2) · released at 11:01:00",
        "message · queued (position 3) · delivered at 11:02:00",
    ]


@pytest.mark.parametrize(
    "command",
    [["conversation", "conv-en"], ["search", "--json", "the"]],
    ids=["conversation", "search"],
)
def test_a_reader_that_stops_taking_the_output_ends_the_command_quietly_with_exit_1(
    archive: Path, tmp_path: Path, command: list[str]
) -> None:
    """`| head` closes the pipe once it has its lines: no traceback, no message, exit 1 (the output
    is incomplete), as the README's exit codes say."""
    import subprocess

    from helpers import VIGIL

    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env.pop("VIGIL_CONFIG", None)
    reader, writer = os.pipe()
    os.close(reader)  # closed before the command writes a byte
    try:
        done = subprocess.run(
            [*VIGIL, *command, "--archive", str(archive), "--role", "officer"],
            stdout=writer,
            stderr=subprocess.PIPE,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.returncode == 1 and done.stderr == b""
