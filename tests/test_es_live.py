"""Against a real Elasticsearch 9.x cluster, when ``ES_URL`` names one (skipped otherwise).

    ES_URL=http://localhost:9200 .venv/bin/pytest -m live_es tests/test_es_live.py
    # with security on: also ES_API_KEY=... or ES_USERNAME=... ES_PASSWORD=..., ES_CA_CERTS=ca.pem

Everything is created under a fresh prefix (``vigil-live-<random>``) and deleted at the end, so the
test can run against a shared cluster. The user needs manage_ilm and manage_index_templates, and
all privileges on ``vigil-live-*``.

Besides the index round trip, the parity table of ``tests/test_search_engines.py`` (every query,
every role) runs here against the real cluster and the embedded engine over the same rows: same
totals, same hits in the same order, same JSON lines but for the highlights, which must emphasise
the same words (Elasticsearch marks each word of a phrase on its own, the embedded engine the
whole phrase).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from es_support import rows
from search_support import PARITY_QUERIES, PARITY_ROLES, crm_refuses, dataset, write_archive

from pipelines.errors import QueryError
from pipelines.search.access import AccessRole, Identity

pytestmark = [
    pytest.mark.live_es,
    pytest.mark.skipif(not os.environ.get("ES_URL"), reason="set ES_URL to run against a real Elasticsearch"),
]


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Any, Any]]:
    from exporters.elasticsearch.config import EsConfig, make_client
    from exporters.elasticsearch.layout import index_pattern, policy_name, template_name

    cfg = EsConfig.from_options(index_prefix=f"vigil-live-{uuid.uuid4().hex[:8]}", replicas=0, max_retries=2)
    client = make_client(cfg)
    try:
        yield client, cfg
    finally:
        # by name: clusters refuse wildcard deletes (action.destructive_requires_name defaults to true)
        names = list(client.indices.get(index=index_pattern(cfg), allow_no_indices=True).body)
        if names:
            client.indices.delete(index=",".join(names))
        client.options(ignore_status=404).indices.delete_index_template(name=template_name(cfg))
        client.options(ignore_status=404).ilm.delete_lifecycle(name=policy_name(cfg))
        client.close()


def test_live_round_trip(live: tuple[Any, Any]) -> None:
    from exporters.elasticsearch.bulk import index_rows
    from exporters.elasticsearch.layout import index_pattern
    from exporters.elasticsearch.setup import check, install

    client, cfg = live
    assert install(client, cfg).changed
    assert not install(client, cfg).changed  # idempotent against the real normalisation

    batch = rows(6)  # spans two event months
    report = index_rows(client, batch, cfg)
    assert (report.indexed, report.dead_lettered) == (6, 0)
    client.indices.refresh(index=cfg.alias)

    indices = sorted(client.indices.get(index=index_pattern(cfg)).body)
    assert indices == [f"{cfg.index_prefix}-2026.01.01", f"{cfg.index_prefix}-2026.02.01"]
    settings = client.indices.get_settings(index=indices[0]).body[indices[0]]["settings"]["index"]
    assert settings["lifecycle"]["parse_origination_date"] == "true"

    hit = client.search(index=cfg.alias, query={"term": {"record_id": batch[2]["record_id"]}})
    assert hit["hits"]["total"]["value"] == 1
    assert hit["hits"]["hits"][0]["_source"]["body"] == batch[2]["body"]
    assert client.count(index=cfg.alias, query={"match": {"body": "settlement"}})["count"] == 6

    again = index_rows(client, batch, cfg)  # re-index: same ids, same indices
    client.indices.refresh(index=cfg.alias)
    assert again.indexed == 6
    assert client.count(index=cfg.alias)["count"] == 6

    bad = rows(1, start=10)[0] | {"not_in_the_model": 1}
    refused = index_rows(client, [bad], cfg)
    assert [d["reason_code"] for d in refused.dead_letters] == ["es_rejected"]
    assert "strict_dynamic_mapping_exception" in refused.dead_letters[0]["reason"]

    status = check(client, cfg)
    assert status.ok, status.problems
    assert status.documents == 6


def test_live_a_batch_over_the_request_cap_is_indexed_in_several_requests(live: tuple[Any, Any]) -> None:
    from exporters.elasticsearch.bulk import index_rows
    from exporters.elasticsearch.setup import install

    client, cfg = live
    install(client, cfg)
    small = cfg.model_copy(update={"max_request_bytes": 64 * 1024})
    batch = rows(24, start=100, body="long settlement note " * 1500)  # about 31 kB each
    ids = [r["record_id"] for r in batch]
    try:
        report = index_rows(client, batch, small, batch_size=24)
        assert (report.indexed, report.dead_lettered) == (24, 0)
        client.indices.refresh(index=cfg.alias)
        assert client.count(index=cfg.alias, query={"ids": {"values": ids}})["count"] == 24
    finally:  # the parity tests below compare totals: leave the alias as the round trip left it
        client.delete_by_query(index=cfg.alias, query={"ids": {"values": ids}}, refresh=True)


@pytest.fixture(scope="module")
def both_engines(live: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The parity rows in an embedded archive and in the live cluster (under the test's prefix)."""
    from exporters.elasticsearch.bulk import index_rows
    from exporters.elasticsearch.setup import install

    client, cfg = live
    install(client, cfg)
    table = dataset()
    archive = write_archive(tmp_path_factory.mktemp("live") / "archive", table)
    report = index_rows(client, table, cfg)
    assert (report.indexed, report.dead_lettered) == (len(table), 0)
    client.indices.refresh(index=cfg.alias)
    return archive, cfg


