"""`vigil run --follow`: new files are archived in micro-batches, small files get compacted."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from factories import event, line, write_jsonl
from helpers import NOW, VIGIL, fingerprint, ingest
from stop_support import signal_as_a_sampler_starts

from pipelines.archive import layout, reader
from pipelines.archive.manifest import load_state
from pipelines.archive.verify import verify
from pipelines.errors import ArchiveError
from pipelines.ingest.follow import FollowSummary, follow
from pipelines.ingest.run import RunOptions, RunSummary


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _rows(archive: Path) -> int:
    return (
        sum(f.rows for f in load_state(archive).files(layout.RECORDS))
        if (archive / layout.MANIFEST).exists()
        else 0
    )


def _following(opts: RunOptions, **options: Any) -> tuple[dict, threading.Thread]:
    """``follow(opts)`` started in a thread, polling every 0.1 s; its summary is ``result["s"]``
    once it stops, and ``result["polls"]`` counts its polls as they end."""
    result: dict = {"polls": 0}
    options.setdefault("on_poll", lambda session: result.update(polls=session.polls))
    worker = threading.Thread(target=lambda: result.update(s=follow(opts, interval=0.1, **options)))
    worker.start()
    return result, worker


def _polls_go_by(result: dict, count: int = 3) -> None:
    """Wait until the session has ended ``count`` more polls (whatever a poll takes on a loaded
    machine)."""
    target = result["polls"] + count
    _wait_for(lambda: result["polls"] >= target)


def test_follow_picks_up_new_files_and_unfinished_lines(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(5)])
    batches = []
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False)
    result, worker = _following(opts, stop_after_idle=40, compact_min_files=3, on_batch=batches.append)
    _wait_for(lambda: _rows(archive) == 5)
    # a writer that renames a finished file into place
    write_jsonl(src / "b.jsonl.tmp", [event(10 + i) for i in range(4)])
    os.replace(src / "b.jsonl.tmp", src / "b.jsonl")
    _wait_for(lambda: _rows(archive) == 9)
    # a writer that appends in place: the unfinished last line waits for its newline
    with (src / "c.jsonl").open("wb") as f:
        f.write(line(event(20)) + line(event(21))[:30])
        f.flush()
        _wait_for(lambda: _rows(archive) == 10)
        _polls_go_by(result)
        assert _rows(archive) == 10
        f.write(line(event(21))[30:])
    _wait_for(lambda: _rows(archive) == 11)
    worker.join(timeout=60)
    summary = result["s"]
    assert summary.batches == len(batches) >= 4
    assert (
        summary.totals["read"]
        == summary.totals["archived"] + summary.totals["dead_lettered"] + summary.totals["duplicates"]
    )
    assert summary.totals["dead_lettered"] == 0  # the half-written line was never mistaken for bad JSON
    assert summary.compactions >= 1  # four small files in one partition exceeded compact_min_files=3
    assert len(load_state(archive).files(layout.RECORDS)) < summary.batches
    ids = reader.read_table(archive, columns=["record_id"]).column(0).to_pylist()
    assert len(ids) == len(set(ids)) == 11
    assert verify(archive).ok


def test_follow_cli_stops_after_idle_polls_with_totals(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)] + [b"nope\n"])
    out = subprocess.run(
        [
            *VIGIL,
            "run",
            "--input",
            str(src),
            "--archive",
            str(archive),
            "--follow",
            "--interval",
            "0.1",
            "--stop-after-idle",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Following" in out.stderr
    assert "1 batch(es): read 4 = archived 3 + dead-lettered 1 + duplicates 0" in out.stdout


def test_follow_cli_json_prints_one_object_per_batch_and_the_totals(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)] + [b"nope\n"])
    argv = [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--follow"]
    argv += ["--interval", "0.1", "--stop-after-idle", "2", "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    objects = [json.loads(line) for line in out.stdout.splitlines()]  # nothing but JSON on stdout
    assert [o["event"] for o in objects] == ["batch", "stopped"]
    assert (objects[0]["read"], objects[0]["archived"], objects[0]["balanced"]) == (4, 3, True)
    assert objects[1]["totals"]["dead_lettered"] == 1 and objects[1]["balanced"] is True
    refused = subprocess.run([*argv, "--reprocess"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--reprocess reads every file again once" in refused.stderr
    # a session with nothing new reports every total as zero, not an empty object
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    stopped = json.loads(again.stdout.splitlines()[-1])
    assert stopped["event"] == "stopped" and stopped["batches"] == 0
    names = ("read", "archived", "dead_lettered", "duplicates", "notices", "files_written")
    assert stopped["totals"] == dict.fromkeys(names, 0)


def test_follow_reads_an_appended_file_once_so_totals_equal_the_input_lines(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    path = write_jsonl(src / "log.jsonl", [event(i) for i in range(40)])
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False)
    result, worker = _following(opts, stop_after_idle=30, compact_min_files=99)
    _wait_for(lambda: _rows(archive) == 40)
    for batch in range(3):  # a log file that keeps growing
        with path.open("ab") as f:
            f.write(b"".join(line(event(100 + batch * 10 + i)) for i in range(10)))
        _wait_for(lambda b=batch: _rows(archive) == 50 + b * 10)
    worker.join(timeout=60)
    totals = result["s"].totals
    assert totals["read"] == 70 == len(path.read_bytes().splitlines())
    assert (totals["archived"], totals["duplicates"]) == (70, 0)


def test_follow_dead_letters_a_broken_gzip_once_not_at_every_poll(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1)])
    (src / "fake.jsonl.gz").write_bytes(line(event(2)))  # not gzip at all
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False, settle_seconds=0.3)
    summary = follow(opts, interval=0.1, stop_after_idle=10)
    # a.jsonl at once, the .gz once it had settled (in the same batch if the session started late);
    # the idle polls did not read it again
    assert summary.batches in (1, 2)
    assert (summary.totals["archived"], summary.totals["dead_lettered"]) == (1, 1)


def test_follow_reads_a_last_line_without_line_end_once_the_file_settles(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    # a writer that finished without a final line end
    (src / "a.jsonl").parent.mkdir(parents=True)
    (src / "a.jsonl").write_bytes(line(event(1)) + line(event(2)).rstrip(b"\n"))
    # a session stopped (SIGTERM) before the file settled: the last line was held back, and the
    # closing line says a file still waits
    args = [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--follow", "--interval", "0.1"]
    proc = subprocess.Popen(
        [*args, "--settle", "3600", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    printed: list[str] = []
    reader_thread = threading.Thread(target=lambda: printed.extend(proc.stdout or []))
    reader_thread.start()
    try:
        _wait_for(lambda: any('"event": "batch"' in text for text in printed))
        time.sleep(1.5)  # polls on (every 0.1 s), waiting for the file to settle
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader_thread.join(timeout=60)
    batch, stopped = json.loads(printed[0]), json.loads(printed[-1])
    assert (batch["read"], batch["archived"]) == (1, 1)  # held back
    assert stopped["event"] == "stopped" and stopped["waiting_files"] == 1 and stopped["polls"] > 1
    # a batch run reads the held line, and only it
    later = ingest(src, archive)
    assert (later.read, later.archived, later.duplicates) == (1, 1, 0)
    # and a follow session that waits long enough reads it by itself
    other = tmp_path / "other"
    opts = RunOptions(input=str(src), archive=other, now=NOW, show_progress=False, settle_seconds=0.3)
    summary = follow(opts, interval=0.1, stop_after_idle=10)
    assert (summary.totals["read"], summary.totals["archived"], summary.totals["dead_lettered"]) == (2, 2, 0)
    assert summary.batches == 1  # settled by then: read whole at once, and not read again
    assert verify(archive).ok and verify(other).ok


@pytest.mark.parametrize("kind", ["gzip", "last line without line end"])
def test_stop_after_idle_waits_for_files_still_settling(tmp_path: Path, kind: str) -> None:
    """Polls that find a file waiting to settle are not idle: the session reads it before it stops
    (before, two empty polls 0.1 s apart ended it with the file unread)."""
    src, archive = tmp_path / "in", tmp_path / "archive"
    src.mkdir()
    data = b"".join(line(event(i)) for i in range(4))
    path = src / ("a.jsonl.gz" if kind == "gzip" else "a.jsonl")
    path.write_bytes(gzip.compress(data) if kind == "gzip" else data.rstrip(b"\n"))
    # the writer keeps the file fresh (its mtime ahead) until three polls have found it waiting,
    # then lets it settle: what the test sees does not depend on how long a batch takes
    ahead = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(ahead, ahead))
    waiting: list[int] = []

    def settles_after_three_waiting_polls(session: FollowSummary) -> None:
        waiting.append(session.waiting)
        if session.waiting and sum(1 for w in waiting if w) == 3:
            past = time.time_ns() - 120 * 10**9
            os.utime(path, ns=(past, past))

    # a file stamped ahead settles --settle seconds after it was first seen: long enough that three
    # polls find it waiting however busy the machine (it settles at once when stamped in the past)
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False, settle_seconds=30.0)
    summary = follow(opts, interval=0.1, stop_after_idle=2, on_poll=settles_after_three_waiting_polls)
    t = summary.totals
    assert (t["read"], t["archived"], t["dead_lettered"]) == (4, 4, 0)
    # two polls in a row found it waiting and did not end the session; it read it, then was idle
    assert sum(1 for w in waiting if w) == 3 and waiting[-2:] == [0, 0] and summary.waiting == 0
    assert summary.batches == (1 if kind == "gzip" else 2)
    assert verify(archive).ok


def test_follow_holds_a_half_written_last_line_past_the_settle_time(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    src.mkdir()
    second = line(event(2))
    # a writer that paused longer than --settle in the middle of a line
    (src / "a.jsonl").write_bytes(line(event(1)) + second[:40])
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False, settle_seconds=0.2)
    time.sleep(0.3)  # settled before the session starts
    batches: list = []
    summary = follow(opts, interval=0.1, stop_after_idle=5, on_batch=batches.append)
    t = summary.totals
    assert (t["read"], t["archived"], t["dead_lettered"]) == (1, 1, 0)  # the half line is no dead letter
    assert summary.batches == 1 and summary.unfinished_tails == 1  # held, idle polls left it alone
    assert batches[0].unfinished_tails == 1 and "half-written line" in batches[0].render(archive)
    # the writer comes back and finishes it: the next session reads it whole
    with (src / "a.jsonl").open("ab") as f:
        f.write(second[40:])
    time.sleep(0.3)
    summary = follow(opts, interval=0.1, stop_after_idle=5)
    t = summary.totals
    assert (t["read"], t["archived"], t["dead_lettered"], summary.unfinished_tails) == (1, 1, 0, 0)
    assert verify(archive).ok


def test_a_batch_run_reads_a_half_written_last_line_as_it_is(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    src.mkdir()
    (src / "a.jsonl").write_bytes(line(event(1)) + line(event(2))[:40])
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False, settle_seconds=0.2)
    time.sleep(0.3)
    assert follow(opts, interval=0.1, stop_after_idle=3).unfinished_tails == 1
    # after the session, a batch run takes the files as finished: the half line is a dead letter
    later = ingest(src, archive)
    assert (later.read, later.archived, later.dead_lettered) == (1, 0, 1)
    assert later.dead_letter_reasons == {"malformed_json": 1}


def test_follow_cli_names_half_written_lines_when_it_stops(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    src.mkdir()
    (src / "a.jsonl").write_bytes(line(event(1)) + line(event(2))[:40])
    time.sleep(0.3)
    args = [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--follow", "--interval", "0.1"]
    args += ["--settle", "0.2", "--stop-after-idle", "3", "--quiet"]
    text = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    assert "1 file(s) end in a half-written line" in text.splitlines()[-1]
    stopped = json.loads(
        subprocess.run(
            [*args, "--json"], capture_output=True, text=True, check=True, timeout=120
        ).stdout.splitlines()[-1]
    )
    assert stopped["event"] == "stopped" and stopped["unfinished_tails"] == 1


def test_follow_dead_letters_a_gzip_file_whose_writer_stopped_half_way(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    src.mkdir()
    whole = gzip.compress(b"".join(line(event(i, body="y" * 300)) for i in range(200)))
    (src / "cut.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False, settle_seconds=0.3)
    summary = follow(opts, interval=0.1, stop_after_idle=10)
    assert summary.batches == 1
    dead = reader.read_table(archive, layout.DEAD_LETTERS).to_pylist()
    assert [d["reason_code"] for d in dead] == ["truncated_gzip"]
    t = summary.totals
    assert t["archived"] > 0 and t["read"] == t["archived"] + t["dead_lettered"] + t["duplicates"]
    # a batch run reads a broken file again (it may have been repaired): nothing new in it
    again = ingest(src, archive)
    assert (again.archived, again.dead_letters_already_stored) == (0, 1)


def test_follow_counts_an_over_long_line_written_in_pieces_once(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    path = write_jsonl(src / "log.jsonl", [event(i) for i in range(3)])
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False, max_line_bytes=1024)
    result, worker = _following(opts, stop_after_idle=20, compact_min_files=99)
    _wait_for(lambda: _rows(archive) == 3)
    with path.open("ab") as f:
        f.write(b'{"body": "' + b"x" * 3000)
        f.flush()
        _polls_go_by(result)  # several polls see the unfinished long line
        f.write(b"x" * 3000 + b'"}\n' + line(event(9)))
    _wait_for(lambda: _rows(archive) == 4)
    worker.join(timeout=60)
    t = result["s"].totals
    assert (t["read"], t["archived"], t["dead_lettered"]) == (5, 4, 1)
    assert t["read"] == len(path.read_bytes().splitlines())
    (dead,) = reader.read_table(archive, layout.DEAD_LETTERS).to_pylist()
    assert dead["reason_code"] == "line_too_long" and dead["raw_size"] == 6012


def test_a_session_whose_batches_lost_documents_in_elasticsearch_is_incomplete() -> None:
    # `vigil run --follow` exits 4 on this, as a single run does
    session = FollowSummary()
    session.add(RunSummary(commit="c1", es={"indexed": 5, "retried": 0, "dead_lettered": 0}))
    assert not session.es_incomplete
    session.add(RunSummary(commit="c2", es={"indexed": 3, "retried": 4, "dead_lettered": 2}))
    session.add(RunSummary(commit="c3", es={"indexed": 4, "retried": 0, "dead_lettered": 0}))
    assert session.es_incomplete and session.es_dead_lettered == 2
    assert FollowSummary().es_incomplete is False
    assert RunSummary(commit=None, es_unavailable="no answer").es_incomplete


def test_follow_waits_for_an_input_folder_that_goes_away_and_comes_back(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    warnings: list[str] = []
    opts = RunOptions(
        input=str(src), archive=archive, now=NOW, show_progress=False, on_warning=warnings.append
    )
    result, worker = _following(opts, stop_after_idle=40, compact_min_files=99)
    _wait_for(lambda: _rows(archive) == 3)
    src.rename(tmp_path / "moved")  # an unmounted share, a folder moved away: the session goes on
    _wait_for(lambda: any("is gone" in w for w in warnings))
    _polls_go_by(result)  # several polls find it gone
    (tmp_path / "moved").rename(src)
    write_jsonl(src / "b.jsonl", [event(10 + i) for i in range(2)])
    _wait_for(lambda: _rows(archive) == 5)
    worker.join(timeout=60)
    assert not worker.is_alive() and "s" in result  # the session ended by itself, not with an error
    summary = result["s"]
    assert sum("is gone" in w for w in warnings) == 1  # said once, not at every poll
    assert any("can be listed again" in w for w in warnings)
    assert summary.input_problem is None
    t = summary.totals
    assert (t["read"], t["archived"], t["duplicates"]) == (5, 5, 0)
    assert verify(archive).ok


def test_follow_stops_with_its_totals_when_ctrl_c_lands_inside_a_beam_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.ingest import parse

    src, archive, clean = tmp_path / "in", tmp_path / "archive", tmp_path / "clean"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    ingest(src, archive)
    write_jsonl(src / "b.jsonl", [event(10 + i) for i in range(3)])
    real = parse.parse_line_safely

    def ctrl_c(line, **kw):  # the user presses Ctrl-C while b.jsonl's lines are validated
        if line.source.endswith("b.jsonl"):
            raise KeyboardInterrupt
        return real(line, **kw)

    monkeypatch.setattr(parse, "parse_line_safely", ctrl_c)
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False)
    # Beam re-raises it as "RuntimeError: KeyboardInterrupt [while running ...]"; still a stop
    summary = follow(opts, interval=0.1, stop_after_idle=3)
    assert (summary.polls, summary.batches, summary.totals["read"]) == (1, 0, 0)
    assert not (archive / layout.STAGING).exists() or not any((archive / layout.STAGING).iterdir())
    assert verify(archive).ok
    monkeypatch.setattr(parse, "parse_line_safely", real)
    # started again: exactly what one clean run gives, nothing lost, nothing twice
    again = follow(opts, interval=0.1, stop_after_idle=2)
    assert (again.totals["read"], again.totals["archived"], again.totals["duplicates"]) == (3, 3, 0)
    ingest(src, clean)
    assert fingerprint(archive) == fingerprint(clean)


def test_follow_cli_stops_on_sigterm_with_its_totals(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    args = [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--follow", "--interval", "0.2"]
    proc = subprocess.Popen([*args, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed: list[str] = []
    reader_thread = threading.Thread(target=lambda: printed.extend(proc.stdout or []))
    reader_thread.start()
    try:
        _wait_for(lambda: any(text.startswith("Archive:") for text in printed))  # the batch is done
        proc.send_signal(signal.SIGTERM)  # what `systemctl stop` and `docker stop` send
        proc.wait(timeout=60)
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        reader_thread.join(timeout=60)
    assert proc.returncode == 0, err
    closing = [line for line in printed if line.startswith("Stopped after")]
    assert (
        len(closing) == 1
        and "1 batch(es): read 3 = archived 3 + dead-lettered 0 + duplicates 0" in closing[0]
    )
    assert printed[-1] == "DLP over the session: nothing to act on\n"  # the session's DLP line after it
    assert verify(archive).ok


#: ``vigil`` that frees an object sending SIGTERM from its ``__del__`` once its first batch has
#: committed (while it writes the batch's run report)
SIGTERM_IN_A_FINALIZER = r"""
import signal
from pipelines.archive import writer

