"""Bulk indexing with retries, where every record ends up either indexed or dead-lettered.

:func:`index_rows` is the one implementation, used by the Beam sink (one call per batch) and by
``vigil es index`` (one call over a whole archive). For each batch:

1. rows become bulk actions (``documents.to_action``); a row that cannot (a malformed archive
   row) is dead-lettered as ``es_bad_row``;
2. the batch goes out through ``elasticsearch.helpers.streaming_bulk``, in requests of at most
   ``cfg.max_request_bytes``; a 413 (request larger than the cluster takes) sends the documents
   again at once in requests half as large, and dead-letters only a document refused on its own;
3. documents refused for a transient reason — 429 (the cluster is shedding load), 5xx, a timeout or
   a lost connection, for one item or the whole request — are re-sent after an exponential backoff
   with jitter, up to ``cfg.max_retries`` times;
4. documents refused for good (``mapper_parsing_exception``, ``strict_dynamic_mapping_exception``,
   403, ...) are dead-lettered at once as ``es_rejected``; documents still failing when the retry
   budget is spent are dead-lettered as ``es_unavailable``;
5. when the cluster stopped answering altogether, a circuit breaker (:class:`IndexState`) spares
   the following batches a full retry budget each: they are dead-lettered as ``es_unavailable``
   at once, with a single probe now and then to notice that the cluster is back. A backfill
   (``stop_when_unavailable``) stops instead, the moment the breaker trips: it re-sends the whole
   archive when run again, so dead letters for what it did not get to send would tell nothing.

Dead letters are ``pipelines.record.DeadLetter`` rows (stage ``index``) whose ``raw`` is the JSON
document and whose reason says what to do. The Parquet archive stays the system of record, so a
dead-lettered document is never lost: ``vigil es index --archive DIR`` re-sends it, and indexing
is idempotent (``_id`` = record id, one index per event month).

The client's own transport retries are turned off for bulk requests: this loop does them, so it
can count them and decide per document.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from elastic_transport import TransportError
from elasticsearch import ApiError, UnsupportedProductError
from elasticsearch.helpers import expand_action, streaming_bulk

from exporters.elasticsearch.config import EsConfig
from exporters.elasticsearch.documents import document_bytes, to_action
from exporters.elasticsearch.setup import from_elasticsearch
from pipelines.record import DeadLetter, DeadLetterStage, to_micros

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

#: Per-item or whole-request statuses that may succeed later.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

#: A dead letter keeps at most this much of the document (``raw_size``/``raw_sha256`` cover all).
RAW_CAP = 256 * 1024

REINDEX_HINT = "re-run `vigil es index --archive DIR --role officer`"
NOT_ELASTICSEARCH = (
    "the server answered, but not as Elasticsearch does (no X-Elastic-Product header): check "
    "--es-url; a proxy or another web server answered"
)

#: what a whole request refused for its credentials (401/403) says; a backfill stops on it
REFUSED_CREDENTIALS = "Elasticsearch refused the credentials"

# reason codes
ES_REJECTED = "es_rejected"
ES_UNAVAILABLE = "es_unavailable"
ES_BAD_ROW = "es_bad_row"


@dataclass
class IndexState:
    """What one worker remembers between batches: a circuit breaker for a cluster that is away.

    When a batch spends its whole retry budget without the cluster answering, the breaker opens:
    for ``cfg.retry_backoff_max`` seconds, batches are dead-lettered without being sent; after
    that, each batch gets one attempt without waiting, and the first that gets through closes the
    breaker. Without it, a dead (or hung) cluster would cost the full backoff, or the full request
    timeout, for every remaining batch before the run could finish.
    """

    clock: Callable[[], float] = time.monotonic
    open_until: float | None = None  # None: closed, the cluster is believed healthy
    last_error: str = ""
    #: after a 413, the request size this worker went down to: its later batches start there
    learned_request_bytes: int | None = None

    @property
    def unavailable(self) -> bool:
        return self.open_until is not None

    def resting(self) -> bool:
        """True while the breaker is open and its cool-down has not run out."""
        return self.open_until is not None and self.clock() < self.open_until

    def trip(self, cooldown: float, error: str) -> None:
        self.open_until = self.clock() + cooldown
        self.last_error = error

    def reset(self) -> None:
        self.open_until = None
        self.last_error = ""


@dataclass
class IndexReport:
    """Outcome of :func:`index_rows`. ``read == indexed + dead_lettered + unsent`` always holds."""

    read: int = 0
    indexed: int = 0
    dead_lettered: int = 0
    retried: int = 0  # documents re-sent (one document re-sent twice counts 2)
    requests: int = 0  # bulk attempts (rounds) made: each sends every pending document once
    #: HTTP bulk requests sent (an attempt is several when its documents exceed the request size)
    http_requests: int = 0
    #: with ``stop_when_unavailable``: documents of the last batch the cluster did not take when it
    #: stopped answering, left without a dead letter (rows after that batch are not read at all)
    unsent: int = 0
    #: with ``stop_when_unavailable``: the last error when the breaker tripped and indexing stopped
    stopped: str | None = None
    indexed_ids: list[str] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)

    def add_counts(self, other: IndexReport) -> None:
        self.read += other.read
        self.indexed += other.indexed
        self.dead_lettered += other.dead_lettered
        self.retried += other.retried
        self.requests += other.requests
        self.http_requests += other.http_requests
        self.unsent += other.unsent
        self.stopped = other.stopped or self.stopped

    def extend(self, other: IndexReport) -> None:
        self.add_counts(other)
        self.indexed_ids.extend(other.indexed_ids)
        self.dead_letters.extend(other.dead_letters)


def index_rows(
    client: Elasticsearch,
    rows: Iterable[dict[str, Any]],
    cfg: EsConfig,
    *,
    batch_size: int = 500,
    state: IndexState | None = None,
    on_batch: Callable[[IndexReport], None] | None = None,
    stop_when_unavailable: bool = False,
) -> IndexReport:
    """Index record rows; never raises for what Elasticsearch does, dead-letters instead.

    With ``on_batch``, each batch's report (ids and dead letters included) is handed over as soon
    as the batch is done and the returned report carries counts only, so a backfill of millions of
    rows holds one batch in memory. Without it, the returned report holds every id and dead letter.

    With ``stop_when_unavailable`` (a backfill, which can simply be run again), indexing stops once
    the circuit breaker trips: the batch that tripped it keeps its dead letters for documents the
    cluster refused for good, its documents that got no answer are counted as ``unsent`` instead,
    no further row is read, and ``stopped`` holds the last error.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    state = state if state is not None else IndexState()
    bulk_client = client.options(max_retries=0, retry_on_timeout=False)
    total = IndexReport()
    for batch in _batched(rows, batch_size):
        report = _index_batch(bulk_client, batch, cfg, state)
        if stop_when_unavailable and state.unavailable:
            _hold_back_unavailable(report, state.last_error)
        if on_batch is not None:
            on_batch(report)
            total.add_counts(report)
        else:
            total.extend(report)
        if report.stopped is not None:
            break
    return total


