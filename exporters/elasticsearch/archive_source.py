"""Where ``vigil es index`` reads records from.

The Parquet archive is the system of record; Elasticsearch is rebuilt from it. Records are read
through ``pipelines.archive.reader``: only files the archive's manifest lists, in the current
schema (columns newer than a file come back as nulls, which the document keeps as nulls).

Dead letters of a backfill go into the archive's own dead-letter store through
``pipelines.archive.deadletters.append`` (committed in the manifest like ingest's).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.archive import layout, reader
from pipelines.errors import InputError


def _check(archive: Path) -> None:
    if not (archive / layout.MANIFEST).is_file():
        raise InputError(
            f"{archive} is not a Vigil archive (no {layout.MANIFEST}): check --archive, it is the folder "
            "`vigil run --archive` wrote"
        )


def count_rows(archive: Path) -> int:
    """How many records a backfill will read, from the manifest (no data file is opened)."""
    _check(archive)
    return sum(f.rows for f in reader.live_files(archive))


def iter_archive_rows(archive: Path) -> Iterator[dict[str, Any]]:
    """Every archived record as a row (timestamps as datetimes, maps as pairs: ``to_action`` copes)."""
    _check(archive)
    yield from reader.iter_rows(archive)