real, sent = writer.write_run_report, []

class Freed:
    def __del__(self):
        signal.raise_signal(signal.SIGTERM)

def write_run_report(*args, **kw):
    if not sent:
        sent.append(True)
        Freed()
    return real(*args, **kw)

writer.write_run_report = write_run_report
from pipelines.cli import main

main()
"""


def test_follow_cli_ends_on_a_sigterm_that_landed_in_a_finalizer(tmp_path: Path) -> None:
    """The session ends (exit 0, its totals) and stderr shows no traceback of the interrupt that
    Python could not raise; before, it polled on (here, until --stop-after-idle)."""
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    args = ["run", "--input", str(src), "--archive", str(archive), "--follow", "--interval", "0.1"]
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_IN_A_FINALIZER, *args, "--stop-after-idle", "50", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    *batches, stopped = [json.loads(text) for text in done.stdout.splitlines()]
    assert [b["event"] for b in batches] == ["batch"] and stopped["event"] == "stopped"
    assert (stopped["polls"], stopped["batches"], stopped["totals"]["archived"]) == (1, 1, 3)
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert verify(archive).ok


#: ``vigil`` that sends itself SIGTERM as a step validates its third line
SIGTERM_WHILE_PARSING = r"""
import signal
from pipelines.ingest import parse

