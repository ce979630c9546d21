"""Reading the archive: only committed files, as the manifest lists them.

Files on disk that the manifest does not list (an attacker's, or a crashed run's) are never read;
``vigil verify`` reports them. Files of older schema versions lack newer columns; readers fill those
with nulls, so every caller sees the current schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.archive import layout
from pipelines.archive.manifest import DataFile
from pipelines.archive.manifest_index import live_view
from pipelines.errors import ArchiveError, InputError
from pipelines.record import ARROW_SCHEMA, DEAD_LETTER_SCHEMA

SCHEMAS = {layout.RECORDS: ARROW_SCHEMA, layout.DEAD_LETTERS: DEAD_LETTER_SCHEMA}


def require_archive(archive: Path) -> Path:
    """``archive`` as a Path, or an error naming what is wrong: a mistyped path must not read as an
    archive with nothing in it (no hits, nothing to replay) or collect an audit log of its own."""
    root = Path(archive)
    if not root.is_dir():
        raise InputError(f"--archive {root}: no such folder; pass the folder `vigil run` wrote")
    if not layout.is_archive(root):
        raise InputError(layout.not_an_archive(root))
    return root


def live_files(archive: Path, kind: str = layout.RECORDS) -> list[DataFile]:
    return live_view(Path(archive)).files(kind)


def live_paths(archive: Path, kind: str = layout.RECORDS) -> list[Path]:
    root = Path(archive)
    return [root / f.path for f in live_files(root, kind)]


def _conform(table: pa.Table, kind: str, columns: list[str] | None) -> pa.Table:
    """Give a table read from any schema version exactly the current schema (or the asked columns)."""
    schema = SCHEMAS[kind]
    wanted = columns or schema.names
    arrays = []
    for name in wanted:
        target = schema.field(name).type
        if name in table.column_names:
            column = table.column(name)
            arrays.append(column if column.type == target else column.cast(target))
        else:
            arrays.append(pa.nulls(table.num_rows, type=target))
    return pa.Table.from_arrays(arrays, schema=pa.schema([schema.field(n) for n in wanted]))


def read_file(
    path: Path | pa.NativeFile, kind: str = layout.RECORDS, columns: list[str] | None = None
) -> pa.Table:
    """One archive file (a path, or its bytes already read) conformed to the current schema. A
    committed file that is gone or no longer Parquet is an :class:`ArchiveError` naming it."""
    try:
        present = pq.read_schema(path).names
        wanted = columns or SCHEMAS[kind].names
        table = pq.read_table(path, columns=[c for c in wanted if c in present])
    except (pa.ArrowInvalid, FileNotFoundError) as exc:
        what = "is missing" if isinstance(exc, FileNotFoundError) else f"cannot be read as Parquet ({exc})"
        name = path if isinstance(path, Path) else "an archive file"
        raise ArchiveError(
            f"{name} {what}: the manifest lists it, so it was damaged, replaced or removed. Run "
            "`vigil verify` to see every problem and restore the file from a backup"
        ) from None
    return _conform(table, kind, columns)


def iter_tables(
    archive: Path, kind: str = layout.RECORDS, columns: list[str] | None = None
) -> Iterator[tuple[DataFile, pa.Table]]:
    root = Path(archive)
    for f in live_files(root, kind):
        yield f, read_file(root / f.path, kind, columns)


def read_table(archive: Path, kind: str = layout.RECORDS, columns: list[str] | None = None) -> pa.Table:
    tables = [t for _, t in iter_tables(archive, kind, columns)]
    if not tables:
        schema = SCHEMAS[kind]
        return (
            schema.empty_table()
            if columns is None
            else pa.schema([schema.field(c) for c in columns]).empty_table()
        )
    return pa.concat_tables(tables)


def iter_rows(
    archive: Path, columns: list[str] | None = None, kind: str = layout.RECORDS
) -> Iterator[dict[str, Any]]:
    """Rows of the committed files as dicts (timestamps as aware datetimes, maps as lists of pairs)."""
    for _, table in iter_tables(archive, kind, columns):
        for batch in table.to_batches(max_chunksize=8192):
            yield from batch.to_pylist()


def record_hashes(path: Path) -> dict[str, str]:
    """``record_id -> content_sha256`` of one record file."""
    table = read_file(path, layout.RECORDS, ["record_id", "content_sha256"])
    return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


def record_index(archive: Path) -> dict[str, str]:
    """``record_id -> content_sha256`` of everything archived: what de-duplication checks against
    (:mod:`pipelines.archive.record_index` keeps one up to date between commits)."""
    root = Path(archive)
    index: dict[str, str] = {}
    for f in live_files(root):
        index.update(record_hashes(root / f.path))
    return index


def dead_letter_ids(archive: Path) -> set[str]:
    ids: set[str] = set()
    for _, table in iter_tables(archive, layout.DEAD_LETTERS, ["dead_letter_id"]):
        ids.update(table.column(0).to_pylist())
    return ids