def _covered(inner: list[list[int]], outer: list[list[int]]) -> bool:
    """Every ``inner`` span lies inside an ``outer`` span, and every ``outer`` span holds one."""
    inside = all(any(o[0] <= i[0] and i[1] <= o[1] for o in outer) for i in inner)
    held = all(any(o[0] <= i[0] and i[1] <= o[1] for i in inner) for o in outer)
    return inside and held


@pytest.mark.parametrize("who", PARITY_ROLES, ids=[r.role.value for r in PARITY_ROLES])
@pytest.mark.parametrize("text", PARITY_QUERIES, ids=[q or "(everything)" for q in PARITY_QUERIES])
def test_live_cluster_answers_like_the_embedded_engine(
    both_engines: tuple[Path, Any], text: str, who: Identity
) -> None:
    import json

    from pipelines.search import embedded, es_engine, render
    from pipelines.search.parse import parse_query
    from pipelines.search.results import Page

    archive, cfg = both_engines
    query = parse_query(text)
    page = Page(size=50)
    if who.role is AccessRole.CRM and crm_refuses(query):
        with pytest.raises(QueryError):
            es_engine.search(cfg, query, who, page)
        return
    local = embedded.search(archive, query, who, page)
    remote = es_engine.search(cfg, query, who, page)
    assert remote.total == local.total
    assert [h.record_id for h in remote.hits] == [h.record_id for h in local.hits]
    for mine, theirs in zip(render.json_lines(local), render.json_lines(remote), strict=True):
        expected, got = json.loads(mine), json.loads(theirs)
        assert _covered(got.pop("highlights"), expected.pop("highlights")), (text, got["record_id"])
        assert got == expected


def test_live_date_bounds_a_date_nanos_field_cannot_hold(
    both_engines: tuple[Path, Any], live: tuple[Any, Any]
) -> None:
    """Production review: the fake refuses a ``range`` bound outside 1970..2262 on a ``date_nanos``
    field (as ``DateUtils.toLong`` does); check that the real cluster does too, and that Vigil's
    clamped bounds search fine."""
    from elasticsearch import BadRequestError

    from pipelines.search import es_engine
    from pipelines.search.parse import parse_query

    client, cfg = live
    with pytest.raises(BadRequestError):
        client.search(index=cfg.alias, query={"range": {"event_time": {"lt": "2300-01-01T00:00:00Z"}}})
    officer = Identity("olivia", AccessRole.OFFICER)
    everything = es_engine.search(cfg, parse_query(""), officer).total
    for text in ("from:1960-01-01", "to:2999-12-31", "from:0001-01-01 to:9999-12-30"):
        assert es_engine.search(cfg, parse_query(text), officer).total == everything, text
    assert es_engine.search(cfg, parse_query("from:2300-01-01"), officer).total == 0


def test_live_the_documented_privileges_are_enough(live: tuple[Any, Any]) -> None:
    """Production review: API keys holding only the privileges the README lists (plus ``monitor``,
    which ``GET /`` needs) can run setup, preflight and indexing. Skipped on a cluster without
    security or when the test's user may not create API keys."""
    from elasticsearch import ApiError

    from exporters.elasticsearch.bulk import index_rows
    from exporters.elasticsearch.config import EsConfig, make_client
    from exporters.elasticsearch.setup import install, preflight

    client, cfg = live
    pattern = f"{cfg.index_prefix}-*"
    roles = {
        "setup": {
            "cluster": ["monitor", "manage_ilm", "manage_index_templates"],
            "indices": [{"names": [pattern], "privileges": ["manage"]}],
        },
        "index": {
            "cluster": ["monitor"],
            "indices": [{"names": [pattern], "privileges": ["write", "create_index", "manage"]}],
        },
    }
    keys = {}
    try:
        for name, role in roles.items():
            made = client.security.create_api_key(
                name=f"{cfg.index_prefix}-{name}", expiration="1h", role_descriptors={f"vigil_{name}": role}
            )
            keys[name] = made["encoded"]
    except ApiError as exc:
        pytest.skip(f"cannot create API keys here ({exc.meta.status}): {exc}")
    base = cfg.model_dump(exclude={"api_key", "username", "password"})
    as_setup = EsConfig(**base, api_key=keys["setup"])
    as_indexer = EsConfig(**base, api_key=keys["index"])
    setup_client, index_client = make_client(as_setup), make_client(as_indexer)
    try:
        install(setup_client, as_setup)
        preflight(index_client, as_indexer)
        report = index_rows(index_client, rows(2, start=40), as_indexer)
        assert (report.indexed, report.dead_lettered) == (2, 0), report.dead_letters
    finally:
        setup_client.close()
        index_client.close()
        client.options(ignore_status=404).security.invalidate_api_key(name=f"{cfg.index_prefix}-*")
