"""The Elasticsearch engine: the compiled DSL against the ``vigil-records`` read alias.

The request is built by :func:`pipelines.search.dsl.search_body` and sent through the official
client (``exporters.elasticsearch.config.make_client``); hits are turned into the same
:class:`~pipelines.search.results.Hit` objects as the embedded engine's, with the emphasis taken
from Elasticsearch's highlighter (whole-field fragments, private-use markers) wherever the text
shown is the field it highlighted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipelines.errors import IndexingError, QueryError
from pipelines.search import dsl, match
from pipelines.search.access import (
    CRM_FIELDS,
    AccessRole,
    HeldOut,
    Identity,
    check_query,
    crm_decided,
    may_show_a_release,
    shown_text,
)
from pipelines.search.query import Query
from pipelines.search.results import HIT_FIELDS, Hit, Page, SearchResult, hit_from_row
from pipelines.search.sql import Decided

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from exporters.elasticsearch.config import EsConfig

ENGINE = "elasticsearch"
#: Most candidates the CRM decision fetches (ES's default max_result_window is 10 000 per page;
#: search_after pages beyond it). A CRM query broader than this should be narrowed.
MAX_CRM_CANDIDATES = 50_000
#: Elasticsearch's default ``index.max_result_window``: ``from + size`` may not go beyond it, so a
#: page further on is reached with ``search_after`` (:func:`_seek`).
MAX_RESULT_WINDOW = 10_000
#: Request-body keys and the client keyword that sends each.
_KEYWORDS = {"from": "from_", "_source": "source"}


def send(client: Elasticsearch, cfg: EsConfig, body: Mapping[str, Any]) -> dict[str, Any]:
    """``_search`` on ``cfg``'s alias with ``body`` (keys passed as the client's keywords, so the
    body sent is exactly ``body``). Transport and API errors become :class:`IndexingError`; one
    that never reached the cluster names its URL and what to check, as ``vigil es`` does."""
    from elasticsearch import ApiError, TransportError

    from exporters.elasticsearch.setup import api_error, from_elasticsearch, translate_errors

    index = cfg.alias
    kwargs = {_KEYWORDS.get(k, k): v for k, v in body.items()}
    try:
        response = client.search(index=index, **kwargs)
    except ApiError as exc:
        if not from_elasticsearch(exc):
            # a proxy or another web server answered (its 404, 502 or 401 page): not the cluster
            # saying the index is missing or refusing the search; the same message `vigil es` gives
            raise api_error(exc, cfg, "searching") from None
        raise _refused(exc, index) from None
    except TransportError as exc:
        # refused, timed out, TLS: the same message, URL and hint as `vigil es check` gives
        with translate_errors(cfg, "searching"):
            raise exc from None
        raise  # pragma: no cover - translate_errors always raises
    answer = response.body if hasattr(response, "body") else response
    hits = answer.get("hits") if isinstance(answer, Mapping) else None
    if not isinstance(hits, Mapping) or not isinstance(hits.get("hits", []), list):
        # JSON, but not a search answer (a proxy, another product): one line, not a KeyError later
        raise IndexingError(
            "Elasticsearch answered the search, but not with hits as Elasticsearch 9.x does: check --es-url"
        )
    return dict(answer)


def _refused(exc: Any, index: str) -> IndexingError:
    """What Elasticsearch itself refusing the search means for the user."""
    from elasticsearch import NotFoundError

    if isinstance(exc, NotFoundError):
        return IndexingError(
            f"no index behind {index!r}: install the template and index the archive first "
            "(vigil es setup, vigil es index)"
        )
    hint = _AUTH_HINTS.get(exc.meta.status, "")
    return IndexingError(f"Elasticsearch refused the search ({exc.meta.status}): {_reason(exc)}{hint}")


_AUTH_HINTS = {
    401: ": check --api-key, or --username and --password (or ES_API_KEY / ES_USERNAME / ES_PASSWORD)",
    403: ": the key needs read on the index alias (see README, Elasticsearch: field-level security)",
}


def _reason(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("reason") or error.get("type"))
    return str(exc)


def search(
    cfg: EsConfig,
    query: Query,
    identity: Identity,
    page: Page | None = None,
    *,
    client: Elasticsearch | None = None,
) -> SearchResult:
    page = page or Page()
    started = time.perf_counter()
    if client is None:
        from exporters.elasticsearch.config import make_client

        client = make_client(cfg)
    check_query(query, identity)
    body = dsl.search_body(
        query,
        page,
        text_field=identity.search_field,
        source=[*HIT_FIELDS, *identity.text_fields],
        exclude_blocked=not identity.sees_dlp,
        decided=_crm_decided(client, cfg, query, identity),
        held_out=_held_out(client, cfg, query, identity),
    )
    if page.offset + page.size > MAX_RESULT_WINDOW:
        body = _seek(client, cfg, body, page.offset)
    response = send(client, cfg, body)
    hits_section = response.get("hits", {})
    total = hits_section.get("total", {})
    count = int(total.get("value", 0) if isinstance(total, dict) else total)
    hits = [_hit(h, query, identity) for h in hits_section.get("hits", [])]
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return SearchResult(query, page, count, hits, ENGINE, elapsed, query.caveats())


def _seek(client: Elasticsearch, cfg: EsConfig, body: dict[str, Any], offset: int) -> dict[str, Any]:
    """``body`` rewritten to start at hit ``offset`` without ``from``: the sort values of the hit
    before it are found by walking the sorted hits (ids and sort values only, at most
    :data:`MAX_RESULT_WINDOW` a request) and become ``search_after``. The total still counts
    every match (``search_after`` does not change it). A page past the last hit asks for none."""
    walk = {k: v for k, v in body.items() if k not in ("from", "highlight")}
    walk.update({"_source": False, "track_total_hits": False})
    after: list[Any] | None = None
    while offset:
        step = min(offset, MAX_RESULT_WINDOW)
        request = {**walk, "size": step}
        if after is not None:
            request["search_after"] = after
        hits = send(client, cfg, request).get("hits", {}).get("hits", [])
        if len(hits) < step:  # fewer hits than the offset: the page is past the end
            return {**body, "from": 0, "size": 0}
        after = hits[-1]["sort"]
        offset -= step
    return {**body, "from": 0, "search_after": after}


#: what every hit's ``_source`` must hold (``record_id`` may come from ``_id``) to be shown
_REQUIRED = ("record_id", "conversation_id", "channel", "event_time", "kind", "direction", "org")


def _source_row(raw: Any) -> dict[str, Any]:
    """A hit's ``_source`` as a row, its ``record_id`` taken from ``_id`` when the source has none."""
    hit_id = raw.get("_id") if isinstance(raw, Mapping) else None
    source = raw.get("_source") if isinstance(raw, Mapping) else None
    if not isinstance(raw, Mapping) or (source is not None and not isinstance(source, Mapping)):
        raise _bad_hit(hit_id, "it is not an object with a _source object")
    row = dict(source or {})
    row.setdefault("record_id", hit_id)
    return row


