"""Record rows → bulk actions: index by event month, id = record id, JSON-ready values."""

from __future__ import annotations

import datetime as dt
import json
import struct

import pytest
from es_support import record, rows

from exporters.elasticsearch.config import EsConfig
from exporters.elasticsearch.documents import float32, to_action, to_document
from pipelines.record import record_to_row, rows_to_table

CFG = EsConfig(url="http://localhost:9200", index_prefix="acme")


def test_action_targets_the_event_month_by_record_id():
    rec = record(0, event_time=dt.datetime(2026, 2, 28, 23, 59, tzinfo=dt.UTC))
    action = to_action(record_to_row(rec), CFG)
    assert action["_op_type"] == "index"  # overwrite: re-indexing the same record is idempotent
    assert action["_index"] == "acme-2026.02.01"
    assert action["_id"] == rec.record_id
    assert action["_source"]["record_id"] == rec.record_id


def test_document_is_json_ready_and_faithful():
    rec = record(3, attributes={"queue_position": "2", "bot_intent": "balance"})
    doc = to_document(record_to_row(rec))
    json.dumps(doc)  # no datetimes, bytes or tuples left
    assert doc["event_time"] == rec.event_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert doc["attributes"] == {"queue_position": "2", "bot_intent": "balance"}
    assert doc["sender"] == rec.sender.model_dump()
    assert doc["body"] == rec.body


def test_sub_millisecond_precision_survives_in_the_source():
    rec = record(0, event_time=dt.datetime(2026, 1, 5, 9, 30, 0, 123456, tzinfo=dt.UTC))
    assert to_document(record_to_row(rec))["event_time"] == "2026-01-05T09:30:00.123456Z"


def test_rows_read_back_from_arrow_give_the_same_documents():
    # Beam rows carry int microseconds and dicts; rows read from Parquet carry datetimes and
    # [(key, value)] pairs for maps. Both must index identically.
    beam_rows = rows(5)
    arrow_rows = rows_to_table(beam_rows).to_pylist()
    assert isinstance(arrow_rows[0]["event_time"], dt.datetime)
    assert isinstance(arrow_rows[0]["attributes"], list)
    assert [to_action(r, CFG) for r in arrow_rows] == [to_action(r, CFG) for r in beam_rows]


def test_a_run_and_a_backfill_send_the_same_finding_scores():
    # the archive keeps a score as a 32-bit float: 0.95 reads back as 0.949999988079071, and a
    # document sent by `vigil run` must equal the one `vigil es index` sends from the archive
    finding = {"rule_id": "pii.ssn", "entity": "US_SSN", "detector": "pattern", "start": 0, "end": 11,
               "action": "block"}  # fmt: skip
    beam_rows = [
        r | {"dlp_findings": [finding | {"score": s}]} for r, s in zip(rows(4), SCORES, strict=False)
    ]
    arrow_rows = rows_to_table(beam_rows).to_pylist()
    assert arrow_rows[0]["dlp_findings"][0]["score"] != SCORES[0]  # what Parquet gives back
    assert [to_document(r) for r in arrow_rows] == [to_document(r) for r in beam_rows]
    assert [to_document(r)["dlp_findings"][0]["score"] for r in beam_rows] == SCORES


SCORES = [0.95, 0.85, 0.3, 1.0]


@pytest.mark.parametrize("value", [0.1, 0.95, 1 / 3, 0.123456789, 1e-8, 0.0, 1.0])
def test_float32_is_the_stored_value_in_the_fewest_digits(value):
    stored = struct.unpack("<f", struct.pack("<f", value))[0]
    written = float32(value)
    assert struct.unpack("<f", struct.pack("<f", written))[0] == stored  # the same 32-bit float
    assert float32(stored) == written  # whichever side it starts from
    assert len(repr(written)) <= len(repr(stored))


def test_the_content_hash_is_not_sent_to_the_index():
    row = rows(1)[0]
    assert row["content_sha256"]
    assert "content_sha256" not in to_document(row)


def test_reader_partition_columns_are_dropped_but_unknown_fields_are_kept():
    row = rows(1)[0] | {"event_month": "2026-01", "surprise": 1}
    doc = to_document(row)
    assert "event_month" not in doc
    assert doc["surprise"] == 1  # the strict mapping will refuse it loudly


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"record_id": None}, "no record_id"),
        ({"record_id": ""}, "no record_id"),
        ({"event_time": None}, "no event_time"),
        ({"event_time": "2026-01-05"}, "no event_time"),
    ],
)
def test_rows_that_cannot_become_actions(change, message):
    with pytest.raises(ValueError, match=message):
        to_action(rows(1)[0] | change, CFG)
