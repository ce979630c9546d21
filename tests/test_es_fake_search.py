"""The fake cluster's search answers like Elasticsearch for the DSL it supports, and refuses the rest.

Other modules (the ES search engine) test their wire path against this fake, so its answers must be
right: each query below is checked against records built to match or miss it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from elasticsearch import BadRequestError, NotFoundError
from es_support import config, record

from exporters.elasticsearch.bulk import index_rows
from exporters.elasticsearch.config import make_client
from exporters.elasticsearch.setup import install
from pipelines.record import record_to_row

FINDING = {
    "rule_id": "pii.card",
    "entity": "CREDIT_CARD",
    "detector": "regex",
    "start": 5,
    "end": 21,
    "score": 0.9,
}
RECORDS = [
    record(0, body="Please wire the funds today", attributes={"bot_intent": "payments"}),
    record(1, body="请确认结算日期", sender={"id": "emp-9", "role": "employee"}, direction="outbound"),
    record(
        2,
        body="card 4111111111111111 ok",
        dlp_action="redact",
        dlp_findings=[FINDING | {"action": "redact"}, FINDING | {"entity": "IBAN", "action": "flag"}],
    ),
    record(
        3,
        kind="event",
        event_type="opted_in",
        body=None,
        # a card that was only flagged, an IBAN that was redacted: flat objects would wrongly match
        # "a card finding that was redacted"; nested ones must not
        dlp_findings=[FINDING | {"action": "flag"}, FINDING | {"entity": "IBAN", "action": "redact"}],
    ),
    record(4, body="Funds arrive tomorrow", channel="whatsapp"),
]


@pytest.fixture(scope="module")
def searchable():
    from fakes.es_server import FakeElasticsearch

    with FakeElasticsearch() as server:
        cfg = config(server.url)
        client = make_client(cfg)
        install(client, cfg)
        report = index_rows(client, [record_to_row(r) for r in RECORDS], cfg)
        assert report.indexed == len(RECORDS)
        yield server, client, cfg
        client.close()


def _positions(response) -> set[int]:
    ids = [r.record_id for r in RECORDS]
    return {ids.index(hit["_id"]) for hit in response["hits"]["hits"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"match_all": {}}, {0, 1, 2, 3, 4}),
        ({"ids": {"values": [RECORDS[3].record_id, "nope"]}}, {3}),
        ({"term": {"channel": "whatsapp"}}, {4}),
        ({"term": {"channel": "WhatsApp"}}, set()),  # keyword: exact
        ({"term": {"sender.id": {"value": "emp-9"}}}, {1}),
        ({"terms": {"kind": ["event", "auto_message"]}}, {3}),
        ({"term": {"attributes.bot_intent": "payments"}}, {0}),
        ({"match": {"body": "FUNDS"}}, {0, 4}),  # text: analysed
        ({"match": {"body": {"query": "funds today", "operator": "and"}}}, {0}),
        ({"match_phrase": {"body": "wire the funds"}}, {0}),
        ({"match_phrase": {"body": "the wire funds"}}, set()),
        ({"match": {"body.cjk": "结算"}}, {1}),  # CJK bigrams
        ({"term": {"body.raw": "Funds arrive tomorrow"}}, {4}),
        ({"exists": {"field": "body"}}, {0, 1, 2, 4}),
        ({"range": {"event_time": {"gte": "2026-02-01T00:00:00Z"}}}, {4}),
        ({"range": {"event_time": {"lt": "2026-01-31T23:00:00Z"}}}, {0, 1}),
        # nested: one finding that is both a card AND redacted
        (
            {
                "nested": {
                    "path": "dlp_findings",
                    "query": {
                        "bool": {
                            "filter": [
                                {"term": {"dlp_findings.entity": "CREDIT_CARD"}},
                                {"term": {"dlp_findings.action": "redact"}},
                            ]
                        }
                    },
                }
            },
            {2},
        ),
        # the same conditions without ``nested`` match across findings, as ES does for plain arrays
        (
            {
                "bool": {
                    "filter": [
                        {"term": {"dlp_findings.entity": "CREDIT_CARD"}},
                        {"term": {"dlp_findings.action": "redact"}},
                    ]
                }
            },
            {2, 3},
        ),
        (
            {
                "bool": {
                    "must": [{"match": {"body": "funds"}}],
                    "must_not": [{"term": {"channel": "whatsapp"}}],
                }
            },
            {0},
        ),
        (
            {
                "bool": {
                    "should": [{"term": {"channel": "whatsapp"}}, {"ids": {"values": [RECORDS[1].record_id]}}]
                }
            },
            {1, 4},
        ),
    ],
)
def test_queries(searchable, query, expected):
    _, client, cfg = searchable
    assert _positions(client.search(index=cfg.alias, query=query, size=100)) == expected
    assert client.count(index=cfg.alias, query=query)["count"] == len(expected)


def test_request_bodies_are_recorded(searchable):
    server, client, cfg = searchable
    client.search(index=cfg.alias, query={"term": {"org": "acme"}}, size=1)
    assert server.search_bodies()[-1] == {"query": {"term": {"org": "acme"}}, "size": 1}


def test_sort_size_and_search_after(searchable):
    _, client, cfg = searchable
    sort = [{"event_time": "desc"}, {"record_id": "asc"}]
    first = client.search(index=cfg.alias, sort=sort, size=2)
    assert _positions(first) == {4, 3}
    assert first["hits"]["total"]["value"] == 5
    after = first["hits"]["hits"][-1]["sort"]
    second = client.search(index=cfg.alias, sort=sort, size=2, search_after=after)
    assert [h["_id"] for h in second["hits"]["hits"]] == [RECORDS[2].record_id, RECORDS[1].record_id]


def test_source_filtering(searchable):
    _, client, cfg = searchable
    hit = client.search(
        index=cfg.alias, query={"ids": {"values": [RECORDS[0].record_id]}}, source=["record_id", "body"]
    )
    assert hit["hits"]["hits"][0]["_source"] == {"record_id": RECORDS[0].record_id, "body": RECORDS[0].body}


@pytest.mark.parametrize(
    "body",
    [
        {"query": {"query_string": {"query": "funds"}}},  # not implemented: must not pass silently
        {"query": {"term": {"channel": "sms"}, "ids": {"values": []}}},  # two clauses in one object
        {"query": {"nested": {"path": "participants", "query": {"match_all": {}}}}},  # not a nested field
        {"aggs": {"by_channel": {"terms": {"field": "channel"}}}},
        {"sort": [{"body": "asc"}]},  # text fields cannot sort, as on a real cluster
    ],
)
def test_unsupported_or_malformed_queries_are_400(searchable, body):
    _, client, cfg = searchable
    with pytest.raises(BadRequestError):
        client.search(index=cfg.alias, body=body)


def test_missing_index_is_404(searchable):
    _, client, _ = searchable
    with pytest.raises(NotFoundError):
        client.search(index="no-such-index", query={"match_all": {}})


def test_time_values_in_the_index_are_utc_iso(searchable):
    server, _, _ = searchable
    source = next(iter(server.docs().values()))
    parsed = dt.datetime.fromisoformat(source["event_time"])
    assert parsed.utcoffset() == dt.timedelta(0)


# ------------------------------------------------------------------------------------------------
# the search tests' analyzers (search_es_support): Lucene's StandardTokenizer and its token types


@pytest.mark.parametrize(
    ("text", "analyzer", "tokens"),
    [
        # a run of connectors alone is no token (every rule of Lucene's grammar needs a letter or
        # a digit); one touching a word is part of it
        ("Name: ____ Date: ____", None, ["name", "date"]),
        ("name_date ____date _", None, ["name_date", "____date"]),
        ("结算＿＿日期", "cjk", ["结算", "日期"]),
        # Hangul is a letter to UAX #29: glued to Latin letters or digits it is one <ALPHANUM>
        # word, which cjk_bigram passes through; a run of Hangul alone is <HANGUL>, bigrammed
        ("iPhone을 샀어요", "cjk", ["iphone을", "샀어", "어요"]),
        ("사과 3개 주세요", "cjk", ["사과", "3개", "주세", "세요"]),
        ("2026년 1월 삼성Galaxy", "cjk", ["2026년", "1월", "삼성galaxy"]),
        ("삼성.전자", "cjk", ["삼성.전자"]),  # a joiner between letters: one word
        ("한국어 漢字かな", "cjk", ["한국", "국어", "漢字", "字か", "かな"]),
        # Hebrew keeps ' after a letter and " between two (WB7a-c)
        ('צה"ל הודיע', None, ['צה"ל', "הודיע"]),
        ("פרופ' כהן שלום' לך", None, ["פרופ'", "כהן", "שלום'", "לך"]),
        # the stock cjk analyzer: 々 is a letter, so a word (<ALPHANUM>) the bigrams stop at
        ("佐々木さん", "cjk", ["佐", "々", "木さ", "さん"]),
        ("々abc", "cjk", ["々abc"]),
        ("〆切は", "cjk", ["切は"]),  # 〆 (Script=Common, WB=Other) is dropped
        # lower case one character at a time, as Lucene's lowercase filter
        ("İSTANBUL ΟΔΟΣ", None, ["istanbul", "οδοσ"]),
    ],
)
def test_the_search_fake_tokenizes_like_lucene(text, analyzer, tokens):
    from search_es_support import _tokens

    assert _tokens(text, analyzer) == tokens


def test_the_index_cjk_analyzer_reads_an_iteration_mark_as_the_han_character_before_it():
    from fakes.es_dsl import resolve_analyzers
    from search_es_support import _tokens

    from exporters.elasticsearch.layout import index_template

    template = index_template(config("http://localhost:9200"))["template"]
    resolved = resolve_analyzers(template["mappings"], template["settings"])
    analyzer = resolved["properties"]["body"]["fields"]["cjk"]["analyzer"]
    assert _tokens("佐々木さん", analyzer) == ["佐佐", "佐木", "木さ", "さん"]
    assert _tokens("佐々木", analyzer) == ["佐佐", "佐木"]  # the query finds the text
    assert _tokens("さ々 人々", analyzer) == ["さ", "々", "人人"]
    assert _tokens("ＴＳＭＣの株価", analyzer) == ["tsmc", "の株", "株価"]
