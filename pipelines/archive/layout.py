"""Where things live inside an archive directory.

    ARCHIVE/
      records/event_month=YYYY-MM/ch=<channel>/part-<commit>-<n>.parquet
      deadletters/at_stage=<stage>/date=YYYY-MM-DD/part-<commit>-<n>.parquet
      _ledger/manifest.jsonl     every committed file, hash-chained (see ledger.py)
      _ledger/audit.jsonl        who searched or viewed what, hash-chained
      _ledger/manifest.index.json  live files as of a manifest line (a cache, see manifest_index.py)
      _staging/<commit>/...      files written but not yet committed (never read)
      _runs/<commit>.json        the report of each run (counts, options, duration)
      _lock                      held by the one process writing the archive

Partition folders use the ``key=value`` (Hive) convention so DuckDB and pyarrow read the tree as
it is. Their keys (``ch``, ``at_stage``) differ from the file columns they repeat (``channel``,
``stage``): a folder key equal to a file column makes ``pyarrow.parquet.read_table`` refuse the
folder (it guesses a dictionary type for the key, which clashes with the column's string type).
Archives written before this naming (``channel=``, ``stage=``) stay readable through the manifest;
:func:`partition_of` reports both spellings under the column names. Names starting with ``_`` are
bookkeeping, not data.

Records are partitioned by the month of their event date (UTC) and by channel. Months, not days:
a day of one channel is a few thousand records for most firms, and a search pays a fixed cost per
file it opens; measured on a million records over two months, day folders (413 files) made a
phrase search twice as slow as month folders (14 files). Inside a file rows are sorted by event
time in row groups of 64k rows whose min/max statistics let a date range skip the rest, so day
queries stay cheap. Large months split into several files of at most 500k rows.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path

RECORDS = "records"
DEAD_LETTERS = "deadletters"
LEDGER_DIR = "_ledger"
MANIFEST = f"{LEDGER_DIR}/manifest.jsonl"
AUDIT = f"{LEDGER_DIR}/audit.jsonl"
MANIFEST_INDEX = f"{LEDGER_DIR}/manifest.index.json"
STAGING = "_staging"
RUNS = "_runs"
LOCK = "_lock"
KINDS = (RECORDS, DEAD_LETTERS)


def new_commit_id(now: dt.datetime | None = None) -> str:
    """Sortable and unique: UTC time of the run plus a random suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


#: folder key -> the column it stands for
FOLDER_KEYS = {"ch": "channel", "at_stage": "stage"}


def record_file(event_month: str, channel: str, commit: str, n: int) -> str:
    return f"{RECORDS}/event_month={event_month}/ch={channel}/part-{commit}-{n:04d}.parquet"


def dead_letter_file(stage: str, date: str, commit: str, n: int) -> str:
    return f"{DEAD_LETTERS}/at_stage={stage}/date={date}/part-{commit}-{n:04d}.parquet"


_COMMIT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_data_path(rel_path: str) -> bool:
    """Whether a path the manifest gives (relative, POSIX) stays inside a data folder: what
    :func:`record_file` and :func:`dead_letter_file` make, with no ``..``, empty or absolute part.
    Anything else was written by hand, and following it would read or delete outside the archive."""
    parts = rel_path.split("/")
    return (
        len(parts) >= 2
        and parts[0] in KINDS
        and all(part not in ("", ".", "..") for part in parts)
        and not any(c in rel_path for c in "\\\0")
    )


def is_commit_id(commit: str) -> bool:
    """Whether ``commit`` can name a folder under ``_staging`` and a file under ``_runs``: one
    path part that is not ``.`` or ``..`` (what :func:`new_commit_id` makes fits)."""
    return _COMMIT_ID.fullmatch(commit) is not None


def partition_of(rel_path: str) -> dict[str, str]:
    """The ``key=value`` folder parts of a relative data file path, keyed by column name
    (``channel``, not the folder's ``ch``)."""
    pairs = (part.split("=", 1) for part in rel_path.split("/")[1:-1] if "=" in part)
    return {FOLDER_KEYS.get(key, key): value for key, value in pairs}


#: The files in the ledger folder: the manifest, the audit log, the manifest's index and the lock
#: files of the two logs.
LEDGER_FILES = (MANIFEST, AUDIT, MANIFEST_INDEX, f"{MANIFEST}.lock", f"{AUDIT}.lock")


def linked_bookkeeping(root: Path) -> list[str]:
    """The bookkeeping entries of ``root`` that are symbolic links: the folders, the ledger's files
    and each run report. Vigil never makes one; through one, a writer would create, move, cut or
    delete files outside the archive (a ``_staging`` link's target loses every folder in it, a
    manifest link's target is appended to and cut), and a log living outside is out of the
    archive's protection."""
    root = Path(root)
    linked = [name for name in (LEDGER_DIR, STAGING, RUNS, LOCK) if (root / name).is_symlink()]
    if LEDGER_DIR not in linked:
        linked += [name for name in LEDGER_FILES if (root / name).is_symlink()]
    if RUNS not in linked and (root / RUNS).is_dir():
        with os.scandir(root / RUNS) as entries:
            linked += sorted(f"{RUNS}/{e.name}" for e in entries if e.is_symlink())
    return linked


def is_archive(root: Path) -> bool:
    """Whether ``vigil run`` made ``root``: it has a manifest, or at least the lock every run
    leaves (a first run that found nothing to commit)."""
    return (root / MANIFEST).is_file() or (root / LOCK).is_file()


def not_an_archive(root: Path) -> str:
    """What to tell someone who pointed a command at a folder :func:`is_archive` refuses."""
    return f"no Vigil archive at {root} (no {MANIFEST}); pass the folder `vigil run` wrote"


def data_files_on_disk(root: Path, unlistable: list[tuple[str, str]] | None = None) -> list[str]:
    """Every file under the data folders, as relative POSIX paths (what verify compares). A link
    to a folder is listed itself, not followed: readers would follow it into data the manifest
    does not know, so it is something added behind the manifest's back. A folder that cannot be
    listed goes into ``unlistable`` as (relative path, why), never skipped unsaid."""
    found: list[str] = []

    def refused(exc: OSError) -> None:
        if unlistable is not None and exc.filename is not None:
            rel = Path(exc.filename).relative_to(root).as_posix()
            unlistable.append((rel, exc.strerror or str(exc)))

    for kind in KINDS:
        base = root / kind
        if base.is_symlink():
            found.append(kind)
            continue
        if not base.exists():
            continue
        for folder, dirs, files in os.walk(base, onerror=refused):
            here = Path(folder)
            found.extend((here / d).relative_to(root).as_posix() for d in dirs if (here / d).is_symlink())
            found.extend((here / f).relative_to(root).as_posix() for f in files)
    return sorted(found)
