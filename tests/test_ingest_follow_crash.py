"""Kill `vigil run --follow` (SIGKILL) while its input grows, start it again: the archive ends up
exactly what one clean batch `vigil run` makes of the final input, nothing lost, nothing twice.

Each case runs real `vigil run --follow` processes on an input folder the test feeds step by
step: new files, lines appended to a file (a half-written last line among them, finished later),
a last line without its line end, a .gz file, bad lines and duplicates. Sessions are SIGKILLed at
chosen moments: from inside, through a small launcher, at one of the writer's commit windows (the
places ``VIGIL_CRASH_AT`` names, told apart for ingest and compaction commits), while a batch
parses its lines, or while the session sleeps between polls; or by the test, a fixed delay after
the session took the archive lock. A killed session is started again (another follow session, or
a batch run) and the feeding goes on. At the end the archive is compared with a clean batch run
over the same final input: records (pyarrow over the files on disk, DuckDB, and the manifest's
reader), dead letters per raw line, `vigil verify`, and every printed summary adding up.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest
from factories import event, line
from helpers import NOW, VIGIL, fingerprint, ingest
from stop_support import Watched
from test_ingest_dlp import CARD, POLICY

from pipelines.archive import layout, reader
from pipelines.archive.manifest import load_state
from pipelines.archive.verify import verify
from pipelines.ingest.follow import follow
from pipelines.ingest.lines import whole_json
from pipelines.ingest.read import list_input
from pipelines.ingest.run import RunOptions
from pipelines.record import ARROW_SCHEMA, DEAD_LETTER_SCHEMA

pytestmark = pytest.mark.slow

#: ``vigil`` with a kill switch: ``VIGIL_TEST_KILL=<point>@<n>`` SIGKILLs the process (itself, so
#: the moment is exact) at
#:   ``ingest:<window>@n`` / ``compact:<window>@n``: the n-th ingest (compaction) commit reaching
#:       ``<window>``: ``after_staging`` (files staged, manifest not appended), ``after_manifest``
#:       (right after the commit point) or ``mid_move`` (one file moved into place);
#:   ``parse@n``: the third line parsed in the session's n-th batch;
#:   ``sleep@n``: the first sleep between polls after the session's n-th ingest commit.
#: SIGUSR1 makes it print every thread's stack on stderr (a session that does not end in time).
KILLABLE_VIGIL = r"""
import faulthandler, os, signal, types

faulthandler.register(signal.SIGUSR1, all_threads=True)

