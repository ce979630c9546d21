"""``vigil dlp scan``: newline-delimited JSON in, one verdict per line out, streaming.

Input lines are ``{"id": ..., "text": ..., "channel"?, "direction"?, "kind"?, "org"?, "sub_org"?,
"employee_groups"?}``. Output lines are ``{"id", "action", "findings": [{"rule", "entity", "start",
"end", "score"}], "redacted_text"}`` in input order. A line that cannot be used (invalid UTF-8,
malformed JSON, no text, a text with an unpaired surrogate or longer than ``max_text_chars``, a bad
scope value, or a text the engine fails on, e.g. a policy regex out of its time budget) becomes
``{"line": n, "id": ..., "error": "..."}`` (``id`` whenever the JSON could be read) and the scan goes
on; a blank line becomes ``{"line": n, "error": "empty line"}``, so there is exactly one output line
per input line. Memory is bounded by the batch size: lines are read, inspected and written batch by batch.

``employee_groups`` left out means unknown: rules scoped to employee groups apply, as they do for
any other scope key left out.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from pipelines import json_lines, strict_json
from pipelines.dlp.engine import Engine, Scope, Verdict
from pipelines.ingest.lines import Line, split_lines
from pipelines.ingest.parse import looks_utf16
from pipelines.record import MAX_BODY_CHARS, Channel, Direction, Kind

#: Longest text scanned by default: the body cap of ``vigil run`` (longer bodies are dead letters
#: there, so nothing longer ever reaches the archive).
DEFAULT_MAX_TEXT_CHARS = MAX_BODY_CHARS

SCOPE_ENUMS = {"channel": Channel, "direction": Direction, "kind": Kind}
_VALID = {key: frozenset(e.value for e in enum) for key, enum in SCOPE_ENUMS.items()}
#: the scope fields a line may carry, and every field scan reads
SCOPE_FIELDS = (*SCOPE_ENUMS, "org", "sub_org", "employee_groups")
FIELDS = ("id", "text", *SCOPE_FIELDS)


@dataclass
class ScanStats:
    lines: int = 0
    errors: int = 0
    flagged: int = 0
    redacted: int = 0
    blocked: int = 0


def _utf16_hint(raw: bytes) -> str:
    if not looks_utf16(raw):
        return ""
    return (
        "; the input looks UTF-16 encoded (a byte order mark, or NUL bytes between the characters, "
        "as PowerShell writes files): scan reads UTF-8, so convert it (iconv -f UTF-16 -t UTF-8) "
        "and scan it again"
    )


def parse_line(
    raw: bytes, number: int, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
) -> tuple[Any, str, Scope] | dict[str, Any]:
    """``(id, text, scope)`` for a usable line, else the error object for it."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {"line": number, "error": f"invalid UTF-8 at byte {exc.start}{_utf16_hint(raw)}"}
    try:
        obj = strict_json.loads(line)
    except strict_json.RepeatedKeyError as exc:
        refused: dict[str, Any] = {"line": number}
        if (ident := _sole_id(line)) is not None:
            refused["id"] = ident  # the JSON could be read, and its id is not in doubt
        refused["error"] = exc.describe()
        return refused
    except json.JSONDecodeError as exc:
        return {"line": number, "error": f"malformed JSON: {exc.msg} at column {exc.colno}{_utf16_hint(raw)}"}
    except RecursionError:
        return {"line": number, "error": "JSON nested too deeply to read safely"}
    if not isinstance(obj, dict):
        return {"line": number, "error": "expected a JSON object with a text field"}
    ident = obj.get("id")
    if not json_lines.is_utf8(json.dumps(ident, ensure_ascii=False)):
        return {"line": number, "error": "id contains an unpaired surrogate (\\ud800-\\udfff escape)"}

    def error(message: str) -> dict[str, Any]:
        out: dict[str, Any] = {"line": number}
        if ident is not None:
            out["id"] = ident
        out["error"] = message
        return out

    if ident is None or ident == "" or isinstance(ident, bool) or not isinstance(ident, str | int | float):
        # the answer would carry "id": null (or true, or a list), matched to its line by position alone
        shown = (
            "missing id" if ident is None else "id is empty" if ident == "" else f"id is {_json_kind(ident)}"
        )
        return {
            "line": number,
            "error": f"{shown}: each line needs an 'id' (a string or a number) to match its answer to it",
        }
    text = obj.get("text")
    if "text" not in obj:
        return error("missing text: each line needs a string field 'text'")
    if not isinstance(text, str):
        return error(f"text is {_json_kind(text)}, not a string: write the message text in quotes")
    if not json_lines.is_utf8(text):
        return error("text contains an unpaired surrogate (\\ud800-\\udfff escape); send valid UTF-16 pairs")
    if len(text) > max_text_chars:
        return error(f"text has {len(text):,} characters, more than --max-text-chars {max_text_chars:,}")
    values: dict[str, Any] = {}
    for key, valid in _VALID.items():
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, str) or value not in valid:
                names = ", ".join(e.value for e in SCOPE_ENUMS[key])
                return error(f"unknown {key} {value!r}; valid: {names}")
            values[key] = value
    for key in ("org", "sub_org"):
        if obj.get(key) is not None:
            if not isinstance(obj[key], str):
                return error(f"{key} must be a string, not {type(obj[key]).__name__}")
            values[key] = obj[key]
    for key in obj:  # other fields pass through, but a misspelt scope field would widen the scope
        meant = _misspelt_scope_field(key)
        if meant:
            return error(f"unknown field {key!r}; did you mean {meant!r}? (fields: {', '.join(FIELDS)})")
    groups = obj.get("employee_groups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
        return error("employee_groups must be a list of strings")
    scope = Scope(employee_groups=None if groups is None else frozenset(groups), **values)
    return ident, text, scope


def _sole_id(line: str) -> Any:
    """The top-level ``id`` of a line refused for a repeated key, when the object names it once
    (and it is a string or a number); None when the id is the key given twice, or not plain."""
    pairs = json.loads(line, object_pairs_hook=list)
    ids = [value for key, value in pairs if key == "id"] if isinstance(pairs, list) else []
    if len(ids) != 1 or isinstance(ids[0], (list, bool)) or ids[0] is None:
        return None
    ident = ids[0]
    return ident if json_lines.is_utf8(json.dumps(ident, ensure_ascii=False)) else None


@functools.lru_cache(maxsize=256)
def _misspelt_scope_field(key: str) -> str | None:
    """The scope field ``key`` looks like a misspelling of, if any (cached: the extra fields a
    caller sends repeat on every line, and difflib is slow next to a scan)."""
    if key in FIELDS:
        return None
    close = difflib.get_close_matches(key, SCOPE_FIELDS, n=1, cutoff=0.75)
    return close[0] if close else None


def verdict_json(ident: Any, verdict: Verdict) -> dict[str, Any]:
    return {
        "id": ident,
        "action": verdict.action.value,
        "findings": [
            {"rule": f.rule_id, "entity": f.entity, "start": f.start, "end": f.end, "score": f.score}
            for f in verdict.findings
        ],
        "redacted_text": verdict.redacted_text,
    }


def max_line_bytes(max_text_chars: int) -> int:
    """The longest input line read whole: a text of ``max_text_chars`` characters written entirely
    as ``\\uXXXX`` surrogate pairs (12 bytes a character) plus room for the other fields. Longer
    lines are never loaded: they are an error line, however long they are."""
    return max_text_chars * 12 + 64 * 1024


def _lines(stream: BinaryIO, max_text_chars: int) -> Iterator[bytes | Line]:
    """Each line's bytes, or the :class:`Line` (head, size, hash) of one too long to read whole."""
    for line in split_lines(stream, "<scan input>", max_line_bytes(max_text_chars), hold_partial_tail=False):
        yield line if line.too_long else line.raw


def scan_lines(
    engine: Engine,
    lines: Iterable[bytes | Line],
    *,
    batch_size: int = 1024,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> Iterator[dict[str, Any]]:
    """Output objects for input lines, in order, one per line: a blank line (nothing but white
    space) is an error object too, so the n-th output line always answers the n-th input line."""
    batch: list[tuple[int, tuple[Any, str, Scope] | dict[str, Any]]] = []

    def flush() -> Iterator[dict[str, Any]]:
        good = [p for _, p in batch if isinstance(p, tuple)]
        verdicts = iter(engine.inspect_each([(text, scope) for _, text, scope in good]))
        for number, parsed in batch:
            if not isinstance(parsed, tuple):
                yield parsed
                continue
            verdict = next(verdicts)
            if isinstance(verdict, Exception):
                failed: dict[str, Any] = {"line": number}
                if parsed[0] is not None:
                    failed["id"] = parsed[0]
                failed["error"] = f"the DLP engine failed on this text: {verdict}"
                yield failed
            else:
                yield verdict_json(parsed[0], verdict)
        batch.clear()

    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, Line):
            limit = max_line_bytes(max_text_chars)
            error = (
                f"line is {raw.size:,} bytes, more than the {limit:,} a text of --max-text-chars "
                f"{max_text_chars:,} can take; it was not read whole"
            )
            batch.append((number, {"line": number, "error": error}))
        elif raw.strip():
            batch.append((number, parse_line(raw, number, max_text_chars)))
        else:  # one output line per input line, so the output lines up with the input
            batch.append((number, {"line": number, "error": "empty line"}))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


def scan(
    engine: Engine,
    source: BinaryIO,
    sink: TextIO,
    *,
    batch_size: int = 1024,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> ScanStats:
    """Stream ``source`` to ``sink``; returns counts (``errors`` > 0 means some lines failed)."""
    stats = ScanStats()
    lines = _lines(source, max_text_chars)
    for out in scan_lines(engine, lines, batch_size=batch_size, max_text_chars=max_text_chars):
        stats.lines += 1
        if "error" in out:
            stats.errors += 1
        else:
            action = out["action"]
            stats.flagged += action == "flag"
            stats.redacted += action == "redact"
            stats.blocked += action == "block"
        sink.write(json_lines.dumps(out) + "\n")
    sink.flush()
    return stats


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's own words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    return "an object" if isinstance(value, dict) else "an array"
