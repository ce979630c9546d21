"""From one raw input line to an archive row, or to a dead letter saying why not.

Pure functions, no Beam: the pipeline calls :func:`parse_line` per line, tests call it directly.

Reason codes (the ``reason_code`` of an ingest dead letter):

=====================  ==========================================================================
line_too_long          the line exceeds the per-line byte limit
invalid_utf8           the bytes are not UTF-8
malformed_json         not parseable as JSON (also: nested too deeply to parse safely)
not_an_object          JSON, but not an object
duplicate_key          one JSON object names the same key twice (parsers disagree on which counts)
unknown_channel        ``channel`` is null, not text, or not one Vigil knows
missing_field          a required field is absent (``channel`` included, named with the others)
oversized_body         the body exceeds the character limit
empty_message          a message with neither text nor attachments
invalid_timestamp      a timestamp is unparseable or has no timezone
future_timestamp       the event claims to happen further in the future than the allowed skew
invalid_text           a string holds unpaired surrogates that cannot be stored as UTF-8
reserved_event_type    ``event_type`` is ``dlp_blocked_notice``, which only Vigil's DLP stage makes
invalid_event          any other schema violation (the reason lists the fields), or a line the
                       validator failed on unexpectedly (the reason names the error)
unreadable_file        a file cannot be read (or a .gz file decompressed) from this offset on (one per file)
truncated_gzip         a .gz file ends early at this offset (one per file)
=====================  ==========================================================================

A file-level problem (the last two) is one dead letter for the file and counts as one read event,
so ``read = archived + dead-lettered + duplicates`` still holds; the file is not marked consumed, so
the next run reads it again (what was archived before is then a duplicate).
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from pipelines import strict_json
from pipelines.ingest.lines import RAW_KEEP_BYTES, Line
from pipelines.ingest.read import line_at
from pipelines.record import (
    MAX_BODY_CHARS,
    SCHEMA_VERSION,
    Channel,
    DeadLetterStage,
    Event,
    EventType,
    content_sha256,
    is_plain_id,
    no_verdict,
    parties_of,
    record_id_for,
    to_micros,
)

DEFAULT_FUTURE_SKEW = dt.timedelta(minutes=15)
#: event types only Vigil makes (its DLP notices, ``pipelines.ingest.notices``): a source's event
#: of such a type would pass for Vigil's own, and be hidden with its notices from the CRM role
RESERVED_EVENT_TYPES = frozenset({EventType.DLP_BLOCKED_NOTICE.value})
_CHANNELS = frozenset(c.value for c in Channel)


@dataclass(frozen=True)
class Limits:
    max_line_bytes: int
    max_body_chars: int = MAX_BODY_CHARS
    future_skew: dt.timedelta = DEFAULT_FUTURE_SKEW


def dead_letter_id(source: str, offset: int, raw_sha256: str) -> str:
    return hashlib.sha256(f"{source}\x1f{offset}\x1f{raw_sha256}".encode()).hexdigest()[:32]


def row_payload(row: dict[str, Any]) -> bytes:
    """A parsed row as the raw payload of a dead letter (when the original line is no longer at
    hand): JSON, without the ingest time, so the same row always gives the same bytes and id."""
    return json.dumps(
        {k: v for k, v in row.items() if k != "ingest_time"}, default=str, ensure_ascii=False
    ).encode()


def original_bytes(source: str, offset: int, row: dict[str, Any]) -> bytes:
    """The line as received, read back from its source file (later stages keep only the parsed
    row, and a refused line must be replayable as it was). The bytes found at ``offset`` are used
    only if they are still this record's event (same org, channel and event id give the same
    record id): a source rewritten since it was read must not lend another event's bytes to this
    dead letter. Otherwise, or when the file is gone, :func:`row_payload`."""
    if not source or source.startswith("vigil:"):
        return row_payload(row)
    raw = line_at(source, offset)
    if raw and _is_line_of(raw, row.get("record_id")):
        return raw
    return row_payload(row)


def _is_line_of(raw: bytes, record_id: Any) -> bool:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    org, channel, event_id = data.get("org"), data.get("channel"), data.get("event_id")
    if not (isinstance(org, str) and isinstance(channel, str) and isinstance(event_id, str)):
        return False
    return record_id_for(org, channel, event_id) == record_id


def dead_letter(
    *,
    stage: str,
    code: str,
    reason: str,
    source: str,
    offset: int,
    raw: bytes,
    raw_size: int | None = None,
    raw_sha256: str | None = None,
    record_id: str | None = None,
    now: dt.datetime,
) -> dict[str, Any]:
    """A dead-letter row (``pipelines.record.DeadLetter`` fields)."""
    sha = raw_sha256 or hashlib.sha256(raw).hexdigest()
    return {
        "dead_letter_id": dead_letter_id(source, offset, sha),
        "stage": stage,
        "reason_code": code,
        "reason": reason,
        "source_name": source,
        "source_offset": offset,
        "record_id": record_id,
        "raw": raw[:RAW_KEEP_BYTES],
        "raw_size": raw_size if raw_size is not None else len(raw),
        "raw_sha256": sha,
        "dead_letter_time": to_micros(now),
    }


#: how many missing fields a reason names (a line can miss a field in each of 256 participants)
_NAMED_MISSING = 10


def _where(loc: tuple[int | str, ...]) -> str:
    """A field's path as a reason shows it. An unknown field's name is whatever the line says, so a
    part that is long or not printable (a control character, a 300 KB key) is shown quoted and cut."""
    parts = (str(p) for p in loc)
    return ".".join(p if len(p) <= 64 and p.isprintable() else repr(p[:64]) for p in parts) or "event"


def _classify(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = _where(first["loc"])
    kinds = {e["type"] for e in errors}
    listing = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors[:5])
    if "missing" in kinds:
        missing = [_where(e["loc"]) for e in errors if e["type"] == "missing"]
        named = ", ".join(missing[:_NAMED_MISSING])
        more = f" and {len(missing) - _NAMED_MISSING:,} more" if len(missing) > _NAMED_MISSING else ""
        return "missing_field", f"required field(s) missing: {named}{more}"
    message = " ".join(e["msg"] for e in errors)
    if "string_unicode" in kinds or "unpaired surrogate" in message:
        return "invalid_text", f"text cannot be stored as UTF-8 (unpaired surrogate): {listing}"
    if "body has" in message:
        return "oversized_body", listing
    if "empty message" in message:
        what = "an auto-message" if "auto_message with no body" in message else "a message"
        hidden = re.search(r"its body holds only (\d+) blank or invisible", message)
        seen = (
            f"; its body holds only {hidden.group(1)} blank or invisible character(s) (spaces, "
            "zero-width, format or filler characters)"
            if hidden
            else ""
        )
        return "empty_message", f"{what} needs body text or at least one attachment{seen}"
    if any(str(e["loc"][0]) in ("event_time", "received_time") for e in errors if e["loc"]):
        return "invalid_timestamp", listing
    return "invalid_event", f"{loc}: {first['msg']}" if len(errors) == 1 else listing


def parse_line(line: Line, *, now: dt.datetime, limits: Limits) -> tuple[str, dict[str, Any]]:
    """Returns ``("record", row)`` or ``("dead", dead_letter_row)``."""
    context = {"max_body_chars": limits.max_body_chars}

    def dead(code: str, reason: str, record_id: str | None = None) -> tuple[str, dict[str, Any]]:
        return "dead", _line_dead_letter(line, code, reason, now=now, record_id=record_id)

    if line.problem is not None:
        return dead(*line.problem)
    if line.too_long:
        return dead(
            "line_too_long",
            f"line is {line.size:,} bytes, over the {limits.max_line_bytes:,}-byte limit; "
            "the first bytes and the SHA-256 of the whole line are kept",
        )
    try:
        # fast path: pydantic parses and validates the bytes in one go (good lines are the norm)
        event = Event.model_validate_json(line.raw, context=context)
    except (ValidationError, RecursionError):
        pass  # the step-by-step path below says precisely what is wrong
    else:
        try:
            strict_json.loads(line.raw)  # pydantic kept the last of a repeated key without a word
        except strict_json.RepeatedKeyError as exc:
            return dead("duplicate_key", exc.describe(), _record_id_despite_repeats(line.raw, exc.key))
        except json.JSONDecodeError as exc:
            return dead("malformed_json", f"malformed JSON at column {exc.colno}: {exc.msg}")
        body = event.body
        if body is not None and len(body) > limits.max_body_chars:
            return dead(
                "oversized_body",
                f"body has {len(body):,} characters, the limit is {limits.max_body_chars:,}",
                record_id_for(event.org, event.channel, event.event_id),
            )
        return _finish(event, line, now=now, limits=limits, dead=dead)
    try:
        text = line.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = line.raw[exc.start : exc.start + 1]
        return dead(
            "invalid_utf8",
            f"not UTF-8: byte {exc.start:,} of the line ({bad!r}, counting from 0){_encoding_hint(line.raw)}",
        )
    try:
        data = strict_json.loads(text)
    except strict_json.RepeatedKeyError as exc:
        return dead("duplicate_key", exc.describe(), _record_id_despite_repeats(text, exc.key))
    except json.JSONDecodeError as exc:
        hint = _encoding_hint(line.raw) or _run_together_hint(exc)
        return dead("malformed_json", f"malformed JSON at column {exc.colno}: {exc.msg}{hint}")
    except RecursionError:
        return dead("malformed_json", "JSON nested too deeply to parse safely; no channel sends this")
    if not isinstance(data, dict):
        return dead("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    channel = data.get("channel")
    # a missing channel is left to the model, which names it with every other missing field
    if "channel" in data and (not isinstance(channel, str) or channel not in _CHANNELS):
        shown = "null" if channel is None else repr(channel)[:64]
        meant = channel.strip().lower() if isinstance(channel, str) else None
        hint = f" (channels are written in lower case: {meant!r})" if meant in _CHANNELS else ""
        return dead("unknown_channel", f"channel {shown} is not one of {', '.join(sorted(_CHANNELS))}{hint}")
    record_id = record_id_of(data)
    body = data.get("body")
    if isinstance(body, str) and len(body) > limits.max_body_chars:
        return dead(
            "oversized_body",
            f"body has {len(body):,} characters, the limit is {limits.max_body_chars:,}",
            record_id,
        )
    try:
        event = Event.model_validate(data, context=context)
    except ValidationError as exc:
        code, reason = _classify(exc)
        return dead(code, reason, record_id)
    return _finish(event, line, now=now, limits=limits, dead=dead)


def record_id_of(data: dict[str, Any]) -> str | None:
    """The record id a refused event would have had, when its ``org``, ``channel`` and
    ``event_id`` are valid on their own (whatever else is wrong with it): what lets an officer
    asking "what became of event X" find its dead letter."""
    org, channel, event_id = data.get("org"), data.get("channel"), data.get("event_id")
    if not (isinstance(org, str) and isinstance(channel, str) and isinstance(event_id, str)):
        return None
    if channel not in _CHANNELS or not (0 < len(org) <= 128 and 0 < len(event_id) <= 256):
        return None
    return record_id_for(org, channel, event_id) if is_plain_id(org) and is_plain_id(event_id) else None


def _record_id_despite_repeats(text: str | bytes, repeated: str) -> str | None:
    """The record id of a line refused for a repeated key, when none of the keys the id is made of
    (``org``, ``channel``, ``event_id``) is repeated in any object of the line: for those, which
    value counts is exactly what cannot be known. (``repeated`` is only the first repeat found.)"""
    id_keys = ("org", "channel", "event_id")
    if repeated in id_keys:
        return None
    ambiguous = False

    def keep(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal ambiguous
        names = [k for k, _ in pairs if k in id_keys]
        ambiguous = ambiguous or len(names) != len(set(names))
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=keep)
    except (ValueError, RecursionError):
        return None
    return None if ambiguous or not isinstance(data, dict) else record_id_of(data)


def _run_together_hint(exc: json.JSONDecodeError) -> str:
    """Two JSON objects written on one line (a writer that lost a line end) say so."""
    if exc.msg == "Extra data" and exc.doc[exc.pos : exc.pos + 1] == "{":
        return (
            " (a second JSON object starts right after the first: each event needs its own "
            "line; the line end between them was lost by the writer)"
        )
    return ""


def parse_line_safely(line: Line, *, now: dt.datetime, limits: Limits) -> tuple[str, dict[str, Any]]:
    """:func:`parse_line`, but a line that makes the validator fail unexpectedly becomes a dead
    letter (``invalid_event``, naming the error) instead of failing the whole run."""
    try:
        return parse_line(line, now=now, limits=limits)
    except Exception as exc:  # one bad line must not stop the run
        reason = f"the validator failed on this line ({type(exc).__name__}: {str(exc)[:200]})"
        return "dead", _line_dead_letter(line, "invalid_event", reason, now=now)


def _line_dead_letter(
    line: Line, code: str, reason: str, *, now: dt.datetime, record_id: str | None = None
) -> dict[str, Any]:
    """An ingest dead letter for ``line``, keeping its bytes as read."""
    return dead_letter(
        stage=DeadLetterStage.INGEST.value,
        code=code,
        reason=reason,
        source=line.source,
        offset=line.offset,
        raw=line.raw,
        raw_size=line.size,
        raw_sha256=line.sha256,
        record_id=record_id,
        now=now,
    )


def _plus(moment: dt.datetime, skew: dt.timedelta) -> dt.datetime:
    """The latest time accepted ``skew`` after ``moment``: a skew reaching past year 9999 (a huge
    ``--future-skew-minutes``, meaning "do not check") accepts every time rather than fail on each."""
    try:
        return moment + skew
    except OverflowError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)


def _encoding_hint(raw: bytes) -> str:
    """What a line that does not read as JSON may be instead, said in its reason: a line of a
    UTF-16 file (PowerShell's default), a line holding NUL bytes (the hole a crash leaves in a
    log file), or a whole file whose lines end in CR alone."""
    if looks_utf16(raw):
        return (
            "; the line looks UTF-16 encoded (a byte order mark or NUL bytes between its "
            "characters, as PowerShell writes files): Vigil reads UTF-8, so convert the file "
            "(iconv -f UTF-16 -t UTF-8) and put it in the input again"
        )
    nuls = _nul_hint(raw)
    if nuls:
        return nuls
    parts = raw.rstrip(b"\r").split(b"\r")
    if len(parts) > 1 and _is_json_object(parts[0]):
        return (
            "; the line holds JSON objects separated by carriage returns alone, as a file whose "
            "lines end in CR is read: convert its line ends to LF (tr '\\r' '\\n') and put it in "
            "the input again"
        )
    return ""


#: how many characters at the start of a line show whether it is UTF-16
_UTF16_UNITS = 16


def looks_utf16(raw: bytes) -> bool:
    """A line of a UTF-16 file as a UTF-8 reader cuts it at each byte 0x0A: a byte order mark, or
    JSON text whose first characters are ASCII each paired with a NUL byte (after it in UTF-16LE,
    before it in UTF-16BE), also once the NUL byte of the line feed before it is set aside, or that
    NUL byte alone (after the file's last line feed). A run of NUL bytes before UTF-8 text is no
    UTF-16: its NULs are not between the characters."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or raw == b"\x00":
        return True
    starts = (raw, raw[1:]) if raw.startswith(b"\x00") else (raw,)
    return any(_utf16_start(start, nul) for start in starts for nul in (0, 1))


def _utf16_start(raw: bytes, nul: int) -> bool:
    """Whether ``raw`` starts as JSON in UTF-16 with the NUL byte of each ASCII character at
    ``nul`` (1: little-endian, 0: big-endian): its first two characters are ASCII, so is at least
    half of its first :data:`_UTF16_UNITS` (the keys of an event; a value may be in any script),
    and it begins with ``{`` or ``[``."""
    units = [raw[i : i + 2] for i in range(0, min(len(raw), 2 * _UTF16_UNITS) - 1, 2)]
    ascii_units = [u[nul] == 0 and 0 < u[1 - nul] < 0x80 for u in units]
    if len(units) < 2 or not (ascii_units[0] and ascii_units[1]) or 2 * sum(ascii_units) < len(units):
        return False
    return bytes(u[1 - nul] for u in units[:2]).lstrip(b" \t")[:1] in (b"{", b"[")


def _nul_hint(raw: bytes) -> str:
    """The reason's word on NUL bytes in a line that is not UTF-16: what a crash (or a log file
    allocated before it was written) leaves. JSON text never holds a NUL byte (in a string it is
    written \\u0000), so removing them all from the file loses nothing; the line is not read with
    them removed, though: a dead letter keeps it as it came."""
    at = raw.find(b"\x00")
    if at < 0:
        return ""
    run = len(raw) - at - len(raw[at:].lstrip(b"\x00"))
    cause = "what a crash, or a log file allocated before it was written, leaves in a file"
    if run == len(raw):
        return f"; the line is {run:,} NUL byte(s) and nothing else ({cause}): it holds no event"
    where = f"starts with {run:,}" if at == 0 else f"holds, from byte {at:,}, {run:,}"
    return (
        f"; the line {where} NUL byte(s) ({cause}), and JSON never holds one, so it is kept as it "
        "came, not read: to read an event after them, remove the NUL bytes from the file "
        "(tr -d '\\000' < FILE > FIXED.jsonl; JSON text loses nothing) and put that in the input again"
    )


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_fields(value: Any, path: tuple[int | str, ...] = ()) -> list[str]:
    """The paths of the strings in ``value`` (a dumped event) that hold an unpaired surrogate, as
    reasons name fields (``body``, ``attributes.note``, ``participants.0.groups.1``)."""
    if isinstance(value, str):
        return [_where(path)] if _SURROGATE.search(value) else []
    if isinstance(value, dict):
        found = [f for k, v in value.items() for f in _surrogate_fields(v, (*path, k))]
        return found + [_where((*path, k)) for k in value if isinstance(k, str) and _SURROGATE.search(k)]
    if isinstance(value, list | tuple):
        return [f for i, v in enumerate(value) for f in _surrogate_fields(v, (*path, i))]
    return []


def _finish(
    event: Event, line: Line, *, now: dt.datetime, limits: Limits, dead: Any
) -> tuple[str, dict[str, Any]]:
    record_id = record_id_for(event.org, event.channel, event.event_id)
    if event.event_type in RESERVED_EVENT_TYPES:
        return dead(
            "reserved_event_type",
            f"event_type {event.event_type} is made only by Vigil's DLP stage (its notice to an "
            "employee that a message was blocked); a source may not send it: give the event "
            "another type",
            record_id,
        )
    if event.received_time > _plus(now, limits.future_skew):
        return dead(
            "future_timestamp",
            f"received_time {event.received_time.isoformat()} is later than now by more than "
            f"{limits.future_skew}; check the connector's clock",
            record_id,
        )
    if event.event_time > _plus(min(now, event.received_time), limits.future_skew):
        return dead(
            "future_timestamp",
            f"event_time {event.event_time.isoformat()} is after received_time/ingest time by more "
            f"than {limits.future_skew}; check the source's clock",
            record_id,
        )
    try:
        digest = content_sha256(event)  # serialising to JSON also rejects unpaired surrogates
    except PydanticSerializationError as exc:
        where = ", ".join(_surrogate_fields(event.model_dump(mode="python"))[:5]) or str(exc)
        return dead(
            "invalid_text", f"text cannot be stored as UTF-8 (unpaired surrogate): {where}", record_id
        )
    row = event.model_dump(mode="python")
    row["event_time"] = to_micros(event.event_time)
    row["received_time"] = to_micros(event.received_time)
    row.update(
        record_id=record_id,
        schema_version=SCHEMA_VERSION,
        ingest_time=to_micros(now),
        source_name=line.source,
        source_offset=line.offset,
        content_sha256=digest,
        **no_verdict(event.body),
    )
    row["parties"] = parties_of(row)
    return "record", row
