"""Reconstructing a conversation: order, presence, auto-messages, delivery, DLP, roles, HTML."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from search_support import ALEX, DANA, WEI, at, dataset, row, vigil, write_archive

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


def test_crm_sees_no_text_of_blocked_messages(archive: Path) -> None:
    t = timeline(archive, Identity("crm-sync", AccessRole.CRM))
    blocked = t.entries[5]
    assert blocked.text is None and blocked.withheld
    assert "[text withheld for this role]" in terminal(t)


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
    assert vigil("conversation", "conv-nope", "--archive", str(archive), "--role", "officer") == 0
    assert "No records for this conversation" in capsys.readouterr().out
