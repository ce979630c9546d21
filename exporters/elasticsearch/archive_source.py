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

from pipelines.archive import reader


def count_rows(archive: Path) -> int:
    """How many records a backfill will read, from the manifest (no data file is opened)."""
    return sum(f.rows for f in reader.live_files(reader.require_archive(archive)))


def iter_archive_rows(archive: Path) -> Iterator[dict[str, Any]]:
    """Every archived record as a row (timestamps as datetimes, maps as pairs: ``to_action`` copes)."""
    yield from reader.iter_rows(reader.require_archive(archive))
