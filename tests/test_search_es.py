"""The Elasticsearch engine at the wire: what it sends, how it reads answers, how it fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from es_support import config
from search_es_support import SearchingFake, indexed_cluster
from search_support import by_event_id, dataset, vigil, write_archive

from exporters.elasticsearch.config import EsConfig
from exporters.elasticsearch.documents import to_document
from pipelines.errors import IndexingError
from pipelines.search import dsl, es_engine
from pipelines.search.access import AccessRole, Identity
from pipelines.search.parse import parse_query
from pipelines.search.results import HIT_FIELDS, Page

ROWS = dataset()
IDS = by_event_id(ROWS)
OFFICER = Identity("olivia", AccessRole.OFFICER)
REVIEWER = Identity("ravi", AccessRole.REVIEWER)


@pytest.fixture
def cluster() -> Iterator[tuple[SearchingFake, EsConfig]]:
    with indexed_cluster(ROWS) as (server, cfg, _client):
        server.requests.clear()
        yield server, cfg


def test_the_body_sent_is_the_compiled_dsl(cluster) -> None:
    server, cfg = cluster
    query = parse_query('"settlement date" channel:whatsapp from:2026-01-05')
    page = Page(number=2, size=1, sort="time")
    result = es_engine.search(cfg, query, REVIEWER, page)
    (request,) = [r for r in server.requests if r.path.endswith("/_search")]
    assert request.method in ("GET", "POST")
    assert request.path == f"/{cfg.alias}/_search"
    assert request.body == dsl.search_body(
        query, page, text_field="body_redacted", source=[*HIT_FIELDS, "body_redacted"]
    )
    assert "body" not in request.body["_source"]["includes"]  # a reviewer never receives the original
    assert result.total == 2
    assert [h.record_id for h in result.hits] == [IDS["en-2"]]


def test_the_cli_prints_the_same_lines_from_either_engine(cluster, tmp_path: Path, capsys) -> None:
    server, cfg = cluster
    archive = write_archive(tmp_path / "archive", ROWS)
    words = ["settlement", "OR", "结算", "--role", "officer", "--json", "--archive", str(archive)]
    assert vigil("search", *words) == 0
    local = capsys.readouterr().out.splitlines()
    assert vigil("search", *words, "--es-url", cfg.url) == 0
    remote = capsys.readouterr().out.splitlines()
    assert remote == local and len(local) == 8
    assert json.loads(local[0])["event_time"] == "2026-02-02T12:00:00Z"
    assert any(r.path.endswith("/_search") for r in server.requests)


def canned(row: dict, highlight: dict[str, list[str]]) -> dict:
    source = to_document(row)
    return {
        "took": 1,
        "timed_out": False,
        "hits": {
            "total": {"value": 1, "relation": "eq"},
            "hits": [
                {
                    "_index": "vigil-records-2026.01.01",
                    "_id": row["record_id"],
                    "_score": 1.0,
                    "_source": source,
                    "highlight": highlight,
                    "sort": [1, row["record_id"]],
                }
            ],
        },
    }


def _row(event_id: str) -> dict:
    return next(r for r in ROWS if r["event_id"] == event_id)


def test_highlights_come_from_elasticsearch(cluster) -> None:
    server, cfg = cluster
    # the highlighter marked "confirm": the hit shows what Elasticsearch said, not a local guess
    marked = f"Please {dsl.PRE_TAG}confirm{dsl.POST_TAG} the settlement date for order 42."
    server.canned = canned(_row("en-1"), {"body": [marked]})
    (hit,) = es_engine.search(cfg, parse_query("settlement"), OFFICER).hits
    assert hit.highlights == ((7, 14),)


def test_highlights_of_both_sub_fields_merge(cluster) -> None:
    server, cfg = cluster
    text = _row("zh-2")["body"]
    server.canned = canned(
        _row("zh-2"),
        {
            "body": [f"{dsl.PRE_TAG}iPhone{dsl.POST_TAG}价格是多少？"],
            "body.cjk": [f"iPhone{dsl.PRE_TAG}价格{dsl.POST_TAG}是多少？"],
        },
    )
    (hit,) = es_engine.search(cfg, parse_query("iPhone 价格"), OFFICER).hits
    assert hit.text == text
    assert hit.highlights == ((0, 8),)


def test_a_fragment_that_is_not_the_whole_text_falls_back_to_local_highlighting(cluster) -> None:
    server, cfg = cluster
    server.canned = canned(_row("en-1"), {"body": [f"the {dsl.PRE_TAG}settlement{dsl.POST_TAG} date"]})
    (hit,) = es_engine.search(cfg, parse_query("settlement"), OFFICER).hits
    assert hit.highlights == ((19, 29),)


def test_no_index_behind_the_alias() -> None:
    with SearchingFake() as server, pytest.raises(IndexingError) as excinfo:
        es_engine.search(config(server.url), parse_query("card"), OFFICER)
    assert "vigil es setup" in str(excinfo.value)


def test_refusals_and_an_unreachable_cluster_are_indexing_errors(cluster) -> None:
    server, cfg = cluster
    server.fail(r"/_search$", 400, times=1, error_type="parsing_exception", reason="bad query shape")
    with pytest.raises(IndexingError) as excinfo:
        es_engine.search(cfg, parse_query("card"), OFFICER)
    assert "bad query shape" in str(excinfo.value)
    server.stop()
    with pytest.raises(IndexingError) as excinfo:
        es_engine.search(cfg.model_copy(update={"max_retries": 0}), parse_query("card"), OFFICER)
    assert "cannot reach Elasticsearch" in str(excinfo.value)


def test_an_unreachable_cluster_is_named_with_what_to_check(cluster) -> None:
    """`vigil search --es-url` used to say only "Elasticsearch cannot be reached: Connection
    error": no URL and no hint, where `vigil es check` names both."""
    server, cfg = cluster
    server.stop()
    with pytest.raises(IndexingError) as excinfo:
        es_engine.search(cfg.model_copy(update={"max_retries": 0}), parse_query("card"), OFFICER)
    message = str(excinfo.value)
    assert cfg.safe_url in message
    assert "while searching" in message
    assert "check --es-url, that the cluster is up" in message
    assert "\n" not in message


@pytest.mark.parametrize("answer", [b"{}", b'{"hits": []}', b'{"hits": {"hits": "x"}}', b"[1]"])
def test_a_search_answer_without_hits_is_an_indexing_error(cluster, answer: bytes) -> None:
    server, cfg = cluster
    server.garble(lambda payload: answer, path=r"/_search$", times=None)
    with pytest.raises(IndexingError, match=r"not with hits as Elasticsearch 9\.x does"):
        es_engine.search(cfg, parse_query("card"), OFFICER)


def test_refused_credentials_on_search_say_what_to_check(cluster) -> None:
    server, cfg = cluster
    server.fail(r"/_search$", 401, times=1, error_type="security_exception", reason="key expired")
    with pytest.raises(IndexingError, match="key expired: check --api-key") as excinfo:
        es_engine.search(cfg, parse_query("card"), OFFICER)
    assert "\n" not in str(excinfo.value)