def _hold_back_unavailable(report: IndexReport, error: str) -> None:
    """The breaker tripped in this batch and the caller stops: what the cluster did not answer for
    is counted as unsent rather than dead-lettered; what it refused for good keeps its letter."""
    kept = [letter for letter in report.dead_letters if letter["reason_code"] != ES_UNAVAILABLE]
    report.unsent = len(report.dead_letters) - len(kept)
    report.dead_letters = kept
    report.dead_lettered = len(kept)
    report.stopped = error or "no answer"


@dataclass
class _Doc:
    row: dict[str, Any]
    action: dict[str, Any]
    last_error: str = ""


def _index_batch(
    client: Elasticsearch, rows: Sequence[dict[str, Any]], cfg: EsConfig, state: IndexState
) -> IndexReport:
    report = IndexReport(read=len(rows))
    pending: list[_Doc] = []
    for row in rows:
        try:
            pending.append(_Doc(row, to_action(row, cfg)))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            reason = (
                f"the archived row cannot be turned into a document ({exc}); "
                "run `vigil verify --archive DIR` to check the archive"
            )
            report.dead_letters.append(dead_letter(row, None, ES_BAD_ROW, reason))

    if pending and state.resting():
        what, then = _why_unavailable(state.last_error)
        reason = (
            f"Elasticsearch {what} (last error: {state.last_error}), so this document was not sent. "
            f"The record is safe in the archive: once {then}, {REINDEX_HINT}"
        )
        report.dead_letters.extend(dead_letter(d.row, d.action, ES_UNAVAILABLE, reason) for d in pending)
        pending = []

    budget = 0 if state.unavailable else cfg.max_retries
    attempt = 0
    cap = min(cfg.max_request_bytes, state.learned_request_bytes or cfg.max_request_bytes)
    while pending:
        if report.requests:  # not the batch's first attempt: these documents are sent again
            report.retried += len(pending)
        report.requests += 1
        results, failure, sent = _send(client, [d.action for d in pending], cap)
        report.http_requests += sent
        retry: list[_Doc] = []
        too_large: list[_Doc] = []  # in a request the cluster refused for its size (413)
        answered = False  # did the cluster itself answer for some document (even with a no)?
        # Each item names its document (_id). Elasticsearch answers in the order sent, but an answer
        # with an item missing, extra or out of place (something between Vigil and the cluster)
        # must not confirm one document with another's result: match by id, and send again any
        # document the answer does not speak for.
        answers: dict[str, tuple[bool, dict[str, Any]]] = {}
        give_up = False  # a refusal of the whole request that no retry can change
        for ok, item in results:
            info = _item_info(item)
            if info is not None and isinstance(info.get("_id"), str):
                answers.setdefault(info["_id"], (ok, info))
        for doc in pending:
            answer = answers.get(doc.action["_id"])
            if answer is None:
                doc.last_error = _describe_failure(failure)
                retry.append(doc)
                continue
            ok, info = answer
            status = _usable_status(info)
            if status is None:
                # an item without an HTTP status (or with one that is no status): not a usable bulk
                # answer, so it says nothing about this document, whatever else it holds. Sent again
                # like a 5xx (indexing by id is idempotent); it does not count as the cluster answering
                given = f"status {_clip(info['status'])}" if "status" in info else "no status"
                doc.last_error = (
                    f"the bulk response was malformed: its item for this document has {given}, "
                    "so it does not say whether the document was stored"
                )
                retry.append(doc)
                continue
            # "exception": the whole request failed. A 429 is still the cluster answering (busy,
            # not away): a long storm costs this batch its budget, never the batches after it;
            # so is a 413 (the request was too large, the cluster is there).
            answered = answered or "exception" not in info or status in (413, 429)
            if ok:
                report.indexed_ids.append(doc.action["_id"])
                continue
            whole = info.get("exception")  # the whole request failed, not this document
            if isinstance(whole, UnsupportedProductError) or (
                # a status that would otherwise read as Elasticsearch refusing the document (a
                # proxy's 413, 429 or 5xx is handled as the cluster's would be, below)
                isinstance(whole, ApiError)
                and not from_elasticsearch(whole)
                and status not in RETRYABLE_STATUS
                and status != 413
            ):
                # something answered, not Elasticsearch (a proxy's page or redirect, another
                # server): the document was not refused, it never reached a cluster
                doc.last_error = NOT_ELASTICSEARCH + f" (HTTP {status})"
                retry.append(doc)
                continue
            if isinstance(whole, ApiError) and status in (401, 403):
                # the cluster refused the request itself: the credentials (or the user's rights)
                # are wrong for every document alike; asking again changes nothing
                doc.last_error = (
                    f"{_describe(info)}: {REFUSED_CREDENTIALS}, or the user may not "
                    "write to the indices; check the credentials (--api-key, or --username and "
                    "--password) and the user's privileges"
                )
                retry.append(doc)
                give_up = True
                continue
            if status == 413 and "exception" in info:
                too_large.append(doc)
            elif status in RETRYABLE_STATUS:
                doc.last_error = _describe(info)
                retry.append(doc)
            else:
                report.dead_letters.append(_rejected(doc, info))
        if answered:
            # the cluster answers: a batch begun while it was away (one attempt) now gets the
            # retries any batch gets, so a cluster back but busy (per-item 429s) is not given up on
            state.reset()
            budget = cfg.max_retries
        smaller: list[_Doc] = []
        if too_large:
            # The cluster (or a proxy in front of it) takes less per request than ``cap``: send
            # these again in requests half as large, at once (nothing is wrong with the cluster),
            # until a document that went alone is still too large: that one is dead-lettered.
            # A request refused (413) with several documents in it only teaches the worker a
            # smaller size; one document too large on its own says nothing about the others, so the
            # size is left as it was (else each such document would halve it for the whole run).
            shared: list[int] = []
            for doc in too_large:
                size = _request_bytes(doc.action)
                if len(too_large) == 1 or size >= cap:  # it went alone
                    report.dead_letters.append(_too_large(doc, size))
                else:
                    smaller.append(doc)
                    shared.append(size)
            if smaller:
                cap = max(1, min(cap, sum(shared)) // 2)  # halved while such requests answer 413
                state.learned_request_bytes = cap
        if retry and (attempt >= budget or give_up):
            if not answered:
                state.trip(cfg.retry_backoff_max, retry[0].last_error)
            for doc in retry:
                _, then = _why_unavailable(doc.last_error)
                reason = (
                    f"Elasticsearch did not take the document after {attempt + 1} attempt(s); "
                    f"last error: {doc.last_error}. The record is safe in the archive: once {then}, "
                    f"{REINDEX_HINT}"
                )
                report.dead_letters.append(dead_letter(doc.row, doc.action, ES_UNAVAILABLE, reason))
            retry = []
        if retry:
            attempt += 1
            time.sleep(_backoff(attempt, cfg))
        pending = retry + smaller

    report.indexed = len(report.indexed_ids)
    report.dead_lettered = len(report.dead_letters)
    return report


def _why_unavailable(error: str) -> tuple[str, str]:
    """What happened to the cluster, and when to send again, as a dead letter says it: a request
    refused for its credentials is no outage, and waiting for the cluster to be healthy fixes
    nothing."""
    if REFUSED_CREDENTIALS in error:
        return "refused the credentials", "the credentials are fixed"
    return "stopped answering", "the cluster is healthy"


def _send(
    client: Elasticsearch, actions: list[dict[str, Any]], max_bytes: int
) -> tuple[list[tuple[bool, dict[str, Any]]], TransportError | None, int]:
    """One bulk attempt: one request, or several when the actions add up to more than
    ``max_bytes``. Results come back in action order; a transport failure ends the list. The
    third value is how many HTTP bulk requests went out (a failed one included).

    The requests are cut here, not by the helper, so that each ``streaming_bulk`` call is exactly
    one HTTP request and the count is true; each document is serialized once, here, and the helper
    sends those bytes as they are."""
    results: list[tuple[bool, dict[str, Any]]] = []
    sent = 0
    try:
        for chunk in _requests(client, actions, max_bytes):
            sent += 1
            for ok, item in streaming_bulk(
                client,
                cast("list[Any]", chunk),  # (metadata, bytes) lines: see _as_is
                chunk_size=len(chunk),
                max_chunk_bytes=2**62,  # already cut to size: one request per call
                expand_action_callback=_as_is,
                raise_on_error=False,
                raise_on_exception=False,
                max_retries=0,
                yield_ok=True,
            ):
                results.append((ok, item))
    except TransportError as exc:  # refused connection, timeout, TLS: no HTTP answer at all
        return results, exc, sent
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        # a 200 whose body is not a bulk answer (no "items", items that are not objects, a status
        # that is not a number): the helper trips over it. Nothing in it can be trusted, so every
        # document of the attempt is sent again (indexing by id is idempotent).
        malformed = TransportError(f"the bulk response was malformed ({type(exc).__name__}: {exc})")
        return [], malformed, sent
    return results, None, sent


_Line = tuple[dict[str, Any], bytes | None]


def _as_is(line: Any) -> Any:
    """The helper's action callback for lines :func:`_requests` already expanded and serialized."""
    return line


def _requests(client: Elasticsearch, actions: list[dict[str, Any]], max_bytes: int) -> Iterator[list[_Line]]:
    """``actions`` as bulk lines (metadata, serialized document), cut into requests of at most
    ``max_bytes`` (as the helper counts them: each line and its newline), at least one a request."""
    serializer = client.transport.serializers.get_serializer("application/json")
    chunk: list[_Line] = []
    size = 0
    for action in actions:
        meta, data = expand_action(action)
        body = serializer.dumps(data) if data is not None else None
        cost = len(serializer.dumps(meta)) + 1 + (len(body) + 1 if body is not None else 0)
        if chunk and size + cost > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append((meta, body))
        size += cost
    if chunk:
        yield chunk


def _item_info(item: Any) -> dict[str, Any] | None:
    """The result of one bulk item (``{"index": {...}}`` → ``{...}``), or None if it is not one."""
    if not isinstance(item, dict) or len(item) != 1:
        return None
    info = next(iter(item.values()))
    return info if isinstance(info, dict) else None


def _usable_status(info: dict[str, Any]) -> int | None:
    """The item's HTTP status, or None when it has none that could be one (missing, not a whole
    number, outside 100-599)."""
    status = info.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return None
    return status


def _clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _backoff(attempt: int, cfg: EsConfig) -> float:
    ceiling = min(cfg.retry_backoff_max, cfg.retry_backoff * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)  # jitter: parallel workers must not retry in step


def _describe(info: dict[str, Any]) -> str:
    status = info.get("status")
    error = info.get("error")
    exc = info.get("exception")
    if isinstance(exc, ApiError) and isinstance(exc.body, dict) and isinstance(exc.body.get("error"), dict):
        error = exc.body["error"]  # the whole request was refused: its reason, not the exception's repr
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}".rstrip(": ")
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            text += f" (caused by {cause.get('type', 'error')}: {cause['reason']})"
    else:
        text = str(error or "no error detail")
    return f"HTTP {status} {text}"