real, seen = parse.parse_line_safely, []

def parse_line_safely(*args, **kw):
    seen.append(True)
    if len(seen) == 3:
        signal.raise_signal(signal.SIGTERM)
    return real(*args, **kw)

parse.parse_line_safely = parse_line_safely
from pipelines.cli import main

main()
"""


def test_follow_cli_stops_a_batch_on_worker_threads_with_its_totals(tmp_path: Path) -> None:
    """With Beam's worker threads the stop comes back from the step as a RuntimeError holding only
    its text: still the stop (the session used to end as an "unexpected" error, exit 3)."""
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(50)])
    args = ["run", "--input", str(src), "--archive", str(archive), "--follow", "--interval", "0.1"]
    workers = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_WHILE_PARSING, *args, *workers, "--stop-after-idle", "50", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (stopped,) = [json.loads(text) for text in done.stdout.splitlines()]
    assert stopped["event"] == "stopped" and (stopped["polls"], stopped["batches"]) == (1, 0)
    assert "unexpected" not in done.stderr
    assert not load_state(archive).commits and verify(archive).ok


class _SigtermWhenFreed:
    """An object whose finalizer sends the process SIGTERM, so the session's handler runs inside
    ``__del__``, where what it raises cannot be raised (Python prints "Exception ignored in" and
    carries on): what a real SIGTERM meets when it lands while the garbage collector frees, say,
    the policy compiler's regex objects."""

    def __init__(self, sent: list[str]) -> None:
        self.sent = sent

    def __del__(self) -> None:
        self.sent.append("SIGTERM")
        signal.raise_signal(signal.SIGTERM)