def _hit(raw: Any, query: Query, identity: Identity) -> Hit:
    row = _source_row(raw)
    hit_id = raw.get("_id")
    missing = [name for name in _REQUIRED if row.get(name) is None]
    if missing:
        raise _bad_hit(hit_id, f"its _source has no {', '.join(missing)}")
    try:
        return hit_from_row(row, query, identity, highlights=_highlights(raw, row, identity))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise _bad_hit(hit_id, f"{type(exc).__name__}: {exc}") from None


def _bad_hit(hit_id: Any, what: str) -> IndexingError:
    """A hit Vigil cannot show: one line naming it, never a KeyError from deeper down."""
    name = repr(hit_id) if isinstance(hit_id, str) else "without an _id"
    return IndexingError(
        f"Elasticsearch answered the search, but not with hits as Elasticsearch 9.x does (hit {name}: "
        f"{what}): check --es-url, and that only `vigil es index` writes to the indices behind the alias"
    )


def _highlights(
    raw: Mapping[str, Any], source: Mapping[str, Any], identity: Identity
) -> list[match.Span] | None:
    """Spans from Elasticsearch's highlighter, when they refer to the text the role is shown;
    ``None`` lets the hit find them itself."""
    section = raw.get("highlight") or {}
    if not section:
        return None
    field = identity.search_field
    shown = shown_text(source, identity).text
    if shown is None or shown != source.get(field):
        return None  # e.g. a CRM view redacted differently than the field ES highlighted
    found: list[match.Span] = []
    for name in (field, f"{field}.cjk"):
        for fragment in section.get(name) or []:
            plain, spans = match.marked_spans(fragment, dsl.PRE_TAG, dsl.POST_TAG)
            if plain != shown:
                return None  # a fragment, not the whole field: offsets would not line up
            found.extend(spans)
    return match.merge(found)


