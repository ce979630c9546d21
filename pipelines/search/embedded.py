"""The embedded engine: DuckDB straight over the archive's committed Parquet files.

No second store and no index. A search prunes the manifest's live files by partition
(``event_month``, ``channel``), then runs two statements:

1. over the pruned files, reading only the columns the filters and the text need, where every
   match is (file, row number) and its event time: the total is their number, and a top-k of the
   times (in Arrow) tells which matches can be on the page. Record ids are not read here: decoding
   a million of them costs more than the rest of a phrase search's bookkeeping;
2. over just the files holding those candidates, their records with the columns a hit shows;
   ties in event time are broken by record id, as Elasticsearch's sort does.

Files are read as they are and, only when DuckDB refuses because schema versions are mixed,
unioned by name (see :data:`pipelines.search.sql.SOURCE_UNION`). Parquet footers are cached in
the connection, so repeated searches in one process skip re-reading them. A file a newer Vigil
wrote is refused (:func:`pipelines.archive.reader.require_known_schema`), checked once per file
and connection from the footer the statement reads anyway.

The CRM role never sees blocked records nor DLP's notices about them, and searches the redacted
text; records with DLP findings whose CRM view differs from it (a policy may withhold it or redact
it its own way) are matched against the CRM view itself, both ways, before counting and paging.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.archive import layout
from pipelines.archive.manifest import DataFile
from pipelines.archive.reader import (
    MissingFileError,
    read_consistently,
    require_known_schema,
    unknown_columns,
    written_version,
)
from pipelines.errors import ArchiveError, QueryError
from pipelines.record import ARROW_SCHEMA, parties_of
from pipelines.search import sql
from pipelines.search import text as textmod
from pipelines.search.access import (
    CRM_FIELDS,
    AccessRole,
    HeldOut,
    Identity,
    check_query,
    crm_decided,
    may_show_a_release,
)
from pipelines.search.query import Query
from pipelines.search.results import HIT_FIELDS, TEXT_FIELDS, Page, SearchResult, hit_from_row

ENGINE = "embedded"
_local = threading.local()
# A typed, empty table in the current record schema, unioned by name with files that all predate
# a column (schema 1 has no DLP fields), so the column exists, as nulls, whatever the files hold.
_SCHEMA_TABLE = "_vigil_record_schema"


def _parties_of_json(parties: str) -> list[str]:
    return parties_of(json.loads(parties))


def connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection (in memory, Parquet footers cached between statements)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("LOAD parquet")
        con.execute("SET parquet_metadata_cache = true")
        con.create_function(sql.WIDTH_FOLD, textmod.width_fold, ["VARCHAR"], "VARCHAR", side_effects=False)
        con.create_function(
            sql.PARTIES_OF, _parties_of_json, ["VARCHAR"], duckdb.list_type("VARCHAR"), side_effects=False
        )
        con.register("_vigil_empty", ARROW_SCHEMA.empty_table())
        con.execute(f"CREATE TABLE {_SCHEMA_TABLE} AS SELECT * FROM _vigil_empty")
        con.unregister("_vigil_empty")
        _local.con = con
        _local.known = set()
    return con


def _require_known_schemas(paths: list[str]) -> None:
    """Refuse the statement when one of ``paths`` was written by a newer Vigil: its columns may
    mean something else now, and a column this Vigil does not know would be silently left out."""
    known: set[str] = _local.known
    unchecked = [p for p in paths if p not in known]
    if not unchecked:
        return
    for path in unchecked:  # one footer read per file and process: its version and its columns
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError):
            continue  # the read names it
        require_known_schema(path, written_version(schema.metadata), unknown_columns(schema, layout.RECORDS))
    known.update(unchecked)


def _schema_refusal(exc: Exception) -> bool:
    text = str(exc).lower()
    return (isinstance(exc, duckdb.BinderException) and "not found" in text) or (
        isinstance(exc, duckdb.InvalidInputException) and "schema mismatch" in text
    )


def interrupted_query(exc: BaseException) -> bool:
    """Whether DuckDB stopped a statement for a Ctrl-C. It does not raise KeyboardInterrupt: it
    says "Query interrupted" (a RuntimeError or its InterruptException), or, when the signal came
    while our Python function ran inside the statement, names KeyboardInterrupt in an
    InvalidInputException."""
    return (
        isinstance(exc, duckdb.InterruptException)
        or (isinstance(exc, RuntimeError) and str(exc).strip() == "Query interrupted")
        or (isinstance(exc, duckdb.InvalidInputException) and "KeyboardInterrupt" in str(exc))
    )


@contextlib.contextmanager
def _ctrl_c_interrupts(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """While a statement runs, Ctrl-C interrupts it through DuckDB's own ``interrupt()`` and then
    raises KeyboardInterrupt. Left to Python's handler, a Ctrl-C that lands while DuckDB runs our
    Python function (:data:`sql.WIDTH_FOLD`) is lost about one time in three and the statement
    runs on. Only where Python's default handler is in place, in the main thread: a command that
    handles signals itself (``vigil run``) keeps its own handling."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    pressed = threading.Event()

    def on_ctrl_c(signum: int, frame: Any) -> None:
        pressed.set()
        con.interrupt()

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    except Exception as exc:
        if pressed.is_set() or interrupted_query(exc):
            raise KeyboardInterrupt from None  # the CLI says "Aborted." (exit 130)
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed.is_set():  # it came as the statement finished: stop all the same
        raise KeyboardInterrupt


