"""Where ``vigil es index`` reads records from, and where its dead letters go.

The Parquet archive is the system of record; Elasticsearch is rebuilt from it. Records are read
through ``pipelines.archive.reader``: only files the archive's manifest lists, in the current
schema (columns newer than a file come back as nulls, which the document keeps as nulls).

Dead letters of a backfill go to a JSON Lines file next to the archive, not into it: the archive
only changes through its own writer and ledger. One ``DeadLetter`` per line, ``raw`` as text.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pipelines.archive import layout, reader
from pipelines.errors import InputError
from pipelines.record import from_micros


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


def dead_letter_path(archive: Path, now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    archive = archive.resolve()
    return archive.parent / f"{archive.name}.es-dead-letters-{stamp}.jsonl"


class DeadLetterFile:
    """Appends dead-letter rows as JSON Lines; the file is created on the first letter only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle: IO[str] | None = None

    def write(self, letters: list[dict[str, Any]]) -> None:
        if not letters:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        for letter in letters:
            self._handle.write(json.dumps(_jsonable(letter), ensure_ascii=False) + "\n")
            self.count += 1
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> DeadLetterFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _jsonable(letter: dict[str, Any]) -> dict[str, Any]:
    out = dict(letter)
    raw = out.get("raw")
    if isinstance(raw, bytes):
        out["raw"] = raw.decode("utf-8", "replace")  # the raw document is JSON Vigil wrote: UTF-8
    when = out.get("dead_letter_time")
    if isinstance(when, int):
        out["dead_letter_time"] = from_micros(when).isoformat()
    return out
