"""The hash-chained ledger behind the manifest and the audit log."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from pipelines.archive.ledger import GENESIS, Ledger, entry_hash, written_hash_matches


def _ledger(tmp_path: Path, n: int = 5) -> Ledger:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append([{"op": "note", "n": i} for i in range(n)])
    return ledger


def _rewrite(ledger: Ledger, lines: list[bytes]) -> None:
    ledger.path.write_bytes(b"".join(lines))


def test_append_chains_entries(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 3)
    more = ledger.append([{"op": "note", "n": 3}])
    entries = ledger.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(entries))
    assert all(e["hash"] == entry_hash(e) for e in entries)
    assert more[0]["hash"] == ledger.head()
    assert ledger.problems() == []


def test_an_edited_entry_is_caught(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[2])
    entry["n"] = 99
    lines[2] = (json.dumps(entry) + "\n").encode()
    _rewrite(ledger, lines)
    assert any("line 3" in p and "altered" in p for p in ledger.problems())


def test_an_edited_entry_with_recomputed_hash_breaks_the_chain(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[2])
    entry["n"] = 99
    entry["hash"] = entry_hash(entry)  # a careful forger
    lines[2] = (json.dumps(entry) + "\n").encode()
    _rewrite(ledger, lines)
    assert any("line 4" in p and "chain broken" in p for p in ledger.problems())


def test_a_rewritten_line_that_still_hashes_the_same_is_caught(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    # a second "n" first: Python (last value wins) still reads the hashed entry, other readers 99
    lines[1] = b'{"n":99,' + lines[1][1:]
    lines[3] = json.dumps(json.loads(lines[3]), indent=1).replace("\n", "").encode() + b"\n"
    _rewrite(ledger, lines)
    problems = ledger.problems()
    assert [p.split(":")[0] for p in problems] == ["l.jsonl line 2", "l.jsonl line 4"]
    assert all("not written the way Vigil writes entries" in p for p in problems)


def test_removed_and_reordered_entries_are_caught(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    _rewrite(ledger, lines[:1] + lines[2:])
    removed = ledger.problems()
    assert any("sequence number 3 where 2" in p for p in removed)
    _rewrite(ledger, [lines[0], lines[2], lines[1], *lines[3:]])
    assert any("chain broken" in p for p in ledger.problems())


def test_torn_tail_is_reported_and_repaired(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 2)
    with ledger.path.open("ab") as f:
        f.write(b'{"op": "no')
    assert any("incomplete last line" in p for p in ledger.problems())
    assert ledger.repair_tail(2) == 1
    assert ledger.problems() == []
    ledger.append([{"op": "note", "n": 2}])
    assert [e["seq"] for e in ledger.entries()] == [1, 2, 3]


def test_concurrent_appenders_do_not_fork_the_chain(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(path, w)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    ledger = Ledger(path)
    assert ledger.problems() == []
    assert len(ledger.entries()) == 3 * 40


def _append_many(path: Path, worker: int) -> None:
    ledger = Ledger(path)
    for i in range(40):
        ledger.append([{"op": "search", "worker": worker, "i": i}])


def test_a_whole_last_entry_missing_only_its_line_end_gets_one_before_the_next_append(
    tmp_path: Path,
) -> None:
    ledger = _ledger(tmp_path, 2)
    ledger.path.write_bytes(ledger.path.read_bytes().rstrip(b"\n"))
    ledger.append([{"op": "note", "n": 2}])
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    assert all(line.endswith(b"\n") for line in lines)
    assert ledger.problems() == []


def test_a_ledger_that_does_not_repair_itself_refuses_to_append_onto_a_cut_entry(tmp_path: Path) -> None:
    import pytest

    from pipelines.errors import ArchiveError

    ledger = _ledger(tmp_path, 2)
    before = ledger.path.read_bytes() + b'{"op": "no'
    ledger.path.write_bytes(before)
    with pytest.raises(ArchiveError, match=r"cut short.*Nothing was written"):
        ledger.append([{"op": "note", "n": 2}])
    assert ledger.path.read_bytes() == before


def test_lines_python_cannot_read_back_are_named_once_and_the_chain_after_them_is_checked(
    tmp_path: Path,
) -> None:
    ledger = _ledger(tmp_path, 6)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"n":1', b'"n":' + b"9" * 5000)  # valid JSON, too long for Python
    lines[2] = lines[2].replace(b'"op":', b'"x":"\\ud800","op":')  # a lone surrogate: cannot hash
    lines.insert(4, b"\n")  # a blank line slipped in
    _rewrite(ledger, lines)
    problems = ledger.problems()
    assert [p.split(":")[0] for p in problems] == ["l.jsonl line 2", "l.jsonl line 3", "l.jsonl line 5"]
    assert "cannot read back" in problems[0] and "cannot read back" in problems[1]
    assert "not valid JSON" in problems[2]
    # the chain resumes after each named line: an entry edited further on is still caught
    entry = json.loads(lines[6])
    entry["n"] = 99
    lines[6] = (json.dumps(entry) + "\n").encode()
    _rewrite(ledger, lines)
    assert any(p.startswith("l.jsonl line 7") and "altered" in p for p in ledger.problems())


def test_a_last_line_python_cannot_read_back_is_a_damaged_tail_not_a_crash(tmp_path: Path) -> None:
    import pytest

    from pipelines.errors import ArchiveError

    ledger = _ledger(tmp_path, 2)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(b'"n":1', b'"n":' + b"9" * 5000)
    _rewrite(ledger, lines)
    with pytest.raises(ArchiveError, match=r"last line of .* is damaged"):
        ledger.append([{"op": "note"}])
    assert ledger.entry_at(2) == {}


def test_a_written_line_hashes_as_its_entry_and_any_other_writing_does_not(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    # keys before and after "hash", nested values, text beyond ASCII: every line as Vigil writes it
    ledger.append([{"op": "add", "a": 1, "z": {"k": ["é", None]}}, {"op": "commit", "audit": {"head": "x"}}])
    for _, line in ledger.raw_lines():
        entry = json.loads(line)
        assert written_hash_matches(line, entry_hash(entry))
        spaced = line.replace(b'":', b'": ')  # same entry to Python, other bytes
        assert json.loads(spaced) == entry and not written_hash_matches(spaced, entry["hash"])
        other = line.replace(b'"op":', b'"op":"x","_":', 1)  # content added, hash kept
        assert not written_hash_matches(other, entry["hash"])
        assert not written_hash_matches(line, "0" * 64)  # a hash the line does not hold