def _unreadable(exc: Exception) -> ArchiveError:
    return ArchiveError(
        f"the archive could not be read ({str(exc).strip()}). A committed file may be damaged or "
        "replaced: run `vigil verify` to see every problem"
    )


def _execute(statement: str, params: dict[str, Any], *, arrow: bool = False) -> Any:
    """Run a statement written against :data:`sql.SOURCE` (rows as tuples, or an Arrow table),
    widening the source when the files' schemas differ (union by name), then when none of them
    has a column (typed empty schema)."""
    con = connection()
    attempts = [
        statement,
        statement.replace(
            sql.SOURCE,
            f"(SELECT * REPLACE ({sql.PARTIES}), file_index, file_row_number FROM {sql.SOURCE_UNION})",
        ),
        statement.replace(
            sql.SOURCE,
            f"(SELECT * REPLACE ({sql.PARTIES}) FROM (SELECT *, file_index, file_row_number "
            f"FROM {sql.SOURCE_UNION} UNION ALL BY NAME FROM {_SCHEMA_TABLE}))",
        ),
    ]
    for i, attempt in enumerate(attempts):
        try:
            with _ctrl_c_interrupts(con):
                if i == 0:
                    _require_known_schemas(params["files"])
                if arrow:
                    return con.sql(attempt, params=params).to_arrow_table()
                return con.execute(attempt, params).fetchall()
        except (duckdb.BinderException, duckdb.InvalidInputException) as exc:
            if "pattern too large" in str(exc):  # RE2: the query, not the archive
                raise QueryError(
                    "the query is too large to search on the embedded engine; search for a "
                    "shorter, distinctive part of it"
                ) from None
            if i == len(attempts) - 1 or not _schema_refusal(exc):
                raise _unreadable(exc) from None
        except duckdb.IOException as exc:
            if missing := [path for path in params["files"] if not os.path.exists(path)]:
                # a compaction may have retired it since the listing: read_consistently decides
                raise MissingFileError(missing) from None
            raise _unreadable(exc) from None
        except duckdb.Error as exc:  # e.g. a damaged footer: "don't know what type"
            raise _unreadable(exc) from None
    raise AssertionError("unreachable")


