"""Fuzzing event validation and a run's accounting.

The promise: every input line becomes exactly one of archived, dead-lettered (a reason code from
the README's table, the raw bytes kept) or duplicate; nothing raises, nothing is lost, the counts
add up, and running the same input again archives nothing new.

One mutation engine (:func:`mutated_line`, driven by a ``random.Random``) serves both levels:
hypothesis drives it for the property tests of :func:`parse_line`, a fixed seed for the
end-to-end run (no hypothesis inside Beam).
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import hashlib
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from factories import BASE_TIME, CUSTOMER, EMPLOYEE, event
from helpers import NOW, ingest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import strict_json
from pipelines.archive import layout, reader
from pipelines.archive.verify import verify
from pipelines.ingest.lines import BOM, RAW_KEEP_BYTES, Line, split_lines
from pipelines.ingest.parse import Limits, parse_line
from pipelines.record import DEAD_LETTER_SCHEMA, MAX_BODY_CHARS, record_id_for, rows_to_table

ROOT = Path(__file__).resolve().parent.parent


def documented_codes() -> set[str]:
    """The reason codes of the README's dead-letter table (``vigil run``)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("| reason code | what was wrong |")
    table = text[start : text.index("\n\n", start)]
    codes = set()
    for row in table.splitlines()[2:]:
        codes.update(re.findall(r"`(\w+)`", row.split("|")[1]))
    return codes


DOCUMENTED = documented_codes()

# ------------------------------------------------------------------------------------------------
# the mutation engine

EDGE_CHARS = [
    "\x00", "\x01", "\x1f", "\x7f", "\x85", "\t", "\n", "\r", " ", "\u00a0", "\u200b", "\u200f",
    "\u202e", "\u2028", "\u3000", "\ufeff", "\ufffd", "\uffff", "\u0301", "\u0308",
    "\ud800", "\udbff", "\udc00", "\udfff", "\U0001f642", "\U0010ffff", "明", "ا", "é", '"', "\\", "/",
]  # fmt: skip
WEIRD_SCALARS: list[Any] = [
    None, True, False, 0, -1, 1, 1.5, -0.0, 1e308, -1e308, 2**31, 2**53 + 1, 2**63 - 1, 2**63,
    -(2**63) - 1, 2**64, "", " ", "\t", "0", "12", "-1", "1.5", "true", "false", "null", "NaN",
    "Infinity", "sms", "message", "employee", "x" * 257, "x" * 5000,
]  # fmt: skip
TIMESTAMP_FIELDS = ("event_time", "received_time")
ID_PATHS = [
    ("event_id",), ("org",), ("sub_org",), ("conversation_id",), ("thread_id",), ("template_id",),
    ("sender", "id"), ("sender", "name"), ("sender", "handle"), ("recipients", 0, "id"),
    ("participants", 1, "name"),
]  # fmt: skip
ENUM_PATHS = [("channel",), ("kind",), ("direction",), ("event_type",), ("audience",), ("sender", "role")]
ATTACHMENT = {"sha256": "a" * 64, "media_type": "image/jpeg", "size": 10, "uri": "vigil-media://a"}
BAD_ATTACHMENT_FIELDS: list[dict[str, Any]] = [
    {"sha256": "A" * 64}, {"sha256": "a" * 63}, {"sha256": "g" * 64}, {"size": -1}, {"size": 2**63},
    {"size": 2**63 - 1}, {"size": 1.0}, {"size": "10"}, {"size": True}, {"size": None},
    {"media_type": "x"}, {"uri": ""}, {},
]  # fmt: skip
ODD_BODIES = [
    None, "", " ", "\u00a0\u3000", "\u200b", "\u0301", "\x00", "y" * MAX_BODY_CHARS,
    "y" * (MAX_BODY_CHARS + 1), "\u202eabc\u0301", "\U0001f642" * (MAX_BODY_CHARS + 1),
]  # fmt: skip
#: DLP redacts the card and blocks the SSN (a notice to the employee is archived too)
GOOD_BODIES = [
    "明天下午三点开会",
    "مرحبا \u200f",
    "Please charge 4012 8888 8888 1881",
    "Your SSN is 536-22-1234",
]
#: what json.dumps cannot write: lone surrogate escapes, NaN, numbers too large for a float or int
RAW_VALUES = [
    '"\\ud800"', '"x\\udfffy"', '"\\ud83d"', '"\\ud83d\\ude42"', "NaN", "-Infinity", "1e400", "9" * 5000,
    "-0", "1E2", '"\\u0000"', "[]", "{}", "null",
]  # fmt: skip
MARKER = "\u2063MUT\u2063"  # replaced in the serialised line by raw JSON text (escapes, constants)


