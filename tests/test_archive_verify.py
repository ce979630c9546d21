"""`vigil verify` names every way an archive can drift from its manifest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from factories import event, write_jsonl
from helpers import VIGIL, fingerprint, ingest

from pipelines.archive import compact, layout
from pipelines.archive.ledger import Ledger, canonical, entry_hash
from pipelines.archive.manifest import load_state
from pipelines.archive.verify import run_report_problems, verify
from pipelines.archive.writer import DLP_ACTIONS
from pipelines.errors import ArchiveError


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    write_jsonl(
        tmp_path / "in" / "a.jsonl", [event(i, channel=("sms", "line")[i % 2]) for i in range(30)] + [b"{x\n"]
    )
    ingest(tmp_path / "in", tmp_path / "archive")
    return tmp_path / "archive"


def _first_record_file(archive: Path) -> Path:
    return archive / load_state(archive).files(layout.RECORDS)[0].path


def test_intact_archive_passes(archive: Path) -> None:
    report = verify(archive)
    assert report.ok and report.files_checked == 3 and report.rows_checked == 31


def test_altered_file(archive: Path) -> None:
    target = _first_record_file(archive)
    table = pq.read_table(target)
    pq.write_table(table.slice(1), target)  # one row quietly dropped
    problems = verify(archive).problems
    assert len(problems) == 1 and "content changed" in problems[0] and target.name in problems[0]


def test_removed_file(archive: Path) -> None:
    target = _first_record_file(archive)
    target.unlink()
    assert any("committed file is missing" in p for p in verify(archive).problems)


def test_added_file(archive: Path) -> None:
    extra = archive / "records" / "event_month=2026-01" / "ch=sms" / "part-forged.parquet"
    shutil.copy(_first_record_file(archive), extra)
    problems = verify(archive).problems
    assert problems == [
        f"{extra.relative_to(archive).as_posix()}: not in the manifest (added behind its back)"
    ]


def test_edited_manifest_entry(archive: Path) -> None:
    manifest = archive / layout.MANIFEST
    lines = manifest.read_text().splitlines(keepends=True)
    entry = json.loads(lines[0])
    entry["rows"] += 1
    entry["hash"] = entry_hash(entry)
    lines[0] = json.dumps(entry) + "\n"
    manifest.write_text("".join(lines))
    problems = verify(archive).problems
    assert any("chain broken" in p for p in problems)
    assert any("rows where the manifest recorded" in p for p in problems)


def test_truncated_manifest_caught_with_expected_head(tmp_path: Path, archive: Path) -> None:
    head = verify(archive).manifest_head
    write_jsonl(tmp_path / "more" / "b.jsonl", [event(100 + i) for i in range(3)])
    ingest(tmp_path / "more", archive)
    new_head = verify(archive).manifest_head
    assert verify(archive, expect_head=new_head).ok
    # the head kept before the archive grew is still a commit in the chain: fine, with a note
    # (a --follow archive's head moves with every batch; an exact match would never pass)
    grown = verify(archive, expect_head=head)
    assert grown.ok and any(
        f"expected manifest head {head[:16]}… is a commit in the chain, and 1 commit(s) came after it" in n
        for n in grown.notes
    )
    # cut the last commit (and its files) off: the chain alone cannot see it, the head can
    state = load_state(archive)
    manifest = archive / layout.MANIFEST
    lines = manifest.read_text().splitlines(keepends=True)
    last = [json.loads(x) for x in lines][-1]["commit"]
    keep = [x for x in lines if json.loads(x)["commit"] != last]
    manifest.write_text("".join(keep))
    for f in state.live.values():
        if f.commit == last:
            (archive / f.path).unlink()
    # the cut commit's run report, left behind, gives it away
    assert verify(archive).problems == [
        f"_runs/{last}.json: reports commit {last}, which the manifest does not hold (added behind "
        "its back, or its commit was removed)"
    ]
    (archive / layout.RUNS / f"{last}.json").unlink()  # a careful cut removes it too
    assert verify(archive, expect_head=head).ok
    problems = verify(archive, expect_head=new_head).problems
    assert len(problems) == 1 and "entries were removed from its end" in problems[0]


def test_compaction_keeps_content_and_verifies(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    for batch in range(4):  # four deliveries into the same partitions, as --follow would commit them
        write_jsonl(tmp_path / f"in{batch}" / "x.jsonl", [event(batch * 10 + i) for i in range(10)])
        ingest(tmp_path / f"in{batch}", archive)
    before = fingerprint(archive)
    small = load_state(archive).files(layout.RECORDS)
    assert len(small) == 4
    report = compact.compact(archive)
    assert (report.files_before, report.files_after, report.rows) == (4, 1, 40)
    state = load_state(archive)
    assert len(state.files(layout.RECORDS)) == 1
    assert set(state.removed) == {f.path for f in small}
    assert all(not (archive / f.path).exists() for f in small)
    assert fingerprint(archive) == before
    assert verify(archive).ok
    assert compact.compact(archive).commit is None  # nothing left to merge
    # a retired file that reappears is reported
    shutil.copy(archive / state.files(layout.RECORDS)[0].path, archive / small[0].path)
    assert any("retired by commit" in p for p in verify(archive).problems)


def test_cli_exit_codes_and_messages(archive: Path) -> None:
    ok = subprocess.run([*VIGIL, "verify", "--archive", str(archive)], capture_output=True, text=True)
    assert ok.returncode == 0 and "archive intact" in ok.stdout
    _first_record_file(archive).unlink()
    bad = subprocess.run([*VIGIL, "verify", "--archive", str(archive)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "committed file is missing" in bad.stderr and "Traceback" not in bad.stderr
    assert "What to do:" in bad.stderr and "from a backup" in bad.stderr


def test_a_shortened_or_differently_written_head_is_a_usage_error_not_tampering(archive: Path) -> None:
    # `vigil run` prints the head shortened ("manifest head d5169198ab0363ba…"): passed back as it
    # was, it was compared with the whole head and an intact archive was reported as cut short
    head = verify(archive).manifest_head
    assert head is not None
    for given in (head[:16], head[:16] + "…"):
        short = subprocess.run(
            [*VIGIL, "verify", "--archive", str(archive), "--expect-head", given],
            capture_output=True,
            text=True,
        )
        assert short.returncode == 2, short.stdout
        assert "is not a whole head: give the 64 hex digits `vigil verify` prints after 'manifest head:'" in (
            short.stderr
        )
        assert "removed from its end" not in short.stdout + short.stderr
    audit = subprocess.run(
        [*VIGIL, "verify", "--archive", str(archive), "--expect-audit-head", "abc"],
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 2 and "prints after 'audit head:'" in audit.stderr
    # the whole head, in capitals or with spaces around it (copied from elsewhere), is the head
    upper = subprocess.run(
        [*VIGIL, "verify", "--archive", str(archive), "--expect-head", f" {head.upper()} "],
        capture_output=True,
        text=True,
    )
    assert upper.returncode == 0 and "archive intact" in upper.stdout


def test_a_wiped_archive_fails_verify(tmp_path: Path, archive: Path) -> None:
    head = load_state(archive).head
    only_manifest_gone = tmp_path / "a1"
    shutil.copytree(archive, only_manifest_gone)
    (only_manifest_gone / layout.MANIFEST).unlink()
    report = verify(only_manifest_gone)
    assert not report.ok
    assert report.problems[0].startswith(f"{layout.MANIFEST} is missing but records, deadletters, _runs")
    wiped = tmp_path / "a2"
    shutil.copytree(archive, wiped)
    for name in ("_ledger", "records", "deadletters", "_runs"):
        shutil.rmtree(wiped / name)
    assert verify(wiped).ok  # indistinguishable from a new archive without an anchor...
    report = verify(wiped, expect_head=head)  # ...but not with the head the operator kept
    assert not report.ok and "the archive was wiped" in report.problems[0]
    result = subprocess.run(
        [*VIGIL, "verify", "--archive", str(wiped), "--expect-head", head], capture_output=True, text=True
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_a_folder_that_is_no_archive_fails_verify_but_an_empty_new_archive_passes(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("not an archive")
    result = subprocess.run([*VIGIL, "verify", "--archive", str(elsewhere)], capture_output=True, text=True)
    assert result.returncode == 1 and "archive intact" not in result.stdout
    assert f"no Vigil archive at {elsewhere} (no _ledger/manifest.jsonl)" in result.stderr
    assert "Traceback" not in result.stderr
    # a first run into a folder made for the archive that found nothing to archive leaves an
    # archive with nothing committed: fine
    (tmp_path / "in").mkdir()
    new = tmp_path / "new"
    new.mkdir()
    ran = subprocess.run([*VIGIL, "run", "--input", str(tmp_path / "in"), "--archive", str(new)])
    assert ran.returncode == 0
    report = verify(new)
    assert report.ok and report.notes == ["empty archive: nothing committed yet"]


def _four_small_files(tmp_path: Path) -> Path:
    archive = tmp_path / "archive"
    for batch in range(4):  # four deliveries into the same partition, as --follow would commit them
        write_jsonl(tmp_path / f"in{batch}" / "x.jsonl", [event(batch * 10 + i) for i in range(10)])
        ingest(tmp_path / f"in{batch}", archive)
    return archive


def _fake_compaction(root: Path, keep: int, *, action: str = "compact", into_other: bool = False) -> None:
    """Commit what a compaction commits, but keeping only ``keep`` of the merged rows (or merging
    into a file of another folder), with the manifest entries a real one writes."""
    from pipelines.archive import reader, writer

    files = reader.live_files(root, layout.RECORDS)
    merged = reader.concat([reader.read_file(root / f.path) for f in files]).slice(0, keep)
    commit = layout.new_commit_id()
    folder = files[0].path.rsplit("/", 1)[0]
    if into_other:
        folder = folder.rsplit("/", 1)[0] + "/ch=line"
    rel = f"{folder}/part-{commit}-0000.parquet"
    with writer.archive_lock(root):
        staged = writer.stage_table(root, commit, rel, layout.RECORDS, merged)
        removes = [(f.path, f.sha256, f"{compact.COMPACTED_INTO}{rel}") for f in files]
        writer.commit(root, commit, [staged], action=action, removes=removes)


def _two_small_runs(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for n in range(2):
        ingest(write_jsonl(tmp_path / f"in-{n}" / "a.jsonl", [event(n), event(n + 10)]).parent, root)
    assert verify(root).ok
    return root


def test_a_compaction_that_loses_rows_is_a_problem(tmp_path: Path) -> None:
    root = _two_small_runs(tmp_path)
    _fake_compaction(root, keep=1)
    problems = verify(root).problems
    assert len(problems) == 1
    assert (
        "merged files holding 4 row(s) into" in problems[0] and "which holds 1: rows were lost" in problems[0]
    )


def test_a_compaction_that_keeps_every_row_passes_and_a_removal_outside_one_does_not(tmp_path: Path) -> None:
    root = _two_small_runs(tmp_path)
    _fake_compaction(root, keep=4)
    assert verify(root).ok
    other = _two_small_runs(tmp_path / "b")
    _fake_compaction(other, keep=4, action="ingest")
    problems = verify(other).problems
    assert len(problems) == 2
    assert all("(ingest) removes" in p and "only a compaction" in p for p in problems), problems
    moved = _two_small_runs(tmp_path / "c")
    _fake_compaction(moved, keep=4, into_other=True)
    assert all("which it does not add in that folder" in p for p in verify(moved).problems)
    assert len(verify(moved).problems) == 2


def test_removing_a_file_that_was_not_committed_is_a_problem(tmp_path: Path) -> None:
    from pipelines.archive import reader, writer

    root = _two_small_runs(tmp_path)
    files = reader.live_files(root, layout.RECORDS)
    commit = layout.new_commit_id()
    rel = f"{files[0].path.rsplit('/', 1)[0]}/part-{commit}-0000.parquet"
    merged = reader.concat([reader.read_file(root / f.path) for f in files])
    ghost = files[0].path.replace(files[0].commit, "20200101T000000000000Z-000000")
    with writer.archive_lock(root):
        staged = writer.stage_table(root, commit, rel, layout.RECORDS, merged)
        removes = [(f.path, f.sha256, f"{compact.COMPACTED_INTO}{rel}") for f in files]
        removes.append((ghost, files[0].sha256, f"{compact.COMPACTED_INTO}{rel}"))
        writer.commit(root, commit, [staged], action="compact", removes=removes)
    assert verify(root).problems == [
        f"manifest: commit {commit} removes {ghost}, which was not a committed file then"
    ]


def test_compaction_refuses_an_altered_file_instead_of_hiding_the_change(tmp_path: Path) -> None:
    from pipelines.errors import ArchiveError

    archive = _four_small_files(tmp_path)
    target = _first_record_file(archive)
    pq.write_table(pq.read_table(target).slice(1), target)  # one row quietly dropped
    commits = len(load_state(archive).commits)
    with pytest.raises(ArchiveError, match=r"not what the manifest recorded.*run `vigil verify`"):
        compact.compact(archive)
    assert len(load_state(archive).commits) == commits
    assert any("content changed" in p for p in verify(archive).problems)  # still there to be found


def test_compaction_refuses_a_missing_file_and_leaves_no_staging_behind(tmp_path: Path) -> None:
    archive = _four_small_files(tmp_path)
    sibling = sorted(_first_record_file(archive).parent.glob("*.parquet"))[-1]
    sibling.unlink()  # a committed file removed behind the manifest's back
    commits = len(load_state(archive).commits)
    staging = archive / layout.STAGING
    for _ in range(2):  # and again: a retry must not pile anything up either
        with pytest.raises(ArchiveError, match=r"missing.*nothing was compacted: run `vigil verify`"):
            compact.compact(archive)
    assert len(load_state(archive).commits) == commits
    assert not staging.exists() or not any(staging.iterdir())
    # a file that goes missing after recovery looked (between the check and the read) is refused too
    with pytest.raises(ArchiveError, match=r"is committed but missing; nothing was compacted"):
        compact.compact_locked(archive)
    assert not staging.exists() or not any(staging.iterdir())
    assert any("committed file is missing" in p for p in verify(archive).problems)


def _compact_crashing_at(archive: Path, point: str) -> None:
    proc = subprocess.run(
        [*VIGIL, "compact", "--archive", str(archive)],
        env={**os.environ, "VIGIL_CRASH_AT": point},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 137, proc.stderr


@pytest.mark.parametrize("point", ["after_manifest", "mid_move"])
def test_an_interrupted_compaction_is_a_note_and_the_next_writer_finishes_it(
    tmp_path: Path, point: str
) -> None:
    archive = _four_small_files(tmp_path)
    before = fingerprint(archive)
    _compact_crashing_at(archive, point)
    report = verify(archive)
    assert report.ok, report.problems
    assert sum("the compaction was stopped while publishing" in n for n in report.notes) == 4
    finished = compact.compact(archive)
    assert finished.recovered and finished.commit is None
    report = verify(archive)
    assert report.ok and not report.notes
    assert fingerprint(archive) == before


def test_a_staged_copy_that_is_not_what_was_committed_is_a_problem_and_kept(tmp_path: Path) -> None:
    from pipelines.errors import ArchiveError

    archive = _four_small_files(tmp_path)
    _compact_crashing_at(archive, "after_manifest")  # the merged file waits in staging
    state = load_state(archive)
    (merged,) = state.files(layout.RECORDS)
    staged = archive / layout.STAGING / merged.commit / merged.path
    pq.write_table(pq.read_table(staged).slice(5), staged)  # five rows dropped from the waiting copy
    problems = verify(archive).problems
    assert len(problems) == 1
    assert "its copy in _staging" in problems[0] and "not what was committed" in problems[0]
    with pytest.raises(ArchiveError, match="missing"):
        ingest(tmp_path / "in0", archive)  # recovery does not publish it...
    assert staged.is_file()  # ...and keeps it as evidence
    assert not (archive / merged.path).exists()


@pytest.mark.parametrize("damage", ["garble the commit entry", "remove the commit entry"])
def test_a_damaged_last_commit_is_a_problem_and_no_run_cuts_it_away(
    tmp_path: Path, archive: Path, damage: str
) -> None:
    # a crash leaves complete add/remove entries (and perhaps one line cut short) for files still
    # in staging; a damaged closing entry of a published commit is something else, and cutting
    # the lines after the previous commit would erase the commit and archive its events twice
    write_jsonl(tmp_path / "more" / "b.jsonl", [event(100 + i) for i in range(3)])
    ingest(tmp_path / "more", archive)
    manifest = archive / layout.MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[-1])["op"] == "commit"
    lines[-1:] = [lines[-1].replace(b'"op"', b'"op', 1)] if damage.startswith("garble") else []
    manifest.write_bytes(b"".join(lines))
    report = verify(archive)
    assert not any("interrupted run" in n for n in report.notes)
    assert any(
        p.startswith("manifest: after the last commit") and "which is already in place" in p
        for p in report.problems
    ), report.problems
    before = {p: p.read_bytes() for p in archive.rglob("*") if p.is_file()}
    with pytest.raises(ArchiveError, match="restore the manifest from a copy"):
        ingest(tmp_path / "more", archive)
    # readers refuse too: without the commit the archive would read as if it had never happened
    # (a search with fewer hits, a dry-run with nothing to replay), not as damaged
    rules = Path(__file__).parent.parent / "dlp_rules"
    for argv in (
        ["search", "--archive", str(archive), "--role", "officer", "--user", "t", "hello"],
        ["conversation", "conv-1", "--archive", str(archive), "--role", "officer", "--user", "t"],
        [
            "dlp",
            "dry-run",
            "--role",
            "officer",
            "--policy",
            str(rules / "conduct.yaml"),
            "--archive",
            str(archive),
        ],
    ):
        result = subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=120)
        assert result.returncode == 3 and "Traceback" not in result.stderr, argv
        assert "which is already in place" in result.stderr and "nothing was read" in result.stderr
        assert result.stdout == ""
    assert {p: p.read_bytes() for p in archive.rglob("*") if p.is_file()} == before  # nothing logged


def _chained(manifest: Path, entry: dict) -> bytes:
    last = json.loads(manifest.read_bytes().splitlines()[-1])
    entry = {**entry, "seq": last["seq"] + 1, "prev": last["hash"]}
    return (canonical({**entry, "hash": entry_hash(entry)}) + "\n").encode()


def test_what_an_interrupted_append_leaves_is_a_note_and_the_next_run_cuts_it(
    tmp_path: Path, archive: Path
) -> None:
    manifest = archive / layout.MANIFEST
    committed = manifest.read_bytes()
    add = {"op": "add", "commit": "c-x", "kind": "records", "path": "records/x.parquet", "rows": 1}
    manifest.write_bytes(committed + _chained(manifest, add) + b'{"op":"add","comm')
    report = verify(archive)
    assert any("2 manifest line(s) after the last commit" in n for n in report.notes)
    # a note only: the line cut short is not also a broken chain
    assert report.ok and report.problems == []
    write_jsonl(tmp_path / "more" / "b.jsonl", [event(100)])
    assert ingest(tmp_path / "more", archive).archived == 1
    assert manifest.read_bytes().startswith(committed) and verify(archive).ok


def test_a_complete_line_that_does_not_parse_after_the_last_commit_is_damage(archive: Path) -> None:
    manifest = archive / layout.MANIFEST
    manifest.write_bytes(manifest.read_bytes() + b'{"op":"add","commit":"c-x"\n')
    assert any(
        p.startswith("manifest: after the last commit") and "complete but not valid JSON" in p
        for p in verify(archive).problems
    )


def test_a_linked_folder_of_data_is_added_behind_the_manifests_back(tmp_path: Path, archive: Path) -> None:
    # pyarrow follows the link and reads its rows as part of the archive, so verify must see it
    outside = tmp_path / "elsewhere" / "ch=sms"
    outside.mkdir(parents=True)
    shutil.copy(_first_record_file(archive), outside / "part-x.parquet")
    (archive / layout.RECORDS / "event_month=2026-02").symlink_to(outside.parent, target_is_directory=True)
    assert pq.read_table(archive / layout.RECORDS).num_rows > 30
    problems = verify(archive).problems
    assert problems == [
        f"{layout.RECORDS}/event_month=2026-02: is a symbolic link to {outside.parent}, which Vigil never "
        "makes and the manifest does not list (readers would follow it into data no commit holds): remove "
        "the link"
    ]


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("path", 123, "line 1 has a field 'path' that is 123, not a string"),
        ("path", None, "line 1 has a field 'path' that is null, not a string"),
        ("rows", "12", "line 1 has a field 'rows' that is \"12\", not a number"),
        ("seq", "1", 'line 1: sequence number "1" is not a whole number'),
    ],
)
def test_a_manifest_field_of_the_wrong_type_is_a_named_problem(
    archive: Path, field: str, value: object, named: str
) -> None:
    manifest = archive / layout.MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[0])
    entry[field] = value
    lines[0] = canonical(entry).encode() + b"\n"
    manifest.write_bytes(b"".join(lines))
    problems = verify(archive).problems
    assert any(named in p for p in problems), problems
    result = subprocess.run(
        [*VIGIL, "verify", "--archive", str(archive)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr


def _two_runs(tmp_path: Path, archive: Path) -> tuple[str, str]:
    """A second run on top of the fixture's: the (older, newer) ingest commits."""
    older = load_state(archive).last_commit
    write_jsonl(tmp_path / "more" / "b.jsonl", [event(100 + i) for i in range(3)])
    newer = ingest(tmp_path / "more", archive).commit
    assert older and newer and older != newer
    return older, newer


