"""Against a real Elasticsearch 9.x cluster, when ``ES_URL`` names one (skipped otherwise).

    ES_URL=http://localhost:9200 .venv/bin/pytest -m live_es tests/test_es_live.py
    # with security on: also ES_API_KEY=... or ES_USERNAME=... ES_PASSWORD=..., ES_CA_CERTS=ca.pem

Everything is created under a fresh prefix (``vigil-live-<random>``) and deleted at the end, so the
test can run against a shared cluster. The user needs manage_ilm and manage_index_templates, and
all privileges on ``vigil-live-*``.
"""

from __future__ import annotations

import os
import uuid

import pytest
from es_support import rows

pytestmark = [
    pytest.mark.live_es,
    pytest.mark.skipif(not os.environ.get("ES_URL"), reason="set ES_URL to run against a real Elasticsearch"),
]


@pytest.fixture(scope="module")
def live():
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


def test_live_round_trip(live):
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
