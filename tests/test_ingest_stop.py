"""Stop a batch `vigil run` with Ctrl-C (SIGINT) or SIGTERM, at chosen and at random moments.

Whatever the moment, the process ends promptly (a test that waits too long prints every thread's
stack, then fails), with `Aborted.` (`Aborted (SIGTERM).`) and exit code 130 (143); it has kept
nothing it had not committed (its staging folder is gone), or, stopped after its commit point,
its commit and run report stand and the message says so; `vigil verify` passes; and a run started
again makes exactly the archive one uninterrupted run makes. A second Ctrl-C ends the process at
once; a second SIGTERM changes nothing.

The chosen moments come from inside the process (a small launcher raises the signal at a named
point, so the moment is exact): before the archive lock, while the input is listed, while the
policy compiles, in a finalizer (where what a handler raises is swallowed), in the window where
Beam starts a bundle's state-sampler thread (an interrupt raised there left that thread running,
and the process never exited), while lines are validated, while a partition is staged, right
after the commit point, and inside the DuckDB query that picks the conversation the summary's
hints show (DuckDB turned what the handler raised there into "Query interrupted", exit code 3).
The random moments are the test's own signal, at a random delay after the run took the archive
lock (``VIGIL_STOP_TRIALS`` per signal, 4 by default; ``VIGIL_STOP_SEED`` repeats a sequence).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from factories import event, line, write_jsonl
from helpers import NOW, fingerprint, ingest
from stop_support import Watched, signal_as_a_sampler_starts

from pipelines.archive import layout
from pipelines.archive.manifest import load_state
from pipelines.archive.verify import verify
from pipelines.ingest import stopping

pytestmark = pytest.mark.slow

#: ``vigil`` that raises signals at itself at a named point: ``VIGIL_TEST_SIGNAL=<point>[@n]:<SIG>[,<SIG>]``
#: raises each signal listed, in turn, the n-th time (1st by default) the run reaches ``<point>``:
#:   ``lock``: before it takes the archive lock;   ``select``: while it lists the input;
#:   ``policy``: before the DLP policy compiles;    ``finalizer``: from a ``__del__`` while it lists
#:       the input (what a handler raises there is swallowed);
#:   ``sampler``: as Beam starts a bundle's state-sampler thread, before it notes that it did;
#:   ``parse``: as it validates a line;             ``stage``: as it stages a partition's file;
#:   ``commit``: right after its commit point (the manifest append);
#:   ``query``: while DuckDB looks for the conversation the summary's hints show (the signal then
#:       lands inside DuckDB, which turned what the handler raised into "Query interrupted").
#: SIGUSR1 makes it print every thread's stack on stderr (a run that does not end in time), and so
#: does a crash. Ctrl-C raises KeyboardInterrupt as it does from a terminal (a background job
#: inherits it ignored).
STOPPABLE_VIGIL = r"""
import faulthandler, os, signal, threading

faulthandler.enable(all_threads=True)
faulthandler.register(signal.SIGUSR1, all_threads=True)
signal.signal(signal.SIGINT, signal.default_int_handler)

plan = os.environ.get("VIGIL_TEST_SIGNAL", "")
if plan:
    from apache_beam.runners.worker import statesampler

    from pipelines.archive import writer
    from pipelines.ingest import parse
    from pipelines.ingest import run as run_module

    where, _, names = plan.partition(":")
    where, _, nth = where.partition("@")
    nth, signums, seen = int(nth or 1), [getattr(signal, n) for n in names.split(",")], {}

    def at(point):
        seen[point] = seen.get(point, 0) + 1
        if point == where and seen[point] == nth:
            for signum in signums:
                signal.raise_signal(signum)

    class Freed:
        def __del__(self):
            at("finalizer")

    def wrap(module, name, point, after=False):
        real = getattr(module, name)

        def wrapper(*args, **kw):
            if point == "finalizer":
                Freed()  # freed at once: the signal arrives inside its __del__
            elif not after:
                at(point)
            result = real(*args, **kw)
            if after:
                at(point)
            return result

        setattr(module, name, wrapper)

    wrap(writer, "archive_lock", "lock")
    wrap(run_module, "select_sources", "finalizer" if where == "finalizer" else "select")
    wrap(run_module, "load_engine", "policy")
    wrap(parse, "parse_line_safely", "parse")
    wrap(writer, "stage_partition", "stage")
    real_point = writer._crash_point

    def crash_point(name):
        real_point(name)
        if name == "after_manifest":
            at("commit")

    writer._crash_point = crash_point

    def start(self):  # StateSampler.start, with the signal in its window
        self.tracked_thread = threading.current_thread()
        statesampler.set_current_tracker(self)
        super(statesampler.StateSampler, self).start()
        at("sampler")
        self.started = True

    statesampler.StateSampler.start = start

    if where == "query":
        import duckdb

        real_connect = duckdb.connect

        def connect(*args, **kw):  # a query that runs long enough for the signal to land in it
            con = real_connect(*args, **kw)
            threading.Timer(0.2, os.kill, (os.getpid(), signums[0])).start()
            con.execute("SELECT sum(hash(i)) FROM range(300000000) t(i)").fetchall()
            return con

        duckdb.connect = connect

