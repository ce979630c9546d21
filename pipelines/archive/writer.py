"""Writing to the archive: stage, commit, recover.

The protocol that makes a killed run harmless:

1. data files are written under ``_staging/<commit>/`` (temporary name, fsync, rename);
2. one append to the manifest adds every staged file and closes with a ``commit`` entry: this
   single write is the commit point;
3. staged files are moved to their final paths, files the commit removes are deleted, the staging
   folder goes.

:func:`recover` runs before any new write, under the archive lock. It rolls committed work forward
(moves files a crash left in staging, deletes files a commit removed) and rolls uncommitted work
back (deletes staging folders without a commit entry, cuts a torn manifest tail). After it, the
archive holds exactly what was committed, so re-running the same input yields the archive a clean
run would have made.

``VIGIL_CRASH_AT`` (``after_staging``, ``after_manifest``, ``mid_move``) makes the process exit
abruptly at that point; the crash-recovery tests use it to hit each window deterministically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.archive import layout, manifest_index, reader
from pipelines.archive.manifest import (
    LIVE_DIGEST,
    live_digest_after,
    load_state,
    manifest_ledger,
    tail_problem,
)
from pipelines.errors import ArchiveError, ArchiveLockedError
from pipelines.record import ARROW_SCHEMA, DEAD_LETTER_SCHEMA, event_month, from_micros

ROW_GROUP_ROWS = 64 * 1024
COMPRESSION = "zstd"


@dataclass(frozen=True)
class StagedFile:
    path: str  # final relative path
    kind: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class RecoveryReport:
    rolled_forward: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    deleted_removed: list[str] = field(default_factory=list)
    torn_lines_cut: int = 0
    line_end_written: bool = False
    missing: list[str] = field(default_factory=list)
    reports_written: list[str] = field(default_factory=list)

    def require_complete(self, what: str) -> None:
        """Refuse to go on (``what`` says what did not happen) while committed files are missing."""
        if self.missing:
            raise ArchiveError(
                f"{len(self.missing)} committed file(s) are missing, e.g. {self.missing[0]}; {what}: "
                "run `vigil verify` and restore them from backup first"
            )

    @property
    def anything(self) -> bool:
        return bool(
            self.rolled_forward
            or self.rolled_back
            or self.deleted_removed
            or self.torn_lines_cut
            or self.line_end_written
            or self.reports_written
        )

    def describe(self) -> str:
        parts = []
        if self.rolled_forward:
            parts.append(f"finished moving {len(self.rolled_forward)} committed file(s)")
        if self.rolled_back:
            parts.append(f"discarded {len(self.rolled_back)} uncommitted staging folder(s)")
        if self.deleted_removed:
            parts.append(f"deleted {len(self.deleted_removed)} file(s) a compaction had retired")
        if self.torn_lines_cut:
            parts.append(f"cut {self.torn_lines_cut} uncommitted manifest line(s)")
        if self.line_end_written:
            parts.append("wrote the line end the manifest's last entry lacked")
        if self.reports_written:
            parts.append(
                f"wrote the missing run report of commit(s) {', '.join(self.reports_written)} "
                f"({layout.RUNS}/<commit>.json, rebuilt from the manifest)"
            )
        return "recovered an interrupted run: " + ", ".join(parts) if parts else "nothing to recover"


def _crash_point(name: str) -> None:
    if os.environ.get("VIGIL_CRASH_AT") == name:
        os._exit(137)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def staging_dir(root: Path, commit: str) -> Path:
    return Path(root) / layout.STAGING / commit


def stage_table(root: Path, commit: str, rel_path: str, kind: str, table: pa.Table) -> StagedFile:
    """Write ``table`` as a Parquet file into the commit's staging folder, durably."""
    target = staging_dir(root, commit) / rel_path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(
        table,
        tmp,
        compression=COMPRESSION,
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
    )
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return StagedFile(
        path=rel_path, kind=kind, rows=table.num_rows, bytes=target.stat().st_size, sha256=file_sha256(target)
    )


MAX_FILE_ROWS = 500_000


def _file_name(kind: str, partition: tuple[str, str], commit: str, n: int) -> str:
    a, b = partition
    return (
        layout.record_file(a, b, commit, n)
        if kind == layout.RECORDS
        else layout.dead_letter_file(a, b, commit, n)
    )