plan = os.environ.get("VIGIL_TEST_KILL", "")
if plan:
    from pipelines.archive import writer
    from pipelines.ingest import follow, parse

    where, _, nth = plan.partition("@")
    nth = int(nth)
    seen = {"action": None, "points": 0, "commits": 0, "parsed": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_commit, real_point, real_parse = writer.commit, writer._crash_point, parse.parse_line_safely

    def commit(*args, **kw):
        seen["action"] = kw.get("action")
        try:
            done = real_commit(*args, **kw)
        finally:
            seen["action"] = None
        if kw.get("action") == "ingest":
            seen["commits"] += 1
            seen["parsed"] = 0
        return done

    def crash_point(name):
        if f"{seen['action']}:{name}" == where:
            seen["points"] += 1
            if seen["points"] == nth:
                die()
        real_point(name)

    def parse_line(line, **kw):
        seen["parsed"] += 1
        if where == "parse" and seen["commits"] == nth - 1 and seen["parsed"] == 3:
            die()
        return real_parse(line, **kw)

    def sleep(seconds):
        if where == "sleep" and seen["commits"] >= nth:
            die()
        real_sleep(seconds)

    real_sleep = follow.time.sleep
    writer.commit, writer._crash_point, parse.parse_line_safely = commit, crash_point, parse_line
    follow.time = types.SimpleNamespace(sleep=sleep)

from pipelines.cli import main

main()
"""

INTERVAL, SETTLE = "0.1", "0.5"


# ------------------------------------------------------------------------------------------------
# the input, fed step by step


def _lines(*numbers: int) -> bytes:
    """Valid events over three channels (every step touches whatsapp 2026-01, so that partition
    collects a file per batch and the session compacts it after its eighth)."""
    return b"".join(line(event(n, channel=_channel(n))) for n in numbers)


def _channel(n: int) -> str:
    return ("whatsapp", "sms", "wechat")[n % 3]


def _dup(n: int) -> bytes:  # the same event delivered again
    return _lines(n)


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(data)


def _write(path: Path, data: bytes) -> None:
    """A writer that renames a finished file into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


HALF = line(event(16))  # the line a writer leaves half-written in a.jsonl for a while
NO_SENDER = json.dumps({k: v for k, v in event(29).items() if k != "sender"}).encode() + b"\n"
CONFLICT = line(event(3, body="A different message under a reused event id."))
BLOCKED = line(event(62, channel=_channel(62), body=f"Card for the fee: {CARD}"))  # blocked: with a notice
FUTURE = line(event(56, event_time="2099-01-01T00:00:00+00:00", received_time="2099-01-01T00:00:01+00:00"))

STEPS: list[Callable[[Path], None]] = [
    # 1: a new file with a bad line and a re-delivered event
    lambda src: _write(src / "a.jsonl", _lines(*range(12)) + b"{not json\n" + _dup(1)),
    # 2: another, with an event missing a field and a duplicate of an event in a.jsonl
    lambda src: _write(src / "b.jsonl", _lines(*range(20, 28)) + NO_SENDER + _dup(5)),
    # 3: lines appended to a.jsonl, the last one half-written
    lambda src: _append(src / "a.jsonl", _lines(12, 13, 14, 15) + HALF[:40]),
    # 4: ... finished later, with more lines after it (one not an object)
    lambda src: _append(src / "a.jsonl", HALF[40:] + _lines(17) + b"[1, 2]\n" + _dup(13)),
    # 5: a gzip file (read once settled) with invalid UTF-8 and a duplicate of a b.jsonl event
    lambda src: _write(
        src / "c.jsonl.gz", gzip.compress(_lines(*range(30, 38)) + b"\xff\xfe oops\n" + _dup(22))
    ),
    # 6: a reused event id with other content, and a last line without its line end
    lambda src: _write(src / "d.jsonl", _lines(40, 41, 42, 43) + CONFLICT + _lines(44, 45).rstrip(b"\n")),
    # 7: ... whose writer comes back: the line end, and more
    lambda src: _append(src / "d.jsonl", b"\n" + _lines(46, 47) + _dup(46)),
    # 8-11: more files; the eighth batch makes the session compact
    lambda src: _write(src / "e.jsonl", _lines(*range(50, 56)) + FUTURE),
    lambda src: _write(src / "f.jsonl", _lines(60, 61) + BLOCKED + _lines(63, 64, 65)),
    lambda src: _write(src / "g.jsonl", _lines(*range(70, 76)) + _dup(70) + BLOCKED),
    lambda src: _write(src / "h.jsonl", _lines(*range(80, 86)) + b"\n\n" + _lines(86)),
]


def _policy(base: Path) -> Path:
    path = base / "itest.yaml"
    path.write_text(POLICY)
    return path


# ------------------------------------------------------------------------------------------------
# sessions


@dataclass
class Session(Watched):
    kill: str | None = None  # the plan it runs with (None: it is to run until the test stops it)
    locked: float | None = None  # when it was seen holding the archive lock

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self.out]


