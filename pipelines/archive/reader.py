"""Reading the archive: only committed files, as the manifest lists them.

Files on disk that the manifest does not list (an attacker's, or a crashed run's) are never read;
``vigil verify`` reports them. Files of older schema versions lack newer columns; readers fill those
with nulls, so every caller sees the current schema. Files a newer Vigil wrote (a higher
``vigil.schema_version`` in their Parquet metadata, or columns this one does not know) are refused,
by readers and writers alike: conforming them would drop what this Vigil does not understand, and a
newer schema may have changed what a column means.

Readers race with writers: a compaction (``vigil compact``, or ``vigil run --follow`` between its
batches) commits ``remove`` entries and then deletes the files it merged, so a reader that listed
the live files just before may find one gone. :func:`read_consistently` is the one place that
tells that race from damage: a listed file that is missing makes it read the manifest again, and
when a newer commit retired the file, the read starts over with the new listing (at most
:data:`READ_ATTEMPTS` reads), so a result is always one committed state. Only a file the
manifest still lists is reported missing, as damage. :func:`iter_tables` opens every listed file
before it reads any, so a compaction committed while its rows stream out cannot take a file from
under it.
"""

from __future__ import annotations

import errno
import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.archive import layout
from pipelines.archive.manifest import DataFile
from pipelines.archive.manifest_index import live_view
from pipelines.errors import ArchiveError, InputError
from pipelines.record import ARROW_SCHEMA, DEAD_LETTER_SCHEMA, SCHEMA_VERSION, parties_of

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
        require_known_schema(f.path, written_version(schema.metadata), unknown_columns(schema, f.kind))
        _known.add(key)


_known: set[tuple[str, str]] = set()  # (absolute path, SHA-256) of files found readable


def unknown_columns(schema: pa.Schema, kind: str) -> list[str]:
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


#: how many times a reader reads, each on a newer listing, while commits retire files it listed
READ_ATTEMPTS = 3
#: how long a reader waits before reading again a file a commit is still moving into place (s)
PUBLISH_WAIT = 0.05

T = TypeVar("T")


class MissingFileError(ArchiveError):
    """Committed files a read did not find (``paths``, as the read named them: the archive folder
    joined with the manifest path). :func:`read_consistently` decides whether that is a writer's
    compaction the read raced with or damage; its message is the damage one."""

    def __init__(self, paths: Sequence[str]) -> None:
        super().__init__(missing_message(paths[0]))
        self.paths = tuple(paths)


def missing_message(name: str, what: str = "is missing") -> str:
    return (
        f"{name} {what}: the manifest lists it, so it was damaged, replaced or removed. Run "
        "`vigil verify` to see every problem and restore the file from a backup"
    )


def require_recorded_sizes(root: Path, files: Iterable[DataFile]) -> None:
    """Refuse to read committed files whose size is not the one the manifest recorded: a file
    swapped with another, replaced by a link to one, cut or added to. Readers do not hash what
    they read (``vigil verify`` does), but a size costs one ``stat``. A file that is missing or
    cannot be looked at is left to the read, which names it (a compaction may have retired it)."""
    for f in files:
        name = str(Path(root) / f.path)
        try:
            _require_no_link(name)
            size = os.stat(name).st_size
        except OSError:
            continue
        _require_recorded_size(name, f, size)


def _require_no_link(name: str) -> None:
    """Vigil writes files, never links: a link in a committed file's place, even to a copy of the
    same size, was put there behind the manifest's back."""
    if os.path.islink(name):
        raise ArchiveError(
            f"{name} is a symbolic link where the manifest recorded a file: it was replaced behind "
            "the manifest's back, so nothing was shown. Run `vigil verify` to see every problem and "
            "restore the file from a backup"
        )


def _require_recorded_size(name: str, f: DataFile, size: int) -> None:
    if size != f.bytes:
        raise ArchiveError(
            f"{name} is {size:,} bytes where the manifest recorded {f.bytes:,}: it was altered or "
            "replaced behind the manifest's back, so nothing was shown. Run `vigil verify` to see every "
            "problem and restore the file from a backup"
        )


def listed_again(root: Path, missing: Sequence[str], newer: Sequence[DataFile]) -> list[DataFile]:
    """The files of ``missing`` (paths as a read named them) that the ``newer`` listing still has:
    none when a commit after the read's listing retired them all (the read raced a compaction)."""
    by_name = {str(Path(root) / f.path): f for f in newer}
    return [by_name[name] for name in missing if name in by_name]


def read_consistently(archive: Path, kind: str, read: Callable[[list[DataFile]], T]) -> T:
    """``read(files)`` over the live files of ``kind``, retried on a newer listing when a file it
    did not find (:class:`MissingFileError`) was retired by a commit after its listing, or was
    being moved into place by the commit that added it (in place by now, or still in that commit's
    staging folder: it waits :data:`PUBLISH_WAIT` for it). A file the manifest still lists and no
    writer is moving into place is damage: the error ``read`` raised. ``read`` must not show or
    log anything: it may run again."""
    root = Path(archive)
    files = live_files(root, kind)
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return read(files)
        except MissingFileError as exc:
            newer = live_files(root, kind)
            still = listed_again(root, exc.paths, newer)
            staged = [f for f in still if _staged(root, f)]
            if any(f not in staged and not (root / f.path).is_file() for f in still):
                raise  # listed, not in place and not being moved there: damage
            if attempt == READ_ATTEMPTS:
                if staged and len(staged) == len(still):
                    raise ArchiveError(stopped_publish_message(root, staged[0])) from None
                if still:
                    raise
                raise ArchiveError(
                    f"the archive changed {READ_ATTEMPTS} times while this read it (each time a newer "
                    f"commit retired files it had listed, e.g. {exc.paths[0]}); nothing was shown: "
                    "run the command again"
                ) from None
            if staged:  # a writer between its manifest append and moving the file into place
                time.sleep(PUBLISH_WAIT * attempt)
            files = newer
    raise AssertionError("unreachable")