@pytest.mark.parametrize("when", ["before the batch", "after the batch"])
def test_follow_stops_on_a_sigterm_that_landed_where_it_could_not_be_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    from pipelines.ingest import run as run_module

    src, archive, clean = tmp_path / "in", tmp_path / "archive", tmp_path / "clean"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    real, sent = run_module.select_sources, []

    def select_sources(opts: RunOptions) -> Any:  # the poll lists the input, the batch is to run
        if not sent and when == "before the batch":
            _SigtermWhenFreed(sent)  # freed at once: the signal arrives inside its __del__
        return real(opts)

    def on_batch(summary: RunSummary) -> None:  # the batch is committed and reported
        if not sent and when == "after the batch":
            _SigtermWhenFreed(sent)

    monkeypatch.setattr(run_module, "select_sources", select_sources)
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False)
    summary = follow(opts, interval=0.05, stop_after_idle=40, on_batch=on_batch)
    assert sent == ["SIGTERM"]
    # the session stopped rather than poll on until a service manager gives up and SIGKILLs it:
    # the batch it was about to run is not run; the one it had committed is counted
    t = summary.totals
    if when == "before the batch":
        assert (summary.polls, summary.batches, t["read"]) == (1, 0, 0), summary
    else:
        assert (summary.polls, summary.batches, t["read"], t["archived"]) == (1, 1, 3, 3), summary
    assert not unraisable  # nor a traceback of the swallowed interrupt on stderr
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not (archive / layout.STAGING).exists() or not any((archive / layout.STAGING).iterdir())
    assert verify(archive).ok
    again = follow(opts, interval=0.05, stop_after_idle=1)  # started again: the rest, once
    assert again.totals["read"] == 3 - t["read"]
    ingest(src, clean)
    assert fingerprint(archive) == fingerprint(clean)