def _edit_report(archive: Path, commit: str, **changes: object) -> None:
    path = archive / layout.RUNS / f"{commit}.json"
    run = json.loads(path.read_text())
    run["summary"].update(changes)
    path.write_text(json.dumps(run))


def test_run_reports_are_checked_against_their_commits(archive: Path) -> None:
    report = verify(archive)
    assert report.ok and report.run_reports_checked == 1
    commit = load_state(archive).last_commit
    assert commit
    name = f"_runs/{commit}.json"
    # 30 archived and 1 dead letter: shift one event from dead-lettered to archived, read unchanged
    _edit_report(archive, commit, archived=31, dead_lettered=0, dead_letter_reasons={})
    problems = verify(archive).problems
    assert len(problems) == 2
    assert problems[0].startswith(
        f"{name}: says records stored (archived + notices) 31 but its commit has 30"
    )
    assert problems[1].startswith(f"{name}: says dead letters stored 0 but its commit has 1")


def test_a_run_report_whose_counts_do_not_add_up_is_a_problem(archive: Path) -> None:
    commit = load_state(archive).last_commit
    assert commit
    _edit_report(archive, commit, read=40)
    assert verify(archive).problems == [
        f"_runs/{commit}.json: says 40 events read but archived + dead-lettered + duplicates = 31 "
        "(the report was edited)"
    ]
    _edit_report(archive, commit, read=31, dead_letter_reasons={"malformed_json": 2})
    assert verify(archive).problems == [
        f"_runs/{commit}.json: its dead-letter reasons add up to 2, not the 1 dead-lettered it says "
        "(the report was edited)"
    ]
    _edit_report(archive, commit, dead_letter_reasons={"malformed_json": 1}, duplicates="none")
    assert verify(archive).problems == [f"_runs/{commit}.json: duplicates is not a count"]