def stopped_publish_message(root: Path, f: DataFile) -> str:
    """What a reader says when a committed file is still in its commit's staging folder: a writer
    was stopped while moving files into place (``vigil verify`` notes it); the next writer ends that."""
    return (
        f"{Path(root) / f.path} is still in {layout.STAGING}/{f.commit}/: the commit that added it "
        "was stopped while moving its files into place, so nothing was shown. Unless a `vigil run` "
        f"is writing this archive right now, run `vigil compact --archive {root}` (or the next "
        "`vigil run`) to finish that commit, then run this command again"
    )


def _staged(root: Path, f: DataFile) -> bool:
    """Whether the commit that added ``f`` still has it in its staging folder (a writer between
    its manifest append and moving the file into place, or one killed there)."""
    return (Path(root) / layout.STAGING / f.commit / f.path).is_file()


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


#: The columns ``parties`` is derived from (:func:`pipelines.record.parties_of`).
PARTY_SOURCES = ("sender", "recipients", "participants")


def with_parties(table: pa.Table) -> pa.Table:
    """``table`` with the ``parties`` search keys of each row, for a file written before records
    carried them (November 2026 development archives): derived as ingest derives them today, so a
    participant search or a backfill to Elasticsearch finds those records like any other."""
    rows = table.select(list(PARTY_SOURCES)).to_pylist()
    parties = pa.array([parties_of(row) for row in rows], type=SCHEMAS[layout.RECORDS].field("parties").type)
    return table.append_column("parties", parties)


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
        require_known_schema(name, written_version(schema.metadata), unknown_columns(schema, kind))
        wanted = columns or SCHEMAS[kind].names
        derive = kind == layout.RECORDS and "parties" in wanted and "parties" not in schema.names
        extra = [c for c in PARTY_SOURCES if c not in wanted] if derive else []
        table = pq.read_table(path, columns=[c for c in [*wanted, *extra] if c in schema.names])
        if derive:
            table = with_parties(table).drop_columns(extra)
    except FileNotFoundError:
        raise MissingFileError([name]) from None
    except pa.ArrowInvalid as exc:
        raise ArchiveError(missing_message(name, f"cannot be read as Parquet ({exc})")) from None
    except OSError as exc:
        if exc.errno is not None:  # the system's own error (permission, disk): said as such upstream
            raise
        # Arrow's word for bytes that do not decode ("Couldn't deserialize thrift" in a damaged
        # footer, "Unexpected end of stream" in a damaged page)
        said = " ".join("".join(ch if ch.isprintable() else " " for ch in str(exc)).split())
        raise ArchiveError(missing_message(name, f"cannot be read as Parquet ({said})")) from None
    return _conform(table, kind, columns)


def iter_tables(
    archive: Path, kind: str = layout.RECORDS, columns: list[str] | None = None
) -> Iterator[tuple[DataFile, pa.Table]]:
    """The live files of ``kind``, one table each, all of one committed state: every file is opened
    before the first is read (:func:`read_consistently` lists again when a compaction retired one
    first), and an open file stays readable when a later compaction deletes it."""
    root = Path(archive)
    opened = read_consistently(root, kind, lambda files: _open_all(root, files))
    try:
        for f, handle in opened:
            if handle is None:  # past the files this process may hold open: read it by its path
                yield f, _read_late(root, f, kind, columns)
                continue
            with handle:
                table = read_file(handle, kind, columns, name=str(root / f.path))
            yield f, table
    finally:  # a reader that stopped early leaves nothing open (closing twice is harmless)
        for _, handle in opened:
            if handle is not None:
                handle.close()


def _open_all(root: Path, files: list[DataFile]) -> list[tuple[DataFile, pa.NativeFile | None]]:
    """Every file opened (a file missing is a :class:`MissingFileError`, none left open), up to
    :func:`_handle_budget` of them: the rest (``None``) are read by path when their turn comes."""
    opened: list[tuple[DataFile, pa.NativeFile | None]] = []
    budget = _handle_budget()
    try:
        for f in files:
            handle = None
            if len(opened) < budget:
                try:
                    handle = pa.OSFile(str(root / f.path))
                except FileNotFoundError:
                    raise MissingFileError([str(root / f.path)]) from None
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE):
                        budget = len(opened)  # else read_file names the problem when it reads it
            opened.append((f, handle))
            if handle is not None:
                _require_no_link(str(root / f.path))
                _require_recorded_size(str(root / f.path), f, handle.size())
    except BaseException:
        for _, handle in opened:
            if handle is not None:
                handle.close()
        raise
    return opened


def _handle_budget() -> int:
    """How many archive files a read may hold open: a quarter of the process's limit, so that
    imports, DuckDB and an Elasticsearch client's connections still get theirs."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft // 4


def _read_late(root: Path, f: DataFile, kind: str, columns: list[str] | None) -> pa.Table:
    """A file read after others were already returned: a file a newer commit retired can no longer
    be read again on the new listing, so that is said as what it is, not as damage."""
    try:
        return read_file(root / f.path, kind, columns)
    except MissingFileError as exc:
        if listed_again(root, exc.paths, live_files(root, kind)):
            raise
        raise ArchiveError(
            f"{f.path} was retired by a newer commit (a compaction) while this read the archive, which "
            "has more files than this process may hold open; run the command again (or `vigil compact` "
            "first, which leaves fewer files)"
        ) from None


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
