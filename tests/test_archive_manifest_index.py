"""Reading the manifest without replaying all of it.

The index gives readers the same live files as a full manifest replay, and never more.

Every reader (search, conversation, export, the audit anchor) goes through it, so what the other
suites check about reading holds with the index in place; these tests pin what is particular to
it: which index is trusted, what a stale or forged one does, and that verify catches a forgery.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from factories import event, write_jsonl
from helpers import VIGIL, ingest
from search_support import dataset, write_archive

from pipelines.archive import compact, layout, manifest, manifest_index, writer
from pipelines.archive.ledger import canonical
from pipelines.archive.manifest import load_state
from pipelines.archive.reader import live_files
from pipelines.archive.verify import verify
from pipelines.search.access import AccessRole, Identity
from pipelines.search.audit import record_access


def _commits(root: Path, n: int) -> None:
    """``n`` commits of the shared rows, each under its own event ids."""
    rows = dataset()
    for i in range(n):
        batch = [
            {**r, "record_id": f"{r['record_id']}-{i}", "event_id": f"{r['event_id']}-{i}"} for r in rows
        ]
        write_archive(root, batch, commit=f"20260301T00000{i}000000Z-c{i}")


def _same_as_replay(root: Path) -> manifest_index.LiveView:
    view = manifest_index.live_view(root)
    state = load_state(root)
    for kind in layout.KINDS:
        assert view.files(kind) == state.files(kind)
    assert view.audit_anchor == state.audit_anchor()
    assert (view.state.committed_lines, view.state.head) == (state.committed_lines, state.head)
    return view


def _index(root: Path) -> dict:
    return json.loads((root / layout.MANIFEST_INDEX).read_text())


def test_each_commit_leaves_an_index_readers_need_not_replay_past(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _commits(root, 3)
    compact.compact(root)  # removes as well as adds
    view = _same_as_replay(root)
    assert view.replayed_lines == 0  # the index covered the last commit
    assert _index(root)["lines"] == load_state(root).committed_lines
    assert verify(root).ok


def test_a_stale_index_is_used_and_the_rest_replayed(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _commits(root, 1)
    old = (root / layout.MANIFEST_INDEX).read_bytes()
    covered = load_state(root).committed_lines
    more = [{**r, "record_id": r["record_id"] + "-x", "event_id": r["event_id"] + "-x"} for r in dataset()]
    write_archive(root, more)
    compact.compact(root)
    (root / layout.MANIFEST_INDEX).write_bytes(old)
    view = _same_as_replay(root)
    assert view.replayed_lines == load_state(root).committed_lines - covered > 0
    assert verify(root).ok  # stale is not wrong


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d.update(hash="0" * 64),  # manifest rewritten since: the entry there is another
        lambda d: d.update(offset=d["offset"] + 10**6),  # manifest cut shorter than the index
        lambda d: d.update(offset=d["offset"] - 1),  # not at a line boundary
        lambda d: d.update(lines=d["lines"] + 1),  # another sequence number
        lambda d: d.update(format=0),  # an older or newer format
        lambda d: d.update(live="nope"),
        lambda d: d.update(live=[["only-a-path"]]),
        lambda d: d.pop("last_line_bytes"),
    ],
)
def test_an_index_that_does_not_fit_is_ignored(tmp_path: Path, spoil) -> None:
    root = tmp_path / "a"
    _commits(root, 2)
    document = _index(root)
    spoil(document)
    (root / layout.MANIFEST_INDEX).write_text(json.dumps(document))
    view = _same_as_replay(root)
    assert view.replayed_lines == load_state(root).committed_lines  # replayed from the start
    assert verify(root).ok


def test_a_damaged_or_missing_index_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _commits(root, 2)
    (root / layout.MANIFEST_INDEX).write_bytes(b'{"format": 1, "li')
    assert _same_as_replay(root).replayed_lines == load_state(root).committed_lines
    (root / layout.MANIFEST_INDEX).unlink()
    assert _same_as_replay(root).replayed_lines == load_state(root).committed_lines


def test_lines_after_the_last_commit_are_not_read(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _commits(root, 1)
    orphan = {"op": "add", "commit": "never", "kind": "records", "path": "records/x.parquet"}
    with (root / layout.MANIFEST).open("ab") as f:  # an append cut off before its commit entry
        f.write((canonical(orphan) + "\n").encode() + b'{"op": "com')
    view = _same_as_replay(root)
    assert "records/x.parquet" not in view.state.live


def test_a_reader_that_replayed_a_long_tail_rewrites_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "a"
    _commits(root, 3)
    (root / layout.MANIFEST_INDEX).unlink()  # as in an archive written before the index existed
    monkeypatch.setattr(manifest_index, "REFRESH_AFTER_LINES", 10**9)
    manifest_index.live_view(root)
    assert not (root / layout.MANIFEST_INDEX).exists()  # a short tail is cheaper to replay than to write
    monkeypatch.setattr(manifest_index, "REFRESH_AFTER_LINES", 2)
    manifest_index.live_view(root)
    assert _index(root)["lines"] == load_state(root).committed_lines
    assert manifest_index.live_view(root).replayed_lines == 0


def test_the_audit_anchor_comes_through_the_index(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(3)])
    archive = tmp_path / "archive"
    ingest(tmp_path / "in", archive)
    record_access(
        archive, Identity("ana", AccessRole.OFFICER), "search", query={"text": "x"}, results=0, engine="t"
    )
    write_jsonl(tmp_path / "in" / "b.jsonl", [event(i) for i in range(3, 6)])
    ingest(tmp_path / "in", archive)  # this commit anchors the access above
    view = _same_as_replay(archive)
    assert view.replayed_lines == 0 and view.audit_anchor is not None and view.audit_anchor["seq"] == 1


def _forge(root: Path, change) -> None:
    document = _index(root)
    change(document)
    (root / layout.MANIFEST_INDEX).write_text(json.dumps(document))


def test_verify_names_an_index_that_lists_other_files_than_the_manifest(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _commits(root, 2)
    first = live_files(root)[0]
    forged = tmp_path / "forged"
    shutil.copytree(root, forged)
    planted = "records/event_month=2026-01/ch=sms/part-planted.parquet"
    _forge(forged, lambda d: d["live"].append([planted, *d["live"][0][1:]]))
    # readers do not use it (its files are not the digest the commit recorded) and verify names it
    assert planted not in [f.path for f in live_files(forged)]
    problems = verify(forged).problems
    assert any(f"lists {planted}, which the manifest does not have live" in p for p in problems)
    result = subprocess.run([*VIGIL, "verify", "--archive", str(forged)], capture_output=True, text=True)
    assert result.returncode == 1 and planted in result.stdout + result.stderr

    hidden = tmp_path / "hidden"
    shutil.copytree(root, hidden)
    _forge(hidden, lambda d: d.update(live=[row for row in d["live"] if row[0] != first.path]))
    assert any(f"leaves out {first.path}" in p for p in verify(hidden).problems)

    altered = tmp_path / "altered"
    shutil.copytree(root, altered)
    _forge(altered, lambda d: d["live"][0].__setitem__(4, "f" * 64))  # another sha256
    assert any("describes" in p and "differently" in p for p in verify(altered).problems)

    anchored = tmp_path / "anchored"
    shutil.copytree(root, anchored)
    _forge(anchored, lambda d: d.update(audit_anchor={"seq": 7, "head": "0" * 64}))
    assert any("another audit anchor" in p for p in verify(anchored).problems)


# a process re-reading the manifest (``vigil run --follow`` polls) ----------------------------------


def _lines_parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = manifest.parse_entries

    def spy(path: Path, lines: list[bytes], first_line: int = 1) -> list[dict]:
        seen.append(len(lines))
        return real(path, lines, first_line)

    monkeypatch.setattr(manifest, "parse_entries", spy)
    return seen


def _same_as_fresh(root: Path) -> manifest.ManifestState:
    state, fresh = load_state(root), load_state(root, fresh=True)
    for name in ("live", "removed", "commits", "committed_lines", "total_lines", "head", "last_commit"):
        assert getattr(state, name) == getattr(fresh, name), name
    return state


def test_a_process_replays_only_what_was_appended_since_it_last_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "a"
    _commits(root, 2)
    before = _same_as_fresh(root)
    held = (dict(before.live), before.committed_lines)
    parsed = _lines_parsed(monkeypatch)
    gone = next(iter(before.live.values()))
    manifest.manifest_ledger(root).append(  # another writer's commit: one file in, one out
        [
            {"op": "add", "commit": "c9", "kind": "records", "path": "records/n.parquet", "rows": 1,
             "bytes": 9, "sha256": "0" * 64},
            {"op": "remove", "commit": "c9", "path": gone.path, "sha256": gone.sha256, "reason": "test"},
            {"op": "commit", "commit": "c9", "sources": []},
        ]
    )  # fmt: skip
    after = _same_as_fresh(root)
    assert parsed[0] == 3  # the tail, not the whole file
    assert "records/n.parquet" in after.live and gone.path in after.removed and gone.path not in after.live
    assert (before.live, before.committed_lines) == held  # what a caller held did not change under it
    parsed.clear()
    assert load_state(root) is after and parsed == []  # nothing appended: nothing read


def test_a_rewritten_or_cut_manifest_is_replayed_from_the_start(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _commits(root, 3)
    load_state(root)
    manifest_file = root / layout.MANIFEST
    full = manifest_file.read_bytes()
    lines = full.splitlines(keepends=True)
    first_commit = next(i for i, line in enumerate(lines) if b'"op":"commit"' in line) + 1
    manifest_file.write_bytes(b"".join(lines[:first_commit]))  # cut back (an older backup restored)
    state = _same_as_fresh(root)
    assert state.committed_lines == first_commit < len(lines)
    shutil.rmtree(root)
    _commits(root, 1)  # another archive in the same place
    _same_as_fresh(root)


def test_lines_an_interrupted_append_left_are_counted_then_forgotten_once_cut(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _commits(root, 1)
    committed = load_state(root).committed_lines
    with (root / layout.MANIFEST).open("ab") as f:
        f.write(b'{"op": "add", "commit": "never"}\n{"op": "comm')
    state = _same_as_fresh(root)
    assert (state.committed_lines, state.total_lines) == (committed, committed + 2)
    with writer.archive_lock(root):
        assert writer.recover(root).torn_lines_cut == 2
    state = _same_as_fresh(root)
    assert state.total_lines == state.committed_lines == committed