def select_rows(
    archive: Path,
    files: Iterable[DataFile] | Iterable[str],
    where: str,
    params: dict[str, Any],
    columns: Iterable[str],
    order: str = "",
) -> list[dict[str, Any]]:
    """Rows of ``files`` (already pruned; manifest entries or absolute paths) matching ``where``."""
    cols = list(dict.fromkeys(columns))
    # manifest entries as files_param binds them (their recorded sizes checked)
    paths = [f if isinstance(f, str) else sql.files_param(archive, [f])[0] for f in files]
    if not paths:
        return []
    statement = f"SELECT {', '.join(cols)} FROM {sql.SOURCE} WHERE {where}"
    if order:
        statement += f" ORDER BY {order}"
    return [dict(zip(cols, row, strict=True)) for row in _execute(statement, {**params, "files": paths})]


def search(archive: Path, query: Query, identity: Identity, page: Page | None = None) -> SearchResult:
    """Run ``query`` for ``identity`` over the archive: one page of hits and the total."""
    page = page or Page()
    started = time.perf_counter()
    root = Path(archive)
    if not root.is_dir():
        raise ArchiveError(f"{root} is not an archive folder; pass --archive DIR")
    check_query(query, identity)  # a query the role may not ask is refused, files or not
    # one committed state: a compaction that retires a listed file makes the search start over
    return read_consistently(
        root, layout.RECORDS, lambda live: _search(root, live, query, identity, page, started)
    )


def _search(
    root: Path, live: list[DataFile], query: Query, identity: Identity, page: Page, started: float
) -> SearchResult:
    files = sql.prune(live, query)
    if not files:
        return SearchResult(query, page, 0, [], ENGINE, _ms(started))
    compiled = sql.compile_query(
        query,
        text_field=identity.search_field,
        exclude_blocked=not identity.sees_dlp,
        decided=_crm_decided(root, files, query, identity),
        held_out=_held_out(root, live, query, identity),
    )
    paths = sql.files_param(root, files)
    matched = _execute(
        f"SELECT file_index, file_row_number, event_time FROM {sql.SOURCE} WHERE {compiled.where}",
        {**compiled.params, "files": paths},
        arrow=True,
    )
    rows = _page_rows(matched, paths, page)
    hits = [hit_from_row(row, query, identity) for row in rows]
    return SearchResult(query, page, matched.num_rows, hits, ENGINE, _ms(started), query.caveats())


def _page_rows(matched: pa.Table, paths: list[str], page: Page) -> list[dict[str, Any]]:
    """The page's records, in the total order (event time, then record id).

    ``matched`` locates every match (file, row, event time) but, to keep the scan light, has no
    record ids. Only the matches whose event time lies between the page's first and last ones
    can be on the page; those are read in full, ties broken by record id, and the page cut out."""
    end = min(page.offset + page.size, matched.num_rows)
    if end <= page.offset:
        return []
    order = "descending" if page.newest_first else "ascending"
    times = matched.column("event_time")
    top = pc.take(times, pc.select_k_unstable(matched, k=end, sort_keys=[("event_time", order)]))
    top = pc.take(top, pc.array_sort_indices(top, order=order))
    first, last = top[page.offset], top[end - 1]
    low, high = (last, first) if page.newest_first else (first, last)
    inside = pc.and_(pc.greater_equal(times, low), pc.less_equal(times, high))
    before = pc.sum(pc.greater(times, first) if page.newest_first else pc.less(times, first)).as_py() or 0
    candidates = matched.filter(inside)
    holding = sorted({paths[i] for i in candidates.column("file_index").to_pylist()})
    position = {path: n for n, path in enumerate(holding)}
    keys = [
        (position[paths[f]] << 32) + r
        for f, r in zip(
            candidates.column("file_index").to_pylist(),
            candidates.column("file_row_number").to_pylist(),
            strict=True,
        )
    ]
    # the time bounds let DuckDB skip every row group outside them (files are sorted by time and
    # carry min/max statistics), so only the page's neighbourhood is decoded
    rows = select_rows(
        Path("/"),
        holding,
        "event_time BETWEEN $low AND $high"
        " AND list_contains($keys, (file_index::BIGINT << 32) + file_row_number)",
        {"keys": keys, "low": low.as_py(), "high": high.as_py()},
        [*HIT_FIELDS, *TEXT_FIELDS],
    )
    rows.sort(key=lambda r: (r["event_time"], r["record_id"]), reverse=page.newest_first)
    start = page.offset - before
    return rows[start : start + page.size]