def test_dead_letters_by_reason_are_checked_against_the_dead_letters_the_commit_stored(
    archive: Path,
) -> None:
    """The reasons add up either way; only the stored dead letters tell which one is true."""
    commit = load_state(archive).last_commit
    assert commit
    _edit_report(archive, commit, dead_letter_reasons={"unknown_channel": 1})
    assert verify(archive).problems == [
        f"_runs/{commit}.json: says dead letters by reason {{'unknown_channel': 1}}, but its commit "
        "stored malformed_json 1 (the report was edited)"
    ]
    _edit_report(archive, commit, dead_letter_reasons={"malformed_json": 1})
    assert verify(archive).ok


def test_dead_letters_stored_by_an_earlier_run_may_be_counted_again_by_reason(
    tmp_path: Path, archive: Path
) -> None:
    """`--reprocess` dead-letters the same broken line again; an earlier commit holds it, so the
    report counts one more by reason than its own commit stored, and says so."""
    write_jsonl(tmp_path / "in" / "b.jsonl", [b"{y\n", event(200)])
    run = ingest(tmp_path / "in", archive, only_new_sources=False)
    commit = run.commit
    assert commit and run.dead_letters_already_stored == 1 and run.dead_lettered == 2
    assert verify(archive).ok
    # moving the one already stored to another reason leaves this commit's own letter uncounted
    _edit_report(archive, commit, dead_letter_reasons={"malformed_json": 1, "unknown_channel": 1})
    assert verify(archive).ok  # still consistent: the earlier commit's letter may be either
    _edit_report(archive, commit, dead_letter_reasons={"unknown_channel": 2})
    assert verify(archive).problems == [
        f"_runs/{commit}.json: says dead letters by reason {{'unknown_channel': 2}}, but its commit "
        "stored malformed_json 1 (and 1 were stored by an earlier run) (the report was edited)"
    ]