def odd_text(rnd: random.Random, extra: str = "") -> str:
    parts = [rnd.choice(EDGE_CHARS) for _ in range(rnd.randint(0, 4))]
    parts.insert(rnd.randint(0, len(parts)), rnd.choice(["", "x", "acme", "evt-1", extra]))
    text = "".join(parts)
    return text * rnd.choice([1, 1, 1, 3, 100]) if rnd.random() < 0.2 else text


def odd_timestamp(rnd: random.Random) -> Any:
    if rnd.random() < 0.15:
        return rnd.choice(
            [None, 1767574840, 1767574840.5, 1767574840000, True, "", "now", "1767576000000", " 1e3 ",
             "2026-01-05", "09:00:00Z", "2026-01-05T09:00:00Z ", "\ufeff2026-01-05T09:00:00Z",
             "2026-01-05T09:00:00Z\x00", ["2026-01-05T09:00:00Z"], {"t": "2026-01-05T09:00:00Z"},
             "2026-W02-1T09:00:00Z", "20260105T090000Z", "2026-01-05T09:00:00+14:00[Pacific/Kiritimati]",
             "1" * rnd.choice([20, 300, 3000]) + "x"]
        )  # fmt: skip
    year = rnd.choice([1, 1969, 1970, 1999, 2000, 2026, 2026, 2026, 2030, 9999, 10000])
    month = rnd.choice([1, 1, 2, 12, 0, 13])
    day = rnd.choice([1, 5, 5, 28, 29, 30, 31, 0, 32])
    hour, minute, second = rnd.choice([(9, 0, 0), (23, 59, 59), (23, 59, 60), (24, 0, 0), (0, 60, 0)])
    fraction = rnd.choice(["", "", ".5", ".123", ".123456", ".1234567", ".123456789", ".000000001",
                           ".1234567891234", "." + "9" * 40, ",5", "."])  # fmt: skip
    zone = rnd.choice(["Z", "Z", "z", "", "+00:00", "-00:00", "+14:00", "-12:00", "+23:59", "+24:00",
                       "+0530", "+05", " UTC", "-14:00"])  # fmt: skip
    sep = rnd.choice(["T", "T", "t", " ", "_"])
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"


def valid_event(rnd: random.Random, n: int) -> dict[str, Any]:
    channel = rnd.choice(["sms", "mms", "voicemail", "whatsapp", "wechat", "line", "teams"])
    data = copy.deepcopy(event(n, channel=channel))  # mutated in place: not the factories' parties
    shape = rnd.random()
    if shape < 0.2:
        data.update(kind="auto_message", event_type="opted_in", audience="employee", direction="system")
    elif shape < 0.3:
        data.update(kind="event", event_type="participant_added", direction="system", body=None)
    if rnd.random() < 0.2:
        data["attachments"] = [dict(ATTACHMENT, sha256=f"{n:064x}", size=rnd.randint(0, 10**9))]
    if rnd.random() < 0.2:
        data["attributes"] = {"queue_position": "3", "bot_step": "greet"}
    if rnd.random() < 0.2:
        data["body"] = rnd.choice(GOOD_BODIES)
    return data


def _parent(data: Any, path: tuple[Any, ...]) -> tuple[Any, Any] | None:
    """The container holding ``path``'s last step, and that step, if the path exists that far."""
    node = data
    for step in path[:-1]:
        if not _has(node, step):
            return None
        node = node[step]
    return node, path[-1]


