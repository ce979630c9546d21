"""Bulk indexing against the fake cluster, faults included: every record is indexed or dead-lettered."""

from __future__ import annotations

import json
import time
from collections import Counter

import pyarrow as pa
import pytest
from es_support import config, rows

from exporters.elasticsearch.bulk import ES_BAD_ROW, ES_REJECTED, ES_UNAVAILABLE, IndexState, index_rows
from exporters.elasticsearch.config import make_client
from exporters.elasticsearch.setup import install
from pipelines.record import DEAD_LETTER_SCHEMA, DeadLetter, from_micros


@pytest.fixture
def cluster(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    yield es_server, client, cfg
    client.close()


def _ids(batch):
    return [r["record_id"] for r in batch]


def _assert_accounted(report, batch):
    assert report.read == len(batch)
    assert report.indexed + report.dead_lettered == report.read
    dead = {d["record_id"] for d in report.dead_letters}
    assert set(report.indexed_ids) | dead == set(_ids(batch))
    assert not set(report.indexed_ids) & dead


def test_bulk_success_lands_in_monthly_indices_behind_the_alias(cluster):
    server, client, cfg = cluster
    batch = rows(12)  # 22:00 on 31 January onwards, every 30 minutes: two months
    report = index_rows(client, batch, cfg, batch_size=5)
    _assert_accounted(report, batch)
    assert report.indexed == 12 and report.retried == 0 and report.requests == 3
    docs = server.docs("vigil-records")
    assert {index for index, _ in docs} == {"vigil-records-2026.01.01", "vigil-records-2026.02.01"}
    assert sorted(doc_id for _, doc_id in docs) == sorted(_ids(batch))
    assert client.count(index=cfg.alias)["count"] == 12


def test_reindexing_is_idempotent(cluster):
    server, client, cfg = cluster
    batch = rows(8)
    index_rows(client, batch, cfg)
    again = index_rows(client, batch, cfg, batch_size=3)
    assert again.indexed == 8
    assert len(server.docs()) == 8


def test_429_storm_then_success_indexes_each_document_exactly_once(cluster):
    server, client, cfg = cluster
    server.storm_429(3)
    batch = rows(10)
    report = index_rows(client, batch, cfg, batch_size=10)
    _assert_accounted(report, batch)
    assert report.indexed == 10 and report.dead_lettered == 0
    assert report.retried == 30 and report.requests == 4
    stored = [doc_id for _, doc_id in server.docs()]
    assert Counter(stored) == Counter(_ids(batch))


@pytest.mark.parametrize(
    ("faults", "expected_codes", "retried"),
    [
        # one document the mapping refuses: dead at once, never retried
        ([(1, 400, "document_parsing_exception", None)], {ES_REJECTED: 1}, 0),
        # two documents briefly shed (429 twice), then accepted
        ([(2, 429, None, 2), (5, 429, None, 2)], {}, 4),
        # one shed for good: retried up to the budget (3), then es_unavailable
        ([(4, 429, None, None)], {ES_UNAVAILABLE: 1}, 3),
        # a mix, with a per-item 503 that recovers
        (
            [(0, 400, "illegal_argument_exception", None), (3, 503, None, 1), (6, 429, None, None)],
            {ES_REJECTED: 1, ES_UNAVAILABLE: 1},
            4,
        ),
        # a 403 on one item is not retryable
        ([(7, 403, "security_exception", None)], {ES_REJECTED: 1}, 0),
    ],
)
def test_item_failures_become_dead_letters_with_reasons(cluster, faults, expected_codes, retried):
    server, client, cfg = cluster
    batch = rows(8)
    for position, status, error_type, times in faults:
        server.fail_items({batch[position]["record_id"]}, status, error_type=error_type, times=times)
    report = index_rows(client, batch, cfg)
    _assert_accounted(report, batch)
    assert Counter(d["reason_code"] for d in report.dead_letters) == Counter(expected_codes)
    assert report.retried == retried
    assert len(server.docs()) == report.indexed


def test_mapping_rejection_is_real_and_explained(cluster):
    _, client, cfg = cluster
    batch = rows(3)
    batch[1] = batch[1] | {"sentiment": "angry"}  # a field the model does not have
    batch[2] = batch[2] | {"is_group": {"yes": True}}  # an object where a boolean belongs
    report = index_rows(client, batch, cfg)
    assert report.indexed == 1
    reasons = {d["record_id"]: d["reason"] for d in report.dead_letters}
    assert "strict_dynamic_mapping_exception" in reasons[batch[1]["record_id"]]
    assert "run `vigil es setup`" in reasons[batch[1]["record_id"]]
    assert "document_parsing_exception" in reasons[batch[2]["record_id"]]
    assert "vigil es index --archive" in reasons[batch[2]["record_id"]]


def test_dead_letters_are_archive_rows_with_the_document(cluster):
    server, client, cfg = cluster
    batch = rows(2)
    server.fail_items({batch[0]["record_id"]}, 400)
    (letter,) = index_rows(client, batch, cfg).dead_letters
    # rows carry timestamps as int microseconds, like the ingest stage's dead letters
    DeadLetter.model_validate(letter | {"dead_letter_time": from_micros(letter["dead_letter_time"])})
    pa.Table.from_pylist([letter], schema=DEAD_LETTER_SCHEMA)  # and the archive's Parquet schema
    assert letter["stage"] == "index"
    assert letter["record_id"] == batch[0]["record_id"]
    assert letter["source_name"] == batch[0]["source_name"]
    assert letter["source_offset"] == batch[0]["source_offset"]
    document = json.loads(letter["raw"])
    assert document["record_id"] == batch[0]["record_id"]
    assert letter["raw_size"] == len(letter["raw"])
    # the same failure of the same document gets the same id (dedup across re-runs)
    server.fail_items({batch[0]["record_id"]}, 400)
    (again,) = index_rows(client, batch[:1], cfg).dead_letters
    assert again["dead_letter_id"] == letter["dead_letter_id"]


def test_malformed_rows_are_dead_lettered_not_raised(cluster):
    _, client, cfg = cluster
    batch = rows(3)
    batch[1] = {k: v for k, v in batch[1].items() if k != "event_time"}
    report = index_rows(client, batch, cfg)
    assert report.indexed == 2
    assert [d["reason_code"] for d in report.dead_letters] == [ES_BAD_ROW]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_whole_request_5xx_is_retried(cluster, status):
    server, client, cfg = cluster
    server.fail(status=status, times=2)
    batch = rows(6)
    report = index_rows(client, batch, cfg)
    assert report.indexed == 6 and report.retried == 12
    assert len(server.docs()) == 6


def test_whole_request_4xx_is_not_retried(cluster):
    server, client, cfg = cluster
    server.fail(status=400, times=1, error_type="illegal_argument_exception", reason="bad request")
    report = index_rows(client, rows(4), cfg)
    assert report.retried == 0 and report.dead_lettered == 4 and report.requests == 1
    assert {d["reason_code"] for d in report.dead_letters} == {ES_REJECTED}
    assert "bad request" in report.dead_letters[0]["reason"]


def _bulk_body_sizes(server):
    """Body sizes of the bulk requests the fake answered (a 413 never reaches its handler)."""
    return [int(r.headers["content-length"]) for r in server.requests if r.path.endswith("/_bulk")]


@pytest.fixture
def limited(es_server):
    """A cluster that takes at most ``limit`` bytes per request (``None``: no limit), a client on it."""
    clients = []

    def make(limit, **overrides):
        cfg = config(es_server.url, **overrides)
        client = make_client(cfg)
        install(client, cfg)
        es_server.max_content_length = limit
        clients.append(client)
        return client, cfg

    yield make
    for client in clients:
        client.close()


def test_a_batch_larger_than_max_request_bytes_goes_out_in_several_requests(es_server, limited):
    client, cfg = limited(None, max_request_bytes=64 * 1024)
    batch = rows(40, body="x" * 6000)  # 6 kB and more per document
    report = index_rows(client, batch, cfg, batch_size=40)
    _assert_accounted(report, batch)
    sizes = _bulk_body_sizes(es_server)
    assert report.indexed == 40 and report.requests == 1 and report.retried == 0
    assert sum(sizes) > 4 * 64 * 1024  # one request would have been over 256 kB
    assert len(sizes) >= 5 and max(sizes) <= 64 * 1024
    assert len(es_server.docs()) == 40


def test_413_from_the_cluster_halves_the_requests_until_they_fit(es_server, limited):
    client, cfg = limited(100_000)  # 10 MiB requests, but this cluster takes at most 100 kB
    batch = rows(60, body="y" * 6000)
    report = index_rows(client, batch, cfg, batch_size=60)
    _assert_accounted(report, batch)
    assert report.indexed == 60 and report.dead_lettered == 0
    assert es_server.too_large_requests >= 1
    landed = _bulk_body_sizes(es_server)
    assert len(landed) >= 3 and max(landed) <= 100_000  # 60 × 6 kB and more in requests ≤ 100 kB
    assert sorted(doc_id for _, doc_id in es_server.docs()) == sorted(_ids(batch))


def test_later_batches_start_at_the_request_size_the_cluster_took(es_server, limited):
    # a worker learns the cluster's limit once: the next batches do not draw 413s all over again
    client, cfg = limited(100_000)
    state = IndexState()
    first = index_rows(client, rows(60, body="y" * 6000), cfg, batch_size=60, state=state)
    refused = es_server.too_large_requests
    assert first.indexed == 60 and refused >= 1 and state.learned_request_bytes is not None
    later = index_rows(client, rows(120, start=60, body="y" * 6000), cfg, batch_size=60, state=state)
    assert later.indexed == 120 and later.dead_lettered == 0
    assert es_server.too_large_requests == refused
    assert len(es_server.docs()) == 180


def test_a_document_too_large_on_its_own_is_dead_lettered_and_the_rest_indexed(es_server, limited):
    client, cfg = limited(50_000)
    batch = rows(6, body="z" * 2000)
    batch[3] = rows(1, start=3, body="W" * 60_000)[0]  # over 50 kB on its own
    report = index_rows(client, batch, cfg, batch_size=6)
    _assert_accounted(report, batch)
    assert report.indexed == 5 and report.dead_lettered == 1
    letter = report.dead_letters[0]
    assert letter["record_id"] == batch[3]["record_id"] and letter["reason_code"] == ES_REJECTED
    assert "too large (413)" in letter["reason"] and "http.max_content_length" in letter["reason"]
    assert report.retried >= 1 and report.requests >= 2


def test_documents_too_large_on_their_own_leave_the_request_size_alone(es_server, limited):
    """Each document the cluster refuses alone says nothing about the others: before, each halved
    the worker's request size for the rest of the run, until every document went on its own."""
    client, cfg = limited(60_000)
    state = IndexState()
    learned = []
    for n in range(5):
        batch = rows(20, start=n * 21, body="y" * 1000)  # under 60 kB together: one request
        batch.append(rows(1, start=n * 21 + 20, body="W" * 60_000)[0])  # never fits
        report = index_rows(client, batch, cfg, batch_size=21, state=state)
        assert (report.indexed, report.dead_lettered) == (20, 1)
        learned.append(state.learned_request_bytes)
    assert learned[0] is not None  # the first 413 held all 21: halved once
    assert learned == learned[:1] * 5
    es_server.requests.clear()
    normal = index_rows(client, rows(20, start=500, body="y" * 1000), cfg, batch_size=20, state=state)
    assert normal.indexed == 20 and len(_bulk_body_sizes(es_server)) == 1


def test_timeouts_are_retried(es_server):
    cfg = config(es_server.url, request_timeout=1.0)
    client = make_client(cfg)
    install(client, cfg)
    es_server.delay(3.0, times=1)  # the first bulk answers after the client gave up
    batch = rows(5)
    report = index_rows(client, batch, cfg)
    assert report.indexed == 5 and report.retried == 5
    # the abandoned first attempt still applies on the server; wait until it has
    deadline = time.monotonic() + 30
    while es_server.answered < len(es_server.requests) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert es_server.answered == len(es_server.requests) and len(es_server.bulk_bodies()) == 2
    # both attempts wrote every document, under its record id: stored once each, not twice
    docs = es_server.docs()
    assert sorted(doc_id for _, doc_id in docs) == sorted(_ids(batch))
    versions = {doc_id: es_server.indices[name].versions[doc_id] for name, doc_id in docs}
    assert versions == dict.fromkeys(_ids(batch), 2)


class _Clock:
    def __init__(self, step: float = 0.0) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_server_dying_mid_run_dead_letters_the_rest_and_finishes(cluster):
    server, client, cfg = cluster
    server.die_after_bulk(2)
    batch = rows(50)
    state = IndexState(clock=_Clock())  # time stands still: the breaker stays open
    report = index_rows(client, batch, cfg, batch_size=10, state=state)
    _assert_accounted(report, batch)
    assert report.indexed == 20
    assert report.dead_lettered == 30
    assert {d["reason_code"] for d in report.dead_letters} == {ES_UNAVAILABLE}
    assert all("once the cluster is healthy" in d["reason"] for d in report.dead_letters)
    assert state.unavailable
    # the first failing batch spends the retry budget; the two after it are not even sent
    assert report.requests == 2 + (1 + cfg.max_retries)
    assert sum("was not sent" in d["reason"] for d in report.dead_letters) == 20


def test_a_backfill_stops_when_the_breaker_trips_and_dead_letters_nothing_it_did_not_send(cluster):
    # `vigil es index` re-sends the whole archive when run again: letters for what the cluster
    # never answered for would add nothing, so it stops reading at the first trip
    server, client, cfg = cluster
    server.die_after_bulk(2)
    batch = rows(50)
    batch[25] = {k: v for k, v in batch[25].items() if k != "event_time"}  # in the batch that trips
    taken = []

    def source():
        for row in batch:
            taken.append(row)
            yield row

    seen = []
    report = index_rows(
        client, source(), cfg, batch_size=10, on_batch=seen.append, stop_when_unavailable=True
    )
    assert len(taken) == 30  # the batches after the one that tripped the breaker are never read
    assert [r.read for r in seen] == [10, 10, 10]
    assert (report.read, report.indexed, report.dead_lettered, report.unsent) == (30, 20, 1, 9)
    assert report.read == report.indexed + report.dead_lettered + report.unsent
    # the bad row is wrong whatever the cluster does: it keeps its letter; the others get none
    assert [d["reason_code"] for d in seen[-1].dead_letters] == [ES_BAD_ROW]
    assert report.stopped is not None and "ConnectionError" in report.stopped
    assert report.requests == 2 + (1 + cfg.max_retries)


def test_without_stop_when_unavailable_the_run_goes_on_as_before(cluster):
    # `vigil run`: its dead letters are the record of what the index is missing
    server, client, cfg = cluster
    server.die_after_bulk(1)
    report = index_rows(client, rows(30), cfg, batch_size=10, state=IndexState(clock=_Clock()))
    assert (report.indexed, report.dead_lettered, report.unsent, report.stopped) == (10, 20, 0, None)


def test_after_the_cool_down_each_batch_probes_once(cluster):
    server, client, cfg = cluster
    server.die_after_bulk(2)
    state = IndexState(clock=_Clock(step=60.0))  # every look at the clock: a minute later
    report = index_rows(client, rows(50), cfg, batch_size=10, state=state)
    assert report.indexed == 20 and report.dead_lettered == 30
    assert report.requests == 2 + (1 + cfg.max_retries) + 1 + 1


def test_breaker_closes_when_the_cluster_is_back(cluster):
    server, client, cfg = cluster
    server.fail(status=503, times=1 + cfg.max_retries)  # the first batch never gets through
    state = IndexState(clock=_Clock(step=60.0))
    report = index_rows(client, rows(30), cfg, batch_size=10, state=state)
    assert report.dead_lettered == 10 and report.indexed == 20
    assert not state.unavailable
    assert report.requests == (1 + cfg.max_retries) + 1 + 1


def test_the_batch_that_finds_the_cluster_back_but_busy_gets_its_retries(cluster):
    # before, the budget of a batch begun with the breaker open stayed at one attempt after the
    # cluster answered: per-item 429s from a cluster recovering under load dead-lettered it whole
    server, client, cfg = cluster
    server.fail(status=503, times=1 + cfg.max_retries)  # the first batch never gets through
    state = IndexState(clock=_Clock(step=60.0))  # so the second batch is the breaker's probe
    batch = rows(20)
    first = index_rows(client, batch[:10], cfg, state=state)
    assert first.dead_lettered == 10 and state.unavailable
    server.fail_items(_ids(batch[10:13]), status=429, times=1)  # back, but busy for a moment
    probe = index_rows(client, batch[10:], cfg, state=state)
    _assert_accounted(probe, batch[10:])
    assert probe.indexed == 10 and probe.dead_lettered == 0 and probe.requests == 2
    assert not state.unavailable


def test_a_429_storm_longer_than_the_budget_costs_one_batch_not_the_run(cluster):
    # a busy cluster is answering: the batch caught in the storm is dead-lettered after its
    # retries, and the next batches are sent as usual (the breaker is for a cluster that is away)
    server, client, cfg = cluster
    server.storm_429(1 + cfg.max_retries)
    state = IndexState(clock=_Clock())  # time stands still: an open breaker would stay open
    batch = rows(30)
    report = index_rows(client, batch, cfg, batch_size=10, state=state)
    _assert_accounted(report, batch)
    assert report.dead_lettered == 10 and report.indexed == 20
    assert not state.unavailable
    assert report.requests == (1 + cfg.max_retries) + 1 + 1
    assert all("es_rejected_execution_exception" in d["reason"] for d in report.dead_letters)


def test_a_bulk_answer_that_is_not_from_elasticsearch_is_unavailable_not_refused(cluster, monkeypatch):
    # a proxy or another server answering 200 without the product header: the documents never
    # reached a cluster, so they are dead-lettered as unavailable (re-send), not as refused
    from fakes import es_server as fake_module

    _, client, cfg = cluster
    original = fake_module._Handler.send_header

    def no_product_header(self, key, value):
        if key != "X-Elastic-Product":
            original(self, key, value)

    monkeypatch.setattr(fake_module._Handler, "send_header", no_product_header)
    batch = rows(5)
    report = index_rows(client, batch, cfg, state=IndexState(clock=_Clock()))
    _assert_accounted(report, batch)
    assert report.indexed == 0 and report.requests == 1 + cfg.max_retries
    assert {d["reason_code"] for d in report.dead_letters} == {ES_UNAVAILABLE}
    assert all("not as Elasticsearch does" in d["reason"] for d in report.dead_letters)


@pytest.mark.parametrize("status", [429, 503])
def test_one_document_shed_for_good_does_not_trip_the_breaker(cluster, status):
    server, client, cfg = cluster
    batch = rows(20)
    server.fail_items({batch[0]["record_id"]}, status)  # the cluster answers, for this one: later
    state = IndexState(clock=_Clock())
    report = index_rows(client, batch, cfg, batch_size=10, state=state)
    assert report.indexed == 19 and report.dead_lettered == 1
    assert not state.unavailable


def test_on_batch_streams_results_and_keeps_only_counts(cluster):
    server, client, cfg = cluster
    batch = rows(7)
    server.fail_items({batch[6]["record_id"]}, 400)
    seen = []
    total = index_rows(client, batch, cfg, batch_size=3, on_batch=seen.append)
    assert [r.read for r in seen] == [3, 3, 1]
    assert sum(len(r.indexed_ids) for r in seen) == 6
    assert [len(r.dead_letters) for r in seen] == [0, 0, 1]
    assert (total.read, total.indexed, total.dead_lettered) == (7, 6, 1)
    assert total.indexed_ids == [] and total.dead_letters == []


def test_batch_size_must_be_positive(cluster):
    _, client, cfg = cluster
    with pytest.raises(ValueError):
        index_rows(client, rows(1), cfg, batch_size=0)


def _drop_item_for(doc_id):
    def transform(payload: bytes) -> bytes:
        answer = json.loads(payload)
        answer["items"] = [i for i in answer["items"] if i["index"]["_id"] != doc_id]
        return json.dumps(answer).encode()

    return transform


def _set_items(items):
    def transform(payload: bytes) -> bytes:
        answer = json.loads(payload)
        answer["items"] = items(answer["items"]) if callable(items) else items
        return json.dumps(answer).encode()

    return transform


MALFORMED = {
    "not JSON": lambda payload: b'{"took": 1, "items": [',
    "no items": lambda payload: b'{"took": 1, "errors": false}',
    "items null": _set_items(None),
    "items not objects": _set_items(lambda items: [1] * len(items)),
    "empty items": _set_items(lambda items: [{}] * len(items)),
    "status not a number": _set_items(
        lambda items: [{"index": {**i["index"], "status": "created"}} for i in items]
    ),
}


@pytest.mark.parametrize("transform", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_bulk_answer_is_sent_again_never_raised(cluster, transform):
    # a 200 "from Elasticsearch" whose body is not a bulk answer used to raise out of index_rows
    # (and so fail `vigil run`); now the attempt counts as failed and the batch is sent again
    server, client, cfg = cluster
    batch = rows(5)
    server.garble(transform, times=1)
    report = index_rows(client, batch, cfg)
    _assert_accounted(report, batch)
    assert report.indexed == 5 and report.retried == 5 and report.requests == 2
    assert Counter(doc_id for _, doc_id in server.docs()) == Counter(_ids(batch))


@pytest.mark.parametrize("transform", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bulk_answers_to_the_end_dead_letter_as_unavailable(cluster, transform):
    server, client, cfg = cluster
    batch = rows(5)
    server.garble(transform, times=None)
    report = index_rows(client, batch, cfg, state=IndexState(clock=_Clock()))
    _assert_accounted(report, batch)
    assert report.dead_lettered == 5 and report.requests == 1 + cfg.max_retries
    assert {d["reason_code"] for d in report.dead_letters} == {ES_UNAVAILABLE}
    reason = report.dead_letters[0]["reason"]
    assert "malformed" in reason or "Unable to deserialize" in reason or "no result" in reason


def test_a_bulk_answer_missing_an_item_does_not_confirm_another_document(cluster):
    # items are matched to documents by _id, not by position: with the answer for document 1
    # missing, the answer for document 2 must not be read as document 1's
    server, client, cfg = cluster
    batch = rows(3)
    missing = batch[1]["record_id"]
    server.garble(_drop_item_for(missing), times=None)
    report = index_rows(client, batch, cfg)
    _assert_accounted(report, batch)
    assert sorted(report.indexed_ids) == sorted([batch[0]["record_id"], batch[2]["record_id"]])
    (letter,) = report.dead_letters
    assert letter["record_id"] == missing and letter["reason_code"] == ES_UNAVAILABLE
    assert "had no result for this document" in letter["reason"]


@pytest.mark.parametrize(
    "items",
    [
        lambda items: list(reversed(items)),  # shuffled
        lambda items: items + items,  # more items than documents
        lambda items: items[1:],  # one too few, at the front
    ],
    ids=["reversed", "too many", "too few"],
)
def test_a_bulk_answer_that_does_not_line_up_is_resent_once(cluster, items):
    server, client, cfg = cluster
    batch = rows(4)
    server.garble(_set_items(items), times=1)
    report = index_rows(client, batch, cfg)
    _assert_accounted(report, batch)
    assert report.indexed == 4 and report.dead_lettered == 0
    assert Counter(report.indexed_ids) == Counter(_ids(batch))


def test_a_connection_closed_half_way_through_the_answer_is_retried(cluster):
    server, client, cfg = cluster
    batch = rows(6)
    server.cut_off(times=2)
    report = index_rows(client, batch, cfg)
    _assert_accounted(report, batch)
    assert report.indexed == 6 and report.retried == 12 and report.requests == 3
    assert Counter(doc_id for _, doc_id in server.docs()) == Counter(_ids(batch))


def test_a_version_conflict_is_a_refusal_with_its_reason(cluster):
    # Vigil sends `index` (overwrite by id), never `create`: a re-index is a 200 "updated", never a
    # 409. A 409 therefore means another writer uses versions on these indices; the stored copy may
    # differ from the archive's, so it is not counted as indexed
    server, client, cfg = cluster
    batch = rows(3)
    index_rows(client, batch, cfg)
    assert {op for body in server.bulk_bodies() for line in body[::2] for op in line} == {"index"}
    server.fail_items({batch[0]["record_id"]}, 409, error_type="version_conflict_engine_exception")
    report = index_rows(client, batch, cfg)
    _assert_accounted(report, batch)
    (letter,) = report.dead_letters
    assert letter["reason_code"] == ES_REJECTED and "version_conflict_engine_exception" in letter["reason"]


def test_a_request_refused_whole_says_why_not_the_exception_repr(cluster):
    server, client, cfg = cluster
    server.fail(status=401, times=1, error_type="security_exception", reason="api key expired")
    report = index_rows(client, rows(2), cfg)
    assert report.dead_lettered == 2 and report.retried == 0
    reason = report.dead_letters[0]["reason"]
    assert "HTTP 401 security_exception: api key expired" in reason and "check the credentials" in reason
    assert "AuthenticationException(" not in reason


def test_a_whole_request_refused_for_its_credentials_is_not_retried_and_trips_the_breaker(cluster):
    # before: every document became its own es_rejected dead letter, batch after batch (millions in
    # a backfill with an expired key); now the first batch trips the breaker, a backfill stops
    server, client, cfg = cluster
    server.fail(r"/_bulk$", 401, times=None, error_type="security_exception", reason="bad key")
    batch = rows(9)
    report = index_rows(client, batch, cfg, batch_size=3, stop_when_unavailable=True)
    assert report.requests == 1 and report.retried == 0  # no retry can change a refusal of the key
    assert report.indexed == 0 and report.dead_lettered == 0
    assert report.unsent == 3  # the rows after that batch are not read
    assert report.stopped is not None and "refused the credentials" in report.stopped
    run = index_rows(client, rows(6), cfg, batch_size=3)  # a run: dead letters, all es_unavailable
    assert run.requests <= 2 and {d["reason_code"] for d in run.dead_letters} == {ES_UNAVAILABLE}
    assert "check the credentials (--api-key, or --username" in run.dead_letters[0]["reason"]


def test_an_answer_without_the_elasticsearch_header_is_no_refusal(tmp_path):
    # a proxy in front of the cluster answers the bulk request with a redirect (or its own error
    # page): not Elasticsearch refusing the documents, so es_unavailable with the advice to check
    # --es-url, never es_rejected ("fix the cause above")
    import http.server
    import threading

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", "https://elsewhere.example/_bulk")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST  # the client may send the bulk body either way

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = config(f"http://127.0.0.1:{server.server_address[1]}")
        client = make_client(cfg)
        batch = rows(4)
        report = index_rows(client, batch, cfg, batch_size=4)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    _assert_accounted(report, batch)
    assert {d["reason_code"] for d in report.dead_letters} == {ES_UNAVAILABLE}
    reason = report.dead_letters[0]["reason"]
    assert "not as Elasticsearch does (no X-Elastic-Product header): check --es-url" in reason
    assert "(HTTP 307)" in reason
