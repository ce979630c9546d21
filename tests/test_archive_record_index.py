"""De-duplication's ``record_id -> content hash`` index, brought up to date commit by commit, always
equals one built from scratch, and reads no more files than it must."""

from __future__ import annotations

from pathlib import Path

from factories import event, write_jsonl
from helpers import ingest
from search_support import dataset, write_archive

from pipelines.archive import compact, layout, writer
from pipelines.archive.manifest import load_state
from pipelines.archive.reader import live_files, record_index
from pipelines.archive.record_index import RecordIndex


def _batch(tag: str, channel: str = "whatsapp") -> list[dict]:
    return [
        {
            **r,
            "record_id": f"{r['record_id']}-{tag}",
            "event_id": f"{r['event_id']}-{tag}",
            "channel": channel,
        }
        for r in dataset()[:4]
    ]


def _check(index: RecordIndex, root: Path) -> int:
    """Bring ``index`` up to date; assert it equals a fresh build; return the files it read."""
    before = index.files_read
    assert index.update(load_state(root)) == record_index(root)
    return index.files_read - before


def test_ingest_commits_are_read_once_and_compaction_costs_nothing(tmp_path: Path) -> None:
    root = tmp_path / "a"
    write_archive(root, _batch("1"))
    index = RecordIndex(root)
    assert _check(index, root) == len(live_files(root)) > 0  # first look: every file
    assert _check(index, root) == 0  # nothing committed since
    write_archive(root, _batch("2"))
    new_files = {f.path for f in live_files(root)} - index.files
    assert _check(index, root) == len(new_files) > 0  # only the new commit's files
    report = compact.compact(root)
    assert report.commit is not None
    assert _check(index, root) == 0  # merged files hold rows already indexed


def test_a_file_added_and_compacted_between_two_looks_is_not_missed(tmp_path: Path) -> None:
    root = tmp_path / "a"
    write_archive(root, _batch("1"))
    index = RecordIndex(root)
    _check(index, root)
    write_archive(root, _batch("2"))  # never seen by the index...
    compact.compact(root)  # ...before it was merged
    merged = {f.path for f in live_files(root) if f.commit == load_state(root).last_commit}
    assert merged and _check(index, root) >= 1  # equal to a fresh build: batch 2's ids are there
    assert sum(rid.endswith("-2") for rid in index.ids) == 4


def test_rows_leaving_any_other_way_rebuild_the_index(tmp_path: Path) -> None:
    root = tmp_path / "a"
    write_archive(root, _batch("1", "sms"))
    write_archive(root, _batch("2", "line"))
    index = RecordIndex(root)
    first = _check(index, root)
    gone = live_files(root)[0]
    with writer.archive_lock(root):  # a removal that is not a compaction (as retention will be)
        writer.commit(
            root, layout.new_commit_id(), [], action="retention", removes=[(gone.path, gone.sha256, "t")]
        )
    ids = index.update(load_state(root))
    assert ids == record_index(root) and len(ids) < 8  # the removed file's ids are gone
    assert index.files_read == first + len(live_files(root))  # rebuilt from every live file


def test_follow_style_runs_reuse_the_index_and_still_drop_duplicates(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(5)])
    ingest(tmp_path / "in", archive)
    compact.compact(archive)
    write_jsonl(tmp_path / "in" / "b.jsonl", [event(i) for i in range(3, 8)])  # 3 and 4 again
    summary = ingest(tmp_path / "in", archive)
    assert (summary.read, summary.archived, summary.duplicates) == (5, 3, 2)
    assert len(record_index(archive)) == 8