def test_a_deleted_run_report_is_a_problem_unless_it_is_the_newest_which_the_next_run_rebuilds(
    tmp_path: Path, archive: Path
) -> None:
    older, newer = _two_runs(tmp_path, archive)
    (archive / layout.RUNS / f"{older}.json").unlink()
    assert verify(archive).problems == [
        f"_runs/{older}.json is missing: the run report of commit {older} was deleted (the next "
        "writer rebuilds only the newest one's)"
    ]
    # the newest run's report missing is what a run stopped after its commit leaves
    (archive / layout.RUNS / f"{newer}.json").unlink()
    report = verify(archive)
    assert report.problems[0].startswith(f"_runs/{older}.json is missing") and len(report.problems) == 1
    assert report.notes == [
        f"no run report for the newest commit {newer} (the run was stopped after its commit); the "
        "next `vigil run` or `vigil compact` rebuilds it from the manifest"
    ]
    write_jsonl(tmp_path / "third" / "c.jsonl", [event(200)])
    recovery_run = ingest(tmp_path / "third", archive)
    assert recovery_run.recovered and newer in recovery_run.recovered
    rebuilt = json.loads((archive / layout.RUNS / f"{newer}.json").read_text())
    assert rebuilt["recovered"] is True
    assert rebuilt[DLP_ACTIONS] == load_state(archive).commits[newer][DLP_ACTIONS] == {}
    report = verify(archive)
    assert [p.split(":")[0] for p in report.problems] == [f"_runs/{older}.json is missing"]
    assert report.run_reports_checked == 2
    # a rebuilt report says what it lacks, every time verify runs
    assert (
        f"_runs/{newer}.json: rebuilt from the manifest (the run was stopped after its commit)"
        in " ".join(report.notes)
    )
    # a rebuilt report is a copy of its commit's fields, and checked as such
    rebuilt["rows_added"]["records"] += 1
    (archive / layout.RUNS / f"{newer}.json").write_text(json.dumps(rebuilt))
    assert any(p.startswith(f"_runs/{newer}.json: says rows_added {{") for p in verify(archive).problems)
    rebuilt["rows_added"]["records"] -= 1
    rebuilt[DLP_ACTIONS] = {"block": 1}
    (archive / layout.RUNS / f"{newer}.json").write_text(json.dumps(rebuilt))
    assert [p for p in verify(archive).problems if p.startswith(f"_runs/{newer}.json")] == [
        f"_runs/{newer}.json: says dlp_actions {{'block': 1}} but its commit has {{}}"
    ]


def test_a_run_report_is_held_to_the_dlp_counts_its_commit_found_in_its_files(tmp_path: Path) -> None:
    events = [event(i) for i in range(5)]
    events += [event(10, body="card 4012 8888 8888 1881 for the fee")]  # redacted
    events += [event(11, body="my SSN is 536-22-1234")]  # outbound: blocked, and its sender told why
    write_jsonl(tmp_path / "in" / "a.jsonl", events)
    archive = tmp_path / "archive"
    summary = ingest(tmp_path / "in", archive)
    assert summary.dlp == {"block": 1, "redact": 1} and summary.notices == 1
    commit = summary.commit
    assert commit and load_state(archive).commits[commit][DLP_ACTIONS] == {"block": 1, "redact": 1}
    assert verify(archive).ok
    # the report says DLP found nothing (yet a notice answers a blocked message)
    _edit_report(archive, commit, dlp={})
    assert verify(archive).problems == [
        f"_runs/{commit}.json: says DLP counts {{}} but its commit's files hold {{'block': 1, 'redact': 1}} "
        "(the report was edited, or belongs to another archive)"
    ]
    _edit_report(archive, commit, dlp={"block": 1, "redact": "1"})
    assert verify(archive).problems == [
        f"_runs/{commit}.json: its DLP counts {{'block': 1, 'redact': '1'}} are not counts of flag, "
        "redact and block (the report was edited)"
    ]


def test_reports_of_commits_made_before_dlp_counts_are_checked_against_their_own_counts() -> None:
    # a manifest written before commits counted DLP actions: the report must at least agree with
    # itself (a notice answers a blocked message; no more actions than records)
    entry = {"action": "ingest", "commit": "c1", "files_added": 1, "rows_added": {"records": 60}, "hash": "h"}
    summary = {
        "commit": "c1", "read": 2, "archived": 2, "notices": 58, "files_written": 1,
        "dlp": {"flag": 3}, "manifest_head": "h",
    }  # fmt: skip
    entry["rows_added"] = {"records": 60, "deadletters": 0}
    problems = run_report_problems({"summary": summary}, entry)
    assert problems == [
        "says 58 blocked-message notices but only 0 blocked (each notice answers a blocked message: "
        "the report was edited)",
        "says 3 records had a DLP action but only 2 were archived (the report was edited)",
    ]
    summary |= {"archived": 60, "read": 60, "notices": 0, "dlp": {"block": 2, "flag": 3}}
    assert run_report_problems({"summary": summary}, entry) == []


def test_run_reports_that_match_no_ingest_commit_are_problems(tmp_path: Path) -> None:
    archive = _four_small_files(tmp_path)
    first = sorted(load_state(archive).commits)[0]
    done = compact.compact(archive)
    assert done.commit
    runs = archive / layout.RUNS
    shutil.copy(runs / f"{first}.json", runs / f"{done.commit}.json")  # a compaction writes none
    (runs / "notes.txt").write_text("hello")
    (runs / f"{first}.json.tmp").write_text("{")  # what a run stopped while writing leaves
    report = verify(archive)
    assert report.problems == [
        f"_runs/{done.commit}.json: commit {done.commit} is a compact, which writes no run report",
        "_runs/notes.txt: not a run report Vigil writes (added behind its back)",
    ]
    assert report.notes == [
        f"_runs/{first}.json.tmp: a run report cut short while it was written (the run was "
        "stopped); harmless, delete it"
    ]