from pipelines.cli import main

main()
"""

#: how long a stopped run may take to end before the test calls it hung
PROMPT = 30.0


def _start(src: Path, archive: Path, plan: str = "", *extra: str) -> Watched:
    env = {**os.environ, "VIGIL_TEST_SIGNAL": plan}
    args = [sys.executable, "-c", STOPPABLE_VIGIL, "run", "--input", str(src), "--archive", str(archive)]
    args += extra
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = Watched(proc, f"the run ({plan or 'signalled by the test'})")
    run.drain()
    return run


def _input(base: Path, n: int) -> Path:
    src = base / "in"
    for day in range(3):
        items: list[Any] = [event(day * n + i, channel=("sms", "wechat", "line")[i % 3]) for i in range(n)]
        items += [b"{not json\n", line(event(day * n + 1))]  # a dead letter and a duplicate per file
        write_jsonl(src / f"events-{day}.jsonl", items)
    return src


@dataclass(frozen=True)
class Clean:
    src: Path
    expected: dict[str, Any]
    seconds: float = 0.0  # how long a `vigil run` process takes once it holds the archive lock


def _clean(base: Path, n: int) -> Clean:
    src = _input(base, n)
    ingest(src, base / "archive")
    return Clean(src, fingerprint(base / "archive"))


def _locked(run: Watched, archive: Path) -> None:
    """Wait until the run holds the archive lock (it has started)."""
    deadline, lock = time.monotonic() + 120, archive / layout.LOCK
    while not (lock.exists() and lock.read_text().strip()) and run.proc.poll() is None:
        assert time.monotonic() < deadline, "the run never took the archive lock"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    return _clean(tmp_path_factory.mktemp("small"), 5)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    """An input a run takes seconds over, so random moments fall in each of its phases (timed
    here, on this machine as loaded as it is now)."""
    base = tmp_path_factory.mktemp("large")
    clean = _clean(base, 2000)
    run = _start(clean.src, base / "timed")
    _locked(run, base / "timed")
    started = time.monotonic()
    code, err = run.finish(120)
    assert code == 0, err
    return replace(clean, seconds=time.monotonic() - started)


def _stopped_cleanly(
    code: int, err: str, signums: list[int], archive: Path, clean: Clean, *, after_commit: bool = False
) -> None:
    """What every stopped run must leave: the exit code and message of its (last) signal, an
    archive `vigil verify` passes, nothing staged (it was discarded, or committed), and a run
    started again that makes exactly the archive one uninterrupted run makes."""
    quit_at_once = signums.count(signal.SIGINT) == 2 or signums == [signal.SIGTERM, signal.SIGINT]
    first = signums[0]
    assert code == 128 + (signal.SIGINT if quit_at_once else first), f"exit code {code}; stderr:\n{err}"
    last = err.strip().splitlines()[-1]
    if quit_at_once:
        assert last.startswith("Aborted at once (Ctrl-C while stopping)."), err
    else:
        assert last.startswith("Aborted." if first == signal.SIGINT else "Aborted (SIGTERM)."), err
        assert "Traceback" not in err and "Exception ignored" not in err and "unexpected" not in err, err
        staging = archive / layout.STAGING
        assert not staging.exists() or not any(staging.iterdir()), "a stopped run left files staged"
    state = load_state(archive) if archive.exists() else None
    committed = bool(state and state.commits)
    if after_commit:
        (commit,) = state.commits  # type: ignore[union-attr]
        assert f"It came after this run's commit {commit}" in last, err
        assert (archive / layout.RUNS / f"{commit}.json").exists()  # the report, written before it stopped
    elif not quit_at_once:
        assert not committed and "Nothing after the archive's last commit was kept" in last, err
    if archive.exists():
        report = verify(archive)
        assert report.ok, report.problems
    again = ingest(clean.src, archive)
    assert (again.commit is None) == committed  # a committed run's input is not read again
    assert fingerprint(archive) == clean.expected
    assert verify(archive).ok


#: where a signal is raised, and which (both where the old code went wrong)
POINTS = [
    "lock:SIGTERM",
    "select:SIGINT",
    "policy:SIGTERM",
    "finalizer:SIGINT",
    "finalizer:SIGTERM",
    "sampler@1:SIGINT",
    "sampler@1:SIGTERM",
    "sampler@4:SIGINT",
    "parse@3:SIGTERM",
    "stage:SIGINT",
]


@pytest.mark.parametrize("plan", POINTS)
def test_a_signal_at_each_point_of_a_run_stops_it_with_nothing_kept(
    tmp_path: Path, small: Clean, plan: str
) -> None:
    archive = tmp_path / "archive"
    code, err = _start(small.src, archive, plan).finish(PROMPT)
    _stopped_cleanly(code, err, [getattr(signal, plan.rsplit(":", 1)[1])], archive, small)


@pytest.mark.parametrize("plan", ["commit:SIGINT", "commit:SIGTERM", "query:SIGINT", "query:SIGTERM"])
def test_a_signal_after_the_commit_point_keeps_the_commit_and_says_so(
    tmp_path: Path, small: Clean, plan: str
) -> None:
    archive = tmp_path / "archive"
    code, err = _start(small.src, archive, plan).finish(PROMPT)
    _stopped_cleanly(code, err, [getattr(signal, plan.rsplit(":", 1)[1])], archive, small, after_commit=True)


@pytest.mark.parametrize(
    "names",
    ["SIGINT,SIGINT", "SIGTERM,SIGINT", "SIGTERM,SIGTERM"],
    ids=["ctrl-c twice", "term, ctrl-c", "term twice"],
)
def test_a_second_ctrl_c_ends_the_run_at_once_and_a_second_sigterm_changes_nothing(
    tmp_path: Path, small: Clean, names: str
) -> None:
    """Both signals arrive while a step runs (where the first one waits for the step's next
    element): a second Ctrl-C does not wait (what was staged stays until the next run clears
    it, which loses nothing); a service manager's second SIGTERM is the same stop."""
    archive = tmp_path / "archive"
    code, err = _start(small.src, archive, f"parse@3:{names}").finish(PROMPT)
    _stopped_cleanly(code, err, [getattr(signal, n) for n in names.split(",")], archive, small)


