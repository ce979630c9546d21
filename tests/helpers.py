"""Shared test helpers: running the ingest pipeline and fingerprinting an archive."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from pipelines.archive import layout, reader
from pipelines.ingest.run import RunOptions, RunSummary, run

NOW = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
#: ``vigil`` as a user's shell runs it: a fresh process through the console entry point
VIGIL = [sys.executable, "-c", "from pipelines.cli import main; main()"]
#: the user :func:`as_another_user` runs commands as, when the tests run as root
NOBODY = 65534


def as_another_user() -> list[str]:
    """A command prefix that runs a command as a user the permission bits apply to: as root,
    nobody (through util-linux's setpriv; the test is skipped without it), otherwise the current
    user."""
    if os.geteuid() != 0:
        return []
    import pytest

    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permission bits cannot be tested")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def shared_tmp() -> Path:
    """A new folder the user of :func:`as_another_user` owns (pytest's own is private to root);
    the caller removes it."""
    base = Path(tempfile.mkdtemp(prefix="vigil-perm-", dir="/tmp"))
    if os.geteuid() == 0:
        os.chown(base, NOBODY, NOBODY)
    return base


def ingest(input_dir: Path, archive: Path, **kw: Any) -> RunSummary:
    kw.setdefault("now", NOW)
    kw.setdefault("show_progress", False)
    return run(RunOptions(input=str(input_dir), archive=archive, **kw))


def fingerprint(archive: Path) -> dict[str, Any]:
    """What an archive holds, independent of file layout and of when it was ingested."""
    records = reader.read_table(archive).drop_columns(["ingest_time"]).sort_by("record_id")
    dead = reader.read_table(archive, layout.DEAD_LETTERS).drop_columns(["dead_letter_time"])
    return {
        "records": records.to_pylist(),
        "dead_letters": sorted(dead.to_pylist(), key=lambda r: r["dead_letter_id"]),
    }


def duck_count(archive: Path, where: str = "true") -> int:
    glob = f"{archive}/{layout.RECORDS}/**/*.parquet"
    sql = f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true) WHERE {where}"
    return duckdb.connect().execute(sql).fetchone()[0]
