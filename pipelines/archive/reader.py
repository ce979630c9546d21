"""Reading the archive: only committed files, as the manifest lists them.

Files on disk that the manifest does not list (an attacker's, or a crashed run's) are never read;
``vigil verify`` reports them. Files of older schema versions lack newer columns; readers fill those
with nulls, so every caller sees the current schema. Files a newer Vigil wrote (a higher
``vigil.schema_version`` in their Parquet metadata, or columns this one does not know) are refused,
by readers and writers alike: conforming them would drop what this Vigil does not understand, and a
newer schema may have changed what a column means.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.archive import layout
from pipelines.archive.manifest import DataFile
from pipelines.archive.manifest_index import live_view
from pipelines.errors import ArchiveError, InputError
from pipelines.record import ARROW_SCHEMA, DEAD_LETTER_SCHEMA, SCHEMA_VERSION

SCHEMAS = {layout.RECORDS: ARROW_SCHEMA, layout.DEAD_LETTERS: DEAD_LETTER_SCHEMA}
#: the Parquet key-value metadata entry naming the schema version a file was written with
VERSION_KEY = "vigil.schema_version"


def written_version(metadata: Mapping[bytes, bytes] | None) -> int | None:
    """The schema version a file's Parquet metadata names; ``None`` when it names none (files
    compacted before compaction kept the metadata) or something that is not a number."""
    return parse_version((metadata or {}).get(VERSION_KEY.encode()))


def parse_version(value: bytes | str | None) -> int | None:
    """The value of a :data:`VERSION_KEY` entry as a number (``None``: absent or not a number)."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def require_known_schema(name: str, version: int | None, unknown: Sequence[str] = ()) -> None:
    """Refuse a file a newer Vigil wrote: its schema ``version`` is above this one's, or it has
    columns (``unknown``) this Vigil does not know. Reading it as the current schema would drop
    them (and a compaction would then delete the only copy), and writing beside it would mix this
    Vigil's files into an archive whose schema moved on."""
    if (version is None or version <= SCHEMA_VERSION) and not unknown:
        return
    found = [f"record schema {version}"] if version is not None and version > SCHEMA_VERSION else []
    if unknown:
        found.append(f"column(s) {', '.join(unknown)}")
    raise ArchiveError(
        f"{name} was written by a newer Vigil ({' and '.join(found)}; this Vigil knows schema versions "
        f"up to {SCHEMA_VERSION}): upgrade Vigil to read or write this archive; nothing was changed"
    )


def require_known_schemas(root: Path, files: Sequence[DataFile]) -> None:
    """:func:`require_known_schema` for committed files, by their Parquet footers (each file is
    read once per process: a committed file never changes under its name; missing files are left
    to the caller, which names them)."""
    for f in files:
        key = (str(Path(root).absolute() / f.path), f.sha256)
        if key in _known:
            continue
        try:
            schema = pq.read_schema(key[0])
        except (pa.ArrowInvalid, OSError):
            continue
        require_known_schema(f.path, written_version(schema.metadata), _unknown_columns(schema, f.kind))
        _known.add(key)


_known: set[tuple[str, str]] = set()  # (absolute path, SHA-256) of files found readable


def _unknown_columns(schema: pa.Schema, kind: str) -> list[str]:
    return [name for name in schema.names if name not in SCHEMAS[kind].names]


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
    """Give a table read from any schema version the current schema (or the asked columns). A
    column the file predates is all nulls, so its field is nullable here even where the current
    schema requires a value (a schema 1 record has no DLP verdict, not the verdict "none"):
    :func:`concat` joins such tables with those of current files."""
    schema = SCHEMAS[kind]
    arrays, fields = [], []
    for name in columns or schema.names:
        field = schema.field(name)
        if name in table.column_names:
            column = table.column(name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, type=field.type))
            field = field.with_nullable(True)
        fields.append(field)
    # the schema's metadata (its version) goes with it: a compacted file says what it holds
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=schema.metadata))


def concat(tables: list[pa.Table]) -> pa.Table:
    """Conformed tables as one: a field is nullable where one of them has it nullable."""
    return pa.concat_tables(tables, promote_options="default")


def read_file(
    path: Path | pa.NativeFile,
    kind: str = layout.RECORDS,
    columns: list[str] | None = None,
    *,
    name: str | None = None,
) -> pa.Table:
    """One archive file (a path, or its bytes already read: ``name`` says which file in messages)
    conformed to the current schema. A committed file that is gone, no longer Parquet or written by
    a newer Vigil is an :class:`ArchiveError` naming it."""
    name = name or (str(path) if isinstance(path, Path) else "an archive file")
    try:
        schema = pq.read_schema(path)
        require_known_schema(name, written_version(schema.metadata), _unknown_columns(schema, kind))
        wanted = columns or SCHEMAS[kind].names
        table = pq.read_table(path, columns=[c for c in wanted if c in schema.names])
    except (pa.ArrowInvalid, FileNotFoundError) as exc:
        what = "is missing" if isinstance(exc, FileNotFoundError) else f"cannot be read as Parquet ({exc})"
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
    return concat(tables)


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