def _has(node: Any, step: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(step, str) and step in node
    return isinstance(node, list) and isinstance(step, int) and step < len(node)


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    found = _parent(data, path)
    if found is None:
        return
    node, key = found
    if (isinstance(node, dict) and isinstance(key, str)) or _has(node, key):
        node[key] = value


def _all_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        paths.append((*prefix, key))
        paths.extend(_all_paths(value, (*prefix, key)))
    return paths


def mutate(data: dict[str, Any], rnd: random.Random, text: str = "") -> list[str]:
    """Changes ``data`` in place in one of many ways; returns raw JSON snippets to put where
    :data:`MARKER` stands in the serialised line (for what ``json.dumps`` cannot write)."""
    snippets: list[str] = []
    what = rnd.randrange(12)
    paths = _all_paths(data)
    if what == 0 and paths:  # a field (or list item) removed
        found = _parent(data, rnd.choice(paths))
        if found:
            node, key = found
            node.pop(key)
    elif what == 1 and paths:  # the wrong type
        value = rnd.choice([*WEIRD_SCALARS, [], {}, [text], {"k": text}, text, [None], {"": None}])
        _set(data, rnd.choice(paths), copy.deepcopy(value))
    elif what == 2:
        data[rnd.choice(TIMESTAMP_FIELDS)] = odd_timestamp(rnd)
    elif what == 3:
        _set(data, rnd.choice(ID_PATHS), odd_text(rnd, text))
    elif what == 4:
        odd = rnd.choice([text, "SMS", " sms", "fax", None, 1, ["sms"], "opted_in"])
        _set(data, rnd.choice(ENUM_PATHS), odd)
    elif what == 5:  # participants and recipients duplicated, emptied, too many, odd parties
        key = rnd.choice(["participants", "recipients"])
        party = rnd.choice([EMPLOYEE, CUSTOMER, {"id": text, "role": "customer"}, {"id": "x"}, {}])
        data[key] = [copy.deepcopy(party)] * rnd.choice([0, 1, 2, 256, 257])
    elif what == 6:  # attachments with bad hashes and sizes
        bad = rnd.choice([*BAD_ATTACHMENT_FIELDS, {"sha256": text}, {"name": text}])
        data["attachments"] = [dict(ATTACHMENT, **bad)] * rnd.choice([1, 1, 2, 33])
        if rnd.random() < 0.3:
            data["body"] = None
    elif what == 7:  # unknown fields, at the top or inside a party or attachment
        target = rnd.choice([data, data.get("sender"), data.get("attributes")])
        if isinstance(target, dict):
            target[odd_text(rnd, text) or "extra"] = rnd.choice([1, text, {"a": [1, {"b": None}]}])
    elif what == 8:  # deep nesting, written as raw JSON text
        depth = rnd.choice([3, 50, 500, 1500, 5000])
        _set(data, rnd.choice(paths) if paths else ("x",), MARKER)
        nested = "[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth
        snippets.append(rnd.choice(nested))
    elif what == 9:  # bodies: empty, blank, at and over the limit, odd text
        data["body"] = rnd.choice([*ODD_BODIES, text])
    elif what == 10:  # what json.dumps cannot write: lone surrogate escapes, NaN, huge numbers
        _set(data, rnd.choice(paths) if paths else ("x",), MARKER)
        snippets.append(rnd.choice(RAW_VALUES))
    else:  # odd text anywhere
        if paths:
            _set(data, rnd.choice(paths), text or odd_text(rnd))
    return snippets


def serialise(data: Any, snippets: list[str], rnd: random.Random) -> bytes:
    ascii_only = rnd.random() < 0.5
    try:
        text = json.dumps(data, ensure_ascii=ascii_only)
    except (ValueError, TypeError, RecursionError):
        text = "{}"
    for snippet in snippets:
        quoted = json.dumps(MARKER, ensure_ascii=ascii_only)
        text = text.replace(quoted, snippet, 1)
    # lone surrogates written raw are not UTF-8: exactly what a broken encoder sends
    return text.encode("utf-8", "surrogatepass")


def damage(raw: bytes, rnd: random.Random) -> bytes:
    """Byte-level damage to a serialised line (never a line end: one line stays one line)."""
    what = rnd.randrange(10)
    at = rnd.randint(0, len(raw))
    if what == 0:
        raw = raw[:at]  # cut short
    elif what == 1:
        raw = raw[:at] + rnd.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x00"]) + raw[at:]
    elif what == 2:  # a key named twice (escaped the second time, or not)
        key = rnd.choice([b'"body"', b'"b\\u006fdy"', b'"org"', b'"id"', b'"x"'])
        first = raw.find(b"{")
        if first >= 0:
            raw = raw[: first + 1] + key + b': "twice", ' + key + b': "again", ' + raw[first + 1 :]
    elif what == 3:
        raw = rnd.choice([b"\xef\xbb\xbf", b" ", b"\t", b"\r"]) + raw + rnd.choice([b"", b" ", b"\r", b"\t"])
    elif what == 4:
        raw = raw + rnd.choice([b"x", b"}", b",", b" {}", raw])
    elif what == 5:
        raw = rnd.choice([b"[", b'{"a":']) + raw + rnd.choice([b"]", b"}"])
    elif what == 6 and raw:
        pos = rnd.randrange(len(raw))
        raw = raw[:pos] + bytes([rnd.choice([b for b in range(256) if b != 0x0A])]) + raw[pos + 1 :]
    return raw


def mutated_line(rnd: random.Random, n: int, text: str = "") -> bytes:
    """One line: a valid event, mutated a few times, serialised, perhaps damaged; no line end."""
    data = valid_event(rnd, n)
    snippets: list[str] = []
    for _ in range(rnd.choice([0, 1, 1, 1, 2, 3])):
        snippets += mutate(data, rnd, text)
    raw = serialise(data, snippets, rnd)
    if rnd.random() < 0.25:
        raw = damage(raw, rnd)
    assert b"\n" not in raw
    return raw


# ------------------------------------------------------------------------------------------------
# property: one line in, one record or one documented dead letter out

PARSE_NOW = BASE_TIME + dt.timedelta(days=30)


def as_read(raw: bytes, end: bytes = b"\n") -> bytes:
    """A line's bytes as the reader passes them on: without a byte-order mark before it, nor its
    line end (``\\n`` or ``\\r\\n``: a line ending in ``\\r`` then ``\\n`` ends in ``\\r\\n``)."""
    payload = raw[marks(raw) :]
    return payload[:-1] if end == b"\n" and payload.endswith(b"\r") else payload


def marks(raw: bytes) -> int:
    """How many bytes of byte-order marks (one or several in a row) start ``raw``."""
    stripped = raw
    while stripped.startswith(BOM):
        stripped = stripped[len(BOM) :]
    return len(raw) - len(stripped)


LINE_ENDS = [b"\n", b"\r\n"]
LIMITS = [
    Limits(max_line_bytes=1 << 20),
    Limits(max_line_bytes=4096, max_body_chars=100),
    Limits(max_line_bytes=1 << 20, future_skew=dt.timedelta(0)),
    Limits(max_line_bytes=1 << 20, future_skew=dt.timedelta(days=999_999_999)),  # "do not check"
]


def check_one_line(raw: bytes, limits: Limits = LIMITS[0], end: bytes = b"\n") -> tuple[str, dict[str, Any]]:
    """Splits ``raw`` (one line) as the reader does and parses it; checks the promise."""
    (read,) = list(split_lines(io.BytesIO(raw + end), "fuzz.jsonl", limits.max_line_bytes, False))
    kind, row = parse_line(read, now=PARSE_NOW, limits=limits)  # raises: the test fails
    assert (kind, row) == parse_line(read, now=PARSE_NOW, limits=limits)  # deterministic
    payload = as_read(raw, end)
    if kind == "dead":
        assert row["reason_code"] in DOCUMENTED, row["reason_code"]
        assert row["stage"] == "ingest"
        if row["reason_code"] == "line_too_long":  # its head is kept, never the whole line
            assert payload.startswith(row["raw"])
            assert len(row["raw"]) >= min(limits.max_line_bytes, RAW_KEEP_BYTES)
        else:
            assert row["raw"] == payload[:RAW_KEEP_BYTES]
        assert row["raw_size"] == len(payload)
        assert row["raw_sha256"] == hashlib.sha256(payload).hexdigest()
        assert "the validator failed" not in row["reason"], row["reason"]
        assert 0 < len(row["reason"]) <= 4096, row["reason"][:300]  # bounded, whatever the line
        row["reason"].encode("utf-8")  # storable as Parquet text
        pa.Table.from_pylist([row], schema=DEAD_LETTER_SCHEMA)
        return kind, row
    assert kind == "record"
    data = strict_json.loads(payload)  # no repeated key, no NaN: a record is plain JSON
    assert row["record_id"] == record_id_for(data["org"], data["channel"], data["event_id"])
    for name in ("event_id", "org", "body", "conversation_id"):
        assert row[name] == data.get(name), name  # taken as sent, never coerced or replaced
    assert {k: v for k, v in row["attributes"].items() if not k.startswith("source_")} == {
        k: v for k, v in (data.get("attributes") or {}).items() if not k.startswith("source_")
    }
    assert row["body"] is None or len(row["body"]) <= limits.max_body_chars
    skew_us = limits.future_skew // dt.timedelta(microseconds=1)
    assert row["event_time"] <= min(row["received_time"], row["ingest_time"]) + skew_us
    assert dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp() * 10**6 <= row["event_time"]
    rows_to_table([row])  # storable in the archive's schema
    return kind, row


FUZZ_TEXT = st.text(st.one_of(st.characters(), st.sampled_from(EDGE_CHARS)), max_size=12)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), FUZZ_TEXT, st.sampled_from(LIMITS), st.sampled_from(LINE_ENDS))
def test_a_mutated_line_is_a_record_or_a_documented_dead_letter(
    rnd: random.Random, text: str, limits: Limits, end: bytes
) -> None:
    check_one_line(mutated_line(rnd, rnd.randrange(1000), text), limits, end)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300).filter(lambda b: b"\n" not in b))