def _describe_failure(failure: TransportError | None) -> str:
    if failure is None:
        return "the bulk response had no result for this document"
    return f"{type(failure).__name__}: {failure.message}"


def _rejected(doc: _Doc, info: dict[str, Any]) -> dict[str, Any]:
    status = int(info.get("status") or 0)
    error = info.get("error")
    kind = error.get("type", "") if isinstance(error, dict) else ""
    if kind == "strict_dynamic_mapping_exception":
        advice = "the index mapping is older than the record model: run `vigil es setup`, then"
    elif status in (401, 403):
        advice = "check the credentials and that the user may write to the indices, then"
    elif status == 413:
        advice = "the document was too large for the cluster (http.max_content_length): raise it, then"
    else:
        advice = "fix the cause above, then"
    reason = (
        f"Elasticsearch refused the document: {_describe(info)}. "
        f"The record is safe in the archive; {advice} {REINDEX_HINT}"
    )
    return dead_letter(doc.row, doc.action, ES_REJECTED, reason)


def _request_bytes(action: dict[str, Any]) -> int:
    """About what ``action`` adds to a bulk request body: its metadata line and its document line."""
    meta = {action["_op_type"]: {"_index": action["_index"], "_id": action["_id"]}}
    return len(document_bytes(meta)) + len(document_bytes(action["_source"])) + 2


