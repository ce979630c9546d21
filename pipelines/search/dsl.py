"""Compiling a :class:`Query` to Elasticsearch Query DSL (the ``vigil-records`` alias).

Filters go in ``bool.filter`` (no scoring, cacheable), text in ``bool.must``:

* a Latin word or phrase is ``match_phrase`` on the body field (``standard`` analyzer), so a word
  with inner punctuation (``e-mail``) must match as consecutive tokens, as on the embedded engine;
* anything containing CJK is ``match_phrase`` on the ``.cjk`` sub-field (bigrams), which makes it
  a substring match;
* a prefix is a ``prefix`` query on the body field, lower-cased as the index is;
* NOT is ``must_not``, OR is ``should`` with ``minimum_should_match: 1``;
* DLP rules are a ``nested`` query on ``dlp_findings`` (each finding is its own object);
* an organisation is a ``term`` query on ``org.folded``, lower-cased by its normalizer (as the
  SQL compares ``lower(org)``);
* a participant is a ``term`` query on ``parties``: every id, handle and name on the record as
  the archive stores it (``pipelines.record.party_key``), so both engines compare the same keys.

For the CRM role, blocked records and DLP's notices about them are left out (``must_not``), and
records whose CRM view differs from the redacted text are decided by ``ids`` clauses computed from
that view (:func:`pipelines.search.es_engine.search`). ``_source`` asks only for the fields the caller's role
is shown or builds its view from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from pipelines.record import EventType, party_key
from pipelines.search.access import POINTED_DELIVERIES, pointers_by_attribute
from pipelines.search.query import And, Node, Not, Or, Prefix, Query, participant_keys
from pipelines.search.results import HIT_FIELDS, Page
from pipelines.search.sql import Decided, by_place
from pipelines.search.wordbreak import simple_fold

#: What a ``date_nanos`` field can hold (1970 to 2262-04-11T23:47:16.854775807Z, in microseconds
#: here). Elasticsearch refuses a ``range`` query whose bound lies outside ("date[...] is after
#: 2262-04-11T23:47:16.854775807 and cannot be stored in nanosecond resolution"), and no record
#: can lie outside, so bounds are clamped into it: ``from:1960-01-01`` and ``to:2999-12-31``
#: then mean what they mean on the embedded engine.
NANOS_MIN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NANOS_MAX = dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=dt.UTC)

#: Highlight markers: private-use characters, which never occur in real message text.
PRE_TAG = "\ue000"
POST_TAG = "\ue001"


def compile_query(
    query: Query,
    *,
    text_field: str = "body",
    exclude_blocked: bool = False,
    decided: Decided | None = None,
    held_out: frozenset[tuple[str, str, str]] = frozenset(),
) -> dict[str, Any]:
    """The ``query`` clause for ``query``; ``text_field`` is the body field the role searches,
    ``exclude_blocked``, ``decided`` and ``held_out`` mean what they mean in
    :func:`pipelines.search.sql.compile_query`."""
    filters: list[dict[str, Any]] = []
    start, before = query.time_bounds()
    if start is not None or before is not None:
        bounds: dict[str, Any] = {}
        if start is not None:
            bounds["gte"] = _iso(_nanos_range(start))
        if before is not None:
            bounds["lt"] = _iso(_nanos_range(before))
        filters.append({"range": {"event_time": bounds}})
    for field, values in query.keyword_filters():
        filters.append({"terms": {field: list(values)}})
    if query.orgs:
        options: list[dict[str, Any]] = []
        for ref in query.orgs:
            if ref.sub_org is None:
                options.append(_anycase("org", ref.org))
            else:
                options.append(
                    {"bool": {"filter": [_anycase("org", ref.org), _anycase("sub_org", ref.sub_org)]}}
                )
        filters.append(_any(options))
    for value in query.participants:
        filters.append(_participant(value))
    if query.rules:
        rules = [{"prefix": {"dlp_findings.rule_id": {"value": rule}}} for rule in query.rules]
        filters.append({"nested": {"path": "dlp_findings", "query": _any(rules)}})
    body: dict[str, Any] = {}
    if filters:
        body["filter"] = filters
    if exclude_blocked:
        body["must_not"] = list(BLOCKED_OUT)
    if held_out:
        body.setdefault("must_not", []).append(_releases_out(held_out))
    if query.text is not None:
        text = _text(query.text, text_field)
        if decided is not None and decided.ids:
            text = _any(
                [
                    {"bool": {"must": [text], "must_not": [{"ids": {"values": sorted(decided.ids)}}]}},
                    {"ids": {"values": sorted(decided.matching)}},
                ]
            )
        body["must"] = [text]
    if not body:
        return {"match_all": {}}
    return {"bool": body}


#: Leaves out blocked records (either mark counts) and DLP's notices about them, as
#: :data:`pipelines.search.sql.BLOCKED_OUT` does.
BLOCKED_OUT = (
    {"term": {"blocked": True}},
    {"term": {"dlp_action": "block"}},
    {"term": {"event_type": EventType.DLP_BLOCKED_NOTICE.value}},
)


#: A blocked message that was held or refused, as :data:`pipelines.search.sql.BLOCKED_HELD` says.
BLOCKED_HELD = {
    "bool": {
        "filter": [{"terms": {"attributes.delivery": list(POINTED_DELIVERIES)}}],
        "should": [{"term": {"blocked": True}}, {"term": {"dlp_action": "block"}}],
        "minimum_should_match": 1,
    }
}


def _releases_out(held: frozenset[tuple[str, str, str]]) -> dict[str, Any]:
    """The records that name one of the ``held`` messages (its release, its hold notice, the
    notice that it was not sent), as :func:`pipelines.search.sql._releases_out` leaves them out."""

    places = by_place(held)
    clauses = []
    for attribute, pointers in pointers_by_attribute().items():
        names = [
            {
                "bool": {
                    "filter": [
                        {"term": {"org": org}},
                        {"term": {"channel": channel}},
                        {"terms": {f"attributes.{attribute}": ids}},
                    ]
                }
            }
            for (org, channel), ids in places.items()
        ]
        kinds = [
            {"bool": {"filter": [{"term": {"kind": kind}}, {"term": {"event_type": event_type}}]}}
            for kind, event_type in pointers
        ]
        clauses.append({"bool": {"filter": [_any(kinds), _any(names)]}})
    return _any(clauses)


def search_body(
    query: Query,
    page: Page,
    *,
    text_field: str = "body",
    source: Iterable[str] = (*HIT_FIELDS, "body", "body_redacted"),
    exclude_blocked: bool = False,
    decided: Decided | None = None,
    highlight: bool = True,
    held_out: frozenset[tuple[str, str, str]] = frozenset(),
) -> dict[str, Any]:
    """The whole ``_search`` request body: query, sort, paging, the ``source`` fields to return
    (only what the caller's role may see) and highlighting."""
    order = "desc" if page.newest_first else "asc"
    body: dict[str, Any] = {
        "query": compile_query(
            query, text_field=text_field, exclude_blocked=exclude_blocked, decided=decided, held_out=held_out
        ),
        "sort": [{"event_time": {"order": order}}, {"record_id": {"order": order}}],
        "from": page.offset,
        "size": page.size,
        "track_total_hits": True,
        "_source": {"includes": list(dict.fromkeys(source))},
    }
    if highlight and query.text is not None:
        body["highlight"] = {
            "pre_tags": [PRE_TAG],
            "post_tags": [POST_TAG],
            "number_of_fragments": 0,  # the whole field, so offsets map onto the shown text
            "require_field_match": True,
            "fields": {text_field: {}, f"{text_field}.cjk": {}},
        }
    return body


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _nanos_range(value: dt.datetime) -> dt.datetime:
    return min(max(value, NANOS_MIN), NANOS_MAX)


def _anycase(field: str, value: str) -> dict[str, Any]:
    """A ``term`` that ignores case (organisations: ``org:ACME`` finds ``acme``, as in SQL), on
    the field's ``folded`` sub-field: its ``lowercase`` normalizer folds the indexed value and the
    query's alike, for every script (``case_insensitive`` would fold ASCII letters only)."""
    return {"term": {f"{field}.folded": {"value": value}}}


def _any(options: list[dict[str, Any]]) -> dict[str, Any]:
    if len(options) == 1:
        return options[0]
    return {"bool": {"should": options, "minimum_should_match": 1}}


def _participant(value: str) -> dict[str, Any]:
    keys = participant_keys(party_key(value))
    if len(keys) == 1:
        return {"term": {"parties": keys[0]}}
    return {"terms": {"parties": list(keys)}}


def _text(node: Node, field: str) -> dict[str, Any]:
    if isinstance(node, And):
        return {"bool": {"must": [_text(i, field) for i in node.items]}}
    if isinstance(node, Or):
        return _any([_text(i, field) for i in node.items])
    if isinstance(node, Not):
        return {"bool": {"must_not": [_text(node.item, field)]}}
    return _leaf(node, field)


def _leaf(node: Node, field: str) -> dict[str, Any]:
    segs = node.segments  # type: ignore[union-attr]
    if isinstance(node, Prefix):
        # lower-cased one character at a time, as the index's lowercase filter does (İ is i)
        return {"prefix": {field: {"value": simple_fold(node.text)}}}  # type: ignore[union-attr]
    if any(s.cjk for s in segs):
        return {"match_phrase": {f"{field}.cjk": {"query": node.text}}}  # type: ignore[union-attr]
    return {"match_phrase": {field: {"query": node.text}}}  # type: ignore[union-attr]
