"""``vigil run --follow``: keep archiving new files as they arrive, in micro-batches.

Each poll lists the input, picks the files that are new or changed since a commit consumed them,
and runs the same batch pipeline over them (one atomic commit per micro-batch). This is honest
micro-batching on the embedded runner, not Beam streaming: it needs no unbounded source, keeps
exactly-once through the manifest, and a kill between or during batches loses nothing.

The archive lock is held for the whole session, so a second writer is refused. Partitions that
collect many small files are compacted between batches.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pipelines.archive import compact, layout, writer
from pipelines.archive.manifest import load_state
from pipelines.ingest.read import check_input
from pipelines.ingest.run import RunOptions, RunSummary, check_runner, run_locked


@dataclasses.dataclass
class FollowSummary:
    batches: int = 0
    polls: int = 0
    compactions: int = 0
    totals: Counter[str] = dataclasses.field(default_factory=Counter)
    es_unavailable: str | None = None
    es_dead_lettered: int = 0  # documents Elasticsearch did not take, over all batches
    unfinished_tails: int = 0  # at the last poll: files whose last line a writer left half-written
    #: at the last poll: entries named like event files that are not readable files ("name (why)")
    unreadable: RunSummary | None = None

    @property
    def es_incomplete(self) -> bool:
        """As :attr:`RunSummary.es_incomplete`, over every batch of the session."""
        return bool(self.es_unavailable or self.es_dead_lettered)

    def add(self, s: RunSummary) -> None:
        self.batches += 1
        self.es_unavailable = self.es_unavailable or s.es_unavailable
        self.es_dead_lettered += (s.es or {}).get("dead_lettered", 0)
        for name in ("read", "archived", "dead_lettered", "duplicates", "files_written"):
            self.totals[name] += getattr(s, name)


def partitions_needing_compaction(archive: Path, min_files: int) -> bool:
    state = load_state(archive)
    return any(compact.plan(state.files(kind), min_files=min_files) for kind in layout.KINDS)


def follow(
    opts: RunOptions,
    *,
    interval: float = 5.0,
    stop_after_idle: int | None = None,
    compact_min_files: int = 8,
    on_batch: Callable[[RunSummary], None] = lambda s: None,
    on_compact: Callable[[compact.CompactReport], None] = lambda r: None,
) -> FollowSummary:
    """Poll until interrupted (Ctrl-C) or, if ``stop_after_idle`` is set, after that many idle polls."""
    archive = Path(opts.archive)
    opts = dataclasses.replace(opts, only_new_sources=True, hold_partial_tail=True)
    result = FollowSummary()
    idle = 0
    check_runner(opts)
    check_input(opts.input)
    with writer.archive_lock(archive):
        try:
            while True:
                result.polls += 1
                summary = run_locked(opts)
                result.unfinished_tails = summary.unfinished_tails
                result.unreadable = summary if summary.unreadable_count else None
                if summary.commit is None:
                    idle += 1
                    if stop_after_idle is not None and idle >= stop_after_idle:
                        break
                else:
                    idle = 0
                    result.add(summary)
                    on_batch(summary)
                    if partitions_needing_compaction(archive, compact_min_files):
                        report = compact.compact_locked(archive, min_files=2)
                        result.compactions += 1
                        on_compact(report)
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
    return result
