"""The Beam sink in a real pipeline (FnApiRunner, in process) against the fake cluster."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from es_support import config, rows

from exporters.elasticsearch.bulk import ES_REJECTED, ES_UNAVAILABLE
from exporters.elasticsearch.config import make_client
from exporters.elasticsearch.setup import install
from exporters.elasticsearch.sink import METRICS_NAMESPACE, IndexRecords


def _counters(result) -> dict[str, int]:
    found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    return {c.key.metric.name: c.committed for c in found}


@pytest.fixture
def cfg(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    client.close()
    return cfg


def test_sink_indexes_and_dead_letters_with_counters(es_server, cfg):
    batch = rows(40)
    rejected = batch[7]["record_id"]
    shed = batch[30]["record_id"]
    es_server.fail_items({rejected}, 400)
    es_server.fail_items({shed}, 429)  # never recovers: dead after the retry budget
    es_server.storm_429(1)
    expected_indexed = sorted(r["record_id"] for r in batch if r["record_id"] not in (rejected, shed))

    pipeline = test_pipeline.TestPipeline(runner=FnApiRunner())
    out = pipeline | beam.Create(batch) | IndexRecords(cfg, batch_size=8)
    assert_that(out.indexed, equal_to(expected_indexed), label="indexed ids")
    reasons = out.dead_letters | beam.Map(lambda d: (d["record_id"], d["stage"], d["reason_code"]))
    assert_that(
        reasons,
        equal_to([(rejected, "index", ES_REJECTED), (shed, "index", ES_UNAVAILABLE)]),
        label="dead letters",
    )
    result = pipeline.run()
    result.wait_until_finish()

    counters = _counters(result)
    assert counters["indexed"] == 38
    assert counters["dead_lettered"] == 2
    assert counters["retried"] >= cfg.max_retries  # the storm's batch plus the shed document
    assert sorted(doc_id for _, doc_id in es_server.docs()) == expected_indexed


def test_pipeline_finishes_when_the_cluster_dies(es_server, cfg):
    es_server.die_after_bulk(1)
    batch = rows(30)
    pipeline = test_pipeline.TestPipeline(runner=FnApiRunner())
    out = pipeline | beam.Create(batch) | IndexRecords(cfg, batch_size=10)
    total = (
        (
            out.indexed | "one per id" >> beam.Map(lambda _: 1),
            out.dead_letters | "one per letter" >> beam.Map(lambda _: 1),
        )
        | beam.Flatten()
        | beam.CombineGlobally(sum)
    )
    assert_that(total, equal_to([30]), label="nothing lost")
    codes = out.dead_letters | beam.Map(lambda d: d["reason_code"]) | beam.Distinct()
    assert_that(codes, equal_to([ES_UNAVAILABLE]), label="codes")
    result = pipeline.run()
    result.wait_until_finish()
    counters = _counters(result)
    assert counters["indexed"] + counters["dead_lettered"] == 30
    assert counters["dead_lettered"] >= 20


def test_batch_size_is_validated(cfg):
    with pytest.raises(ValueError):
        IndexRecords(cfg, batch_size=0)
