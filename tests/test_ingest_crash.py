"""Kill the run at any point, start it again: the archive equals what one clean run makes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from factories import event, line, write_jsonl
from helpers import VIGIL, fingerprint, ingest

from pipelines.archive.manifest import load_state
from pipelines.archive.verify import verify


def _input(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "in"
    for day in range(3):
        items: list = [event(day * n + i, channel=("sms", "wechat", "line")[i % 3]) for i in range(n)]
        items += [b"{not json\n", line(event(day * n + 1))]  # a dead letter and a duplicate per file
        write_jsonl(src / f"events-{day}.jsonl", items)
    return src


def _vigil_run(src: Path, archive: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--quiet"],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("clean")
    src = _input(base, 4000)
    ingest(src, base / "archive")
    return src, fingerprint(base / "archive")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_staging", "after_manifest", "mid_move"])
def test_crash_at_each_commit_window_then_restart(
    tmp_path: Path, clean: tuple[Path, dict], point: str
) -> None:
    src, expected = clean
    archive = tmp_path / "archive"
    proc = _vigil_run(src, archive, {"VIGIL_CRASH_AT": point})
    proc.communicate(timeout=300)
    assert proc.returncode == 137
    state = load_state(archive)
    committed = bool(state.commits)
    assert committed == (point != "after_staging")  # the manifest append is the commit point
    if point == "mid_move":  # files still in staging: an interrupted commit, not tampering
        report = verify(archive)
        assert report.ok, report.problems
        assert any("interrupted commit" in n and "moves them into place" in n for n in report.notes)
    summary = ingest(src, archive)
    if committed:
        assert summary.commit is None  # sources were consumed by the crashed commit
        assert summary.recovered and "finished moving" in summary.recovered
        # the crashed run never wrote its report; recovery rebuilds it from the manifest
        (commit,) = load_state(archive).commits
        report = json.loads((archive / "_runs" / f"{commit}.json").read_text())
        assert report["recovered"] is True and report["rows_added"]["records"] == len(expected["records"])
    else:
        assert summary.recovered and "discarded" in summary.recovered
    assert fingerprint(archive) == expected
    assert verify(archive).ok


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.5, 1.0, 2.0])
def test_sigkill_mid_run_then_restart(tmp_path: Path, clean: tuple[Path, dict], delay: float) -> None:
    src, expected = clean
    for attempt in range(4):
        archive = tmp_path / f"archive-{attempt}"
        proc = _vigil_run(src, archive)
        lock = archive / "_lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()):
            assert time.monotonic() < deadline, "the run never took the archive lock"
            time.sleep(0.02)  # the run has started once it holds the archive lock
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            break
        delay /= 2  # the run had finished before the kill (a faster machine): kill it sooner
    assert proc.returncode == -signal.SIGKILL, "every run finished before the kill; use a larger input"
    ingest(src, archive)
    assert fingerprint(archive) == expected
    assert verify(archive).ok
    # and once more: nothing changes
    ingest(src, archive, only_new_sources=False)
    assert fingerprint(archive) == expected


def test_torn_manifest_tail_is_cut_on_recovery(tmp_path: Path, clean: tuple[Path, dict]) -> None:
    src, expected = clean
    archive = tmp_path / "archive"
    ingest(src, archive)
    manifest = archive / "_ledger" / "manifest.jsonl"
    with manifest.open("ab") as f:
        f.write(b'{"op":"add","commit":"x","path":"records/eve')  # a write cut short by power loss
    assert any("after the last commit" in n for n in verify(archive).notes)
    s = ingest(src, archive, only_new_sources=False)
    assert s.recovered and "cut 1 uncommitted manifest line" in s.recovered
    assert fingerprint(archive) == expected
    assert verify(archive).ok


def test_a_commit_entry_missing_only_its_line_end_is_completed_not_glued_onto(
    tmp_path: Path, clean: tuple[Path, dict]
) -> None:
    src, expected = clean
    archive = tmp_path / "archive"
    ingest(src, archive)
    manifest = archive / "_ledger" / "manifest.jsonl"
    whole = manifest.read_bytes()
    manifest.write_bytes(whole.rstrip(b"\n"))  # a crash before the last "\n", or a copy tool
    # a whole, chained entry: a note (before, a problem no run repaired), its hash still checked
    report = verify(archive)
    assert report.ok and any("is whole but lacks its line end" in n for n in report.notes)
    altered = whole.rstrip(b"\n").replace(b'"op":"commit"', b'"op":"commiT"')
    assert altered != whole.rstrip(b"\n")
    manifest.write_bytes(altered)
    assert not verify(archive).ok
    manifest.write_bytes(whole.rstrip(b"\n"))
    # a run with nothing new writes the line end in its recovery
    nothing = ingest(src, archive)
    assert nothing.recovered and "wrote the line end" in nothing.recovered
    assert manifest.read_bytes() == whole and verify(archive).notes == []
    manifest.write_bytes(whole.rstrip(b"\n"))
    more = tmp_path / "more"
    write_jsonl(more / "late.jsonl", [event(20_000 + i) for i in range(3)])
    assert ingest(more, archive).archived == 3
    lines = manifest.read_bytes().splitlines(keepends=True)
    assert all(line.endswith(b"\n") and line.count(b'"seq"') == 1 for line in lines)
    assert verify(archive).ok
    assert len(fingerprint(archive)["records"]) == len(expected["records"]) + 3