def _follow(src: Path, archive: Path, policy: Path, kill: str | None) -> Session:
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_TEST_KILL", "VIGIL_CRASH_AT")}
    if kill and not kill.startswith("timer:"):
        env["VIGIL_TEST_KILL"] = kill
    args = [sys.executable, "-c", KILLABLE_VIGIL, "run", "--input", str(src), "--archive", str(archive)]
    args += ["--follow", "--interval", INTERVAL, "--settle", SETTLE, "--policy", str(policy), "--json"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    session = Session(proc, f"the session (kill plan {kill})", kill=kill)
    session.drain()
    return session


def _batch(src: Path, archive: Path, policy: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--policy", str(policy), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _holds_lock(archive: Path, pid: int) -> bool:
    """Whether the session ``pid`` holds the archive lock (the lock file then names it)."""
    try:
        return (archive / layout.LOCK).read_text().strip() == str(pid)
    except OSError:
        return False


def _processed(src: Path, archive: Path) -> bool:
    """Whether a commit consumed every input file as it is now: a file whose last line is held
    back counts only while that line is half-written (a whole one is read once the file settles)."""
    if not (archive / layout.MANIFEST).exists():
        return False
    consumed = load_state(archive).consumed_sources()
    for source in list_input(str(src), exclude=str(archive)).files:
        seen = consumed.get(source.name)
        if seen is None or (seen["size"], seen["mtime_ns"]) != (source.size, source.mtime_ns):
            return False
        if seen.get("held_tail"):
            tail = Path(source.name).read_bytes().rsplit(b"\n", 1)[-1]
            if whole_json(tail):
                return False
    return True


def _check_printed(session: Session, *, stopped: bool) -> None:
    """Every batch a session printed adds up; a session stopped by SIGTERM ends with its totals,
    which add up too and are the sum of its batches."""
    objects = session.objects()
    batches = [o for o in objects if o["event"] == "batch"]
    for b in batches:
        assert b["balanced"] and b["read"] == b["archived"] + b["dead_lettered"] + b["duplicates"], b
    if not stopped:
        assert all(o["event"] in ("batch", "compaction") for o in objects), objects
        return
    last = objects[-1]
    assert last["event"] == "stopped" and last["balanced"], last
    t = last["totals"]
    assert t.get("read", 0) == t.get("archived", 0) + t.get("dead_lettered", 0) + t.get("duplicates", 0)
    for name in ("read", "archived", "dead_lettered", "duplicates"):
        assert t.get(name, 0) == sum(b[name] for b in batches), (name, t, batches)
    assert last["batches"] == len(batches)


# ------------------------------------------------------------------------------------------------
# what an archive holds


def _rows_on_disk(archive: Path, src: Path) -> tuple[list[tuple], list[tuple]]:
    """Records and dead letters read straight from the files under records/ and deadletters/
    (pyarrow), with input paths made relative to ``src`` and the ingest time left out."""
    prefix = os.path.realpath(src) + "/"

    def rel(name: str) -> str:
        return name.removeprefix(prefix)

    records = ds.dataset(archive / layout.RECORDS, schema=ARROW_SCHEMA, format="parquet").to_table()
    rows = sorted(
        (
            r["record_id"],
            r["content_sha256"],
            rel(r["source_name"]),
            r["source_offset"],
            json.dumps({k: v for k, v in r.items() if k not in ("ingest_time", "source_name")}, default=str),
        )
        for r in records.to_pylist()
    )
    dead = ds.dataset(archive / layout.DEAD_LETTERS, schema=DEAD_LETTER_SCHEMA, format="parquet").to_table()
    letters = sorted(
        (rel(d["source_name"]), d["source_offset"], d["raw_sha256"], d["reason_code"], d["stage"])
        for d in dead.to_pylist()
    )
    return rows, letters


def _duck(archive: Path) -> tuple[list[tuple], list[tuple]]:
    con = duckdb.connect()
    records = con.execute(
        "SELECT record_id, content_sha256 FROM read_parquet(?, union_by_name = true) ORDER BY ALL",
        [f"{archive}/{layout.RECORDS}/**/*.parquet"],
    ).fetchall()
    dead = con.execute(
        "SELECT source_name, source_offset, reason_code FROM read_parquet(?, union_by_name = true) "
        "ORDER BY ALL",
        [f"{archive}/{layout.DEAD_LETTERS}/**/*.parquet"],
    ).fetchall()
    return records, dead


@dataclass(frozen=True)
class Clean:
    src: Path
    archive: Path
    records: list[tuple]
    letters: list[tuple]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    """One batch run over the final input, written all at once."""
    base = tmp_path_factory.mktemp("clean")
    src, archive = base / "in", base / "archive"
    for step in STEPS:
        step(src)
    summary = _batch(src, archive, _policy(base))
    assert summary["balanced"] and summary["committed"]
    records, letters = _rows_on_disk(archive, src)
    return Clean(src, archive, records, letters)


def test_the_clean_run_is_what_the_input_says(clean: Clean) -> None:
    # the baseline itself: every kind of line the steps feed is there, once
    reasons = Counter(letter[3] for letter in clean.letters)
    assert reasons == {
        "malformed_json": 1,
        "missing_field": 1,
        "not_an_object": 1,
        "invalid_utf8": 1,
        "conflicting_duplicate": 1,
        "future_timestamp": 1,
    }
    events = {n for n in (*range(28), *range(30, 38), *range(40, 48), *range(50, 56), *range(60, 66))}
    events |= set(range(70, 76)) | set(range(80, 87))
    events -= {*range(18, 20), *range(28, 30)}
    notices = [r for r in clean.records if r[2] == "vigil:dlp-notice"]
    assert len(clean.records) == len(events) + len(notices) and len(notices) == 1
    assert len({r[0] for r in clean.records}) == len(clean.records)


# ------------------------------------------------------------------------------------------------
# the cases


@dataclass(frozen=True)
class Case:
    kills: tuple[str, ...]  # one kill per session, in order; sessions after them run until stopped
    finish: str = "follow"  # "batch": after the last kill, no session: the rest is fed, a batch run reads it


CASES = {
    # the very first batch; idle between polls (a half-written line held); a batch's files staged
    # but not committed; the compaction after the eighth batch, staged but not committed
    "first-batch-idle-staged": Case(
        ("parse@1", "sleep@3", "ingest:after_staging@2", "compact:after_staging@1")
    ),
    # right after a commit point; committed files half moved into place; the same for a compaction
    "after-commit-mid-move": Case(("ingest:after_manifest@3", "ingest:mid_move@2", "compact:mid_move@1")),
    # whatever the moment (the test kills after a delay), then right after a compaction's commit
    # point: no session follows, the rest of the input arrives and a batch run finishes the job
    "timer-compaction-then-batch": Case(("timer:2.5", "compact:after_manifest@1"), finish="batch"),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_follow_killed_and_restarted_archives_what_a_clean_run_does(
    tmp_path: Path, clean: Clean, case: Case
) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    src.mkdir()
    policy = _policy(tmp_path)
    kills = list(case.kills)
    sessions: list[Session] = []

    def start() -> Session | None:
        if not kills and case.finish == "batch" and case.kills:
            return None
        session = _follow(src, archive, policy, kills.pop(0) if kills else None)
        sessions.append(session)
        return session

    def reap(session: Session) -> None:
        code, err = session.finish()
        assert session.kill is not None, f"a session ended by itself (exit {code}): {err}"
        assert code == -signal.SIGKILL, f"exit {code} instead of the kill at {session.kill}: {err}"
        _check_printed(session, stopped=False)

    current = start()
    deadline = time.monotonic() + 150
    for step in STEPS:
        step(src)
        while current is not None and not _processed(src, archive):
            assert time.monotonic() < deadline, f"step not archived; sessions: {[s.kill for s in sessions]}"
            if current.kill and current.kill.startswith("timer:"):
                if current.locked is None and _holds_lock(archive, current.proc.pid):
                    current.locked = time.monotonic()
                if current.locked and time.monotonic() - current.locked >= float(current.kill[6:]):
                    current.proc.send_signal(signal.SIGKILL)
            if current.proc.poll() is not None:
                reap(current)
                current = start()
                continue
            time.sleep(0.05)
    assert not kills, f"kills that never happened: {kills} (the input gave them no moment)"
    if current is not None:
        assert current.kill is None, f"the kill at {current.kill} never happened"
        current.proc.send_signal(signal.SIGTERM)
        code, err = current.finish()
        assert code == 0, err
        assert "Traceback" not in err
        _check_printed(current, stopped=True)
    # and a batch run after it all: nothing new for it once a session archived everything
    final = _batch(src, archive, policy)
    assert final["balanced"]
    if case.finish == "follow":
        assert (final["commit"], final["read"]) == (None, 0)
    else:  # it recovered what the last kill left and read what arrived since
        assert final["recovered"] and final["committed"] and final["read"] > 0

    # the same archive as one clean run: pyarrow over the files on disk ...
    records, letters = _rows_on_disk(archive, src)
    assert len({r[0] for r in records}) == len(records), "a record archived twice"
    assert records == clean.records
    # ... every bad line dead-lettered once, with the same reason
    lines = Counter((letter[0], letter[1]) for letter in letters)
    assert not [where for where, n in lines.items() if n > 1], "a line dead-lettered twice"
    assert letters == clean.letters
    # ... DuckDB reading the same files, and the manifest's own reader
    mine, theirs = _duck(archive), _duck(clean.archive)
    assert mine[0] == theirs[0]
    strip = os.path.realpath(src) + "/", os.path.realpath(clean.src) + "/"
    assert [(s.removeprefix(strip[0]), o, c) for s, o, c in mine[1]] == [
        (s.removeprefix(strip[1]), o, c) for s, o, c in theirs[1]
    ]
    live = reader.read_table(archive, columns=["record_id", "content_sha256"]).to_pylist()
    assert sorted((r["record_id"], r["content_sha256"]) for r in live) == [r[:2] for r in clean.records]
    assert reader.read_table(archive, layout.DEAD_LETTERS).num_rows == len(clean.letters)
    # intact, with nothing left over
    report = verify(archive)
    assert report.ok, report.problems
    assert not (archive / layout.STAGING).exists() or not any((archive / layout.STAGING).iterdir())
    checked = subprocess.run([*VIGIL, "verify", "--archive", str(archive)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_line_begun_while_a_batch_reads_a_settled_file_is_held_not_dead_lettered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session (say, one restarted after a while) finds a file unchanged for --settle seconds
    and ending in a line end; while its batch is between listing and reading (a restarted
    session's first batch spends a second there), the writer starts its next line. That line is
    half-written: held for the next poll like any other, not a `malformed_json` dead letter that
    the finished line would then be archived beside."""
    from pipelines.ingest import run as run_module

    src, archive, clean = tmp_path / "in", tmp_path / "archive", tmp_path / "clean"
    path = src / "a.jsonl"
    _append(path, line(event(1)) + line(event(2)))
    past = time.time() - 60
    os.utime(path, (past, past))  # settled: its writer has been quiet for a minute
    half = line(event(3))
    real, begun = run_module.select_sources, []

    def listed_then_written(opts: RunOptions) -> run_module.Selection:
        chosen = real(opts)
        if not begun:
            begun.append(half[:40])
            _append(path, half[:40])
        return chosen

    monkeypatch.setattr(run_module, "select_sources", listed_then_written)
    opts = RunOptions(input=str(src), archive=archive, now=NOW, show_progress=False, settle_seconds=10)
    t = follow(opts, interval=0.1, stop_after_idle=1).totals
    assert (t["read"], t["archived"], t["dead_lettered"]) == (2, 2, 0)
    monkeypatch.undo()
    assert begun
    _append(path, half[40:])  # the writer finishes the line
    t = follow(opts, interval=0.1, stop_after_idle=1).totals
    assert (t["read"], t["archived"], t["dead_lettered"]) == (1, 1, 0)
    ingest(src, clean)
    assert fingerprint(archive) == fingerprint(clean)
    assert verify(archive).ok


def test_an_over_long_line_whose_writer_paused_is_dead_lettered_once_whole(tmp_path: Path) -> None:
    """A session (restarted, say) finds a file unchanged for --settle seconds that ends in a line
    already longer than --max-line-bytes and not finished. Held like any half-written line: once
    its writer finishes it, it is one `line_too_long` dead letter of the whole line, as a clean run
    gives, not a second one of the part there was before."""
    src, archive, clean = tmp_path / "in", tmp_path / "archive", tmp_path / "clean"
    path = src / "a.jsonl"
    _append(path, line(event(1)) + b'{"body": "' + b"x" * 3000)
    past = time.time() - 60
    os.utime(path, (past, past))
    opts = RunOptions(
        input=str(src), archive=archive, now=NOW, show_progress=False, settle_seconds=10, max_line_bytes=1024
    )
    summary = follow(opts, interval=0.1, stop_after_idle=1)
    t = summary.totals
    assert (t["read"], t["archived"], t["dead_lettered"], summary.unfinished_tails) == (1, 1, 0, 1)
    _append(path, b"x" * 3000 + b'"}\n')
    t = follow(opts, interval=0.1, stop_after_idle=1).totals
    assert (t["read"], t["archived"], t["dead_lettered"]) == (1, 0, 1)
    ingest(src, clean, max_line_bytes=1024)
    assert fingerprint(archive) == fingerprint(clean)
    (dead,) = reader.read_table(archive, layout.DEAD_LETTERS).to_pylist()
    assert (dead["reason_code"], dead["raw_size"]) == ("line_too_long", 6012)