def _too_large(doc: _Doc, size: int) -> dict[str, Any]:
    reason = (
        f"Elasticsearch refused the document as too large (413): sent on its own it is {size:,} "
        "bytes, more than the cluster accepts in one request. Raise the cluster's "
        "http.max_content_length (or the body limit of a proxy in front of it). The record is "
        f"safe in the archive; then {REINDEX_HINT}"
    )
    return dead_letter(doc.row, doc.action, ES_REJECTED, reason)


def dead_letter(
    row: dict[str, Any], action: dict[str, Any] | None, reason_code: str, reason: str
) -> dict[str, Any]:
    """A ``DeadLetter`` row (stage ``index``) for a record that could not be indexed."""
    payload = document_bytes(action["_source"] if action is not None else row)
    raw = payload[:RAW_CAP]
    if len(payload) > RAW_CAP:  # cut on a character boundary so raw stays valid UTF-8
        raw = raw.decode("utf-8", "ignore").encode()
    raw_sha256 = hashlib.sha256(payload).hexdigest()
    record_id = row.get("record_id") if isinstance(row.get("record_id"), str) else None
    offset = row.get("source_offset")
    letter = DeadLetter(
        # the same document failing the same way again is the same letter; failing another way (busy
        # cluster first, mapping refusal later) is a new one, so the store holds the current reason
        dead_letter_id=hashlib.sha256(
            f"{DeadLetterStage.INDEX}\x1f{record_id}\x1f{raw_sha256}\x1f{reason_code}".encode()
        ).hexdigest()[:32],
        stage=DeadLetterStage.INDEX,
        reason_code=reason_code,
        reason=reason,
        source_name=str(row.get("source_name") or "<unknown>"),
        source_offset=offset if isinstance(offset, int) and offset >= 0 else 0,
        record_id=record_id,
        raw=raw,
        raw_size=len(payload),
        raw_sha256=raw_sha256,
        dead_letter_time=dt.datetime.now(dt.UTC),
    )
    out = letter.model_dump(mode="python")
    out["dead_letter_time"] = to_micros(letter.dead_letter_time)
    return out


def _batched(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch
