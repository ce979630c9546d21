"""Compiling a :class:`Query` to Elasticsearch Query DSL (the ``vigil-records`` alias).

Filters go in ``bool.filter`` (no scoring, cacheable), text in ``bool.must``:

* a Latin word or phrase is ``match_phrase`` on the body field (``standard`` analyzer), so a word
  with inner punctuation (``e-mail``) must match as consecutive tokens, as on the embedded engine;
* anything containing CJK is ``match_phrase`` on the ``.cjk`` sub-field (bigrams), which makes it
  a substring match;
* a prefix is a ``prefix`` query on the body field, lower-cased as the index is;
* NOT is ``must_not``, OR is ``should`` with ``minimum_should_match: 1``;
* DLP rules are a ``nested`` query on ``dlp_findings`` (each finding is its own object);
* a participant is a ``term`` query on ``parties``: every id, handle and name on the record as
  the archive stores it (``pipelines.record.party_key``), so both engines compare the same keys.

For the CRM role, each text leaf also requires ``blocked: false``: the text of blocked records is
withheld from that role, so it may not be searched either.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelines.record import party_key
from pipelines.search.query import And, Node, Not, Or, Prefix, Query
from pipelines.search.results import HIT_FIELDS, TEXT_FIELDS, Page

#: Highlight markers: private-use characters, which never occur in real message text.
PRE_TAG = "\ue000"
POST_TAG = "\ue001"


def compile_query(
    query: Query,
    *,
    text_field: str = "body",
    hide_blocked_text: bool = False,
    exclude_ids: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``query`` clause for ``query``; ``text_field`` is the body field the role searches."""
    filters: list[dict[str, Any]] = []
    if query.time_from is not None or query.time_to is not None:
        bounds: dict[str, Any] = {}
        if query.time_from is not None:
            bounds["gte"] = _iso(query.time_from)
        if query.time_to is not None:
            bounds["lt"] = _iso(query.time_to)
        filters.append({"range": {"event_time": bounds}})
    for field, values in query.keyword_filters():
        filters.append({"terms": {field: list(values)}})
    if query.orgs:
        options: list[dict[str, Any]] = []
        for ref in query.orgs:
            if ref.sub_org is None:
                options.append({"term": {"org": ref.org}})
            else:
                options.append(
                    {"bool": {"filter": [{"term": {"org": ref.org}}, {"term": {"sub_org": ref.sub_org}}]}}
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
    if query.text is not None:
        body["must"] = [_text(query.text, text_field, hide_blocked_text)]
    excluded = list(exclude_ids)
    if excluded:
        body["must_not"] = [{"ids": {"values": excluded}}]
    if not body:
        return {"match_all": {}}
    return {"bool": body}


def search_body(
    query: Query,
    page: Page,
    *,
    text_field: str = "body",
    hide_blocked_text: bool = False,
    exclude_ids: Iterable[str] = (),
    highlight: bool = True,
) -> dict[str, Any]:
    """The whole ``_search`` request body: query, sort, paging, fields and highlighting."""
    order = "desc" if page.newest_first else "asc"
    body: dict[str, Any] = {
        "query": compile_query(
            query, text_field=text_field, hide_blocked_text=hide_blocked_text, exclude_ids=exclude_ids
        ),
        "sort": [{"event_time": {"order": order}}, {"record_id": {"order": order}}],
        "from": page.offset,
        "size": page.size,
        "track_total_hits": True,
        "_source": {"includes": [*HIT_FIELDS, *TEXT_FIELDS]},
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


def _any(options: list[dict[str, Any]]) -> dict[str, Any]:
    if len(options) == 1:
        return options[0]
    return {"bool": {"should": options, "minimum_should_match": 1}}


def _participant(value: str) -> dict[str, Any]:
    return {"term": {"parties": party_key(value)}}


def _text(node: Node, field: str, hide_blocked: bool) -> dict[str, Any]:
    if isinstance(node, And):
        return {"bool": {"must": [_text(i, field, hide_blocked) for i in node.items]}}
    if isinstance(node, Or):
        return _any([_text(i, field, hide_blocked) for i in node.items])
    if isinstance(node, Not):
        return {"bool": {"must_not": [_text(node.item, field, hide_blocked)]}}
    leaf = _leaf(node, field)
    if hide_blocked:
        return {"bool": {"must": [leaf], "must_not": [{"term": {"blocked": True}}]}}
    return leaf


def _leaf(node: Node, field: str) -> dict[str, Any]:
    segs = node.segments  # type: ignore[union-attr]
    if isinstance(node, Prefix):
        return {"prefix": {field: {"value": node.text.lower()}}}
    if any(s.cjk for s in segs):
        return {"match_phrase": {f"{field}.cjk": {"query": node.text}}}  # type: ignore[union-attr]
    return {"match_phrase": {field: {"query": node.text}}}  # type: ignore[union-attr]