def stage_partition(
    root: Path, commit: str, kind: str, partition: tuple[str, str], rows: list[dict[str, Any]]
) -> Iterator[StagedFile]:
    """Stage one partition's rows as sorted Parquet files of at most :data:`MAX_FILE_ROWS` rows.

    ``partition`` is ``(event_month, channel)`` for records, ``(stage, date)`` for dead letters."""
    if kind == layout.RECORDS:
        ordered = sorted(rows, key=lambda r: (r["event_time"], r["record_id"]))
        schema = ARROW_SCHEMA
    else:
        ordered = sorted(rows, key=lambda r: r["dead_letter_id"])
        schema = DEAD_LETTER_SCHEMA
    for n, start in enumerate(range(0, len(ordered), MAX_FILE_ROWS)):
        table = pa.Table.from_pylist(ordered[start : start + MAX_FILE_ROWS], schema=schema)
        yield stage_table(root, commit, _file_name(kind, partition, commit, n), kind, table)


def dead_letter_partition(row: dict[str, Any]) -> tuple[str, str]:
    return row["stage"], from_micros(row["dead_letter_time"]).date().isoformat()


def record_partition(row: dict[str, Any]) -> tuple[str, str]:
    return event_month(row), row["channel"]


def commit_rows(
    root: Path, rows: list[dict[str, Any]], *, kind: str, action: str, commit_id: str | None = None
) -> list[StagedFile]:
    """Stage ``rows`` (archive rows of ``kind``) by partition and commit them in one commit.

    No de-duplication and no lock: for callers that hold the archive lock and know the rows are new
    (dead-letter appends, compaction-like tools, tests that build archives)."""
    root = Path(root)
    commit_id = commit_id or layout.new_commit_id(dt.datetime.now(dt.UTC))
    partition_of = record_partition if kind == layout.RECORDS else dead_letter_partition
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(partition_of(row), []).append(row)
    staged = [
        f
        for partition, group in sorted(groups.items())
        for f in stage_partition(root, commit_id, kind, partition, group)
    ]
    commit(root, commit_id, staged, action=action)
    return staged


#: what :func:`archive_lock` does with an archive folder it created, holding nothing but its lock
#: (and empty bookkeeping folders) when it lets go: keep it, remove it, or remove it if the
#: locked block raised (nothing was committed in it: a committed archive has a manifest)
KEEP, REMOVE_IF_UNUSED, REMOVE_IF_FAILED = "keep", "unused", "failed"
#: empty folders a writer may have made before it failed, removed with the folder
_EMPTY_BOOKKEEPING = frozenset({layout.STAGING, layout.LEDGER_DIR, layout.RUNS, *layout.KINDS})
#: tries to lock an archive whose folder another writer removes meanwhile (see _lock)
_LOCK_TRIES = 10


