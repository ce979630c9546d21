"""Showing search results: a table for people, JSON lines for programs.

Matched words are emphasised in the text (``rich`` styles in the table; ``highlights`` offsets in
JSON). Long bodies are cut to a window around the first match so a page stays readable. In the
table, terminal control characters from the data (escape sequences, C1 controls, bidirectional
overrides) are shown as visible escapes (:func:`safe`); JSON escapes them as ``\\u202e``
(:func:`json_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipelines import json_lines as jsonl
from pipelines.search.match import Span
from pipelines.search.results import Hit, SearchResult, kind_label

HIGHLIGHT = "bold black on yellow"
SNIPPET_CHARS = 320


#: Characters that steer a terminal instead of printing: C0 controls but newline and tab, DEL, C1
#: controls (CSI among them), and the bidirectional overrides, embeddings and isolates that can
#: make text read in another order than it was sent.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str) -> str:
    """``text`` with every terminal control character shown as a visible escape (ESC as ``\\x1b``,
    RIGHT-TO-LEFT OVERRIDE as ``\\u202e``); newlines and tabs stay."""
    return _CONTROL.sub(lambda m: _escape(m.group()), text)


def safe_spans(text: str, spans: list[Span] | tuple[Span, ...]) -> tuple[str, list[Span]]:
    """:func:`safe`, with highlight spans moved to where their characters now are."""
    if not _CONTROL.search(text):
        return text, list(spans)
    out: list[str] = []
    position = [0] * (len(text) + 1)
    length = 0
    for i, char in enumerate(text):
        position[i] = length
        piece = _escape(char) if _CONTROL.fullmatch(char) else char
        out.append(piece)
        length += len(piece)
    position[len(text)] = length
    return "".join(out), [(position[start], position[end]) for start, end in spans]


def json_lines(result: SearchResult) -> Iterator[str]:
    """One JSON object per hit: UTF-8 text as written, but every control character of
    :func:`safe` escaped the JSON way (``\\u202e``), so printing a line cannot drive a terminal."""
    for hit in result.hits:
        yield json_text(hit.to_json())


def json_text(value: object) -> str:
    """``value`` as one line of JSON (see :mod:`pipelines.json_lines`)."""
    return jsonl.dumps(value)


def summary(result: SearchResult, role: str) -> str:
    order = "newest first" if result.page.newest_first else "oldest first"
    hits = f"{result.total:,} hit{'' if result.total == 1 else 's'}"
    return (
        f"{hits} · page {result.page.number} of {result.pages} ({result.page.size} per page, {order}) · "
        f"{result.engine} engine, {result.took_ms:.0f} ms · role {role}"
    )


def party_label(party: dict[str, object]) -> str:
    name, handle, pid = party.get("name"), party.get("handle"), party.get("id")
    if name and handle:
        return f"{name} ({handle})"
    return str(name or handle or pid or "?")


def dlp_label(hit: Hit) -> str:
    if not hit.dlp_action or hit.dlp_action == "none":
        return ""
    label = "BLOCKED" if hit.blocked else hit.dlp_action
    if hit.dlp_rule_ids:
        label += "\n" + "\n".join(hit.dlp_rule_ids)
    return label


def snippet(
    text: str, spans: list[Span] | tuple[Span, ...], width: int = SNIPPET_CHARS
) -> tuple[str, list[Span]]:
    """A window of ``text`` around the first highlight, with the spans moved into it."""
    if len(text) <= width:
        return text, list(spans)
    first = spans[0][0] if spans else 0
    start = max(0, min(first - width // 4, len(text) - width))
    end = start + width
    prefix = "…" if start else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    moved = [(max(s, start) + shift, min(e, end) + shift) for s, e in spans if e > start and s < end]
    return prefix + text[start:end] + suffix, moved


def styled(text: str, spans: list[Span] | tuple[Span, ...]) -> Text:
    shown, moved = snippet(*safe_spans(text, spans))
    out = Text(shown)
    for start, end in moved:
        out.stylize(HIGHLIGHT, start, end)
    return out


def text_cell(hit: Hit) -> Text:
    if hit.text is None:
        return Text("[text withheld for this role]" if hit.withheld else "—", style="dim italic")
    cell = styled(hit.text, hit.highlights)
    if hit.redacted is not None:
        cell.append("\nredacted: ", style="dim")
        cell.append(snippet(safe(hit.redacted), [])[0], style="dim")
    return cell


def table(result: SearchResult, role: str) -> Table:
    out = Table(title=summary(result, role), title_justify="left", show_lines=True, expand=True)
    out.add_column("Time (UTC) · where", width=19, overflow="fold")
    out.add_column("From · kind · DLP", width=22, overflow="fold")
    out.add_column("Text", ratio=1)
    for hit in result.hits:
        where = Text(hit.event_time.strftime("%Y-%m-%d %H:%M:%S"))
        where.append(f"\n{safe(hit.channel)}", style="cyan")
        where.append(f"\n{safe(hit.conversation_id)}", style="dim")
        who = Text(safe(party_label(hit.sender)))
        label = safe(kind_label(hit.kind, hit.audience, hit.event_type, hit.attributes.get("delivery")))
        who.append(f"\n{label}", style="magenta" if hit.kind != "message" else "dim")
        dlp = safe(dlp_label(hit))
        if dlp:
            who.append(f"\n{dlp}", style="bold red" if hit.blocked else "yellow")
        out.add_row(where, who, text_cell(hit))
    return out


def print_table(result: SearchResult, role: str, console: Console | None = None) -> None:
    console = console or Console()
    if not result.hits:
        console.print(summary(result, role))
        if result.total and result.page.offset >= result.total:
            console.print(f"(page {result.page.number} is past the last page, {result.pages})")
    else:
        console.print(table(result, role))
    for note in result.notes:  # also on an empty page: the note may be why nothing was found
        console.print(f"note: {safe(note)}", style="dim", markup=False, highlight=False)


def note_lines(result: SearchResult) -> list[str]:
    """The notes as plain lines (``note: ...``), for the standard error of ``--json``."""
    return [f"note: {safe(note)}" for note in result.notes]
