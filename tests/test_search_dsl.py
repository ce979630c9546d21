"""The Elasticsearch DSL each query compiles to, pinned (there is no cluster here to run it on;
``test_search_engines.py`` runs the same queries through the fake cluster's evaluator)."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.search.access import AccessRole, Identity
from pipelines.search.dsl import POST_TAG, PRE_TAG, compile_query, search_body
from pipelines.search.parse import parse_query
from pipelines.search.results import HIT_FIELDS, Page
from pipelines.search.sql import Decided


def phrase(text: str, field: str = "body") -> dict[str, Any]:
    return {"match_phrase": {field: {"query": text}}}


def must(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"must": list(clauses)}}


TABLE = [
    ("", {"match_all": {}}),
    ("settlement", must(phrase("settlement"))),
    ('"settlement date"', must(phrase("settlement date"))),
    ("e-mail", must(phrase("e-mail"))),  # inner punctuation: consecutive tokens, as embedded
    ("结算日期", must(phrase("结算日期", "body.cjk"))),
    ("iPhone价格", must(phrase("iPhone价格", "body.cjk"))),  # any CJK: the bigram sub-field
    ("Settl*", must({"prefix": {"body": {"value": "settl"}}})),  # the index is lower-cased
    ("card NOT test", must(must(phrase("card"), {"bool": {"must_not": [phrase("test")]}}))),
    (
        "card OR iban",
        must({"bool": {"should": [phrase("card"), phrase("iban")], "minimum_should_match": 1}}),
    ),
    ("channel:wechat,line", {"bool": {"filter": [{"terms": {"channel": ["wechat", "line"]}}]}}),
    (
        "from:2026-01-05 to:2026-01-31",
        {
            "bool": {
                "filter": [
                    {"range": {"event_time": {"gte": "2026-01-05T00:00:00Z", "lt": "2026-02-01T00:00:00Z"}}}
                ]
            }
        },
    ),
    (
        "dlp:block kind:message direction:outbound type:opted_in conversation:c-1",
        {
            "bool": {
                "filter": [
                    {"terms": {"conversation_id": ["c-1"]}},
                    {"terms": {"direction": ["outbound"]}},
                    {"terms": {"kind": ["message"]}},
                    {"terms": {"event_type": ["opted_in"]}},
                    {"terms": {"dlp_action": ["block"]}},
                ]
            }
        },
    ),
    (
        "rule:PII.Card",  # rule ids are lower case: the value is lower-cased, as channel: is
        {
            "bool": {
                "filter": [
                    {
                        "nested": {
                            "path": "dlp_findings",
                            "query": {"prefix": {"dlp_findings.rule_id": {"value": "pii.card"}}},
                        }
                    }
                ]
            }
        },
    ),
    (
        # compacted like the archive's party keys; kept with its "+" or without
        'participant:"+852 9123-4567"',
        {"bool": {"filter": [{"terms": {"parties": ["+85291234567", "85291234567"]}}]}},
    ),
    ("participant:Dana", {"bool": {"filter": [{"term": {"parties": "dana"}}]}}),  # lower-cased
    (
        # İ is i, as Elasticsearch lower-cases it; records archived before that hold i + U+0307
        "participant:İLKER",
        {"bool": {"filter": [{"terms": {"parties": ["ilker", "i\u0307lker"]}}]}},
    ),
    (
        "org:ACME/Wealth-HK org:globex",  # case-insensitive terms, as SQL compares lower(org)
        {
            "bool": {
                "filter": [
                    {
                        "bool": {
                            "should": [
                                {
                                    "bool": {
                                        "filter": [
                                            {"term": {"org.folded": {"value": "acme"}}},
                                            {"term": {"sub_org.folded": {"value": "wealth-hk"}}},
                                        ]
                                    }
                                },
                                {"term": {"org.folded": {"value": "globex"}}},
                            ],
                            "minimum_should_match": 1,
                        }
                    }
                ]
            }
        },
    ),
    (
        "card channel:sms",
        {"bool": {"filter": [{"terms": {"channel": ["sms"]}}], "must": [phrase("card")]}},
    ),
]


@pytest.mark.parametrize(("text", "dsl"), TABLE, ids=[t or "(empty)" for t, _ in TABLE])
def test_compiled_dsl(text: str, dsl: dict[str, Any]) -> None:
    assert compile_query(parse_query(text)) == dsl


def test_reviewers_search_the_redacted_field() -> None:
    assert compile_query(parse_query("card 结算"), text_field="body_redacted") == must(
        must(phrase("card", "body_redacted"), phrase("结算", "body_redacted.cjk"))
    )


def test_crm_leaves_blocked_records_and_dlp_notices_out() -> None:
    # a blocked-message notice names the rule and the reason, and its time pins the blocked message
    assert compile_query(parse_query("NOT card"), text_field="body_redacted", exclude_blocked=True) == {
        "bool": {
            "must_not": [
                {"term": {"blocked": True}},
                {"term": {"dlp_action": "block"}},
                {"term": {"event_type": "dlp_blocked_notice"}},
            ],
            "must": [{"bool": {"must_not": [phrase("card", "body_redacted")]}}],
        }
    }


def test_records_decided_elsewhere_replace_the_text_test_both_ways() -> None:
    decided = Decided(frozenset({"r1", "r2"}), frozenset({"r2"}))
    assert compile_query(parse_query("card"), decided=decided) == must(
        {
            "bool": {
                "should": [
                    {"bool": {"must": [phrase("card")], "must_not": [{"ids": {"values": ["r1", "r2"]}}]}},
                    {"ids": {"values": ["r2"]}},
                ],
                "minimum_should_match": 1,
            }
        }
    )


@pytest.mark.parametrize(
    ("role", "fields"),
    [
        (AccessRole.OFFICER, {"body", "body_redacted"}),
        (AccessRole.REVIEWER, {"body_redacted"}),
    ],
)
def test_only_the_fields_a_role_may_see_are_requested(role: AccessRole, fields: set[str]) -> None:
    who = Identity("x", role)
    body = search_body(parse_query("card"), Page(), source=[*HIT_FIELDS, *who.text_fields])
    requested = set(body["_source"]["includes"])
    assert requested & {"body", "body_redacted"} == fields


def test_search_body_pages_sorts_and_highlights() -> None:
    body = search_body(parse_query("card"), Page(number=3, size=10, sort="time"), text_field="body_redacted")
    assert body == {
        "query": must(phrase("card", "body_redacted")),
        "sort": [{"event_time": {"order": "asc"}}, {"record_id": {"order": "asc"}}],
        "from": 20,
        "size": 10,
        "track_total_hits": True,
        "_source": {"includes": [*HIT_FIELDS, "body", "body_redacted"]},
        "highlight": {
            "pre_tags": [PRE_TAG],
            "post_tags": [POST_TAG],
            "number_of_fragments": 0,
            "require_field_match": True,
            "fields": {"body_redacted": {}, "body_redacted.cjk": {}},
        },
    }


def test_no_highlight_without_text() -> None:
    body = search_body(parse_query("channel:sms"), Page())
    assert "highlight" not in body
    assert body["sort"][0] == {"event_time": {"order": "desc"}}


def test_crm_leaves_out_the_releases_and_hold_notices_of_blocked_held_messages() -> None:
    # the release and the hold notice name the held message (queued_event_id), the notice that a
    # message was not sent names it (refused_event_id), and their time pins it; one list of ids
    # per organisation and channel, so another firm's message of the same id is not confused
    held = frozenset({("acme", "whatsapp", "m-2"), ("acme", "whatsapp", "m-1"), ("globex", "wechat", "m-1")})
    compiled = compile_query(parse_query("kind:event"), exclude_blocked=True, held_out=held)

    def kinds(*pairs: tuple[str, str]) -> dict:  # type: ignore[type-arg]
        return {
            "bool": {
                "should": [
                    {"bool": {"filter": [{"term": {"kind": kind}}, {"term": {"event_type": event_type}}]}}
                    for kind, event_type in pairs
                ],
                "minimum_should_match": 1,
            }
        }

    def named_in(attribute: str) -> dict:  # type: ignore[type-arg]
        return {
            "bool": {
                "should": [
                    {
                        "bool": {
                            "filter": [
                                {"term": {"org": "acme"}},
                                {"term": {"channel": "whatsapp"}},
                                {"terms": {f"attributes.{attribute}": ["m-1", "m-2"]}},
                            ]
                        }
                    },
                    {
                        "bool": {
                            "filter": [
                                {"term": {"org": "globex"}},
                                {"term": {"channel": "wechat"}},
                                {"terms": {f"attributes.{attribute}": ["m-1"]}},
                            ]
                        }
                    },
                ],
                "minimum_should_match": 1,
            }
        }

    held_kinds = kinds(("event", "queued_delivered"), ("auto_message", "message_queued"))
    refused_kinds = kinds(
        ("auto_message", "queue_full"),
        ("auto_message", "consecutive_limit_reached"),
        ("auto_message", "window_expired"),
    )
    assert compiled["bool"]["must_not"][3] == {
        "bool": {
            "should": [
                {"bool": {"filter": [held_kinds, named_in("queued_event_id")]}},
                {"bool": {"filter": [refused_kinds, named_in("refused_event_id")]}},
            ],
            "minimum_should_match": 1,
        }
    }
    assert len(compiled["bool"]["must_not"]) == 4  # the blocked records and DLP notices stay out too
    assert "must_not" not in compile_query(parse_query("kind:event"), held_out=frozenset())["bool"]