@contextlib.contextmanager
def archive_lock(root: Path, *, new_folder: str = KEEP) -> Iterator[None]:
    """Exclusive writer lock; a second writer gets a clear error instead of corrupting the archive.

    ``new_folder`` (:data:`REMOVE_IF_UNUSED`, :data:`REMOVE_IF_FAILED`): a folder this call created
    (and the parents it created for it) is removed again when the writer ends with nothing in it
    but the lock, so a run refused before it committed leaves no empty "archive" that `vigil
    verify` would pass. A folder that existed before, or holds anything else, is never removed."""
    root = Path(root)
    fd, created = _lock(root)
    failed = True
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
        failed = False
    finally:
        try:
            if new_folder == REMOVE_IF_UNUSED or (new_folder == REMOVE_IF_FAILED and failed):
                _remove_unused(root, fd, created)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _lock(root: Path) -> tuple[int, list[Path]]:
    """The locked lock file of ``root`` (created with its folder if need be) and the folders this
    call created. A writer that removes a folder it made (:func:`_remove_unused`) does so holding
    the lock, so one that locked the lock file meanwhile finds it no longer in the folder, and
    starts again (making the folder anew)."""
    for attempt in range(_LOCK_TRIES):
        created = _make_folders(root)
        refuse_links(root)
        try:
            fd = os.open(root / layout.LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except FileNotFoundError:  # the folder was removed after it was made: make it again
            if attempt + 1 == _LOCK_TRIES:
                raise
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise _locked(root) from exc
            raise
        if _same_file(fd, root / layout.LOCK):
            return fd, created
        os.close(fd)
    raise _locked(root)


def _locked(root: Path) -> ArchiveLockedError:
    return ArchiveLockedError(
        f"another Vigil process is writing {root}; wait for it to finish "
        "(or stop its `vigil run --follow`) and try again"
    )


def _make_folders(root: Path) -> list[Path]:
    """Create ``root`` and its missing parents; those this call created, outermost first."""
    missing: list[Path] = []
    folder = root
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created = []
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:  # made by another process just now: not ours to remove
            continue
        except OSError:
            break  # the mkdir below says why
        created.append(folder)
    root.mkdir(parents=True, exist_ok=True)
    return created


def _same_file(fd: int, path: Path) -> bool:
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (found.st_dev, found.st_ino)


def _remove_unused(root: Path, fd: int, created: list[Path]) -> None:
    """Remove ``root`` if this writer created it and it holds only the writer's own lock file (and
    empty bookkeeping folders), then the parents made for it that are empty. Called holding the
    lock; never raises (the writer's own error, if any, is what the user must see)."""
    if not created or created[-1] != root:
        return  # the folder was there before this writer
    with contextlib.suppress(OSError):
        lock = root / layout.LOCK
        if not _same_file(fd, lock):
            return
        others = [name for name in os.listdir(root) if name != layout.LOCK]
        for name in others:
            path = root / name
            if name not in _EMPTY_BOOKKEEPING or path.is_symlink() or not path.is_dir() or os.listdir(path):
                return
        for name in others:
            os.rmdir(root / name)
        os.unlink(lock)
        for folder in reversed(created):  # the archive folder first, then the parents made for it
            os.rmdir(folder)  # fails (and stops) at one that is not empty: something else is in it


def refuse_links(root: Path) -> None:
    """Refuse to write an archive whose bookkeeping entries are links (see
    :func:`layout.linked_bookkeeping`), before anything is written through them."""
    if linked := layout.linked_bookkeeping(root):
        raise ArchiveError(
            f"{', '.join(linked)} in {root} is a symbolic link, which Vigil never makes: writing through "
            "it would create or delete files outside the archive. Nothing was changed; run `vigil verify`, "
            "and put the real one back"
        )


#: the commit entry's count of the records it added, by DLP action (flag, redact, block; none left out)
DLP_ACTIONS = "dlp_actions"


def staged_dlp_actions(root: Path, commit_id: str, staged: list[StagedFile]) -> dict[str, int]:
    """How many of the staged records each DLP action (but none) was given, read from the files
    themselves (one column), so the count is what was committed, not what a process said."""
    counts: dict[str, int] = {}
    for f in staged:
        path = staging_dir(root, commit_id) / f.path
        if f.kind != layout.RECORDS or not f.rows or "dlp_action" not in pq.read_schema(path).names:
            continue  # no records, or records of schema 1, which had no DLP verdict
        column = pq.read_table(path, columns=["dlp_action"]).column(0)
        for item in column.value_counts().to_pylist():
            action, n = item["values"], item["counts"]
            if action not in (None, "none"):
                counts[action] = counts.get(action, 0) + n
    return dict(sorted(counts.items()))


def commit(
    root: Path,
    commit_id: str,
    staged: list[StagedFile],
    *,
    action: str,
    removes: list[tuple[str, str, str]] | None = None,
    sources: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Commit staged files (and removals: ``(path, sha256, reason)``) in one manifest append.

    Idempotent: committing an id that is already committed does nothing and returns False, so a
    retried Beam bundle cannot commit twice."""
    root = Path(root)
    state = load_state(root)
    if commit_id in state.commits:
        return False
    for f in staged:
        staged_path = staging_dir(root, commit_id) / f.path
        if not staged_path.is_file():
            raise ArchiveError(f"staged file {staged_path} is missing; the commit cannot proceed")
        if f.path in state.live:
            raise ArchiveError(f"{f.path} is already in the archive; commit ids must be unique")
    now = now or dt.datetime.now(dt.UTC)
    entries: list[dict[str, Any]] = [{"op": "add", "commit": commit_id, **asdict(f)} for f in staged]
    for path, sha, reason in removes or []:
        entries.append({"op": "remove", "commit": commit_id, "path": path, "sha256": sha, "reason": reason})
    entries.append(
        {
            "op": "commit",
            "commit": commit_id,
            "time": now.isoformat(),
            "action": action,
            "files_added": len(staged),
            "files_removed": len(removes or []),
            "rows_added": {kind: sum(f.rows for f in staged if f.kind == kind) for kind in layout.KINDS},
            "sources": sources or [],
            **(extra or {}),
        }
    )
    if action == "ingest":  # chained with the rest: `verify` holds the run report's DLP counts to it
        entries[-1][DLP_ACTIONS] = staged_dlp_actions(root, commit_id, staged)
    # what the archive holds once this commit is in: readers trust a cache of it (the manifest
    # index) only when it has this digest
    entries[-1][LIVE_DIGEST] = live_digest_after(state, entries)
    _crash_point("after_staging")
    manifest_ledger(root).append(entries)
    _crash_point("after_manifest")
    _publish(root, commit_id, [f.path for f in staged], [r[0] for r in removes or []])
    with contextlib.suppress(ArchiveError, OSError):  # a cache: readers replay the manifest without it
        manifest_index.refresh(root)
    return True


def _publish(root: Path, commit_id: str, paths: list[str], removed: list[str]) -> None:
    for i, rel in enumerate(paths):
        staged = staging_dir(root, commit_id) / rel
        if staged.is_file():
            _move_into_place(root, staged, rel)
        if i == 0:
            _crash_point("mid_move")
    for rel in removed:
        with contextlib.suppress(FileNotFoundError):
            (root / rel).unlink()
    shutil.rmtree(staging_dir(root, commit_id), ignore_errors=True)


def recover(root: Path) -> RecoveryReport:
    """Bring the archive back to exactly its committed state. Call under :func:`archive_lock`,
    before any write. An archive holding files a newer Vigil wrote is refused, unchanged."""
    root = Path(root)
    refuse_links(root)
    report = RecoveryReport()
    ledger = manifest_ledger(root)
    state = load_state(root)
    reader.require_known_schemas(root, list(state.live.values()))
    if state.total_lines > state.committed_lines:
        if problem := tail_problem(root, state):
            raise ArchiveError(
                f"{ledger.path}: {problem}. Nothing was changed; run `vigil verify --archive "
                f"{root}` to see every problem and restore the manifest from a copy"
            )
        report.torn_lines_cut = ledger.repair_tail(state.committed_lines)
    else:  # a crash right after the commit entry's bytes, before its line end
        report.line_end_written = ledger.end_last_line()
    keep: set[str] = set()  # staging folders holding evidence: a staged file that is not what was committed
    for rel, f in state.live.items():
        if not (root / rel).is_file():
            staged = staging_dir(root, f.commit) / rel
            if staged.is_file() and file_sha256(staged) == f.sha256:
                _move_into_place(root, staged, rel)
                report.rolled_forward.append(rel)
            else:
                report.missing.append(rel)
                if staged.is_file():
                    keep.add(f.commit)
    for rel, removal in state.removed.items():
        # only what the newest commit retired and left, byte for byte: a retired file that came
        # back later, or altered, is evidence `vigil verify` names, not a leftover to tidy away
        if (
            rel not in state.live
            and (root / rel).is_file()
            and removal.get("commit") == state.last_commit
            and file_sha256(root / rel) == removal.get("sha256")
        ):
            (root / rel).unlink()
            report.deleted_removed.append(rel)
    staging_root = root / layout.STAGING
    interrupted = set()
    if staging_root.is_dir():
        for folder in sorted(staging_root.iterdir()):
            if folder.name in keep:
                continue
            if folder.name not in state.commits:
                report.rolled_back.append(folder.name)
            else:
                interrupted.add(folder.name)
            shutil.rmtree(folder, ignore_errors=True)  # committed ones were published above
    for commit_id in sorted(interrupted | {state.last_commit} if state.last_commit else interrupted):
        entry = state.commits[commit_id]
        if entry.get("action") == "ingest" and not (root / layout.RUNS / f"{commit_id}.json").exists():
            write_run_report(root, commit_id, recovered_run_report(entry))
            report.reports_written.append(commit_id)
    return report


def recovered_run_report(entry: dict[str, Any]) -> dict[str, Any]:
    """A run report rebuilt from a commit entry, for a run killed after its commit point (the
    counts the process held in memory are gone; what was committed is not)."""
    return {
        "recovered": True,
        "note": "the run was interrupted after its commit; this report was rebuilt from the manifest, "
        "so it has the committed rows and sources but not the read/duplicate counts",
        "commit": entry.get("commit"),
        "time": entry.get("time"),
        "rows_added": entry.get("rows_added"),
        "files_added": entry.get("files_added"),
        "sources": entry.get("sources"),
        "dlp_policy": entry.get("dlp_policy"),
        **({DLP_ACTIONS: entry[DLP_ACTIONS]} if DLP_ACTIONS in entry else {}),
    }


def _move_into_place(root: Path, staged: Path, rel: str) -> None:
    dst = root / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, dst)
    _fsync_dir(dst.parent)


def write_run_report(root: Path, commit_id: str, report: dict[str, Any]) -> Path:
    path = Path(root) / layout.RUNS / f"{commit_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path
