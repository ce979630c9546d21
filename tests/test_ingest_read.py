"""Reading input files: the hash of what was read is taken while reading, and equals a re-read."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import event
from factories import line as event_line

from pipelines.ingest.lines import BOM
from pipelines.ingest.parse import original_bytes, row_payload
from pipelines.ingest.read import PrefixHash, prefix_sha256, read_lines
from pipelines.record import record_id_for

LONG = b"x" * 3000  # longer than the max_line_bytes used below: read in several chunks

CASES = {
    "plain": b'{"a": 1}\n{"b": 2}\n',
    "crlf and blanks": b'{"a": 1}\r\n\r\n\n{"b": 2}\r\n',
    "byte-order mark": BOM + b'{"a": 1}\n{"b": 2}\n',
    "files joined with their byte-order marks": BOM + b'{"a": 1}\n' + BOM + b'{"b": 2}\n',
    "unfinished last line": b'{"a": 1}\n{"b": 2}\n{"c": ',
    "long line": b'{"a": 1}\n' + LONG + b"\n" + b'{"b": 2}\n',
    "long unfinished line": b'{"a": 1}\n' + LONG,
    "empty": b"",
}


def _read(path: Path, start: int, hold: bool) -> tuple[int, PrefixHash]:
    """What the pipeline's reader does: the end of the last whole line, and the inline hash."""
    prefix, end = PrefixHash(), start
    for line in read_lines(str(path), 1000, hold_partial_tail=hold, start=start, prefix=prefix):
        if line.span > line.size:
            end = line.offset + line.span
    return end, prefix


@pytest.mark.parametrize("hold", [False, True], ids=["batch", "follow"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_inline_hash_is_the_hash_of_the_bytes_read(tmp_path: Path, name: str, hold: bool) -> None:
    data = CASES[name]
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    end, prefix = _read(path, 0, hold)
    assert prefix.upto == end
    assert prefix.hexdigest() == prefix_sha256(str(path), end)
    # a later run resumes where this one ended, after the file grew
    path.write_bytes(data + b'{"d": 4}\n')
    later_end, later = _read(path, end, hold)
    assert later.upto == later_end > end
    assert later.hexdigest() == prefix_sha256(str(path), later_end)


def test_a_file_cut_below_the_resume_point_reads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    end, prefix = _read(path, 100, hold=False)
    assert end == 100 and prefix.upto != end  # the caller sees the mismatch and re-hashes (None)
    assert prefix_sha256(str(path), end) is None


def test_a_dead_letter_takes_the_source_line_only_while_it_is_still_that_event(tmp_path: Path) -> None:
    """Later stages read a refused record's line back by offset; if the file was rewritten since,
    the bytes there belong to another event and the parsed row is kept instead."""
    path = tmp_path / "a.jsonl"
    first, second = event_line(event(1)), event_line(event(2))
    path.write_bytes(first + second)
    row = {"record_id": record_id_for("acme", "whatsapp", "evt-000002"), "body": "parsed"}
    assert original_bytes(str(path), len(first), row) == second.rstrip(b"\n")

    path.write_bytes(first + event_line(event(3)))  # same offset, another event now
    assert original_bytes(str(path), len(first), row) == row_payload(row)
    path.write_bytes(first + b"not json at all\n")
    assert original_bytes(str(path), len(first), row) == row_payload(row)
    path.unlink()
    assert original_bytes(str(path), len(first), row) == row_payload(row)


@pytest.mark.parametrize("hold", [False, True], ids=["batch", "follow"])
def test_a_text_file_named_gz_is_one_dead_letter_that_says_rename_it(tmp_path: Path, hold: bool) -> None:
    # before, gzip's own error: "cannot decompress the file after 0 bytes (Not a gzipped file ...)"
    path = tmp_path / "day.jsonl.gz"
    path.write_bytes(event_line(event(1)) + event_line(event(2)))
    (problem,) = [line.problem for line in read_lines(str(path), hold_partial_tail=hold)]
    assert problem is not None
    code, reason = problem
    assert code == "unreadable_file" and "not gzip-compressed" in reason
    assert "rename it to day.jsonl (without .gz)" in reason and "Not a gzipped file" not in reason


def test_a_gz_file_holding_only_the_first_byte_of_a_gzip_header_is_cut_not_text(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl.gz"
    path.write_bytes(b"\x1f")  # a writer that has put one byte so far
    (problem,) = [line.problem for line in read_lines(str(path))]
    assert problem is not None and problem[0] == "truncated_gzip"
    assert list(read_lines(str(path), hold_partial_tail=True)) == []  # follow mode waits for it
    path.write_bytes(b"")  # and an empty .gz file is still one with not even a header
    (problem,) = [line.problem for line in read_lines(str(path))]
    assert problem is not None and problem[0] == "truncated_gzip" and "not even a gzip header" in problem[1]


def test_a_gzip_file_is_read_up_to_the_size_it_was_listed_with(tmp_path: Path) -> None:
    """Follow mode reads a settled gzip file as listed: a member its writer adds while the batch
    reads (here half written) is for the next poll. Before, the half member was read too and
    reported as a cut stream, a dead letter that stayed although the file was fine."""
    import gzip

    path = tmp_path / "day.jsonl.gz"
    first = [event_line(event(n)) for n in range(3)]
    path.write_bytes(gzip.compress(b"".join(first)))
    listed = path.stat().st_size
    more = gzip.compress(b"".join(event_line(event(n)) for n in range(3, 6)))
    with path.open("ab") as f:
        f.write(more[: len(more) // 2])
    read = list(read_lines(str(path), until=listed))
    assert [line.problem for line in read] == [None] * 3
    assert [line.raw + b"\n" for line in read] == first
    # without the bound (a batch run over a file that is cut) the cut is reported, as before
    assert [line.problem[0] for line in read_lines(str(path)) if line.problem] == ["truncated_gzip"]