def test_follow_ends_on_a_sigterm_while_beam_starts_a_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while Beam starts a bundle's state sampler: its thread has started, Beam has not yet
    noted that it did. An interrupt raised there left the thread running (Beam stops only a
    sampler it knows started), and a process that had printed its totals never exited: the
    interpreter waits for that thread. Now the stop is raised by the batch's next step."""
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False)
    with signal_as_a_sampler_starts(monkeypatch, signal.SIGTERM) as window:
        summary = follow(opts, interval=0.05, stop_after_idle=40)
        running = window.running()
    assert window.sent == [signal.SIGTERM] and not running, "a sampler thread left running"
    assert (summary.polls, summary.batches, summary.totals["read"]) == (1, 0, 0), summary
    assert not (archive / layout.STAGING).exists() or not any((archive / layout.STAGING).iterdir())


def test_a_second_sigterm_while_the_session_stops_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service manager may send SIGTERM twice. The first one interrupts the batch; the second
    arrives as the session lets the archive lock go: the session still ends with its totals (not
    with an "Aborted.", exit 130, and no totals, nor killed)."""
    import contextlib

    from pipelines.archive import writer
    from pipelines.ingest import parse

    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    ingest(src, archive)
    write_jsonl(src / "b.jsonl", [event(10 + i) for i in range(3)])
    real_parse, real_lock, sent = parse.parse_line_safely, writer.archive_lock, []

    def parse_line(line, **kw):  # the first SIGTERM: while b.jsonl's lines are validated
        if not sent:
            sent.append("first")
            signal.raise_signal(signal.SIGTERM)
        return real_parse(line, **kw)

    @contextlib.contextmanager
    def archive_lock(root, **kw):
        with real_lock(root, **kw):
            yield
            sent.append("second")  # the session is done: the second one, before the lock is let go
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(parse, "parse_line_safely", parse_line)
    monkeypatch.setattr(writer, "archive_lock", archive_lock)
    outside: list[int] = []  # a SIGTERM the session's handler did not take (old: it killed pytest)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: outside.append(signum))
    try:
        opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False)
        summary = follow(opts, interval=0.05, stop_after_idle=40)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sent == ["first", "second"] and not outside
    assert (summary.polls, summary.batches, summary.totals["read"]) == (1, 0, 0)  # b.jsonl discarded
    assert not (archive / layout.STAGING).exists() or not any((archive / layout.STAGING).iterdir())
    assert verify(archive).ok


def _tamper(path: Path) -> None:
    """Someone rewrites a committed file with one message's body changed (still valid Parquet)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    bodies = table.column("body").to_pylist()
    bodies[0] = "I never promised a guaranteed return."
    pq.write_table(table.set_column(table.schema.get_field_index("body"), "body", [bodies]), path)


