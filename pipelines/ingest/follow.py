"""``vigil run --follow``: keep archiving new files as they arrive, in micro-batches.

Each poll lists the input, picks the files that are new or changed since a commit consumed them,
and runs the same batch pipeline over them (one atomic commit per micro-batch). This is honest
micro-batching on the embedded runner, not Beam streaming: it needs no unbounded source, keeps
exactly-once through the manifest, and a kill between or during batches loses nothing.

The archive lock is held for the whole session, so a second writer is refused. Partitions that
collect many small files are compacted between batches.

A session is a long-running service, so what would end a batch run only interrupts it: an input
folder that is gone or cannot be listed (an unmounted share, a folder moved away) is a warning and
the polls go on until it is back; a compaction the archive refuses (a file that is not what the
manifest recorded) is a warning, and the session goes on archiving without compacting. An
archive folder that is not the one the session locked any more (moved away, a share unmounted
under it) stops the session: writing on would start a second archive in its place. Ctrl-C
(SIGINT) and SIGTERM (a service manager's stop) end it the same way, with its totals, also while
a batch runs (a step of it raises the stop, see :mod:`pipelines.ingest.stopping`, and Beam
re-raises it as another exception), and also when they land where what their handler raises is
swallowed (see :func:`follow`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pipelines.archive import compact, layout, writer
from pipelines.archive.manifest import load_state
from pipelines.errors import ArchiveError, InputError, interrupted
from pipelines.ingest import stopping
from pipelines.ingest.read import check_input
from pipelines.ingest.run import (
    RunOptions,
    RunSummary,
    check_places,
    check_runner,
    load_engine,
    run_locked,
)

#: The counts a session adds up over its batches.
TOTALS = ("read", "archived", "dead_lettered", "duplicates", "notices", "files_written")


@dataclasses.dataclass
class FollowSummary:
    batches: int = 0
    polls: int = 0
    compactions: int = 0
    #: every count present from the start, so a session with no batch reports zeros, not nothing
    totals: Counter[str] = dataclasses.field(default_factory=lambda: Counter(dict.fromkeys(TOTALS, 0)))
    #: archived records by DLP action (block, redact, flag, none), over the session
    dlp: Counter[str] = dataclasses.field(default_factory=Counter)
    es_unavailable: str | None = None
    es_dead_lettered: int = 0  # documents Elasticsearch did not take, over all batches
    unfinished_tails: int = 0  # at the last poll: files whose last line a writer left half-written
    #: at the last poll: files changed moments ago, read once they settle (a gzip file, a last line
    #: without line end); a poll that leaves some waiting is not idle
    waiting: int = 0
    #: at the last poll: entries named like event files that are not readable files ("name (why)")
    unreadable: RunSummary | None = None
    #: at the last poll: why the input could not be listed (gone, unmounted), or None
    input_problem: str | None = None
    #: why compaction was turned off for the session (the archive refused it), or None
    compaction_problem: str | None = None

    @property
    def es_incomplete(self) -> bool:
        """As :attr:`RunSummary.es_incomplete`, over every batch of the session."""
        return bool(self.es_unavailable or self.es_dead_lettered)

    def add(self, s: RunSummary) -> None:
        self.batches += 1
        self.es_unavailable = self.es_unavailable or s.es_unavailable
        self.es_dead_lettered += (s.es or {}).get("dead_lettered", 0)
        for name in TOTALS:
            self.totals[name] += getattr(s, name)
        for action, n in s.dlp.items():  # archived records by DLP action, over the session
            self.dlp[action] += n


def partitions_needing_compaction(archive: Path, min_files: int) -> bool:
    state = load_state(archive)
    return any(compact.plan(state.files(kind), min_files=min_files) for kind in layout.KINDS)


def _lock_identity(archive: Path) -> tuple[int, int] | None:
    try:
        st = (archive / layout.LOCK).stat()
    except OSError:  # gone, or a share that no longer answers
        return None
    return st.st_dev, st.st_ino


def _require_same_archive(
    archive: Path, locked: tuple[int, int] | None, during: Exception | None = None
) -> None:
    """Refuse to write on once the archive folder is not the one the session locked (moved away,
    deleted, a share unmounted under it): the next batch would start a new archive there, with a
    new chain and no lock, that a remounted share would then hide."""
    if _lock_identity(archive) != locked:
        raise ArchiveError(
            f"the archive {archive} is no longer the folder this session locked (moved, deleted or "
            f"unmounted while it ran: its {layout.LOCK} file is gone or another one); stopped before "
            "writing anywhere else. Nothing committed is lost: put the archive back (or mount it "
            "again) and start the session again"
        ) from during


def follow(
    opts: RunOptions,
    *,
    interval: float = 5.0,
    stop_after_idle: int | None = None,
    compact_min_files: int = 8,
    on_batch: Callable[[RunSummary], None] = lambda s: None,
    on_compact: Callable[[compact.CompactReport], None] = lambda r: None,
    on_poll: Callable[[FollowSummary], None] = lambda s: None,
) -> FollowSummary:
    """Poll until interrupted (Ctrl-C) or, if ``stop_after_idle`` is set, after that many idle polls
    (no batch, and no file waiting to settle: a gzip file or a last line without line end changed
    within ``settle_seconds`` is waited for, so the session does not stop with it unread).
    ``on_poll`` sees the session's summary after each poll has looked (and read, if it did)."""
    archive = Path(opts.archive)
    opts = dataclasses.replace(opts, only_new_sources=True, hold_partial_tail=True)
    warn: Callable[[str], None] = opts.on_warning or (lambda text: None)
    result = FollowSummary()
    idle = 0
    check_places(opts)
    check_runner(opts)
    check_input(opts.input)
    load_engine(opts)  # a policy that does not load is refused before the archive is touched
    # The first Ctrl-C or SIGTERM ends the session: the batch it lands in is abandoned (and
    # discarded), or, if the batch has committed already, counted. The handler raises the stop
    # while the session polls (armed), and a step raises it while a batch runs (see stopping.py).
    # What the handler raises may be swallowed where it lands, and the session relying on it
    # would then poll on until it was killed; so it also looks at the record before each poll and
    # between a batch and the compaction after it. Once it has seen the stop (disarmed), a repeat
    # (a service manager may send two) is ignored, so the lock is let go and the totals printed.
    stop = stopping.Stop()
    # the handlers first and back last: a signal while the lock is taken or let go is a stop too
    # a new archive folder is removed again if the session fails before its first commit
    with stopping.signals(stop), writer.archive_lock(archive, new_folder=writer.REMOVE_IF_FAILED):
        locked = _lock_identity(archive)
        stop.armed = True
        try:
            while not stop.requested:  # a stop the main thread could not raise ends it here
                result.polls += 1
                _require_same_archive(archive, locked)
                try:
                    summary = run_locked(opts)
                except InputError as exc:
                    # the input went away after the session started (a share unmounted, a folder
                    # moved): nothing was written; say so once and look again at the next poll
                    if result.input_problem != str(exc):
                        warn(
                            f"warning: {_input_problem(opts.input, exc)}; nothing is read until it is "
                            "back, polling goes on (Ctrl-C stops)"
                        )
                    result.input_problem = str(exc)
                    summary = RunSummary(commit=None)
                except Exception as exc:
                    if not interrupted(exc):  # the archive moved away during the batch: say that
                        _require_same_archive(archive, locked, exc)
                    raise
                else:
                    if result.input_problem is not None:
                        warn(f"the input {opts.input} can be listed again; following it")
                    result.input_problem = None
                    result.unfinished_tails = summary.unfinished_tails
                    result.waiting = summary.waiting_sources
                    result.unreadable = summary if summary.unreadable_count else None
                if summary.commit is not None:
                    result.add(summary)
                on_poll(result)
                if summary.commit is None:
                    # files waiting to settle are work still to do: stopping now would leave them
                    # unread, so only a poll with nothing waiting counts towards --stop-after-idle
                    idle += not summary.waiting_sources
                    if stop_after_idle is not None and idle >= stop_after_idle:
                        break
                else:
                    idle = 0
                    on_batch(summary)
                    if stop.requested:
                        break
                    if result.compaction_problem is None and partitions_needing_compaction(
                        archive, compact_min_files
                    ):
                        _require_same_archive(archive, locked)
                        try:
                            report = compact.compact_locked(archive, min_files=2)
                        except ArchiveError as exc:
                            # housekeeping must not stop capture: the archive is the record
                            result.compaction_problem = str(exc)
                            warn(
                                f"warning: compaction refused: {exc}; this session archives on without "
                                "compacting"
                            )
                        else:
                            result.compactions += 1
                            on_compact(report)
                if stop.requested:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            stop.armed = False
        except Exception as exc:
            stop.armed = False
            if not interrupted(exc):
                raise
        finally:
            stop.armed = False  # the session has seen the stop (or ends anyway): a repeat is ignored
    return result


def _input_problem(input_path: str, exc: InputError) -> str:
    try:
        check_input(input_path)
    except InputError:
        return f"the input {input_path} is gone (moved, deleted or unmounted)"
    return f"cannot list the input {input_path} ({exc})"
