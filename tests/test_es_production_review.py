"""What a real Elasticsearch does that the fake did not, and Vigil has to cope with (production review).

* A ``range`` bound a ``date_nanos`` field cannot hold (before 1970, after 2262-04-11) fails the
  whole search on a real cluster (``DateUtils.toLong``), while ``from:``/``to:`` accept any date
  from year 1 to 9999: Vigil clamps the bounds into the field's range.
* elasticsearch-py 9 sends ``compatible-with=9``, which an 8.x node refuses on every request with
  ``media_type_header_exception``: the message must say that the cluster is too old.
* ``GET /`` (the cluster's version, read by setup, check and every preflight) needs the
  ``monitor`` cluster privilege: a 403 there must name it.
"""

from __future__ import annotations

import pytest
from elasticsearch import BadRequestError
from es_support import config, rows
from fakes.es_server import FakeElasticsearch
from search_es_support import indexed_cluster

from exporters.elasticsearch.config import make_client
from exporters.elasticsearch.setup import check, install, preflight
from pipelines.errors import IndexingError
from pipelines.search import es_engine
from pipelines.search.access import AccessRole, Identity
from pipelines.search.parse import parse_query

OFFICER = Identity("olivia", AccessRole.OFFICER)
ROWS = rows(4)  # January and February 2026


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from:1960-01-01", 4),  # before the epoch: every record is after it
        ("to:2999-12-31", 4),  # past 2262: every record is before it
        ("from:0001-01-01 to:2262-12-31", 4),
        ("from:2300-01-01", 0),  # nothing can be that late
    ],
)
def test_dates_a_date_nanos_field_cannot_hold_are_searchable(text: str, expected: int) -> None:
    with indexed_cluster(ROWS) as (_server, cfg, _client):
        result = es_engine.search(cfg, parse_query(text), OFFICER)
    assert result.total == expected


def test_the_fake_refuses_an_out_of_range_date_nanos_bound_like_elasticsearch() -> None:
    with (
        indexed_cluster(ROWS) as (_server, cfg, client),
        pytest.raises(BadRequestError, match="cannot be stored in nanosecond resolution"),
    ):
        client.search(index=cfg.alias, query={"range": {"event_time": {"lt": "2300-01-01T00:00:00Z"}}})


@pytest.mark.parametrize("run", [install, check, preflight], ids=["setup", "check", "preflight"])
def test_an_8x_cluster_is_named_as_too_old(run) -> None:
    with FakeElasticsearch(version="8.19.3") as server:
        cfg = config(server.url)
        client = make_client(cfg)
        try:
            with pytest.raises(IndexingError, match=r"older than Elasticsearch 9\.x"):
                run(client, cfg)
        finally:
            client.close()


def test_a_403_on_cluster_info_names_the_monitor_privilege() -> None:
    with FakeElasticsearch() as server:
        server.fail(
            r"^/$",
            403,
            times=None,
            error_type="security_exception",
            reason="action [cluster:monitor/main] is unauthorized for API key id [k1] of user [vigil]",
        )
        cfg = config(server.url)
        client = make_client(cfg)
        try:
            with pytest.raises(
                IndexingError, match=r"needs the monitor \(to read the cluster.s version\), manage_ilm"
            ):
                install(client, cfg)
        finally:
            client.close()
