"""The bad-input catalogue: every kind of bad line gets a dead letter with a clear reason."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import pytest
from factories import BASE_TIME, event, line

from pipelines.ingest.lines import BOM, RAW_KEEP_BYTES, Line, split_lines, unfinished_tail
from pipelines.ingest.parse import Limits, parse_line
from pipelines.record import MAX_BODY_CHARS, party_key, record_id_for

NOW = BASE_TIME + dt.timedelta(days=30)
LIMITS = Limits(max_line_bytes=1 << 20)


def parse(raw: bytes, limits: Limits = LIMITS):
    payload = raw.rstrip(b"\n")
    return parse_line(Line("src.jsonl", 0, payload, len(payload), None), now=NOW, limits=limits)


def with_key_twice(data: dict, obj_marker: bytes, key: str, value: str) -> bytes:
    """``data`` as a line whose object starting at ``obj_marker`` names ``key`` a second time."""
    raw = line(data)
    at = raw.index(obj_marker) + len(obj_marker)
    return raw[:at] + json.dumps(key).encode() + b": " + json.dumps(value).encode() + b", " + raw[at:]


ATTACHMENT = {"sha256": "a" * 64, "media_type": "image/jpeg", "size": 10, "uri": "vigil-media://a"}


def without(field: str) -> dict:
    data = event(1)
    del data[field]
    return data


BAD = [
    ("malformed_json", b'{"event_id": "x", "channel": "sms",', "malformed JSON"),
    ("invalid_utf8", b'{"body": "caf\xe9"}', "not UTF-8"),
    ("not_an_object", b"[1, 2, 3]", "expected a JSON object"),
    ("unknown_channel", line(event(1, channel="fax")), "'fax'"),
    ("missing_field", line(without("channel")), "required field(s) missing: channel"),
    ("unknown_channel", line(event(1, channel=None)), "channel null is not one of"),
    ("missing_field", line(without("event_id")), "event_id"),
    ("missing_field", line(without("sender")), "sender"),
    ("oversized_body", line(event(1, body="x" * (MAX_BODY_CHARS + 1))), "limit"),
    ("empty_message", line(event(1, body="   ")), "body text or at least one attachment"),
    ("empty_message", line(event(1, body=None)), "body text or at least one attachment"),
    # nothing a reader could see: zero-width and joiner characters, a BOM, a soft hyphen
    ("empty_message", line(event(1, body="\u200b\u2060\u200d")), "body text or at least one attachment"),
    ("empty_message", line(event(1, body=" \ufeff\u00ad \t")), "body text or at least one attachment"),
    # an auto-message is text sent to someone: with none it is as empty as a message
    (
        "empty_message",
        line(event(1, kind="auto_message", event_type="template_sent", audience="customer", body="\u200b")),
        "an auto-message needs body text or at least one attachment",
    ),
    (
        "empty_message",
        line(event(1, kind="auto_message", event_type="template_sent", audience="employee", body="")),
        "an auto-message needs body text or at least one attachment",
    ),
    ("invalid_timestamp", line(event(1, event_time="2026-01-05T09:00:00")), "timezone"),
    ("invalid_timestamp", line(event(1, event_time="yesterday")), "event_time"),
    (
        "future_timestamp",
        line(event(1, event_time="2031-01-01T00:00:00Z", received_time="2026-01-05T09:00:00Z")),
        "check the source's clock",
    ),
    (
        "future_timestamp",
        line(event(1, event_time="2031-01-01T00:00:00Z", received_time="2031-01-01T00:00:01Z")),
        "connector's clock",
    ),
    ("invalid_event", line(event(1, kind="auto_message")), "event_type"),
    ("invalid_event", line(event(1, direction="sideways")), "direction"),
    ("invalid_event", line(event(1, unexpected_field=1)), "unexpected_field"),
    # ids with control characters could collide once joined into a record id
    ("invalid_event", line(event(1, event_id="b\x1fsms\x1fcoll")), "control characters"),
    ("invalid_event", line(event(1, org="a\x1fsms\x1fb")), "control characters"),
    ("invalid_event", line(event(1, org="acme\x00")), "control characters"),
    # ... and invisible ones would make a look-alike tenant or a second copy of one event
    ("invalid_event", line(event(1, org="acme\u200b")), "invisible characters (U+200B"),
    ("invalid_event", line(event(1, sub_org="\ufeffwealth-hk")), "invisible characters (U+FEFF"),
    ("invalid_event", line(event(1, event_id="evt-000001\u2060")), "invisible characters (U+2060"),
    ("invalid_event", line(event(1, event_id="evt\u202e100-tve")), "invisible characters (U+202E"),
    # the braille blank draws nothing; private use, U+FFFC and noncharacters show as boxes or
    # nothing; a combining mark at the start shows on whatever comes before
    ("invalid_event", line(event(1, org="meridian\u2800")), "invisible characters (U+2800"),
    ("invalid_event", line(event(1, org="meridian\ufffc")), "U+FFFC (OBJECT REPLACEMENT CHARACTER)"),
    ("invalid_event", line(event(1, event_id="evt-1\ue000")), "U+E000 (private use or noncharacter)"),
    ("invalid_event", line(event(1, sub_org="\ufdd0singapore")), "U+FDD0 (private use or noncharacter)"),
    ("invalid_event", line(event(1, sub_org="\u0301singapore")), "start with a combining mark (U+0301)"),
    ("empty_message", line(event(1, body="\u2800 \u2800")), "body text or at least one attachment"),
    # ... and so would other white space, spaces at either end or a decomposed letter
    ("invalid_event", line(event(1, org="acme\u00a0")), "white space other than a plain space (U+00A0)"),
    ("invalid_event", line(event(1, org="acme\u0085")), "white space other than a plain space (U+0085)"),
    ("invalid_event", line(event(1, sub_org="wealth\u3000hk")), "(U+3000)"),
    ("invalid_event", line(event(1, event_id="evt\u2028000001")), "(U+2028)"),
    ("invalid_event", line(event(1, event_id="evt\t000001")), "control characters"),
    ("invalid_event", line(event(1, org="acme ")), "spaces at the start or end"),
    ("invalid_event", line(event(1, event_id=" evt-000001")), "spaces at the start or end"),
    ("invalid_event", line(event(1, org="socie\u0301te\u0301")), "composed Unicode form (NFC)"),
    # the same for the conversation and thread ids and a party's id and handle: a look-alike is
    # never found by `vigil conversation` or `participant:` for the visible one
    (
        "invalid_event",
        line(event(1, conversation_id="acme:sms:1\u200b")),
        "conversation_id: Value error, invisible",
    ),
    ("invalid_event", line(event(1, conversation_id="\u0000")), "conversation_id: Value error, control"),
    ("invalid_event", line(event(1, thread_id=" ")), "thread_id: Value error, spaces at the start or end"),
    ("invalid_event", line(event(1, thread_id="thr-1\u00a0")), "thread_id: Value error, white space other"),
    (
        "invalid_event",
        line(event(1, sender={"id": "c1\u200b", "role": "customer"})),
        "sender.id: Value error, invisible characters (U+200B",
    ),
    (
        "invalid_event",
        line(event(1, recipients=[{"id": "c1", "role": "customer", "handle": "+85291234567\u2060"}])),
        "recipients.0.handle: Value error, invisible characters (U+2060: zero-width, bidi, blank and "
        "other format characters) are not allowed in handles",
    ),
    (
        "invalid_event",
        line(event(1, participants=[{"id": "\ufeffc1", "role": "customer"}])),
        "participants.0.id: Value error, invisible characters (U+FEFF",
    ),
    # event types only Vigil makes: a source's would pass for Vigil's own DLP notice
    (
        "reserved_event_type",
        line(event(1, kind="auto_message", event_type="dlp_blocked_notice", audience="employee")),
        "made only by Vigil's DLP stage",
    ),
    # absurd past times and bare numbers (the README asks for ISO 8601 with a timezone)
    ("invalid_timestamp", line(event(1, event_time="0001-01-01T00:00:00Z")), "before 2000-01-01"),
    ("invalid_timestamp", line(event(1, event_time=1767574840)), "not a number"),
    ("invalid_timestamp", line(event(1, received_time=1767574840.5)), "not a number"),
    ("invalid_timestamp", line(event(1, event_time="1767576000000")), "not a number"),
    ("invalid_timestamp", line(event(1, received_time=" 1767576000.5")), "not a number"),
    ("invalid_timestamp", line(event(1, event_time="9999-12-31T23:59:59-12:00")), "out of range"),
    # offsets no time zone uses are a source's bug, not a zone: the moment they name is uncertain
    (
        "invalid_timestamp",
        line(event(1, event_time="2026-01-05T14:03:34+23:59")),
        "UTC offset +23:59 is not one any time zone uses",
    ),
    ("invalid_timestamp", line(event(1, event_time="2026-01-05T14:03:34.5+14:30")), "UTC offset +14:30"),
    ("invalid_timestamp", line(event(1, received_time="2026-01-05T14:03:34-12:01")), "UTC offset -12:01"),
    ("invalid_timestamp", line(event(1, event_time="2026-01-05T24:00:00Z")), "hour 24 is not a time of day"),
    # an empty sub-organisation is one no policy scope or search filter names
    ("invalid_event", line(event(1, sub_org="")), "sub_org is empty: leave it out"),
    # attributes are channel details DLP does not scan: no side channel for text beyond a body's size
    (
        "invalid_event",
        line(event(1, attributes={"note": "4111 1111 1111 1111 " * 3300})),
        "attribute 'note' holds 66,000 characters, the limit is 65,536",
    ),
    ("unknown_channel", line(event(1, channel="SMS")), "written in lower case: 'sms'"),
    ("unknown_channel", line(event(1, channel="fax")), "is not one of"),
    # two events run together on one line: the writer lost a line end
    ("malformed_json", line(event(1)).strip() + line(event(2)).strip(), "each event needs its own line"),
    ("invalid_utf8", b'{"body": "caf\xe9"}', "byte 13 of the line"),
    ("empty_message", line(event(1, body="\u200b\u2060\u200d")), "its body holds only 3 blank or invisible"),
    ("invalid_timestamp", line(event(1, event_time="9999-12-31T23:59:60-01:00")), "out of range"),
    ("unknown_channel", line(event(1, channel=["sms"])), "['sms']"),
    ("unknown_channel", line(event(1, channel={"name": "sms"})), "is not one of"),
    # numbers and flags are taken as sent, not coerced (the archive must show what arrived)
    ("invalid_event", line(event(1, is_group="no")), "is_group"),
    ("invalid_event", line(event(1, is_group=1)), "is_group"),
    ("invalid_event", line(event(1, attachments=[ATTACHMENT | {"size": "12"}])), "size"),
    ("invalid_event", line(event(1, attachments=[ATTACHMENT | {"size": True}])), "size"),
    # larger than the archive's int64 column: refused here, not a crash when the file is written
    ("invalid_event", line(event(1, attachments=[ATTACHMENT | {"size": 2**63}])), "less than or equal"),
    # a key named twice: pydantic keeps the last value, other readers the first
    ("duplicate_key", with_key_twice(event(1, body="hi"), b"{", "body", "4111 1111 1111 1111"), "'body'"),
    (
        "duplicate_key",
        with_key_twice(event(1), b'"sender": {', "name", "Someone Else"),
        "appears twice in one JSON object",
    ),
    # found on the step-by-step path too (the event is also invalid otherwise)
    ("duplicate_key", with_key_twice(event(1, kind="auto_message"), b"{", "org", "other"), "'org'"),
    # a file in another shape than JSON lines in UTF-8: the reason says what it looks like
    (
        "malformed_json",
        b"\r".join([line(event(1)).strip(), line(event(2)).strip()]),
        "separated by carriage returns alone",
    ),
    ("invalid_utf8", json.dumps(event(1)).encode("utf-16"), "looks UTF-16 encoded"),
    ("malformed_json", b"\x00" + json.dumps(event(1)).encode("utf-16-le"), "looks UTF-16 encoded"),
    ("malformed_json", json.dumps(event(1)).encode("utf-16-be"), "iconv -f UTF-16 -t UTF-8"),
    # a line of a UTF-16LE file cut at its line feeds: the NUL byte of the one before, CJK text
    (
        "invalid_utf8",
        b"\x00"
        + json.dumps(event(1, body="你好，明天见"), ensure_ascii=False).encode("utf-16-le")
        + b"\r\x00",
        "looks UTF-16 encoded",
    ),
    ("malformed_json", b"\x00", "looks UTF-16 encoded"),  # what follows the file's last line feed
    ("malformed_json", b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ("malformed_json", b'{"attributes": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
]


@pytest.mark.parametrize(("code", "raw", "hint"), BAD, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BAD)])
def test_bad_lines_become_dead_letters_with_a_reason(code: str, raw: bytes, hint: str) -> None:
    kind, row = parse(raw)
    assert kind == "dead"
    assert row["reason_code"] == code
    assert hint in row["reason"]
    payload = raw.rstrip(b"\n")
    assert payload.startswith(row["raw"]) and len(row["raw"]) == min(len(payload), RAW_KEEP_BYTES)
    assert row["raw_size"] == len(payload)
    assert row["raw_sha256"] == hashlib.sha256(raw.rstrip(b"\n")).hexdigest()
    assert row["stage"] == "ingest"


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("body", "body"),
        ("sender_name", "sender.name"),
        ("attribute_value", "attributes.note"),
        ("attribute_name", "attributes: Value error, attribute name '\\ud800'"),
        ("group", "participants.0.groups.1"),
    ],
)
def test_unpaired_surrogates_are_dead_letters_not_parquet_crashes(where: str, field: str) -> None:
    marker = "SURROGATE"
    data = {
        "body": event(1, body=f"ok {marker} broken"),
        "sender_name": event(1, sender={"id": "e", "role": "employee", "name": f"x{marker}"}),
        "attribute_value": event(1, attributes={"note": marker}),
        "attribute_name": event(1, attributes={marker: "x"}),
        "group": event(1, participants=[{"id": "e", "role": "employee", "groups": ["desk", marker]}]),
    }[where]
    raw = line(data).replace(marker.encode(), b"\\ud800")  # JSON escape of a lone surrogate
    kind, row = parse(raw)
    assert kind == "dead" and row["reason_code"] == "invalid_text", row["reason"]
    assert f"(unpaired surrogate): {field}" in row["reason"]  # the field named, as other reasons do


GOOD = [
    ("plain", event(1)),
    (
        "small clock skew: event a few seconds after receipt",
        event(
            1,
            received_time=(BASE_TIME).isoformat(),
            event_time=(BASE_TIME + dt.timedelta(seconds=20)).isoformat(),
        ),
    ),
    ("other timezone", event(1, event_time="2026-01-05T18:00:00+09:00")),
    ("the easternmost zone (Kiribati)", event(1, event_time="2026-01-05T22:00:00+14:00")),
    ("the westernmost zone", event(1, event_time="2026-01-04T20:00:00-12:00")),
    ("no sub-organisation", event(1, sub_org=None)),
    (
        "attachment only",
        event(
            1,
            body=None,
            attachments=[
                {"sha256": "a" * 64, "media_type": "image/jpeg", "size": 10, "uri": "vigil-media://a"}
            ],
        ),
    ),
    ("CJK body", event(1, channel="wechat", body="明天下午三点开会，请准备季度报告。")),
    (
        "auto message",
        event(1, kind="auto_message", event_type="opted_in", audience="employee", direction="system"),
    ),
    # an event (someone joined, a window expired) may carry no text at all
    (
        "event without a body",
        event(1, kind="event", event_type="participant_added", direction="system", body=None),
    ),
    ("body at the limit", event(1, body="y" * MAX_BODY_CHARS)),
    ("attribute at the limit", event(1, attributes={"payload": "z" * MAX_BODY_CHARS})),
    # ids with plain inner spaces and composed letters are fine
    ("org with a space and accents", event(1, org="Société Générale", sub_org="Banque privée")),
    # handles written with spaces, channel ids as the simulator makes them, and display names
    # with joiners (emoji, Persian) are fine: only ids and handles are held to the id rules
    (
        "party ids, handles and names",
        event(
            1,
            channel="teams",
            conversation_id="meridian:teams:app:000925",
            thread_id="meridian:teams:app:000925/t1",
            sender={
                "id": "meridian-e0018",
                "role": "employee",
                "handle": "+1 212 555 0101",
                "name": "Yang Song",
            },
            recipients=[
                {"id": "kestrel-c00116", "role": "customer", "handle": "oLLvHo5bETZGlS1XPEGyvoCziz3m"},
                {
                    "id": "c2",
                    "role": "customer",
                    "handle": "U7cf2bbb00a50f14448925597ed39a246",
                    "name": "👨\u200d👩\u200d👧",
                },
                {"id": "c3", "role": "customer", "handle": "(212) 555-0102", "name": "می\u200cخواهم"},
            ],
        ),
    ),
]


@pytest.mark.parametrize(("label", "data"), GOOD, ids=[g[0] for g in GOOD])
def test_good_lines_become_rows(label: str, data: dict) -> None:
    kind, row = parse(line(data))
    assert kind == "record", row
    assert row["record_id"] == record_id_for(data["org"], data["channel"], data["event_id"])
    assert row["event_time"] == int(dt.datetime.fromisoformat(data["event_time"]).timestamp() * 1_000_000)
    assert row["body"] == data.get("body")


def test_event_time_is_normalised_to_utc() -> None:
    _, row = parse(line(event(1, event_time="2026-01-05T18:00:00+09:00")))
    assert row["event_time"] == int(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC).timestamp() * 1_000_000)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    # Python's json reads them; JSON has no such values and other readers mangle them
    raw = line(event(1)).rstrip(b"\n")[:-1] + b', "score": ' + constant.encode() + b"}"
    kind, row = parse(raw)
    assert kind == "dead" and row["reason_code"] == "malformed_json"
    assert f"{constant} is not a JSON value" in row["reason"]


def test_content_hash_ignores_receipt_time_but_not_content() -> None:
    a = parse(line(event(1)))[1]
    b = parse(line(event(1, received_time="2026-01-06T00:00:00Z")))[1]
    c = parse(line(event(1, body="something else")))[1]
    assert a["content_sha256"] == b["content_sha256"] != c["content_sha256"]


def test_content_hash_ignores_a_finer_than_microsecond_receipt_time_too() -> None:
    # Teams writes 100 ns ticks; the exact text is kept in attributes, but a re-delivery stays a
    # duplicate: only when it was received differs
    fine = "2026-01-05T09:00:00.1234567Z"
    a = parse(line(event(1, event_time=fine, received_time="2026-01-05T09:00:01.2345678Z")))[1]
    b = parse(line(event(1, event_time=fine, received_time="2026-01-05T09:07:01.2345678Z")))[1]
    other = event(1, event_time="2026-01-05T09:00:00.1234568Z", received_time="2026-01-05T09:07:01Z")
    c = parse(line(other))[1]
    assert a["attributes"]["source_received_time"] != b["attributes"]["source_received_time"]
    assert a["content_sha256"] == b["content_sha256"] != c["content_sha256"]  # the event time counts


def test_dead_letter_ids_are_stable_and_distinct() -> None:
    a = parse(b"{oops")[1]
    b = parse(b"{oops")[1]
    c = parse_line(Line("src.jsonl", 99, b"{oops", 5, None), now=NOW, limits=LIMITS)[1]
    assert a["dead_letter_id"] == b["dead_letter_id"] != c["dead_letter_id"]


def test_reader_reports_offsets_and_caps_huge_lines() -> None:
    huge = b"{" + b"x" * 5000 + b"}\n"
    data = line(event(1)) + huge + b"\n" + line(event(2)).rstrip(b"\n")  # last line unterminated
    lines = list(split_lines(io.BytesIO(data), "s", max_line_bytes=1000, hold_partial_tail=False))
    assert [x.offset for x in lines] == [
        0,
        len(line(event(1))),
        len(line(event(1))) + len(huge),
        len(line(event(1))) + len(huge) + 1,
    ]
    big = lines[1]
    assert big.too_long and big.size == len(huge) - 1
    assert big.sha256 == hashlib.sha256(huge.rstrip(b"\n")).hexdigest()
    assert len(big.raw) <= 1002  # its head: the limit and room for a two-byte line end
    kind, row = parse_line(big, now=NOW, limits=Limits(max_line_bytes=1000))
    assert kind == "dead" and row["reason_code"] == "line_too_long" and row["raw_size"] == len(huge) - 1
    assert lines[2].raw == b""  # blank lines are returned; the pipeline counts and skips them
    assert json.loads(lines[3].raw)["event_id"] == "evt-000002"


def test_follow_mode_holds_an_unterminated_last_line() -> None:
    data = line(event(1)) + line(event(2)).rstrip(b"\n")
    lines = list(split_lines(io.BytesIO(data), "s", max_line_bytes=1 << 20, hold_partial_tail=True))
    assert len(lines) == 1


def test_follow_mode_holds_an_unterminated_over_long_last_line_too() -> None:
    # a writer half way through a line already longer than the limit: not reported yet, or it would
    # be reported again, longer, once finished
    head = line(event(1))
    partial = head + b"{" + b"x" * 3000
    held = list(split_lines(io.BytesIO(partial), "s", max_line_bytes=1024, hold_partial_tail=True))
    assert [x.offset for x in held] == [0]
    finished = partial + b"}\n"
    lines = list(split_lines(io.BytesIO(finished), "s", max_line_bytes=1024, hold_partial_tail=True))
    first = (0, False, len(head) - 1)
    assert [(x.offset, x.too_long, x.size) for x in lines] == [first, (len(head), True, 3002)]
    # the batch reader takes the writer at its word: the file ends there
    cut = list(split_lines(io.BytesIO(partial), "s", max_line_bytes=1024, hold_partial_tail=False))
    assert [(x.offset, x.too_long, x.size) for x in cut] == [first, (len(head), True, 3001)]


def test_a_lone_carriage_return_ending_the_file_is_the_last_line_s_end() -> None:
    # a CRLF file cut before its last \n: the \r is not counted against the limit, as a whole
    # \r\n would not be; a line at the limit is archived either way, one over it is too long
    at_limit = line(event(1)).rstrip(b"\n")
    limit = len(at_limit)
    for end in (b"\r\n", b"\r"):
        (read,) = list(split_lines(io.BytesIO(at_limit + end), "s", limit, hold_partial_tail=False))
        assert (read.raw, read.size, read.too_long, read.span) == (at_limit, limit, False, limit + len(end))
        assert parse_line(read, now=NOW, limits=Limits(max_line_bytes=limit))[0] == "record"
    (over,) = list(split_lines(io.BytesIO(at_limit + b" \r"), "s", limit, hold_partial_tail=False))
    assert over.too_long and over.size == limit + 1
    # a writer may still be appending: follow mode waits for the \n
    assert list(split_lines(io.BytesIO(at_limit + b"\r"), "s", limit, hold_partial_tail=True)) == []


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("+852 9123-4567", "+85291234567"),
        ("(212) 555-0101", "2125550101"),
        ("Wei Zhang", "wei zhang"),
        ("  Dana  ", "dana"),
        ("HANAKO  YOSHIDA", "hanako yoshida"),  # runs of spaces are one
        ("佐藤 大輔", "佐藤大輔"),  # no space between two CJK characters
        ("oR-cOlb-dcpwS4qMkN2CM", "or-colb-dcpws4qmkn2cm"),  # a WeChat openid is not a phone number
        ("12345", "12345"),  # too short to be a phone number: kept as typed
        ("林家豪", "林家豪"),
    ],
)
def test_party_keys_are_how_participant_search_compares(value: str, key: str) -> None:
    assert party_key(value) == key


def test_rows_carry_every_party_as_a_search_key() -> None:
    _, row = parse(line(event(1)))
    assert row["parties"] == sorted(
        {"emp-1", "dana whitfield", "+12125550101", "cust-1", "wei zhang", "+85291234567"}
    )


def test_max_body_chars_can_raise_the_limit() -> None:
    data = event(1, body="x" * 70_000)
    assert parse(line(data))[1]["reason_code"] == "oversized_body"
    kind, row = parse(line(data), Limits(max_line_bytes=1 << 20, max_body_chars=100_000))
    assert kind == "record" and len(row["body"]) == 70_000


def test_a_byte_order_mark_at_the_start_of_a_file_is_not_part_of_the_first_event() -> None:
    data = b"\xef\xbb\xbf" + line(event(1)) + line(event(2))
    lines = list(split_lines(io.BytesIO(data), "f.jsonl", 1 << 20, False))
    assert [x.offset for x in lines] == [3, 3 + len(line(event(1)))]
    assert [parse(x.raw)[0] for x in lines] == ["record", "record"]


def test_byte_order_marks_of_files_joined_with_cat_are_not_part_of_their_events() -> None:
    first, second = line(event(1)), line(event(2))
    data = BOM + first + BOM + second
    lines = list(split_lines(io.BytesIO(data), "f.jsonl", 1 << 20, False))
    assert [x.offset for x in lines] == [3, 3 + len(first) + 3]
    assert [parse(x.raw)[0] for x in lines] == ["record", "record"]
    assert data[lines[1].offset :].startswith(second)  # the offset points at the event itself


def test_several_byte_order_marks_before_a_line_are_none_of_its_event() -> None:
    # a file with a mark joined with `cat` after one that got a mark added again
    first, second = line(event(1)), line(event(2))
    data = BOM + BOM + first + BOM * 3 + second
    lines = list(split_lines(io.BytesIO(data), "f.jsonl", 1 << 20, False))
    assert [x.offset for x in lines] == [6, 6 + len(first) + 9]
    assert [parse(x.raw)[0] for x in lines] == ["record", "record"]


@pytest.mark.parametrize("length", [1020, 1021, 1022, 1023, 1024])
def test_a_byte_order_mark_takes_no_room_from_the_line_after_it(length: int) -> None:
    # the mark is read with the line; a line that fits the limit is one line, not a line and a rest
    body = b"x" * length
    lines = list(split_lines(io.BytesIO(BOM + body + b"\n" + b"{}\n"), "f", 1024, False))
    expected = [(3, body, False), (3 + length + 1, b"{}", False)]
    assert [(x.offset, x.raw, x.too_long) for x in lines] == expected


def test_an_over_long_line_after_a_byte_order_mark_is_one_line_too_long() -> None:
    # the head of an over-long line must never end early and leave its tail to be read as a line
    hidden = json.dumps(event(7)).encode()
    data = BOM + b"X" * ((1 << 20) - 2) + hidden + b"\n"
    lines = list(split_lines(io.BytesIO(data), "f.jsonl", 1 << 20, False))
    assert len(lines) == 1 and lines[0].too_long and lines[0].offset == 3
    assert lines[0].size == len(data) - 4
    assert parse_line(lines[0], now=NOW, limits=LIMITS)[1]["reason_code"] == "line_too_long"


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_the_line_end_does_not_count_against_the_limit(eol: bytes) -> None:
    at_limit, over = b"y" * 1024, b"y" * 1025
    lines = list(split_lines(io.BytesIO(at_limit + eol + over + eol + b"{}" + eol), "f", 1024, False))
    assert [(x.size, x.too_long, x.span) for x in lines] == [
        (1024, False, 1024 + len(eol)),
        (1025, True, 1025 + len(eol)),
        (2, False, 2 + len(eol)),
    ]
    assert lines[1].sha256 == hashlib.sha256(over).hexdigest()


def test_an_unexpected_validator_failure_is_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.ingest import parse as parse_module

    def boom(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(parse_module, "parse_line", boom)
    payload = line(event(1)).rstrip(b"\n")
    kind, row = parse_module.parse_line_safely(
        Line("src.jsonl", 0, payload, len(payload), None), now=NOW, limits=LIMITS
    )
    assert kind == "dead" and row["reason_code"] == "invalid_event" and "MemoryError" in row["reason"]


@pytest.mark.parametrize(
    ("event_time", "received_time", "kept"),
    [
        # Teams (.NET) writes 100 ns ticks: the archive holds microseconds and the exact text beside
        (
            "2026-01-05T10:00:00.1234567Z",
            "2026-01-05T10:00:01.2500000Z",
            {"source_event_time": "2026-01-05T10:00:00.1234567Z"},
        ),
        (
            "2026-01-05T10:00:00.123456Z",
            "2026-01-05T10:00:01.000000001+00:00",
            {"source_received_time": "2026-01-05T10:00:01.000000001+00:00"},
        ),
        ("2026-01-05T10:00:00.1234560Z", "2026-01-05T10:00:01Z", {}),  # trailing zeros lose nothing
    ],
)
def test_times_finer_than_a_microsecond_keep_their_source_text(event_time, received_time, kept) -> None:
    kind, row = parse(line(event(1, event_time=event_time, received_time=received_time)))
    assert kind == "record", row
    assert (
        row["event_time"] == int(dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC).timestamp() * 1_000_000) + 123456
    )
    assert dict(row["attributes"]) == kept


@pytest.mark.parametrize(
    ("written", "held"),
    [
        ("2016-12-31T23:59:60Z", dt.datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)),
        ("2016-12-31T23:59:60.25Z", dt.datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)),
        # the same leap second in Tokyo's time
        ("2017-01-01T08:59:60+09:00", dt.datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)),
        # with the other separators ISO 8601 text may use
        ("2016-12-31t23:59:60Z", dt.datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)),
        ("2016-12-31 23:59:60z", dt.datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)),
    ],
)
def test_a_leap_second_is_the_last_microsecond_of_its_minute_and_its_text_is_kept(written, held) -> None:
    # RFC 3339 allows second 60; Python's datetime does not: held just before the next minute, so
    # it sorts after 23:59:59 and before 00:00:00, with the source's text beside it
    kind, row = parse(line(event(1, event_time=written, received_time="2017-01-01T00:00:01Z")))
    assert kind == "record", row
    assert row["event_time"] == int(held.timestamp() * 1_000_000)
    assert dict(row["attributes"]) == {"source_event_time": written}
    kind, row = parse(line(event(2, event_time="2016-12-31T23:59:59Z", received_time=written)))
    assert kind == "record" and dict(row["attributes"]) == {"source_received_time": written}


@pytest.mark.parametrize(
    "written", ["2026-01-05T12:34:60Z", "2016-12-31T23:59:60+01:00", "2016-12-31 22:59:60.5Z"]
)
def test_second_60_outside_the_last_utc_minute_of_a_day_is_refused(written: str) -> None:
    kind, row = parse(line(event(1, event_time=written, received_time="2027-01-01T00:00:00Z")))
    assert kind == "dead" and row["reason_code"] == "invalid_timestamp"
    assert "event_time" in row["reason"] and "only ever added at 23:59:60 UTC" in row["reason"]


def test_a_second_past_60_is_still_refused() -> None:
    kind, row = parse(line(event(1, event_time="2016-12-31T23:59:61Z")))
    assert kind == "dead" and row["reason_code"] == "invalid_timestamp"


def test_a_source_attribute_of_the_same_name_is_kept_as_sent() -> None:
    data = event(
        1,
        event_time="2026-01-05T10:00:00.1234567Z",
        received_time="2026-01-05T10:00:01Z",
        attributes={"source_event_time": "theirs"},
    )
    kind, row = parse(line(data))
    assert kind == "record", row
    assert dict(row["attributes"]) == {"source_event_time": "theirs"}


@pytest.mark.parametrize(
    ("content", "unfinished"),
    [
        (b'{"a": 1}\n{"b": ', True),  # a writer paused mid-line
        (b'{"a": 1}\n{"b": 2}', False),  # a whole object, just no line end: read as it is
        (b'{"a": 1}\n', False),
        (b"", False),
        (b'{"a": 1}\n   ', False),  # only blanks after the last line end
        (BOM + b'{"b": ', True),  # the only line, after a byte-order mark
        (b'{"a": "\xff"}', False),  # whole, with invalid UTF-8: judged (dead-lettered) when read
        (b'{"a": "' + b"x" * 2000, True),  # longer than a line may be, unfinished: held all the same
    ],
)
def test_unfinished_tail(tmp_path, content: bytes, unfinished: bool) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(content)
    assert unfinished_tail(str(path), max_line_bytes=1024) is unfinished


def test_unfinished_tail_of_a_file_gone_since_it_was_listed_is_left_to_the_reader(tmp_path) -> None:
    assert unfinished_tail(str(tmp_path / "gone.jsonl")) is False


def test_unfinished_tail_reads_on_from_a_known_line_start(tmp_path) -> None:
    path = tmp_path / "a.jsonl"
    head = b'{"a": 1}\n'
    path.write_bytes(head + b'{"b": ')
    assert unfinished_tail(str(path), max_line_bytes=1024, start=len(head)) is True
    path.write_bytes(head + b'{"b": 2}')
    assert unfinished_tail(str(path), max_line_bytes=1024, start=len(head)) is False
    # a tail longer than a line may be, read from its start: over-long and unfinished, held
    path.write_bytes(head + b'{"b": "' + b"x" * 2000)
    assert unfinished_tail(str(path), max_line_bytes=1024, start=len(head)) is True


@pytest.mark.parametrize("field", ["event_time", "received_time"])
def test_a_long_run_of_digits_in_a_timestamp_is_refused_in_linear_time(field: str) -> None:
    # the number check once backtracked quadratically on digits that are not a number: 20,000 of
    # them took 18 s, so one 1 MiB line would have held a run for hours
    import time

    data = event(1, **{field: "1" * 20_000 + "x"})
    started = time.process_time()  # the processor's time, not the clock's: a loaded machine is no slower
    kind, row = parse(line(data))
    assert time.process_time() - started < 2
    assert kind == "dead" and row["reason_code"] == "invalid_timestamp"


def test_a_reason_names_a_few_missing_fields_and_counts_the_rest() -> None:
    nameless = [{"id": f"p{i}"} for i in range(256)]  # no role: 256 missing fields
    kind, row = parse(line(event(1, participants=nameless)))
    assert kind == "dead" and row["reason_code"] == "missing_field"
    assert "participants.0.role" in row["reason"] and "participants.9.role" in row["reason"]
    assert "participants.10.role" not in row["reason"] and "and 246 more" in row["reason"]


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("k" * 100_000, repr("k" * 64)),  # a sender's key is whatever it writes: cut, not copied whole
        ("a\x00b\x1b[31m", repr("a\x00b\x1b[31m")),  # control characters are shown escaped
    ],
)
def test_an_unknown_field_is_named_short_and_printable(name: str, shown: str) -> None:
    for data in (event(1, **{name: 1}), event(1, attributes={name: 1})):
        kind, row = parse(line(data))
        assert kind == "dead" and row["reason_code"] == "invalid_event"
        assert shown in row["reason"] and len(row["reason"]) < 300 and row["reason"].isprintable()


def test_an_attribute_name_with_a_lone_surrogate_is_named_short() -> None:
    raw = line(event(1, attributes={"MARK" + "k" * 100_000: "x"})).replace(b"MARK", b"\\ud800")
    kind, row = parse(raw)
    assert kind == "dead" and row["reason_code"] == "invalid_text" and len(row["reason"]) < 300


@pytest.mark.parametrize(
    ("data", "named"),
    [
        # Elasticsearch refuses a NUL in a flattened field's key, and a key that leaves its value
        # no room: before, such a record was archived and then refused by the index for good
        (event(1, attributes={"a\u0000b": "v"}), "holds a control character"),
        (event(1, attributes={"k" * 9_000: "中" * 8_191}), "has 9000 characters, the limit is 256"),
        # and an immense group name (a keyword with no length bound)
        (event(1, sender={"id": "e", "role": "employee", "groups": ["g" * 40_000]}), "sender.groups.0"),
    ],
)
def test_a_name_no_index_could_hold_is_a_dead_letter_naming_it(data: dict, named: str) -> None:
    kind, row = parse(line(data))
    assert kind == "dead" and row["reason_code"] == "invalid_event", row
    assert named in row["reason"] and len(row["reason"]) < 600


def test_a_future_skew_reaching_past_year_9999_accepts_every_time() -> None:
    # `--future-skew-minutes 1e12` (no check, in effect) overflowed the date arithmetic, and every
    # good line became an invalid_event dead letter
    limits = Limits(max_line_bytes=1 << 20, future_skew=dt.timedelta(days=999_999_999))
    late = event(1, event_time="9999-12-31T23:59:59Z", received_time="9999-12-31T23:59:59Z")
    for data in (event(1), late):
        kind, row = parse(line(data), limits)
        assert kind == "record", row


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
@pytest.mark.parametrize("over", [1, 2])
def test_the_head_of_a_line_just_over_the_limit_holds_no_line_end(eol: bytes, over: int) -> None:
    # such a line is read whole with its line end; its dead letter kept "\n" (or "\r") as if the
    # sender had written it
    long = b"y" * (1024 + over)
    (x,) = split_lines(io.BytesIO(long + eol), "f", 1024, False)
    assert x.too_long and x.size == len(long) and x.span == len(long) + len(eol)
    assert long.startswith(x.raw) and len(x.raw) == len(long)
    _, row = parse_line(x, now=NOW, limits=Limits(max_line_bytes=1024))
    assert row["reason_code"] == "line_too_long" and row["raw"] == long


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00" * 64,
        b'{"a": 1} trailing',
        b"{\r\n",
        json.dumps(event(1, body="aXb")).replace("X", "\r").encode(),  # a CR inside a string
    ],
)
def test_a_line_that_is_merely_broken_gets_no_encoding_hint(raw: bytes) -> None:
    kind, row = parse(raw)
    assert kind == "dead" and row["reason_code"] == "malformed_json"
    assert "UTF-16" not in row["reason"] and "carriage returns" not in row["reason"]


GOOD = line(event(1)).rstrip(b"\n")


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"\x00" * 4096 + GOOD, "the line starts with 4,096 NUL byte(s)"),  # a crash's hole, then a line
        (b"\x00" * 3 + GOOD, "the line starts with 3 NUL byte(s)"),  # odd: once read as UTF-16BE
        (b"\x00" + GOOD, "the line starts with 1 NUL byte(s)"),
        (GOOD[:40] + b"\x00" * 100 + GOOD, "holds, from byte 40, 100 NUL byte(s)"),  # cut, then the hole
        (b"\x00" * 64, "the line is 64 NUL byte(s) and nothing else"),
    ],
    ids=["hole", "three", "one", "middle", "only"],
)
def test_nul_bytes_before_utf8_json_are_named_as_such_not_as_utf16(raw: bytes, said: str) -> None:
    kind, row = parse(raw)
    assert kind == "dead" and row["reason_code"] == "malformed_json"
    assert said in row["reason"] and "a log file allocated before it was written" in row["reason"]
    assert "UTF-16" not in row["reason"] and "iconv" not in row["reason"]  # converting would ruin it
    if raw.strip(b"\x00"):
        assert "tr -d '\\000'" in row["reason"]
    assert row["raw"] == raw  # kept as it came, not salvaged: the NULs may hide more than a hole


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(event(1)).encode("utf-16-le"),  # the first line of a file without byte order mark
        json.dumps(event(1)).encode("utf-16-be") + b"\x00",  # big-endian, with its line feed's NUL
        json.dumps({"body": "你好，明天见，你好，明天见"}, ensure_ascii=False).encode("utf-16-le"),
        "[1]".encode("utf-16-be"),
    ],
)
def test_real_utf16_is_still_recognised(raw: bytes) -> None:
    _, row = parse(raw)
    assert "looks UTF-16 encoded" in row["reason"] and "NUL byte(s)" not in row["reason"]


def test_a_missing_channel_is_named_with_the_other_missing_fields() -> None:
    data = {k: v for k, v in event(1).items() if k not in ("channel", "sender", "event_id")}
    kind, row = parse(line(data))
    assert kind == "dead" and row["reason_code"] == "missing_field"
    assert all(name in row["reason"] for name in ("channel", "sender", "event_id"))


@pytest.mark.parametrize(
    ("raw", "known"),
    [
        (line(event(1, body="")), True),  # empty_message
        (line(event(1, is_group="no")), True),  # invalid_event
        (line(event(1, event_time="2026-01-05T09:00:00")), True),  # invalid_timestamp
        (line(event(1, body="x" * (MAX_BODY_CHARS + 1))), True),  # oversized_body
        (with_key_twice(event(1, body="hi"), b"{", "body", "other"), True),  # duplicate_key
        (with_key_twice(event(1, body="hi"), b'"sender": {', "name", "Someone"), True),
        # which org or event id counts is exactly what a repeated key leaves unknown
        (with_key_twice(event(1, kind="auto_message"), b"{", "org", "other"), False),
        (with_key_twice(event(1), b"{", "event_id", "evt-2"), False),
        (line(event(1, channel="fax")), False),  # unknown_channel
        (line(without("event_id")), False),
        (line(event(1, org="acme\u200b")), False),  # an org no record can have
        (b'{"event_id": "x", "channel": "sms",', False),  # malformed_json
    ],
)
def test_dead_letters_carry_the_record_id_the_event_would_have_had(raw: bytes, known: bool) -> None:
    kind, row = parse(raw)
    assert kind == "dead"
    data = json.loads(raw) if known else None
    expected = record_id_for(data["org"], data["channel"], data["event_id"]) if data else None
    assert row["record_id"] == expected, row["reason"]
