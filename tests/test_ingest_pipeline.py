"""End to end on the real Beam runner: files in, Parquet archive out, every event accounted for."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest
from factories import event, line, write_jsonl
from helpers import NOW, duck_count, fingerprint, ingest

from pipelines.archive import layout, reader
from pipelines.archive.manifest import load_state
from pipelines.archive.verify import verify
from pipelines.archive.writer import archive_lock
from pipelines.errors import ArchiveLockedError
from pipelines.ingest import run as run_module
from pipelines.record import ARROW_SCHEMA, record_id_for


def _mixed_input(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    day1 = [event(i) for i in range(40)]
    day1 += [
        event(100 + i, channel="wechat", body=f"你好，第{i}条消息", sub_org="wealth-sh") for i in range(10)
    ]
    day1 += [b"{broken json\n", b"\xff\xfe\n", b"\n", b"   \n", line(event(900, channel="telex"))]
    write_jsonl(src / "events-2026-01-05.jsonl", day1)
    day2 = [
        event(
            40 + i,
            event_time=(dt.datetime(2026, 1, 6, 10, tzinfo=dt.UTC) + dt.timedelta(minutes=i)).isoformat(),
            received_time=(
                dt.datetime(2026, 1, 6, 10, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
            ).isoformat(),
        )
        for i in range(20)
    ]
    day2 += [event(3, received_time="2026-01-07T00:00:00Z")]  # re-delivery of an earlier event
    day2 += [event(4, body="a different text under a reused id")]  # conflict
    write_jsonl(src / "events-2026-01-06.jsonl", day2)
    write_jsonl(src / "_labels.jsonl", [{"not": "an event"}])  # bookkeeping: never read
    return src


def test_counts_add_up_and_archive_reads_back(tmp_path: Path) -> None:
    src = _mixed_input(tmp_path)
    archive = tmp_path / "archive"
    s = ingest(src, archive)
    assert s.sources == 2
    assert s.read == 50 + 3 + 22  # blank lines are not events
    assert s.blank_lines == 2
    assert s.archived == 70
    assert s.duplicates == 1
    assert s.dead_letter_reasons == {
        "malformed_json": 1,
        "invalid_utf8": 1,
        "unknown_channel": 1,
        "conflicting_duplicate": 1,
    }
    assert s.balanced and s.read == s.archived + s.dead_lettered + s.duplicates

    # pyarrow reads the tree as it is, partitions included
    table = ds.dataset(archive / layout.RECORDS, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 70
    assert set(table.column("event_month").to_pylist()) == {"2026-01"}
    # DuckDB too, with SQL over the partition columns
    assert duck_count(archive, "channel = 'wechat'") == 10
    assert duck_count(archive, "event_time::DATE = DATE '2026-01-06'") == 20
    cjk = duckdb.sql(
        f"SELECT body FROM read_parquet('{archive}/records/**/*.parquet') WHERE body LIKE '%第3条%'"
    ).fetchall()
    assert cjk == [("你好，第3条消息",)]
    # the reader returns the archive schema; the record for event 4 is the first version seen
    rows = {r["record_id"]: r for r in reader.iter_rows(archive)}
    kept = rows[record_id_for("acme", "whatsapp", "evt-000004")]
    assert kept["body"] == "Message number 4 about the quarterly review."
    assert kept["ingest_time"] == NOW
    assert reader.read_table(archive).schema.names == ARROW_SCHEMA.names


def test_dead_letters_keep_raw_payload_and_reason(tmp_path: Path) -> None:
    src = _mixed_input(tmp_path)
    archive = tmp_path / "archive"
    ingest(src, archive)
    dead = {r["reason_code"]: r for r in reader.iter_rows(archive, kind=layout.DEAD_LETTERS)}
    assert dead["malformed_json"]["raw"] == b"{broken json"
    assert dead["invalid_utf8"]["raw"] == b"\xff\xfe"
    assert dead["unknown_channel"]["source_name"].endswith("events-2026-01-05.jsonl")
    conflict = dead["conflicting_duplicate"]
    assert conflict["stage"] == "dedup" and conflict["record_id"] == record_id_for(
        "acme", "whatsapp", "evt-000004"
    )
    assert json.loads(conflict["raw"])["body"] == "a different text under a reused id"
    # offsets point at the line in the source file
    with open(dead["malformed_json"]["source_name"], "rb") as f:
        f.seek(dead["malformed_json"]["source_offset"])
        assert f.readline() == b"{broken json\n"


def test_files_rewritten_with_the_same_bytes_are_skipped_without_an_empty_commit(tmp_path: Path) -> None:
    # `vigil simulate --overwrite` (the quick start typed twice) writes the same bytes again with a
    # new mtime: the last commit already read all of them, so there is nothing to read or commit
    src = _mixed_input(tmp_path)
    archive = tmp_path / "archive"
    ingest(src, archive)
    head = load_state(archive).head
    for path in sorted(src.iterdir()):
        path.write_bytes(path.read_bytes())
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    again = ingest(src, archive)
    assert (again.commit, again.skipped_sources, again.resumed_sources, again.read) == (None, 2, 0, 0)
    assert load_state(archive).head == head
    # ...but one that grew is read on from where the commit stopped
    first = src / "events-2026-01-05.jsonl"
    with first.open("ab") as f:
        f.write(line(event(9000)))
    grown = ingest(src, archive)
    assert (grown.skipped_sources, grown.resumed_sources, grown.read, grown.archived) == (1, 1, 1, 1)


def test_a_file_rewritten_to_other_bytes_of_the_same_size_is_read_from_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in"
    path = src / "events.jsonl"
    write_jsonl(path, [event(i, body=f"first text {i}") for i in range(5)])
    archive = tmp_path / "archive"
    assert ingest(src, archive).archived == 5
    # same length, other events: nothing to read on from; the whole file is new
    write_jsonl(path, [event(50 + i, body=f"other text {i}") for i in range(5)])
    assert path.stat().st_size == load_state(archive).consumed_sources()[str(path)]["bytes_read"]
    hashed: list[tuple[str, int]] = []
    real = run_module.prefix_sha256

    def counting(name: str, length: int) -> str | None:
        hashed.append((name, length))
        return real(name, length)

    monkeypatch.setattr(run_module, "prefix_sha256", counting)
    again = ingest(src, archive)
    assert (again.skipped_sources, again.resumed_sources, again.read, again.archived) == (0, 0, 5, 5)
    assert len(hashed) == 1  # the consumed prefix is hashed once per file, however often it is asked
    assert verify(archive).ok


def test_rerun_is_idempotent_and_skips_consumed_files(tmp_path: Path) -> None:
    src = _mixed_input(tmp_path)
    archive = tmp_path / "archive"
    ingest(src, archive)
    before = fingerprint(archive)
    again = ingest(src, archive)
    assert again.commit is None and again.skipped_sources == 2
    forced = ingest(src, archive, only_new_sources=False)
    assert forced.archived == 0
    assert forced.duplicates == 70 + 1  # everything again, plus the in-run re-delivery
    assert forced.dead_lettered == 4 and forced.dead_letters_already_stored == 4
    assert forced.balanced
    assert fingerprint(archive) == before
    assert verify(archive).ok


def test_duplicates_across_runs_and_new_files(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    write_jsonl(tmp_path / "a" / "one.jsonl", [event(i) for i in range(10)])
    assert ingest(tmp_path / "a", archive).archived == 10
    # a later delivery repeats half of them and adds five new ones
    write_jsonl(
        tmp_path / "b" / "two.jsonl", [event(i, received_time="2026-01-09T00:00:00Z") for i in range(5, 15)]
    )
    s = ingest(tmp_path / "b", archive)
    assert (s.archived, s.duplicates, s.dead_lettered) == (5, 5, 0)
    assert reader.read_table(archive).num_rows == 15
    assert len(set(reader.read_table(archive, columns=["record_id"]).column(0).to_pylist())) == 15


def test_files_are_partitioned_and_listed_in_the_manifest(tmp_path: Path) -> None:
    src = _mixed_input(tmp_path)
    archive = tmp_path / "archive"
    s = ingest(src, archive)
    state = load_state(archive)
    records = state.files(layout.RECORDS)
    assert sorted((f.partition["event_month"], f.partition["channel"]) for f in records) == [
        ("2026-01", "wechat"),
        ("2026-01", "whatsapp"),
    ]
    assert sum(f.rows for f in records) == s.archived
    assert {f.path for f in state.live.values()} == set(layout.data_files_on_disk(archive))
    commit = state.commits[s.commit]
    assert {src_["name"].rsplit("/", 1)[-1] for src_ in commit["sources"]} == {
        "events-2026-01-05.jsonl",
        "events-2026-01-06.jsonl",
    }
    report = json.loads((archive / layout.RUNS / f"{s.commit}.json").read_text())
    assert report["summary"]["balanced"] is True


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "x.jsonl", [event(1)])
    with archive_lock(tmp_path / "archive"), pytest.raises(ArchiveLockedError, match="another Vigil process"):
        ingest(tmp_path / "in", tmp_path / "archive")


def test_a_writer_that_fails_in_a_folder_it_made_leaves_nothing_there(tmp_path: Path) -> None:
    from pipelines.archive import writer

    new = tmp_path / "made" / "for" / "it"
    with pytest.raises(RuntimeError), writer.archive_lock(new, new_folder=writer.REMOVE_IF_FAILED):
        (new / layout.STAGING).mkdir()  # an empty bookkeeping folder goes with it
        raise RuntimeError("refused")
    assert list(tmp_path.iterdir()) == []  # the parents it made for the folder too
    with writer.archive_lock(new, new_folder=writer.REMOVE_IF_FAILED):
        pass  # ended well (a --follow session that saw no file): kept, with its lock
    assert [p.name for p in new.iterdir()] == [layout.LOCK]


def test_a_folder_that_was_there_or_holds_more_than_the_lock_is_never_removed(tmp_path: Path) -> None:
    from pipelines.archive import writer

    there = tmp_path / "there"
    there.mkdir()
    with writer.archive_lock(there, new_folder=writer.REMOVE_IF_UNUSED):
        pass
    assert [p.name for p in there.iterdir()] == [layout.LOCK]
    new = tmp_path / "new"
    with writer.archive_lock(new, new_folder=writer.REMOVE_IF_UNUSED):
        (new / layout.STAGING).mkdir()
        (new / layout.STAGING / "kept.parquet").write_bytes(b"x")
        (new / "notes.txt").write_text("someone else's")
    assert sorted(p.name for p in new.iterdir()) == [layout.LOCK, layout.STAGING, "notes.txt"]


def test_a_writer_that_locked_the_lock_of_a_removed_folder_locks_the_folder_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second writer opens the lock file of a folder the first one made; the first fails and
    removes the folder, lock file and all, and lets go; the second then holds a lock no other
    writer can see. It must notice, make the folder again and lock that one."""
    import contextlib
    import fcntl

    from pipelines.archive import writer

    root = tmp_path / "archive"
    first = contextlib.ExitStack()
    first.enter_context(writer.archive_lock(root, new_folder=writer.REMOVE_IF_UNUSED))
    real_flock, waited = fcntl.flock, []

    def flock(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX and not waited:  # the second writer, its lock file open
            waited.append(fd)
            first.close()  # the first one ends: its folder goes
            assert not root.exists()
        real_flock(fd, operation)

    monkeypatch.setattr(writer.fcntl, "flock", flock)
    with writer.archive_lock(root):
        assert waited and (root / layout.LOCK).exists()
        with pytest.raises(ArchiveLockedError), writer.archive_lock(root):  # a third writer: refused
            pass
    assert [p.name for p in root.iterdir()] == [layout.LOCK]


def test_gzip_input_is_read(tmp_path: Path) -> None:
    import gzip

    src = tmp_path / "in"
    src.mkdir()
    with gzip.open(src / "day.jsonl.gz", "wb") as f:
        for i in range(5):
            f.write(line(event(i)))
    assert ingest(src, tmp_path / "archive").archived == 5


def test_a_redelivery_with_its_attributes_in_another_order_is_a_duplicate(tmp_path: Path) -> None:
    first = event(1, attributes={"delivery": "sent", "client": "teams", "app": "v2"})
    again = event(1, attributes={"app": "v2", "client": "teams", "delivery": "sent"})
    changed = event(2, attributes={"app": "v2", "client": "teams"})
    changed_again = event(2, attributes={"app": "v3", "client": "teams"})
    write_jsonl(tmp_path / "in" / "a.jsonl", [first, changed])
    write_jsonl(tmp_path / "in" / "b.jsonl", [again, changed_again])
    s = ingest(tmp_path / "in", tmp_path / "archive")
    assert (s.archived, s.duplicates, s.dead_letter_reasons) == (2, 1, {"conflicting_duplicate": 1})
    (row,) = [r for r in reader.iter_rows(tmp_path / "archive") if r["event_id"] == "evt-000001"]
    assert [k for k, _ in row["attributes"]] == ["app", "client", "delivery"]  # kept in name order


def test_a_run_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    # runs lower the collector's work while the pipeline runs (gc.freeze, a higher threshold);
    # the process that called them, a --follow loop or a test suite, gets its settings back
    import gc

    from pipelines.ingest.run import fewer_collections

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(5)])
    assert ingest(tmp_path / "in", tmp_path / "archive").archived == 5
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold()[0] >= 20_000 and (frozen > 0 or gc.get_freeze_count() > 0)
        raise RuntimeError("a pipeline that fails")
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
    # objects the caller froze itself stay frozen
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        with fewer_collections():
            pass
        assert gc.get_freeze_count() == mine > 0
    finally:
        gc.unfreeze()