#: a run that ends this long after a signal, exit code 0, ran on as if it had not come (its exit
#: after the summary takes a fraction of a second)
IGNORED = 3.0
#: random moments per signal (each one a run, a run started again and a comparison)
TRIALS = int(os.environ.get("VIGIL_STOP_TRIALS", "4"))


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_at_random_moments_stops_a_run_promptly(tmp_path: Path, large: Clean, name: str) -> None:
    seed = int(os.environ.get("VIGIL_STOP_SEED", str(time.time_ns() % 100_000)))
    rng, signum = random.Random(seed), getattr(signal, name)
    seen: Counter[str] = Counter()
    slowest = 0.0
    for trial in range(TRIALS):
        archive = tmp_path / f"archive-{trial}"
        run = _start(large.src, archive)
        _locked(run, archive)
        # the first trial early in the run, so that one falls before its commit even when these
        # runs go faster than the timed one did
        delay = rng.uniform(0, large.seconds / (4 if trial == 0 else 1))
        time.sleep(delay)
        run.proc.send_signal(signum)
        sent = time.monotonic()
        run.what = f"the run ({name} {delay:.2f}s after it took the lock; seed {seed}, trial {trial})"
        code, err = run.finish(PROMPT)
        took = time.monotonic() - sent
        slowest = max(slowest, took)
        if "Parquet files:" in "".join(run.out):
            # it had printed all of its summary: the signal came as the process exited (it ends
            # by the signal, or had ended), or as the summary's last line was written; not while
            # it still worked (the old code let a Ctrl-C swallowed in a finalizer run on to the end)
            assert code in (0, -signum) or "It came after this run's commit" in err, (run.what, code, err)
            assert code != 0 or took < IGNORED, f"{run.what}: ran on for {took:.1f}s after the signal"
            seen["finished"] += 1
            assert fingerprint(archive) == large.expected
            assert verify(archive).ok
            continue
        after_commit = "It came after this run's commit" in err
        seen["after its commit" if after_commit else "before its commit"] += 1
        _stopped_cleanly(code, err, [signum], archive, large, after_commit=after_commit)
    print(f"{name}, seed {seed}: {dict(seen)}; the slowest took {slowest:.2f}s to end after the signal")
    assert seen["before its commit"], f"no run was still working when it was signalled: {seen}"


# ------------------------------------------------------------------------------------------------
# in this process: what the stop leaves behind in it