def test_follow_archives_on_when_the_archive_refuses_a_compaction(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1)])
    ingest(src, archive)
    (altered,) = load_state(archive).files(layout.RECORDS)
    _tamper(archive / altered.path)
    write_jsonl(src / "b.jsonl", [event(2)])
    warnings: list[str] = []
    opts = RunOptions(
        input=str(src), archive=archive, now=NOW, show_progress=False, on_warning=warnings.append
    )
    result, worker = _following(opts, stop_after_idle=30, compact_min_files=2)
    _wait_for(lambda: _rows(archive) == 2)
    _wait_for(lambda: bool(warnings))
    write_jsonl(src / "c.jsonl", [event(3)])  # capture goes on after the refusal
    _wait_for(lambda: _rows(archive) == 3)
    worker.join(timeout=60)
    summary = result["s"]
    assert summary.compactions == 0 and summary.batches == 2
    assert summary.compaction_problem and "not what the manifest recorded" in summary.compaction_problem
    assert len(warnings) == 1 and "compaction refused" in warnings[0]  # once, not after every batch
    assert summary.totals["archived"] == 2
    problems = verify(archive).problems
    assert len(problems) == 1 and altered.path in problems[0]  # the change is still there to be seen


def test_follow_cli_exits_3_and_says_so_when_compaction_was_refused(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    for n in range(8):  # eight small files in one partition: the session compacts after its batch
        write_jsonl(src / f"{n}.jsonl", [event(n)])
        ingest(src, archive)
    first = sorted(load_state(archive).files(layout.RECORDS), key=lambda f: f.path)[0]
    _tamper(archive / first.path)
    write_jsonl(src / "9.jsonl", [event(9)])
    args = [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--follow", "--interval", "0.1"]
    out = subprocess.run(
        [*args, "--stop-after-idle", "2", "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr and "warning: compaction refused" in out.stderr
    assert "read 1 = archived 1" in out.stdout and "Compaction was refused" in out.stdout
    assert _rows(archive) == 9


def test_follow_stops_rather_than_start_a_new_archive_when_its_archive_goes_away(tmp_path: Path) -> None:
    src, archive, clean = tmp_path / "in", tmp_path / "archive", tmp_path / "clean"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False)

    def unmount(summary: RunSummary) -> None:
        # between two polls, a share is unmounted under the session (here: the folder is moved
        # away and an empty one is left in its place) and a new file arrives
        if (tmp_path / "elsewhere").exists():
            return
        archive.rename(tmp_path / "elsewhere")
        archive.mkdir()
        write_jsonl(src / "b.jsonl", [event(10)])

    with pytest.raises(ArchiveError, match="no longer the folder this session locked"):
        follow(opts, interval=0.1, stop_after_idle=20, on_batch=unmount)
    assert list(archive.iterdir()) == []  # no second archive, with no lock, in the mount point
    # nothing lost: with the archive back, a new session reads what arrived meanwhile
    archive.rmdir()
    (tmp_path / "elsewhere").rename(archive)
    again = follow(opts, interval=0.1, stop_after_idle=2)
    assert (again.totals["read"], again.totals["archived"]) == (1, 1)
    ingest(src, clean)
    assert fingerprint(archive) == fingerprint(clean) and verify(archive).ok


def test_follow_totals_carry_the_notices_and_dlp_counts_each_batch_reported(tmp_path: Path) -> None:
    # before: the closing line said "archived 2" while the archive held 4 records (2 notices), and
    # the session's JSON had no notices or DLP counts to reconcile with
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i, body="Your SSN on file is 536-22-1234") for i in range(2)])
    argv = [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--follow"]
    argv += ["--interval", "0.1", "--stop-after-idle", "2"]
    text = subprocess.run([*argv, "--quiet"], capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "DLP over the session: 2 blocked" in text.stdout
    assert "+ 2 notice(s) to employees about blocked messages (archived)" in text.stdout
    assert len(reader.read_table(archive)) == 4  # 2 archived + 2 notices
    write_jsonl(src / "b.jsonl", [event(10 + i, body="Your SSN on file is 536-22-1234") for i in range(3)])
    out = subprocess.run([*argv, "--json"], capture_output=True, text=True, timeout=120)
    stopped = json.loads(out.stdout.splitlines()[-1])
    assert stopped["totals"]["archived"] == 3 and stopped["totals"]["notices"] == 3
    assert stopped["dlp"] == {"block": 3}


def _settle(path: Path) -> None:
    """Date ``path`` a minute back: settled for a poll's ``--settle`` of a second."""
    os.utime(path, (time.time() - 60, time.time() - 60))


def _one_poll(src: Path, archive: Path) -> RunOptions:
    """One follow-mode poll as a run: tails held, files settled after a second."""
    return RunOptions(
        input=str(src),
        archive=archive,
        now=NOW,
        show_progress=False,
        hold_partial_tail=True,
        settle_seconds=1,
    )


def test_a_line_begun_while_a_settled_file_is_read_waits_for_the_next_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that puts the line end before each record leaves whole JSON with no line end. If
    it goes on (line end, then half of the next record) between the poll's listing and its
    reading, the reading stops at the size listed. Before, it read on and dead-lettered the half
    record as malformed JSON, which the next poll then archived whole: the event counted twice."""
    import pipelines.ingest.run as run_module

    src, archive = tmp_path / "in", tmp_path / "archive"
    path = src / "a.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(line(event(1)) + line(event(2)).rstrip(b"\n"))
    _settle(path)
    third = line(event(3))
    chosen = run_module.select_sources

    def chosen_then_written(opts: RunOptions) -> Any:
        selection = chosen(opts)
        with path.open("ab") as f:  # the writer goes on after the listing, before the reading
            f.write(b"\n" + third[:25])
        return selection

    monkeypatch.setattr(run_module, "select_sources", chosen_then_written)
    opts = _one_poll(src, archive)
    first = run_module.run(opts)
    assert (first.read, first.archived, first.dead_lettered) == (2, 2, 0)
    monkeypatch.undo()
    with path.open("ab") as f:
        f.write(third[25:])
    _settle(path)
    second = run_module.run(opts)
    assert (second.read, second.archived, second.dead_lettered, second.duplicates) == (1, 1, 0, 0)
    assert verify(archive).ok


def test_a_line_finished_between_listing_and_choosing_is_judged_as_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing sees half a record at the end of a settled file; its writer finishes the record
    (no line end) before the poll looks at the tail. Judged on the file as it had become, the tail
    was whole JSON, the file was not held, and the read, bounded to the listed size, dead-lettered
    the half record, which the next poll archived whole."""
    import pipelines.ingest.run as run_module

    src, archive = tmp_path / "in", tmp_path / "archive"
    path = src / "a.jsonl"
    path.parent.mkdir(parents=True)
    second = line(event(2)).rstrip(b"\n")
    path.write_bytes(line(event(1)) + second[:25])
    _settle(path)
    listed = run_module.list_input

    def listed_then_finished(*args: Any, **kwargs: Any) -> Any:
        listing = listed(*args, **kwargs)
        # the poll's own listing (a first run also lists once to see whether there is anything)
        if sys._getframe(1).f_code.co_name == "select_sources":
            with path.open("ab") as f:
                f.write(second[25:])
        return listing

    monkeypatch.setattr(run_module, "list_input", listed_then_finished)
    opts = _one_poll(src, archive)
    first = run_module.run(opts)
    assert (first.read, first.archived, first.dead_lettered) == (1, 1, 0)
    monkeypatch.undo()
    _settle(path)
    later = run_module.run(opts)
    assert (later.read, later.archived, later.dead_lettered, later.duplicates) == (1, 1, 0, 0)
    assert verify(archive).ok


def test_follow_reads_files_stamped_ahead_of_the_clock_once_they_stop_changing(tmp_path: Path) -> None:
    """A writer whose clock runs ahead (or `cp -p` of future-stamped files) gives an mtime that
    stays "moments ago" for hours: the files settle `--settle` after the session first saw them,
    and the session still stops after its idle polls."""
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "plain.jsonl", [event(1)])
    with (src / "plain.jsonl").open("ab") as fh:
        fh.write(line(event(2)).rstrip(b"\n"))  # a last line without line end: held until settled
    (src / "packed.jsonl.gz").write_bytes(gzip.compress(line(event(3)) + line(event(4))))
    ahead = time.time() + 2 * 3600
    for path in src.iterdir():
        os.utime(path, (ahead, ahead))
    args = [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--follow", "--json"]
    done = subprocess.run(
        [*args, "--interval", "0.1", "--settle", "0.5", "--stop-after-idle", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _rows(archive) == 4
    stopped = json.loads(done.stdout.splitlines()[-1])
    assert stopped["event"] == "stopped" and stopped["waiting_files"] == 0
    assert (stopped["totals"]["archived"], stopped["totals"]["dead_lettered"]) == (4, 0)


def test_a_file_stamped_ahead_is_remembered_once_however_often_it_changes(tmp_path: Path) -> None:
    """One entry per file: a growing file whose writer's clock runs ahead changes at every poll."""
    from pipelines.ingest import run as run_module
    from pipelines.ingest.run import select_sources

    src = tmp_path / "in"
    write_jsonl(src / "grows.jsonl", [event(1)])
    opts = RunOptions(input=str(src), archive=tmp_path / "archive", now=NOW, hold_partial_tail=True)
    ahead = time.time() + 3600
    for i in range(20):
        with (src / "grows.jsonl").open("ab") as fh:
            fh.write(line(event(2 + i)))
        os.utime(src / "grows.jsonl", (ahead + i, ahead + i))
        select_sources(opts)
    held = [name for name in run_module._SEEN_AHEAD if name.endswith("grows.jsonl")]
    assert len(held) == 1
    # ... and forgotten once the file is gone (deleted, or renamed to another name)
    (src / "grows.jsonl").rename(src / "grown.jsonl")
    select_sources(opts)
    assert not [name for name in run_module._SEEN_AHEAD if name.endswith("grows.jsonl")]
    assert [name for name in run_module._SEEN_AHEAD if name.endswith("grown.jsonl")]
