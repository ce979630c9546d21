"""Merging small archive files into larger ones.

``vigil run --follow`` commits one file per touched partition per micro-batch, so a busy day
collects many small files. Compaction rewrites each partition's small files as one sorted file
and retires the originals, in a single commit: readers see either the old files or the new one,
never both, and the manifest records both the additions and the removals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from pipelines.archive import layout, reader, writer
from pipelines.archive.manifest import DataFile, load_state
from pipelines.errors import ArchiveError, ArchiveLockedError

TARGET_ROWS = 500_000
#: the reason of a compaction's ``remove`` entries, before the file merged into (verify reads it)
COMPACTED_INTO = "compacted into "


@dataclass
class CompactReport:
    commit: str | None = None
    partitions: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    recovered: str | None = None
    merged: list[str] = field(default_factory=list)
    live_files: int = 0  # data files the archive held before (records and dead letters)
    live_partitions: int = 0  # the folders they are in


def plan(
    files: list[DataFile], *, target_rows: int = TARGET_ROWS, min_files: int = 2
) -> list[list[DataFile]]:
    """Groups of small files of one partition worth merging (each group fits in ``target_rows``)."""
    by_partition: dict[str, list[DataFile]] = defaultdict(list)
    for f in files:
        if f.rows < target_rows:
            by_partition[f.path.rsplit("/", 1)[0]].append(f)
    groups = []
    for _, small in sorted(by_partition.items()):
        group: list[DataFile] = []
        total = 0
        for f in sorted(small, key=lambda x: x.path):
            if group and total + f.rows > target_rows:
                if len(group) >= min_files:
                    groups.append(group)
                group, total = [], 0
            group.append(f)
            total += f.rows
        if len(group) >= min_files:
            groups.append(group)
    return groups


def _sort_keys(kind: str) -> list[tuple[str, str]]:
    return (
        [("event_time", "ascending"), ("record_id", "ascending")]
        if kind == layout.RECORDS
        else [("dead_letter_id", "ascending")]
    )


def _read_checked(root: Path, f: DataFile, kind: str) -> pa.Table:
    """A file to merge, refused unless it is byte for byte what the manifest recorded: merging an
    altered file would give the change a fresh hash and hide it from `vigil verify`."""
    try:
        data = (root / f.path).read_bytes()
    except FileNotFoundError:
        raise ArchiveError(
            f"{f.path} is committed but missing; nothing was compacted: run `vigil verify` and restore "
            "the file from backup first"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != f.sha256:
        raise ArchiveError(
            f"{f.path} is not what the manifest recorded (SHA-256 {digest[:16]}… ≠ {f.sha256[:16]}…); "
            "nothing was compacted: run `vigil verify` and restore the file from backup first"
        )
    return reader.read_file(pa.BufferReader(data), kind, name=f.path)


def compact_locked(archive: Path, *, target_rows: int = TARGET_ROWS, min_files: int = 2) -> CompactReport:
    """Compact; the caller holds the archive lock (``vigil run --follow`` does between batches)."""
    root = Path(archive)
    state = load_state(root)
    commit = layout.new_commit_id(dt.datetime.now(dt.UTC))
    report = CompactReport()
    live = [f for kind in layout.KINDS for f in state.files(kind)]
    report.live_files = len(live)
    report.live_partitions = len({f.path.rsplit("/", 1)[0] for f in live})
    staged: list[writer.StagedFile] = []
    removes: list[tuple[str, str, str]] = []
    try:
        for kind in layout.KINDS:
            for n, group in enumerate(plan(state.files(kind), target_rows=target_rows, min_files=min_files)):
                tables = [_read_checked(root, f, kind) for f in group]
                table = reader.concat(tables).sort_by(_sort_keys(kind))
                folder = group[0].path.rsplit("/", 1)[0]
                rel = f"{folder}/part-{commit}-{n:04d}.parquet"
                staged.append(writer.stage_table(root, commit, rel, kind, table))
                removes.extend((f.path, f.sha256, f"{COMPACTED_INTO}{rel}") for f in group)
                report.partitions += 1
                report.files_before += len(group)
                report.rows += table.num_rows
                report.merged.append(rel)
    except BaseException:
        shutil.rmtree(writer.staging_dir(root, commit), ignore_errors=True)  # nothing committed: no debris
        raise
    if staged:
        writer.commit(root, commit, staged, action="compact", removes=removes)
        report.commit = commit
        report.files_after = len(staged)
    return report


def compact(archive: Path, *, target_rows: int = TARGET_ROWS, min_files: int = 2) -> CompactReport:
    try:
        with writer.archive_lock(Path(archive)):
            recovery = writer.recover(Path(archive))
            recovery.require_complete("nothing was compacted")
            report = compact_locked(archive, target_rows=target_rows, min_files=min_files)
            report.recovered = recovery.describe() if recovery.anything else None
            return report
    except ArchiveLockedError as exc:  # only the lock raises it
        raise ArchiveLockedError(
            f"{exc} (a `vigil run --follow` session compacts between its batches by itself: "
            "`vigil compact` is not needed beside it)"
        ) from None