def test_any_bytes_are_a_record_or_a_documented_dead_letter(raw: bytes) -> None:
    check_one_line(raw)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        FUZZ_TEXT,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | FUZZ_TEXT,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FUZZ_TEXT, inner, max_size=3),
            max_leaves=8,
        ),
        max_size=4,
    ),
    st.randoms(use_true_random=False),
)
def test_a_valid_event_with_arbitrary_fields_merged_in(extra: dict[str, Any], rnd: random.Random) -> None:
    data = valid_event(rnd, 1) | extra
    check_one_line(serialise(data, [], rnd))


SEGMENT = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda b, n: b * n, st.sampled_from([b"x", b"\r", BOM, b"\xef"]), st.integers(0, 40)),
).map(lambda b: b.replace(b"\n", b"."))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), SEGMENT, st.sampled_from(LINE_ENDS)), max_size=8),
    st.sampled_from([b"", b"\r", b"\n", b"\r\n"]),
    st.integers(8, 48),
)
def test_the_reader_returns_each_line_once_where_it_stands(
    lines: list[tuple[bool, bytes, bytes]], last_end: bytes, max_line_bytes: int
) -> None:
    """Every line (a byte-order mark before it or not, any line end, too long or not) comes back
    once, at its offset, as its bytes or as its head with its full size and hash."""
    written = [((BOM if bom else b"") + segment, end) for bom, segment, end in lines]
    if written:
        written[-1] = (written[-1][0], last_end)
    data = b"".join(raw + end for raw, end in written)
    got = list(split_lines(io.BytesIO(data), "f", max_line_bytes, False))
    expected = []
    offset = 0
    for raw, end in written:
        # the file's last line may end in a lone \r (a CRLF file cut before its last \n): that is
        # its line end, not part of the line
        payload = as_read(raw, end) if end else raw[marks(raw) :].removesuffix(b"\r")
        at = offset + marks(raw)
        offset += len(raw) + len(end)
        if end or raw[marks(raw) :]:  # a last line of nothing (or only a byte-order mark) is no line
            expected.append((at, payload))
    assert [(x.offset, x.size) for x in got] == [(at, len(payload)) for at, payload in expected]
    for x, (_, payload) in zip(got, expected, strict=True):
        assert x.too_long == (len(payload) > max_line_bytes)
        if x.too_long:
            assert payload.startswith(x.raw) and x.sha256 == hashlib.sha256(payload).hexdigest()
        else:
            assert x.raw == payload
    assert sum(x.span for x in got) + sum(marks(raw) for raw, _ in written) == len(data)


