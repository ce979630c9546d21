"""``vigil dlp scan`` and the JSON it reads and writes: numbers JSON cannot hold (``1e400`` reads as
Infinity in Python) are malformed input, for ingest too, and never written; one output line per input
line, blank lines included."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from factories import BASE_TIME, event, line
from test_dlp_cli import run

from pipelines import json_lines, strict_json
from pipelines.ingest.lines import Line
from pipelines.ingest.parse import Limits, parse_line

RULES = Path(__file__).parent.parent / "dlp_rules"


def strict_rows(out: str) -> list[dict]:
    """Output lines read as JSON that has no NaN or Infinity (what any other reader expects)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the output: not JSON")

    return [json.loads(row, parse_constant=refuse) for row in out.splitlines()]


# -- numbers JSON cannot hold ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "shown"), [("1e400", "Infinity"), ("-1e400", "-Infinity"), ("1.5E+999", "Infinity")]
)
def test_a_number_too_large_for_a_float_is_not_json(number: str, shown: str) -> None:
    text = '{"text": "1e400 in a string is text", "id": ' + number + "}"
    with pytest.raises(json.JSONDecodeError) as info:
        strict_json.loads(text)
    assert info.value.msg == (
        f"number {number} is too large for a 64-bit float (it would read as {shown}, which JSON "
        "does not have)"
    )
    assert info.value.pos == text.index(number, 20)  # the number, not the same text in the string


def test_ordinary_numbers_still_read() -> None:
    assert strict_json.loads('{"a": 1e300, "b": -2.5e-400, "c": 12345678901234567890, "d": 0.1}') == {
        "a": 1e300,
        "b": -0.0,
        "c": 12345678901234567890,
        "d": 0.1,
    }


def test_an_integer_too_long_to_convert_is_not_read() -> None:
    text = '{"id": ' + "9" * 5000 + "}"
    with pytest.raises(json.JSONDecodeError, match="integer with 5,000 digits is too long to read"):
        strict_json.loads(text)


def test_json_lines_refuses_to_write_infinity() -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_lines.dumps({"id": float("inf")})
    assert json_lines.dumps({"id": 1.5}) == '{"id": 1.5}'


def test_scan_writes_an_error_line_for_an_infinite_or_huge_number(tmp_path, capsys) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 1e400, "text": "a"}\n'
        '{"id": -1e400, "text": "b"}\n'
        '{"id": 1, "text": "c", "n": ' + "7" * 5000 + "}\n"
        '{"id": 2, "text": "d\te"}\n'
        '{"id": 3, "text": "fine"}\n',
        encoding="utf-8",
    )
    code, out, err = run(["dlp", "scan", "--policy", str(RULES / "pii.yaml"), "--input", str(source)], capsys)
    rows = strict_rows(out)
    assert code == 1 and "4 error(s)" in err
    assert rows[0] == {
        "line": 1,
        "error": "malformed JSON: number 1e400 is too large for a 64-bit float (it would read as "
        "Infinity, which JSON does not have) at column 8",
    }
    assert "-1e400 is too large" in rows[1]["error"] and "-Infinity" in rows[1]["error"]
    assert rows[2] == {
        "line": 3,
        "error": "malformed JSON: integer with 5,000 digits is too long to read at column 29",
    }
    # Python's "Invalid control character at" made "... at at column 21"
    assert rows[3] == {
        "line": 4,
        "error": "malformed JSON: invalid control character U+0009 in a string (escape it) at column 21",
    }
    assert rows[4]["id"] == 3 and rows[4]["action"] == "none"


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_ingest_dead_letters_an_event_with_an_infinite_number(number: str) -> None:
    for raw in (
        # an extra field: pydantic accepts the line, the strict reader refuses it
        line(event(1)).rstrip(b"\n")[:-1] + b', "score": ' + number.encode() + b"}",
        # a field pydantic checks: refused by both
        json.dumps(event(1)).encode()[:-1] + b', "attachments": [{"size": ' + number.encode() + b"}]}",
    ):
        kind, row = parse_line(
            Line("src.jsonl", 0, raw, len(raw), None),
            now=BASE_TIME + dt.timedelta(days=30),
            limits=Limits(max_line_bytes=1 << 20),
        )
        assert kind == "dead" and row["reason_code"] == "malformed_json", row
        assert f"number {number} is too large for a 64-bit float" in row["reason"]


# -- one output line per input line ------------------------------------------------------------


def test_scan_answers_a_blank_line_with_an_error_line(tmp_path, capsys) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"id": 1, "text": "card 4012 8888 8888 1881"}\n\n   \n{"id": 4, "text": "hello"}\r\n\r\n'
    )
    code, out, err = run(["dlp", "scan", "--policy", str(RULES / "pii.yaml"), "--input", str(source)], capsys)
    rows = strict_rows(out)
    assert len(rows) == 5  # as many as the input has
    assert rows[0]["id"] == 1 and rows[0]["action"] == "redact"
    assert rows[1] == {"line": 2, "error": "empty line"}
    assert rows[2] == {"line": 3, "error": "empty line"}
    assert rows[3]["id"] == 4 and rows[3]["action"] == "none"
    assert rows[4] == {"line": 5, "error": "empty line"}
    assert code == 1 and "scanned 5 line(s)" in err and "3 error(s)" in err


def test_scan_answers_a_line_without_an_id_with_an_error_line(tmp_path, capsys) -> None:
    # before: scanned, and answered with "id": null, matched to its line by position alone
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"text": "card 4012 8888 8888 1881"}\n{"id": null, "text": "x"}\n{"id": 0, "text": "hello"}\n'
        b'{"id": true, "text": "x"}\n{"id": [], "text": "x"}\n{"id": "", "text": "x"}\n'
    )
    code, out, err = run(["dlp", "scan", "--policy", str(RULES / "pii.yaml"), "--input", str(source)], capsys)
    rows = strict_rows(out)
    rule = ": each line needs an 'id' (a string or a number) to match its answer to it"
    assert rows[0] == {"line": 1, "error": "missing id" + rule}
    assert rows[1] == {"line": 2, "error": "missing id" + rule}
    assert rows[2]["id"] == 0 and rows[2]["action"] == "none"  # 0 is an id
    assert rows[3] == {"line": 4, "error": "id is true" + rule}
    assert rows[4] == {"line": 5, "error": "id is an array" + rule}
    assert rows[5] == {"line": 6, "error": "id is empty" + rule}
    assert "4012" not in out
    assert code == 1 and "5 error(s)" in err


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_scan_names_a_utf16_input_and_how_to_convert_it(tmp_path, capsys, encoding: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n'.encode(encoding))
    code, out, _ = run(["dlp", "scan", "--policy", str(RULES / "pii.yaml"), "--input", str(source)], capsys)
    rows = strict_rows(out)
    assert code == 1 and rows and all("error" in row for row in rows)
    for row in rows[:2]:
        assert "looks UTF-16" in row["error"] and "iconv -f UTF-16 -t UTF-8" in row["error"]


def test_scan_gives_no_utf16_hint_for_a_plain_bad_line(tmp_path, capsys) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a", "text": "caf\xe9"}\n{"id": "b", "text": \n')
    _, out, _ = run(["dlp", "scan", "--policy", str(RULES / "pii.yaml"), "--input", str(source)], capsys)
    assert [row["error"] for row in strict_rows(out)] == [
        "invalid UTF-8 at byte 24",
        "malformed JSON: Expecting value at column 21",
    ]
