"""An adversarial tamper review: changes behind the manifest's back that `vigil verify` named but
readers did not notice, or that a writer tidied away.

* an edited manifest index (a cache) made search hide a committed file, show a planted one, or
  start a new audit log where the manifest recorded one: readers now use an index only when its
  files and audit anchor are the digest the commit entry recorded (``live_sha256``);
* two committed files swapped, or one replaced by a link to another, were read as committed:
  readers now refuse a file that is not the size the manifest recorded;
* a committed file replaced by a link to an identical copy elsewhere passed `vigil verify`;
* a retired file that came back altered was deleted by the next writer, so `vigil verify`, which
  had named it, then passed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from factories import event, write_jsonl
from helpers import ingest
from search_support import dataset, write_archive

from pipelines.archive import compact, layout, manifest_index, reader, writer
from pipelines.archive.manifest import LIVE_DIGEST, live_digest, load_state
from pipelines.archive.verify import verify
from pipelines.errors import ArchiveError
from pipelines.search import conversation, embedded
from pipelines.search.access import AccessRole, Identity
from pipelines.search.audit import record_access
from pipelines.search.parse import parse_query

OFFICER = Identity("ana", AccessRole.OFFICER)


def _archive(root: Path, commits: int = 1) -> Path:
    for i in range(commits):
        rows = [
            {**r, "record_id": f"{r['record_id']}-{i}", "event_id": f"{r['event_id']}-{i}"} for r in dataset()
        ]
        write_archive(root, rows, commit=f"20260301T00000{i}000000Z-c{i}")
    return root


def _forge_index(root: Path, change) -> None:
    path = root / layout.MANIFEST_INDEX
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _total(root: Path, text: str = "from:2000-01-01") -> int:
    return embedded.search(root, parse_query(text), OFFICER).total


def _file_of(root: Path, channel: str) -> reader.DataFile:
    return next(f for f in reader.live_files(root) if f"/ch={channel}/" in f.path)


# the manifest index -----------------------------------------------------------------------------


def test_each_commit_records_the_digest_of_what_it_leaves(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a", commits=2)
    compact.compact(root)  # removes as well as adds
    state = load_state(root, fresh=True)
    last = state.commits[state.last_commit]
    assert last["action"] == "compact"
    assert last[LIVE_DIGEST] == live_digest(state.live, state.audit_anchor())
    assert verify(root).ok


def test_an_index_edited_to_hide_a_file_is_not_used(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a")
    whole = _total(root)
    hidden = _file_of(root, "whatsapp")
    _forge_index(root, lambda d: d.update(live=[row for row in d["live"] if row[0] != hidden.path]))
    assert hidden in reader.live_files(root)  # before: left out, and its records with it
    assert _total(root) == whole
    assert len(conversation.load_conversation(root, "conv-en")) == 10
    assert any(f"leaves out {hidden.path}" in p for p in verify(root).problems)


def test_an_index_edited_to_list_a_planted_file_is_not_used(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a")
    real = _file_of(root, "whatsapp")
    planted = real.path.replace("-0000.parquet", "-0009.parquet")
    shutil.copy(root / real.path, root / planted)  # any Parquet the forger likes
    _forge_index(root, lambda d: [row.__setitem__(0, planted) for row in d["live"] if row[0] == real.path])
    assert planted not in [f.path for f in reader.live_files(root)]
    problems = verify(root).problems
    assert any(f"lists {planted}" in p for p in problems)
    assert any(f"{planted}: not in the manifest" in p for p in problems)


def test_an_index_with_a_lowered_audit_anchor_does_not_let_a_deleted_log_restart(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(3)])
    archive = tmp_path / "archive"
    ingest(tmp_path / "in", archive)
    record_access(archive, OFFICER, "search", query={"text": "x"}, results=0, engine="t")
    write_jsonl(tmp_path / "in" / "b.jsonl", [event(i) for i in range(3, 6)])
    ingest(tmp_path / "in", archive)  # this commit anchors the access above
    (archive / layout.AUDIT).unlink()
    _forge_index(archive, lambda d: d.update(audit_anchor=None))
    with pytest.raises(ArchiveError, match="ends before entry 1"):
        record_access(archive, OFFICER, "search", query={"text": "y"}, results=0, engine="t")
    assert not (archive / layout.AUDIT).exists()  # no fresh log in its place
    assert any("another audit anchor" in p for p in verify(archive).problems)


def test_an_unforged_index_is_still_used(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a", commits=2)
    assert manifest_index.live_view(root).replayed_lines == 0


# committed files swapped or linked ------------------------------------------------------------------


def _swap(a: Path, b: Path) -> None:
    temp = a.with_name("swap.tmp")
    os.replace(a, temp)
    os.replace(b, a)
    os.replace(temp, b)


def test_two_swapped_files_are_refused_by_every_reader(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a")
    whatsapp, wechat = _file_of(root, "whatsapp"), _file_of(root, "wechat")
    assert whatsapp.bytes != wechat.bytes
    _swap(root / whatsapp.path, root / wechat.path)
    for read in (
        lambda: _total(root, "channel:whatsapp"),  # before: the WeChat records, as WhatsApp's
        lambda: conversation.load_conversation(root, "conv-en"),  # before: no record at all
        lambda: reader.read_table(root),
    ):
        with pytest.raises(ArchiveError, match="bytes where the manifest recorded") as caught:
            read()
        assert "nothing was shown" in str(caught.value) and "vigil verify" in str(caught.value)
    problems = verify(root).problems
    assert len(problems) == 2 and all("content changed" in p for p in problems)


def test_a_file_replaced_by_a_link_to_another_is_refused(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a")
    whatsapp, wechat = _file_of(root, "whatsapp"), _file_of(root, "wechat")
    (root / whatsapp.path).unlink()
    (root / whatsapp.path).symlink_to(root / wechat.path)
    with pytest.raises(ArchiveError, match=f"{whatsapp.path} is a symbolic link where the manifest recorded"):
        _total(root, "channel:whatsapp")
    assert any("is a symbolic link" in p for p in verify(root).problems)


def test_a_file_replaced_by_a_link_to_an_identical_copy_is_named(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a")
    target = root / _file_of(root, "whatsapp").path
    outside = tmp_path / "elsewhere.parquet"
    shutil.copy(target, outside)
    target.unlink()
    target.symlink_to(outside)
    # every reader refuses it: the size is the recorded one, so only the link gives it away
    for read in (
        lambda: _total(root, "channel:whatsapp"),
        lambda: conversation.load_conversation(root, "conv-en"),
        lambda: reader.read_table(root),
    ):
        with pytest.raises(ArchiveError, match="is a symbolic link where the manifest recorded a file"):
            read()
    problems = verify(root).problems  # before: "archive intact"
    assert problems == [
        f"{target.relative_to(root).as_posix()}: is a symbolic link to {outside}, not the committed file "
        "(Vigil never makes one; the data now lives where the archive's protection may not reach): "
        "put the file itself back"
    ]


# a writer tidying away what verify names ------------------------------------------------------------


def test_a_retired_file_that_comes_back_altered_is_left_for_verify(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a", commits=2)
    before = {f.path: f for f in reader.live_files(root)}
    compact.compact(root)
    retired = next(p for p in before if p not in {f.path for f in reader.live_files(root)})
    later = [{**r, "record_id": r["record_id"] + "-x", "event_id": r["event_id"] + "-x"} for r in dataset()]
    write_archive(root, later)  # a commit after the compaction
    shutil.copy(root / _file_of(root, "wechat").path, root / retired)  # back, and not what it was
    assert any(f"{retired}: retired by commit" in p for p in verify(root).problems)
    with writer.archive_lock(root):
        recovery = writer.recover(root)
    assert recovery.deleted_removed == [] and (root / retired).exists()  # before: deleted
    assert any(f"{retired}: retired by commit" in p for p in verify(root).problems)


def test_a_retired_file_an_interrupted_compaction_left_is_still_deleted(tmp_path: Path) -> None:
    root = _archive(tmp_path / "a", commits=2)
    kept = {f.path: (root / f.path).read_bytes() for f in reader.live_files(root)}
    compact.compact(root)
    for rel, data in kept.items():  # as a compaction stopped before deleting what it retired leaves them
        if not (root / rel).exists():
            (root / rel).write_bytes(data)
    assert verify(root).ok
    with writer.archive_lock(root):
        recovery = writer.recover(root)
    assert sorted(recovery.deleted_removed) == sorted(set(kept) - {f.path for f in reader.live_files(root)})
    assert verify(root).ok and not verify(root).notes


# the manifest's own lines -----------------------------------------------------------------------


def _drop_line(manifest: Path, path: str) -> None:
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(b"".join(line for line in lines if json.loads(line).get("path") != path))


def _inflate_rows(manifest: Path, path: str) -> None:
    lines = []
    for line in manifest.read_bytes().splitlines(keepends=True):
        entry = json.loads(line)
        if entry.get("path") == path:  # hash left as it was: a forger who does not recompute the chain
            entry["rows"] = entry["rows"] * 1000
            line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
        lines.append(line)
    manifest.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("edit", "named"),
    [(_drop_line, "sequence number"), (_inflate_rows, "does not match its hash")],
    ids=["line removed", "entry edited"],
)
def test_an_edited_manifest_is_refused_by_readers_and_writers_and_named_in_full_by_verify(
    tmp_path: Path, edit, named: str
) -> None:
    root = _archive(tmp_path / "a", commits=2)
    hidden = _file_of(root, "whatsapp")
    manifest = root / layout.MANIFEST
    edit(manifest, hidden.path)
    edited = manifest.read_bytes()
    for read in (
        lambda: _total(root),  # before, a removed line: the file's records left out without a word
        lambda: conversation.load_conversation(root, "conv-en"),
        lambda: reader.read_table(root),
    ):
        with pytest.raises(ArchiveError, match=named) as caught:
            read()
        assert "the manifest was edited" in str(caught.value) and "vigil verify" in str(caught.value)
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1)])
    with pytest.raises(ArchiveError, match=named):
        ingest(tmp_path / "in", root)  # nothing is appended to a chain that no longer holds
    assert manifest.read_bytes() == edited
    problems = verify(root).problems
    assert any(named in p for p in problems)  # verify names the break and goes on to the files
    if edit is _drop_line:
        assert any(f"{hidden.path}: not in the manifest" in p for p in problems)