@pytest.fixture
def ctrl_c_as_in_a_terminal() -> Iterator[None]:
    """Python's own Ctrl-C handler, also where the tests run with SIGINT ignored (a background job)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.usefixtures("ctrl_c_as_in_a_terminal")
def test_a_signal_while_beam_starts_a_sampler_leaves_no_thread_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: Clean, signum: int
) -> None:
    """An interrupt raised in that window left the sampler's (non-daemon) thread running: the
    interpreter waits for it at exit, so the process printed `Aborted.` and never ended. Now the
    stop is raised by the run's next step, and Beam stops the thread as it unwinds."""
    archive = tmp_path / "archive"
    with signal_as_a_sampler_starts(monkeypatch, signum) as window:
        with pytest.raises(stopping.Stopped) as stop:
            ingest(small.src, archive)
        running = window.running()
    assert window.sent == [signum] and not running, "a sampler thread left running"
    assert (stop.value.signum, stop.value.commit) == (signum, None)
    assert not [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not stopping.requested()
    assert not archive.exists()  # stopped before its first commit: the folder it made is gone again
    ingest(small.src, archive)
    assert fingerprint(archive) == small.expected


def test_a_run_stopped_after_its_commit_point_names_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: Clean
) -> None:
    from pipelines.archive import writer

    archive = tmp_path / "archive"
    real = writer._crash_point

    def crash_point(name: str) -> None:
        real(name)
        if name == "after_manifest":
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(writer, "_crash_point", crash_point)
    with pytest.raises(stopping.Stopped) as stop:
        ingest(small.src, archive, now=NOW)
    (commit,) = load_state(archive).commits
    assert (stop.value.signum, stop.value.commit, stop.value.exit_code) == (signal.SIGTERM, commit, 143)
    assert (archive / layout.RUNS / f"{commit}.json").exists()
    assert fingerprint(archive) == small.expected
    assert verify(archive).ok


# ------------------------------------------------------------------------------------------------
# several workers: Beam's own --direct_num_workers / --direct_running_mode


def test_a_stop_reaches_a_step_in_another_process(tmp_path: Path) -> None:
    """A worker process (as Beam's multi_processing mode starts them, inheriting the environment)
    has a stop flag of its own that no handler sets: it sees the stop through the shared file."""
    loop = (
        "import time\nfrom pipelines.ingest import stopping\nprint('ready', flush=True)\n"
        "deadline = time.monotonic() + 30\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n        stopping.check()\n"
        "    except stopping.Stopped as stop:\n        print('stopped', stop.signum, flush=True); break\n"
        "    time.sleep(0.01)\n"
    )
    try:
        with stopping.shared():
            folder = Path(os.environ[stopping.STOP_FILE_ENV]).parent
            assert folder.is_dir()
            worker = subprocess.Popen([sys.executable, "-c", loop], stdout=subprocess.PIPE, text=True)
            assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
            time.sleep(0.5)
            assert worker.poll() is None  # no stop asked for: it goes on
            stopping.request(signal.SIGTERM)
            out, _ = worker.communicate(timeout=10)
    finally:
        stopping.clear()
    assert out == f"stopped {int(signal.SIGTERM)}\n"
    assert stopping.STOP_FILE_ENV not in os.environ and not folder.exists()  # the file went with the run


def _workers_started(run: Watched) -> None:
    """Wait until the run has started a Beam worker process (it is inside the pipeline)."""
    deadline = time.monotonic() + 60
    while run.proc.poll() is None:
        assert time.monotonic() < deadline, "the run never started a worker process"
        if any(b"sdk_worker_main" in _cmdline(pid) for pid in _descendants(run.proc.pid)):
            return
        time.sleep(0.05)


def _children(pid: str | int) -> list[str]:
    """The child processes of every thread of ``pid``; a thread or process that ends while it
    is read (Beam starts and stops them all the time) just has none."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend((task / "children").read_text().split())
    return found


def _descendants(pid: int) -> list[str]:
    return [grand for child in _children(pid) for grand in (child, *_children(child))]


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize("mode", ["multi_processing", "multi_threading"])
def test_a_signal_stops_a_run_on_several_workers(tmp_path: Path, large: Clean, mode: str) -> None:
    """With worker processes the steps never see the driver's flag (the run used to go on to its
    commit); with worker threads Beam hands the stop back as a RuntimeError holding only its text
    (the run used to end as an "unexpected" error, exit 3)."""
    archive = tmp_path / "archive"
    workers = ("--direct_num_workers=2", f"--direct_running_mode={mode}")
    if mode == "multi_processing":
        run = _start(large.src, archive, "", *workers)
        _workers_started(run)
        time.sleep(0.5)
        run.proc.send_signal(signal.SIGTERM)
    else:
        run = _start(large.src, archive, "parse@3:SIGTERM", *workers)
    code, err = run.finish(PROMPT)
    assert code == 143, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Aborted (SIGTERM). Nothing after the archive's last commit was kept"), err
    assert "unexpected" not in err
    assert not archive.exists() or not load_state(archive).commits
    ingest(large.src, archive)
    assert fingerprint(archive) == large.expected
    assert verify(archive).ok
