"""What a compliance officer sees: the search table (paging line, snippets, narrow terminals, no
hits) and the conversation view (right-to-left names, the window, printing, wrapped text)."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
import regex
from rich.console import Console
from search_support import (
    DANA,
    WEI,
    at,
    dataset,
    no_user_config,  # noqa: F401  (autouse: no caller's config)
    row,
    vigil,
    write_archive,
)

from pipelines.search import embedded, render
from pipelines.search.access import AccessRole, Identity
from pipelines.search.conversation import build_timeline, load_conversation, render_html, render_text
from pipelines.search.parse import parse_query
from pipelines.search.results import Page

OFFICER = Identity("olivia", AccessRole.OFFICER)
SARA = {**WEI, "id": "cust-ar", "name": "سارة الأحمد", "handle": "+971500000001"}
DANA_HE = {**DANA, "id": "emp-he", "name": "דנה כהן", "handle": "+972500000002"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("display") / "archive", dataset())


def _table(result, width: int = 140) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    render.print_table(result, "officer", Console(file=out, width=width, color_system=None))
    return out.getvalue()


def _terminal(timeline, width: int = 200) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    render_text(timeline, Console(file=out, width=width, color_system=None))
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# the search table


@pytest.mark.parametrize(("number", "shown"), [(1, "showing 1–2"), (2, "showing 3–4"), (3, "showing 5–6")])
def test_the_summary_says_which_hits_the_page_shows(archive: Path, number: int, shown: str) -> None:
    result = embedded.search(archive, parse_query("settlement"), OFFICER, Page(number=number, size=2))
    assert f"6 hits · page {number} of 3 (2 per page, newest first) · {shown} · " in _table(result)


def test_a_short_last_page_shows_how_many_are_left(archive: Path) -> None:
    result = embedded.search(archive, parse_query("settlement"), OFFICER, Page(number=2, size=4))
    assert "· showing 5–6 ·" in _table(result)
    one = embedded.search(archive, parse_query("portal"), OFFICER)
    assert "1 hit · page 1 of 1 (20 per page, newest first) · showing 1 · " in _table(one)


def test_no_hits_says_so_and_what_to_try(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive)]
    assert vigil(*argv, "--role", "officer", "settlements") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0 hits" in out and "No records match this query." in out
    # the prefix suggested is made from what was typed (and finds the settlement messages)
    assert "try a prefix (settleme*), fewer words or a wider date range" in out
    assert "redacted text" not in out  # officers search the original
    assert vigil(*argv, "--role", "officer", "settleme*") == 0
    assert "6 hits" in " ".join(capsys.readouterr().out.split())
    # nothing to cut a prefix from (a phrase, a short word): the other advice only
    for query in ('"zzyzx road"', "zzyx"):
        assert vigil(*argv, "--role", "officer", query) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "try fewer words or a wider date range" in out and "prefix" not in out
    # a reviewer typing a card number finds nothing, and is told why that may be
    assert vigil(*argv, "--role", "reviewer", '"4111 1111"') == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "The reviewer role searches the redacted text, not the original." in out
    # filters only: no advice about words
    assert vigil(*argv, "--role", "officer", "conversation:conv-nope") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "No records match this query." in out and "settl*" not in out


def test_a_narrow_terminal_still_shows_the_text(archive: Path) -> None:
    result = embedded.search(archive, parse_query("portal"), OFFICER)
    (hit,) = result.hits
    text = _table(result, width=40)
    assert "portal" in text, text  # three fixed columns left the text column no room at all
    assert hit.conversation_id in text and "Alex Chen (+85230001111)" in text and "BLOCKED" in text
    assert max(len(line) for line in text.splitlines()) <= 40


def _clusters(text: str) -> list[str]:
    return regex.findall(r"\X", text)


FAMILY = "👨\u200d👩\u200d👧\u200d👦"


@pytest.mark.parametrize("lead", range(7))  # every offset into a seven-code-point emoji sequence
def test_a_snippet_never_cuts_an_emoji_sequence(lead: int) -> None:
    text = "x" * lead + FAMILY * 80 + " needle " + FAMILY * 80
    first = text.index("needle")
    shown, spans = render.snippet(text, [(first, first + 6)])
    assert shown.startswith("…") and shown.endswith("…")
    inner = shown[1:-1]
    assert set(_clusters(inner)) <= {FAMILY, "x", " ", "n", "e", "d", "l"}, inner[:20]
    assert [shown[s:e] for s, e in spans] == ["needle"]


def test_a_snippet_never_leaves_an_accent_without_its_letter() -> None:
    text = "e\u0301" * 200 + " needle " + "e\u0301" * 200
    first = text.index("needle")
    for lead in ("", "x"):
        shown, spans = render.snippet(lead + text, [(first + len(lead), first + len(lead) + 6)])
        assert not shown[1:].startswith("\u0301") and not shown.endswith("e…")
        assert [shown[s:e] for s, e in spans] == ["needle"]


def test_a_snippet_never_cuts_a_visible_escape_in_two(tmp_path: Path) -> None:
    body = "\u202e" * 200 + " needle " + "\u202e" * 400
    archive = write_archive(tmp_path / "a", [row("e-1", at(5, 9), body=body)])
    result = embedded.search(archive, parse_query("needle"), OFFICER)
    cell = render.text_cell(result.hits[0])
    assert re.fullmatch(r"…(\\u202e)+ needle (\\u202e)+…", cell.plain), cell.plain[:40]
    (style,) = [s for s in cell.spans if s.style == render.HIGHLIGHT]
    assert cell.plain[style.start : style.end] == "needle"


# ---------------------------------------------------------------------------------------------
# the conversation view


def _rtl(tmp_path: Path) -> Path:
    rows = [
        row(
            "r-1",
            at(5, 9),
            body="مرحبا، هل تم تحويل المبلغ؟ 100 USD!",
            sender=SARA,
            recipients=[DANA_HE],
            participants=[SARA, DANA_HE],
        ),
        row("r-2", at(6, 9), body="שלום!", sender=DANA_HE, recipients=[SARA], participants=[SARA, DANA_HE]),
    ]
    return write_archive(tmp_path / "a", rows)


def test_right_to_left_names_cannot_swap_sender_and_recipient_on_the_page(tmp_path: Path) -> None:
    # "سارة (+971…) → דנה (+972…)" in a left-to-right line is one right-to-left run: the browser
    # would show the recipient first, as if she had sent it. Each name is isolated.
    archive = _rtl(tmp_path)
    html = render_html(build_timeline("conv-en", load_conversation(archive, "conv-en"), OFFICER))
    assert '<bdi class="who">سارة الأحمد (+971500000001)</bdi>\n → <bdi>דנה כהן (+972500000002)</bdi>' in html
    assert "Present at the start: <bdi>سارة الأحمد (+971500000001)</bdi>, <bdi>דנה כהן" in html
    # a body takes its direction from its own first letters, so its punctuation stays at its end
    assert '<div class="text" dir="auto">مرحبا، هل تم تحويل المبلغ؟ 100 USD!</div>' in html


def test_a_window_is_stated_so_a_days_export_does_not_pass_for_the_whole_conversation(
    tmp_path: Path,
) -> None:
    archive = _rtl(tmp_path)
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    rows = load_conversation(archive, "conv-en", time_from=start, time_to=end)
    t = build_timeline("conv-en", rows, OFFICER, window=(start, end), export=True)
    said = "2026-01-05 to 2026-01-05 (UTC, inclusive); records outside it are not shown"
    assert f"Window: {said}" in render_html(t) and f"Window: {said}" in _terminal(t)
    whole = build_timeline("conv-en", load_conversation(archive, "conv-en"), OFFICER)
    assert "Window" not in render_html(whole) and "Window" not in _terminal(whole)
    since = build_timeline("conv-en", load_conversation(archive, "conv-en"), OFFICER, window=(start, None))
    assert "Window: from 2026-01-05 on (UTC, inclusive)" in _terminal(since)


def test_the_page_times_are_machine_readable_and_print_legibly(tmp_path: Path) -> None:
    archive = _rtl(tmp_path)
    t = build_timeline("conv-en", load_conversation(archive, "conv-en"), OFFICER, now=at(1, 0, month=3))
    html = render_html(t)
    assert '<time datetime="2026-01-05T09:00:00+00:00">2026-01-05 09:00:00 UTC</time> → ' in html
    assert '<time datetime="2026-03-01T00:00:00+00:00">2026-03-01 00:00:00 UTC</time>' in html  # generated
    # browsers print without backgrounds: the header's white text must turn dark on paper
    printed = re.search(r"@media print \{(.*?)\n  \}", html, re.S)
    assert printed and re.search(r"header \{[^}]*color: #000", printed.group(1))
    assert "break-inside: avoid" in printed.group(1)


def test_one_record_is_not_records(tmp_path: Path, capsys) -> None:
    archive = write_archive(tmp_path / "a", [row("o-1", at(5, 9), body="hello")])
    t = build_timeline("conv-en", load_conversation(archive, "conv-en"), OFFICER)
    assert "· 1 record\n" in _terminal(t) and "· 1 record</p>" in render_html(t)
    target = tmp_path / "one.html"
    argv = ["conversation", "conv-en", "--archive", str(archive), "--role", "officer"]
    assert vigil(*argv, "--html", str(target)) == 0
    assert capsys.readouterr().out == f"wrote {target} (1 record)\n"


def test_an_empty_page_has_no_stray_separator(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a", [row("o-1", at(5, 9), body="hello")])
    html = render_html(build_timeline("conv-none", load_conversation(archive, "conv-none"), OFFICER))
    assert "<p>0 records</p>" in html and "No records for this conversation: check the id." in html


def test_wrapped_text_stays_under_its_record(tmp_path: Path) -> None:
    body = "The transfer has been submitted and it normally settles in two business days."
    redacted = "The transfer has been submitted and it normally settles in <DATE_TIME> days."
    rows = [row("w-1", at(5, 9), body=body, dlp={"dlp_action": "redact", "body_redacted": redacted})]
    archive = write_archive(tmp_path / "a", rows)
    out = _terminal(build_timeline("conv-en", load_conversation(archive, "conv-en"), OFFICER), width=40)
    lines = out.splitlines()
    first = next(n for n, line in enumerate(lines) if "The transfer" in line)
    body_lines = lines[first : first + 6]
    assert all(line.startswith("    ") for line in body_lines), body_lines  # wrapped lines too
    assert "redacted view:" in "".join(body_lines)


@pytest.mark.parametrize("width", [120, 40])
def test_a_long_chinese_body_shows_the_words_that_matched(tmp_path: Path, width: int) -> None:
    # no spaces to wrap at: a cell that cut its one long "word" with an ellipsis hid the match
    body = "这是一个很长的中文句子，" * 30 + "结算日期" + "后面还有很多文字。" * 30
    archive = write_archive(tmp_path / "a", [row("z-1", at(5, 9), body=body)])
    result = embedded.search(archive, parse_query("结算日期"), OFFICER)
    lines = _table(result, width=width).splitlines()
    text_column = "".join(line.split("│")[-2].strip() for line in lines if line.count("│") >= 2)
    assert text_column.endswith("后面…")  # the whole window, folded over several lines
    assert "结算日期" in text_column
