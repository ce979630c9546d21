"""Showing search results: a table for people, JSON lines for programs.

Matched words are emphasised in the text (``rich`` styles in the table; ``highlights`` offsets in
JSON). Long bodies are cut to a window around the first match so a page stays readable. In the
table, terminal control characters from the data (escape sequences, C1 controls, bidirectional
overrides) are shown as visible escapes (:func:`safe`); JSON escapes them as ``\\u202e``
(:func:`json_text`).
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator

import regex
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipelines import json_lines as jsonl
from pipelines.search.match import Span
from pipelines.search.query import And, Node, Or, Word
from pipelines.search.results import Hit, SearchResult, kind_label

HIGHLIGHT = "bold black on yellow"
SNIPPET_CHARS = 320
#: below this console width the table's three columns would leave the text no room: each hit is
#: then one cell, its time, place and sender above its text
NARROW = 72


#: Characters that steer a terminal instead of printing: C0 controls but newline and tab, DEL, C1
#: controls (CSI among them), and the bidirectional overrides, embeddings and isolates that can
#: make text read in another order than it was sent; and the Unicode line and paragraph
#: separators, line breaks a terminal does not treat as one (it prints nothing or a box, and a
#: table cell's border lands a column off).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


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
    first, last = result.page.offset + 1, result.page.offset + len(result.hits)
    showing = f" · showing {first:,}" + (f"–{last:,}" if last > first else "") if result.hits else ""
    return (
        f"{hits} · page {result.page.number} of {result.pages} ({result.page.size} per page, {order})"
        f"{showing} · {result.engine} engine, {result.took_ms:.0f} ms · role {role}"
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
    """A window of ``text`` around the first highlight, with the spans moved into it. The window
    is cut between user-perceived characters, never inside an emoji sequence or between a letter
    and its accents."""
    if len(text) <= width:
        return text, list(spans)
    first = spans[0][0] if spans else 0
    start = _cluster_start(text, max(0, min(first - width // 4, len(text) - width)))
    end = _cluster_start(text, start + width)
    if end <= start:  # one cluster longer than the window: keep it whole
        end = _cluster_end(text, start)
    prefix = "…" if start else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    moved = [(max(s, start) + shift, min(e, end) + shift) for s, e in spans if e > start and s < end]
    return prefix + text[start:end] + suffix, moved


_GRAPHEME = regex.compile(r"\X")
#: how far back :func:`_cluster_start` looks for the start of a cluster (a longer one, such as a
#: letter under hundreds of combining marks, may be cut)
_CLUSTER_SCAN = 256


def _cluster_start(text: str, index: int) -> int:
    """``index``, or the start of the grapheme cluster it falls inside."""
    if index <= 0 or index >= len(text):
        return max(0, min(index, len(text)))
    for found in _GRAPHEME.finditer(text, max(0, index - _CLUSTER_SCAN), index + _CLUSTER_SCAN):
        if found.end() > index:
            return int(found.start())
    return index


def _cluster_end(text: str, index: int) -> int:
    found = _GRAPHEME.match(text, index)
    return int(found.end()) if found else len(text)


def styled(text: str, spans: list[Span] | tuple[Span, ...]) -> Text:
    shown, moved = safe_spans(*snippet(text, spans))  # cut first: an escape is never cut in two
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
        cell.append(safe(snippet(hit.redacted, [])[0]), style="dim")
    return cell


def table(result: SearchResult, role: str, width: int | None = None) -> Table:
    """The hits as a table; on a console narrower than :data:`NARROW`, one cell per hit."""
    out = Table(title=summary(result, role), title_justify="left", show_lines=True, expand=True)
    narrow = width is not None and width < NARROW
    if narrow:
        out.add_column("Time (UTC) · where · from · text", ratio=1, overflow="fold")
    else:
        out.add_column("Time (UTC) · where", width=19, overflow="fold")
        out.add_column("From · kind · DLP", width=22, overflow="fold")
        # fold, not the default ellipsis: Chinese or Japanese text has no spaces to wrap at, and
        # a line cut short would hide the very words that matched
        out.add_column("Text", ratio=1, overflow="fold")
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
        cells = (where, who, text_cell(hit))
        if narrow:
            out.add_row(Text("\n").join(cells))
        else:
            out.add_row(*cells)
    return out


def terminal() -> Console:
    """A console on standard output that writes what its encoding cannot hold as escapes: with
    ``PYTHONIOENCODING=ascii`` or ``latin-1`` a "·" or a Chinese body would otherwise end the
    command with an encoding error half-way through the table."""
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    if not encoding.startswith("utf") and isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors="backslashreplace")
    return Console()


def print_table(result: SearchResult, role: str, console: Console | None = None) -> None:
    console = console or terminal()
    if not result.hits:
        console.print(summary(result, role))
        if result.total and result.page.offset >= result.total:
            console.print(f"(page {result.page.number} is past the last page, {result.pages})")
        elif not result.total:
            console.print(no_hits(result, role), markup=False, highlight=False)
    else:
        console.print(table(result, role, console.width))
    for note in result.notes:  # also on an empty page: the note may be why nothing was found
        console.print(f"note: {safe(note)}", style="dim", markup=False, highlight=False)


def no_hits(result: SearchResult, role: str) -> str:
    """The line that says nothing matched, and what to try: words match whole words, and a
    reviewer or the CRM role searches the redacted text, so words DLP redacted are not found."""
    line = "No records match this query."
    if result.query.text is not None:
        prefix = _prefix_to_try(result.query.text)
        tries = f"a prefix ({prefix}), fewer words" if prefix else "fewer words"
        line += f" Words match whole words: try {tries} or a wider date range."
        if role != "officer":
            line += f" The {role} role searches the redacted text, not the original."
    return line


def _prefix_to_try(node: Node) -> str | None:
    """A prefix made from the query's first plain Latin word of five letters or more, its last
    three letters dropped (``settlement`` → ``settlem*``),
    so the hint is about what was typed; None when there is no such word (CJK, phrases only)."""
    if isinstance(node, Word):
        word = node.text
        if len(word) >= 5 and word.isascii() and word.isalpha():
            return f"{word[:-3]}*"
        return None
    if isinstance(node, And | Or):
        return next((p for item in node.items if (p := _prefix_to_try(item))), None)
    return None  # a phrase, a prefix already, or what a NOT excludes


def note_lines(result: SearchResult) -> list[str]:
    """The notes as plain lines (``note: ...``), for the standard error of ``--json``."""
    return [f"note: {safe(note)}" for note in result.notes]