def _held_out(root: Path, live: list[DataFile], query: Query, identity: Identity) -> HeldOut:
    """For a role that does not see DLP verdicts, the blocked held messages a release event may
    name (:data:`pipelines.search.access.HeldOut`): read from every live file of the query's
    channels, whatever its dates (a message may be held for days before its release). Held ones
    only: a handful, where blocked records run to thousands in a large archive, and each one
    is tested on every record the search reads."""
    if identity.sees_dlp or not may_show_a_release(query):
        return frozenset()
    files = sql.prune(live, Query(channels=query.channels))
    if not files:
        return frozenset()
    rows = _execute(
        f"SELECT DISTINCT org, channel, event_id FROM {sql.SOURCE} WHERE {sql.BLOCKED_HELD}",
        {"files": sql.files_param(root, files)},
    )
    return frozenset((str(org), str(channel), str(event_id)) for org, channel, event_id in rows)


def _crm_decided(root: Path, files: list[DataFile], query: Query, identity: Identity) -> sql.Decided | None:
    """For the CRM role, the records whose CRM view differs from the redacted text, matched on
    that view (:func:`pipelines.search.access.crm_decided`)."""
    if identity.role is not AccessRole.CRM or query.text is None:
        return None
    compiled = sql.compile_query(replace(query, text=None), exclude_blocked=True)
    candidates = select_rows(
        root,
        files,
        f"{compiled.where} AND coalesce(dlp_action, 'none') <> 'none'",
        compiled.params,
        CRM_FIELDS,
    )
    decided: sql.Decided = crm_decided(candidates, query, identity)
    return decided


def closest_parties(archive: Path, query: Query, identity: Identity, limit: int = 5) -> dict[str, list[str]]:
    """For each ``participant:`` of ``query`` that no record the query could otherwise match has
    (its dates, channels and other filters, and only records the caller's role may see: the CRM
    role never sees blocked ones), up to ``limit`` ``parties`` keys of those records that contain
    it, spaces ignored (a partial name, a name written without its spaces: ``佐藤大輔`` for
    ``佐藤 大輔``). For the hint printed when a participant search finds nothing."""
    root = Path(archive)
    return read_consistently(
        root, layout.RECORDS, lambda live: _closest_parties(root, live, query, identity, limit)
    )


def _closest_parties(
    root: Path, live: list[DataFile], query: Query, identity: Identity, limit: int
) -> dict[str, list[str]]:
    paths = sql.files_param(root, sql.prune(live, query))
    out: dict[str, list[str]] = {}
    if not paths:
        return out
    others = replace(query, text=None, participants=())
    # the records the role could see, as a search leaves them: no blocked record, nor one naming it
    scope = sql.compile_query(
        others,
        exclude_blocked=not identity.sees_dlp,
        held_out=_held_out(root, live, others, identity),
    )
    for key in query.participants:
        compact = "".join(key.split())
        if len(compact) >= 7 and compact[0] == "+" and compact[1:].isdigit():
            compact = compact[1:]  # a number kept without its "+" is close too
        params = {
            **scope.params,
            "files": paths,
            "key": key,
            "like": "%" + _like_escape(compact) + "%",
            "limit": limit,
        }
        rows = _execute(
            f"WITH keys AS (SELECT DISTINCT unnest(parties) AS k FROM {sql.SOURCE} WHERE {scope.where}) "
            "SELECT k FROM keys WHERE NOT EXISTS (SELECT 1 FROM keys WHERE k = $key) "
            "AND replace(k, ' ', '') LIKE $like ESCAPE '\\' ORDER BY length(k), k LIMIT $limit",
            params,
        )
        if rows:
            out[key] = [r[0] for r in rows]
    return out


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