def _held_out(client: Elasticsearch, cfg: EsConfig, query: Query, identity: Identity) -> HeldOut:
    """Same as the embedded engine's: the blocked held messages of the query's channels,
    whatever their dates, fetched in pages (org, channel and event id only)."""
    if identity.sees_dlp or not may_show_a_release(query):
        return frozenset()
    scope: list[dict[str, Any]] = [dsl.BLOCKED_HELD]
    if query.channels:
        scope.append({"terms": {"channel": list(query.channels)}})
    found = _every_hit(client, cfg, {"bool": {"filter": scope}}, ["org", "channel", "event_id"])
    return frozenset((str(d.get("org")), str(d.get("channel")), str(d.get("event_id"))) for d in found)


#: how many hits :func:`_every_hit` asks for at a time
PAGE = 1000


def _every_hit(
    client: Elasticsearch, cfg: EsConfig, query: dict[str, Any], fields: list[str]
) -> Iterator[dict[str, Any]]:
    """The ``_source`` (``fields``, and ``record_id`` from ``_id`` when missing) of every hit of
    ``query``, a page of :data:`PAGE` at a time in record-id order (``search_after``)."""
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "query": query,
            "size": PAGE,
            "sort": [{"record_id": {"order": "asc"}}],
            "_source": {"includes": fields},
        }
        if after is not None:
            body["search_after"] = after
        batch = send(client, cfg, body).get("hits", {}).get("hits", [])
        for raw in batch:
            yield _source_row(raw)
        if len(batch) < PAGE:
            return
        after = batch[-1].get("sort")


def _crm_decided(client: Elasticsearch, cfg: EsConfig, query: Query, identity: Identity) -> Decided | None:
    """Same as the embedded engine's: the candidates with DLP findings that pass the filters,
    fetched in pages, and decided on their CRM view."""
    if identity.role is not AccessRole.CRM or query.text is None:
        return None
    # a record archived before Vigil had DLP has no dlp_action: no findings, so no candidate (as
    # the embedded engine's coalesce(dlp_action, 'none') <> 'none'), nor counted towards the limit
    candidates = {
        "bool": {
            "filter": [
                dsl.compile_query(replace(query, text=None), exclude_blocked=True),
                {"exists": {"field": "dlp_action"}},
            ],
            "must_not": [{"term": {"dlp_action": "none"}}],
        }
    }
    rows: list[dict[str, Any]] = []
    for row in _every_hit(client, cfg, candidates, list(CRM_FIELDS)):
        if len(rows) >= MAX_CRM_CANDIDATES:
            raise QueryError(
                f"more than {MAX_CRM_CANDIDATES:,} records with DLP findings pass these filters; narrow "
                "the search (dates, channel, participant) for the CRM role"
            )
        rows.append(row)
    decided: Decided = crm_decided(rows, query, identity)
    return decided
