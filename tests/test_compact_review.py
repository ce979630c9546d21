"""`vigil compact` as an operator meets it: no-ops that say why, refusals that write nothing, and
the leftovers of a killed run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from factories import event, write_jsonl
from helpers import VIGIL, fingerprint, ingest

from pipelines.archive import layout, writer
from pipelines.archive.manifest import load_state
from pipelines.archive.verify import verify


def _compact(archive: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*VIGIL, "compact", "--archive", str(archive), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_compact_with_one_file_per_partition_says_why_it_did_nothing(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1), event(2, channel="sms"), b"nope\n"])
    ingest(src, archive)
    live = len(load_state(archive).files(layout.RECORDS)) + len(
        load_state(archive).files(layout.DEAD_LETTERS)
    )
    manifest = (archive / layout.MANIFEST).read_bytes()
    for _ in range(2):  # and again: still nothing
        out = _compact(archive)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(
            "nothing to compact: no partition has 2 or more files under 500,000 rows"
        )
        assert f"({live} file(s) in {live} partition(s)); no commit was made" in out.stdout
    assert (archive / layout.MANIFEST).read_bytes() == manifest
    # the thresholds it names are the ones it was given
    assert (
        "no partition has 5 or more files under 10 rows"
        in _compact(archive, "--min-files", "5", "--target-rows", "10").stdout
    )


def test_compact_on_an_archive_with_nothing_committed_yet_says_so(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "archive").mkdir()  # a folder made for the archive ...
    ingest(tmp_path / "in", tmp_path / "archive")  # ... and a first run that found no event files
    assert (tmp_path / "archive" / layout.LOCK).exists()
    out = _compact(tmp_path / "archive")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "nothing to compact: the archive holds no data files yet; no commit was made"
    assert not (tmp_path / "archive" / layout.MANIFEST).exists()


def test_compact_refuses_a_folder_that_is_not_an_archive_and_writes_nothing(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"\xff\xd8")
    out = _compact(photos)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no Vigil archive at" in out.stderr and "pass the folder `vigil run` wrote" in out.stderr
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"]


@pytest.mark.parametrize(
    ("point", "recovered", "merged"),
    [
        ("after_staging", "discarded 1 uncommitted staging folder(s)", 3),  # staged, never committed
        ("after_manifest", "finished moving 1 committed file(s)", 4),  # committed, still in _staging
    ],
)
def test_compact_after_a_killed_run_finishes_or_discards_its_staging_and_merges(
    tmp_path: Path, point: str, recovered: str, merged: int
) -> None:
    src, archive, clean = tmp_path / "in", tmp_path / "archive", tmp_path / "clean"
    for n in range(3):
        write_jsonl(src / f"{n}.jsonl", [event(n)])
        ingest(src, archive)
    write_jsonl(src / "3.jsonl", [event(3)])
    env = {**os.environ, "VIGIL_CRASH_AT": point}
    run = [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--quiet"]
    assert subprocess.run(run, capture_output=True, env=env, timeout=120).returncode == 137
    assert len(list((archive / layout.STAGING).iterdir())) == 1
    out = _compact(archive)
    assert out.returncode == 0, out.stderr
    assert recovered in out.stderr
    assert f"compacted {merged} file(s) in 1 partition(s) into 1" in out.stdout
    assert not any((archive / layout.STAGING).iterdir())
    assert verify(archive).ok
    # a file the killed run did not commit is read by the next run: the archive is what one clean
    # run gives, nothing lost and nothing twice
    ingest(src, archive)
    ingest(src, clean)
    assert fingerprint(archive) == fingerprint(clean)
    assert verify(archive).ok


def test_compact_beside_a_running_writer_is_refused_with_what_to_do(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1)])
    ingest(src, archive)
    manifest = (archive / layout.MANIFEST).read_bytes()
    with writer.archive_lock(archive):  # as a `vigil run --follow` session holds it
        out = _compact(archive)
    assert out.returncode == 3 and "Traceback" not in out.stderr
    assert "another Vigil process is writing" in out.stderr
    assert "session compacts between its batches by itself" in out.stderr
    assert (archive / layout.MANIFEST).read_bytes() == manifest