def _damage_line_3(archive: Path, damage: str) -> str:
    """Replace manifest line 3 (an ``add``) as ``damage`` says; returns the path that line added."""
    manifest = archive / layout.MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[2])
    assert entry["op"] == "add" and len(lines) == 4  # three files, then the commit
    if damage == "not JSON":
        lines[2] = b"{not json\n"
    elif damage == "not an object":
        lines[2] = b"[1,2]\n"
    else:  # an object without its path: written as Vigil writes, but not hashed again
        lines[2] = canonical({k: v for k, v in entry.items() if k != "path"}).encode() + b"\n"
    manifest.write_bytes(b"".join(lines))
    return entry["path"]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("not JSON", ["manifest.jsonl line 3: not valid JSON; the ledger was edited or damaged"]),
        ("not an object", ["manifest.jsonl line 3: not a JSON object"]),
        (
            "no path",
            [
                "manifest.jsonl line 3: entry content does not match its hash; it was altered",
                "manifest.jsonl line 3 has no field 'path' (the ledger was edited), "
                "so the replay left it out",
            ],
        ),
    ],
)
def test_a_damaged_manifest_line_does_not_stop_verify_from_naming_everything_else(
    archive: Path, damage: str, named: list[str]
) -> None:
    audit = archive / layout.AUDIT
    Ledger(audit).append([{"action": "search", "results": n} for n in (1, 2, 3)])
    head = verify(archive).manifest_head  # the commit entry's, which stays readable
    altered = _first_record_file(archive).relative_to(archive).as_posix()
    lost = _damage_line_3(archive, damage)
    assert lost != altered
    (archive / lost).unlink()  # the file the damaged line added: the index its commit vouches for names it
    pq.write_table(pq.read_table(archive / altered).slice(1), archive / altered)
    added = archive / "records" / "event_month=2026-01" / "extra.parquet"
    added.write_bytes(b"junk\n")
    lines = audit.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"results":2', b'"results":20')
    audit.write_bytes(b"".join(lines))

    report = verify(archive)
    manifest = [p for p in report.problems if p.startswith("manifest: ")]
    assert manifest[:-1] == [f"manifest: {p}" for p in named]
    assert manifest[-1].startswith("manifest: line 4 comes after the damage at line 3, so the hash chain")
    rest = [p for p in report.problems if not p.startswith("manifest: ")]
    assert (
        len(rest) == 4
        and rest[-1] == "audit log: audit.jsonl line 2: entry content does not match its hash; it was altered"
    )
    assert f"{lost}: committed file is missing (removed behind the manifest's back)" in rest
    assert any(p.startswith(f"{altered}: content changed") for p in rest)
    assert "records/event_month=2026-01/extra.parquet: not in the manifest (added behind its back)" in rest
    assert not any("vigil verify" in p for p in report.problems)  # verify is what is running
    assert (report.files_checked, report.run_reports_checked, report.audit_entries) == (2, 1, 3)
    assert report.manifest_head == head != "" and report.manifest_break == 3
    assert report.audit_head == json.loads(lines[2])["hash"] and report.audit_break == 2

    result = subprocess.run(
        [*VIGIL, "verify", "--archive", str(archive)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{len(report.problems)} integrity problem(s)" in result.stderr
    assert "vigil verify" not in result.stderr
    assert f"manifest head: {head} (untrustworthy: the chain is damaged at line 3)" in result.stdout
    assert (
        f"audit head:    {report.audit_head} (untrustworthy: the chain is damaged at line 2)" in result.stdout
    )


def test_without_the_index_a_file_only_a_damaged_line_held_is_still_a_problem(archive: Path) -> None:
    commit = load_state(archive).last_commit
    lost = _damage_line_3(archive, "not JSON")
    (archive / layout.MANIFEST_INDEX).unlink()
    assert verify(archive).problems[2:] == [
        f"manifest: the files it lists are not the ones its last commit {commit} recorded (live_sha256), "
        f"and no {layout.MANIFEST_INDEX} that commit vouches for lists them: the damaged lines held files "
        "that could not be checked; restore the manifest from a copy",
        f"{lost}: not in the manifest (added behind its back)",
    ]


def test_a_manifest_damaged_only_after_its_last_commit_keeps_a_head_to_compare(archive: Path) -> None:
    manifest = archive / layout.MANIFEST
    head = verify(archive).manifest_head
    manifest.write_bytes(manifest.read_bytes() + b"[1,2]\n" + b'{"op":"add"')
    report = verify(archive)
    assert report.manifest_head == head and report.manifest_break == 5
    assert not any("come after the damage" in p or "comes after" in p for p in report.problems)
    assert any("line 5 is not an entry an interrupted run leaves behind" in p for p in report.problems)


def test_an_older_edited_index_over_a_damaged_manifest_is_checked_without_a_traceback(
    tmp_path: Path, archive: Path
) -> None:
    # the index then is checked against a replay of the lines it covers, which must skip the damage too
    index = archive / layout.MANIFEST_INDEX
    document = json.loads(index.read_text())
    _two_runs(tmp_path, archive)
    index.write_text(json.dumps({**document, "audit_anchor": {"seq": 9, "head": "0" * 64}}))
    manifest = archive / layout.MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    lines[0] = b"{" + b"x" * (len(lines[0]) - 2) + b"\n"  # same length: the index still fits
    manifest.write_bytes(b"".join(lines))
    problems = verify(archive).problems
    assert problems[0] == "manifest: manifest.jsonl line 1: not valid JSON; the ledger was edited or damaged"
    assert f"{layout.MANIFEST_INDEX} has another audit anchor than the manifest" in " ".join(problems)


def _huge_int(line: bytes) -> bytes:
    return line.replace(b'"op":', b'"zz":' + b"9" * 5000 + b',"op":', 1)


def _lone_surrogate(line: bytes) -> bytes:
    return line.replace(b'"kind":"records"', b'"kind":"\\ud800"', 1)


def _nested(line: bytes) -> bytes:
    return b"[" * 100_000 + b"]" * 100_000 + b"\n"


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_huge_int, "JSON Vigil cannot read back (Exceeds the limit"),
        (_lone_surrogate, "JSON Vigil cannot read back ("),
        (_nested, "JSON Vigil cannot read back (nested deeper than Vigil reads)"),
    ],
)
def test_a_line_json_reads_but_vigil_cannot_hash_again_is_named_not_a_crash(
    archive: Path, damage, said: str
) -> None:
    """Before, the replay past damage took such a line for an entry (or hit Python's limits), and
    verify ended in "unexpected ValueError / UnicodeEncodeError / RecursionError", exit 3."""
    manifest = archive / layout.MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if b'"kind":"records"' in line)
    lines[number - 1] = damage(lines[number - 1])
    manifest.write_bytes(b"".join(lines))
    report = verify(archive)
    assert not report.ok
    named = f"manifest: manifest.jsonl line {number}: {said}"
    assert any(p.startswith(named) for p in report.problems), report
    cli = subprocess.run([*VIGIL, "verify", "--archive", str(archive)], capture_output=True, text=True)
    assert cli.returncode == 1 and "unexpected" not in cli.stderr and "Traceback" not in cli.stderr
    # the strict readers refuse it with their own sentence, not a crash
    run = subprocess.run(
        [*VIGIL, "run", "--input", str(archive.parent / "in"), "--archive", str(archive), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 3 and f"line {number} is damaged" in run.stderr
    assert "unexpected" not in run.stderr


def test_a_commit_entry_whose_row_counts_are_no_counts_is_named_not_a_crash(archive: Path) -> None:
    manifest = archive / layout.MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(b'"rows_added":{', b'"rows_added":"x","zz":{', 1)
    manifest.write_bytes(b"".join(lines))
    report = verify(archive)
    assert any("whose rows_added is 'x', not a count per kind" in p for p in report.problems), report
    cli = subprocess.run([*VIGIL, "verify", "--archive", str(archive)], capture_output=True, text=True)
    assert cli.returncode == 1 and "unexpected" not in cli.stderr


def test_a_staging_folder_named_after_a_finished_commit_is_noted_with_what_the_next_writer_does(
    tmp_path: Path, archive: Path
) -> None:
    # a deleted report of an older commit, then a staging folder made for it: the next writer
    # rebuilds the report from the manifest; verify says so before and after, never "intact" alone
    older, _ = _two_runs(tmp_path, archive)
    (archive / layout.RUNS / f"{older}.json").unlink()
    planted = archive / layout.STAGING / older
    planted.mkdir(parents=True)
    (planted / "x.parquet").write_bytes(b"not data")
    (archive / layout.STAGING / "notafolder").write_text("x")
    report = verify(archive)
    assert any(
        n.startswith(f"_staging/{older} is the staging folder of commit {older}") for n in report.notes
    )
    assert any("holds 1 file(s)" in n for n in report.notes)
    assert any(n.startswith("_staging/notafolder is not a staging folder Vigil makes") for n in report.notes)
    assert not any("uncommitted staging folder _staging/notafolder" in n for n in report.notes)
    recovered = compact.compact(archive).recovered
    assert recovered is not None and f"wrote the missing run report of commit(s) {older}" in recovered
    after = verify(archive)
    assert after.ok
    assert any(n.startswith(f"_runs/{older}.json: rebuilt from the manifest") for n in after.notes)


def test_a_manifest_cut_inside_its_last_commit_is_named_once_per_cause(tmp_path: Path, archive: Path) -> None:
    # before: the cut line was named twice (cut, and not JSON), and every file of the cut commit
    # once more as "not in the manifest (added behind its back)"
    _, newer = _two_runs(tmp_path, archive)
    path = archive / layout.MANIFEST
    data = path.read_bytes()
    path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 40])  # into the closing commit entry
    problems = verify(archive).problems
    assert sum("incomplete last line" in p for p in problems) == 1
    assert not any("not valid JSON" in p for p in problems)
    assert not any("added behind its back)" in p and "/part-" in p for p in problems)
    (together,) = [p for p in problems if "file(s) in place are added by the manifest lines after" in p]
    assert newer in together and "so they are not committed" in together
