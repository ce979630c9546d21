"""The Beam side of indexing: a thin composite over :func:`exporters.elasticsearch.bulk.index_rows`.

Usage inside a pipeline whose records travel as rows (``pipelines.record.record_to_row``)::

    indexed = rows | "Index in Elasticsearch" >> IndexRecords(cfg)
    indexed.indexed        # PCollection[str]: record ids Elasticsearch accepted
    indexed.dead_letters   # PCollection[dict]: DeadLetter rows (stage "index") to archive

Each worker opens one client in ``DoFn.setup`` and closes it in ``teardown``; rows are batched with
``BatchElements`` into bulk requests of ``batch_size``. Elasticsearch trouble never fails the
pipeline: whatever is not indexed comes out as a dead letter, and the counters ``indexed``,
``retried`` and ``dead_lettered`` (namespace ``vigil.es``) show up in the job's metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from exporters.elasticsearch.bulk import REFUSED_CREDENTIALS, IndexState, index_rows
from exporters.elasticsearch.config import EsConfig, make_client

INDEXED = "indexed"
DEAD_LETTERS = "dead_letters"
METRICS_NAMESPACE = "vigil.es"


class _BulkIndexFn(beam.DoFn):
    def __init__(self, cfg: EsConfig) -> None:
        self.cfg = cfg
        self.indexed = Metrics.counter(METRICS_NAMESPACE, "indexed")
        self.retried = Metrics.counter(METRICS_NAMESPACE, "retried")
        self.dead_lettered = Metrics.counter(METRICS_NAMESPACE, "dead_lettered")
        #: dead letters whose reason is the cluster refusing the credentials: the run summary then
        #: says to fix them, not to wait for the cluster
        self.refused_credentials = Metrics.counter(METRICS_NAMESPACE, "refused_credentials")
        self._client: Any = None
        self._state: IndexState | None = None

    def setup(self) -> None:
        self._client = make_client(self.cfg)
        self._state = IndexState()

    def process(self, batch: list[dict[str, Any]]) -> Iterator[Any]:
        report = index_rows(self._client, batch, self.cfg, batch_size=max(len(batch), 1), state=self._state)
        self.indexed.inc(report.indexed)
        self.retried.inc(report.retried)
        self.dead_lettered.inc(report.dead_lettered)
        self.refused_credentials.inc(
            sum(REFUSED_CREDENTIALS in letter["reason"] for letter in report.dead_letters)
        )
        yield from report.indexed_ids
        for letter in report.dead_letters:
            yield pvalue.TaggedOutput(DEAD_LETTERS, letter)

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class IndexRecords(beam.PTransform):
    """Index record rows into Elasticsearch; outputs ``.indexed`` ids and ``.dead_letters`` rows."""

    def __init__(self, cfg: EsConfig, batch_size: int = 500, label: str | None = None) -> None:
        super().__init__(label)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.cfg = cfg
        self.batch_size = batch_size

    def expand(self, rows: beam.PCollection) -> pvalue.DoOutputsTuple:
        return (
            rows
            | "Batch for bulk"
            >> beam.BatchElements(min_batch_size=self.batch_size, max_batch_size=self.batch_size)
            | "Bulk index" >> beam.ParDo(_BulkIndexFn(self.cfg)).with_outputs(DEAD_LETTERS, main=INDEXED)
        )