def test_the_documented_table_is_read() -> None:
    # guards documented_codes() itself: a table it could not read would let every code pass
    assert {"malformed_json", "not_an_object", "invalid_text", "invalid_event", "dlp_failed"} <= DOCUMENTED
    assert "reason" not in DOCUMENTED and len(DOCUMENTED) >= 17


# ------------------------------------------------------------------------------------------------
# end to end: a few hundred mutated lines through a real run


def _fuzz_input(src: Path, seed: int) -> list[tuple[str, bytes, bytes]]:
    """Writes seeded mutated lines, re-deliveries and conflicts into three files (one gzip, one
    with Windows line ends); returns ``(file name, line, line end)`` for every line, in order."""
    rnd = random.Random(seed)
    files: dict[str, list[bytes]] = {"a.jsonl": [], "b.ndjson": [], "c.jsonl.gz": []}
    good: list[dict[str, Any]] = []
    for n in range(360):
        name = rnd.choice(list(files))
        roll = rnd.random()
        if roll < 0.25:
            data = valid_event(rnd, n)
            good.append(data)
            raw = json.dumps(data, ensure_ascii=False).encode()
        elif roll < 0.32 and good:  # a re-delivery: received later, same content
            data = dict(rnd.choice(good), received_time=(BASE_TIME + dt.timedelta(hours=5)).isoformat())
            raw = json.dumps(data).encode()
        elif roll < 0.36 and good:  # a conflict: same id, other words
            raw = json.dumps(dict(rnd.choice(good), body=f"other words {n}")).encode()
        elif roll < 0.38:
            raw = rnd.choice([b"", b"   ", b"\t\r"])  # blank: not an event, not counted
        else:
            raw = mutated_line(rnd, 1000 + n, odd_text(rnd))
        files[name].append(raw)
    src.mkdir(parents=True)
    written = []
    for name, lines in files.items():
        end = b"\r\n" if name == "b.ndjson" else b"\n"
        data = b"".join(raw + end for raw in lines)
        (src / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        written += [(str((src / name).resolve()), raw, end) for raw in lines]
    return written


@pytest.mark.slow
def test_a_run_over_mutated_lines_accounts_for_every_line(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    written = _fuzz_input(src, seed=20260105)
    events = [raw for _, raw, end in written if as_read(raw, end).strip(b" \t\r\n")]
    limit = 4096  # low enough that some lines are too long
    first = ingest(src, archive, max_line_bytes=limit)
    assert first.balanced, first.as_dict()
    assert (first.read, first.blank_lines) == (len(events), len(written) - len(events))
    assert set(first.dead_letter_reasons) <= DOCUMENTED, first.dead_letter_reasons
    assert first.archived > 50 and first.duplicates > 0 and first.dead_lettered > 100  # the mix is real
    assert {"line_too_long", "conflicting_duplicate", "malformed_json"} <= set(first.dead_letter_reasons)

    records = reader.read_table(archive, columns=["record_id", "source_name", "source_offset"]).to_pylist()
    dead = reader.read_table(archive, layout.DEAD_LETTERS).to_pylist()
    assert len(records) == first.archived + first.notices
    assert len(dead) == first.dead_lettered
    assert len({(d["source_name"], d["source_offset"]) for d in dead}) == len(dead)
    assert set(d["reason_code"] for d in dead) <= DOCUMENTED
    archived_ids = {r["record_id"] for r in records}
    archived_at = {(r["source_name"], r["source_offset"]) for r in records}

    # every line is accounted for, as the pure function says it should be
    offsets: dict[str, int] = {}
    dead_at = {(d["source_name"], d["source_offset"]): d for d in dead}
    outcomes = {"archived": 0, "dead": 0, "duplicate": 0}
    for name, raw, end in written:
        offset = offsets.get(name, 0)
        offsets[name] = offset + len(raw) + len(end)
        payload = as_read(raw, end)
        if not payload.strip(b" \t\r\n"):
            continue
        at = offset + (len(BOM) if raw.startswith(BOM) else 0)
        line = Line(name, at, payload, len(payload), None)
        kind, row = parse_line(line, now=NOW, limits=Limits(max_line_bytes=limit))
        if len(payload) > limit:
            kind, row = "dead", {"reason_code": "line_too_long"}
        letter = dead_at.get((name, at))
        if letter is not None:  # refused: the line as received is kept (the head of a long one)
            kept = min(len(payload), RAW_KEEP_BYTES, limit + 2)
            assert letter["raw"] == payload[:kept] and letter["raw_size"] == len(payload)
            assert letter["raw_sha256"] == hashlib.sha256(payload).hexdigest()
            if kind == "dead":
                assert letter["reason_code"] == row["reason_code"]
            else:
                assert letter["reason_code"] in ("conflicting_duplicate", "dlp_failed")
            outcomes["dead"] += 1
        else:
            assert kind == "record", (name, at, row.get("reason_code"))
            assert row["record_id"] in archived_ids, (name, at)
            outcomes["archived" if (name, at) in archived_at else "duplicate"] += 1
    assert outcomes == {
        "archived": first.archived,
        "dead": first.dead_lettered,
        "duplicate": first.duplicates,
    }
    assert verify(archive).ok, verify(archive).problems

    # the same input again: nothing new, also when every file is read again
    again = ingest(src, archive, max_line_bytes=limit)
    assert (again.archived, again.read, again.skipped_sources) == (0, 0, 3)
    redo = ingest(src, archive, max_line_bytes=limit, only_new_sources=False)
    assert redo.balanced and redo.read == first.read and redo.archived == 0
    assert redo.dead_lettered == first.dead_lettered == redo.dead_letters_already_stored
    assert redo.duplicates == first.archived + first.duplicates
    assert reader.read_table(archive).num_rows == len(records)
    assert len(reader.read_table(archive, layout.DEAD_LETTERS)) == len(dead)
    assert verify(archive).ok, verify(archive).problems
