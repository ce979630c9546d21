"""Record rows → Elasticsearch bulk actions. Pure functions, no client.

A row is the dict form of a record (``pipelines.record.record_to_row``, or a row read back from
the Parquet archive). The document keeps every field, converted where JSON and ES need it, again
driven by the model rather than a field list:

* timestamps (int microseconds in Beam rows, ``datetime`` in rows read from Arrow) become ISO-8601
  strings in UTC with microseconds, e.g. ``2026-01-05T09:30:00.250000Z``; ES indexes them at
  millisecond precision, ``_source`` keeps the exact value;
* maps (``attributes``), which Arrow reads back as ``[(key, value), ...]``, become JSON objects;
* bytes become base64, as ES ``binary`` expects;
* 32-bit floats (a finding's score) are written as the archive stores them, in the fewest digits
  that read back the same, so a row from the pipeline and one read back from Parquet agree.

Columns that archive readers add for partitioning (``event_month``) are not
part of the record and are dropped, and so are the fields the model marks ``es(omit=True)``
(``content_sha256``: a hash over the original body would let a reader of the index who may not
see the body test guesses at a redacted value). Any *other* unknown field is kept, so that the
strict mapping refuses the document loudly rather than Vigil silently trimming it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel

from exporters.elasticsearch.config import EsConfig
from exporters.elasticsearch.layout import index_for
from exporters.elasticsearch.mapping import omitted_fields
from pipelines.record import Record, from_micros

#: Hive-style partition columns the archive readers add to rows (mirrors ``row_to_record``).
READER_COLUMNS = frozenset({"event_month"})

Convert = Callable[[Any], Any]


def to_action(row: dict[str, Any], cfg: EsConfig) -> dict[str, Any]:
    """Bulk ``index`` action for a record row: ``_index`` by event month, ``_id`` = record id.

    Raises ``ValueError`` when the row lacks what the action needs (record id, event time).
    """
    record_id = row.get("record_id")
    event_time = row.get("event_time")
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("row has no record_id")
    if not isinstance(event_time, int | dt.datetime):
        raise ValueError(f"row {record_id} has no event_time")
    return {
        "_op_type": "index",
        "_index": index_for(event_time, cfg),
        "_id": record_id,
        "_source": to_document(row),
    }


def to_document(row: dict[str, Any]) -> dict[str, Any]:
    """The ``_source`` of a record row."""
    converters = _record_converters()
    dropped = _dropped()
    doc: dict[str, Any] = {}
    for name, value in row.items():
        if name in dropped:
            continue
        convert = converters.get(name)
        doc[name] = convert(value) if convert is not None and value is not None else value
    return doc


def document_bytes(doc: dict[str, Any]) -> bytes:
    """Compact JSON of a document, as kept in a dead letter's ``raw``."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def iso_utc(value: int | dt.datetime) -> str:
    when = from_micros(value) if isinstance(value, int) else value.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------
# converters derived from the model; ``None`` means "the value is already JSON-ready"


@cache
def _dropped() -> frozenset[str]:
    return READER_COLUMNS | omitted_fields(Record)


@cache
def _record_converters() -> dict[str, Convert]:
    return _model_converters(Record)


def _model_converters(model: type[BaseModel]) -> dict[str, Convert]:
    out = {}
    for name, info in model.model_fields.items():
        convert = float32 if "float32" in info.metadata else _converter(info.annotation)
        if convert is not None:
            out[name] = convert
    return out


def _converter(annotation: Any) -> Convert | None:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin is list:
        inner = _converter(get_args(annotation)[0])
        if inner is None:
            return None
        return lambda values: [None if v is None else inner(v) for v in values]
    if origin is dict:
        value_conv = _converter(get_args(annotation)[1])
        return lambda value: _to_object(value, value_conv)
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            fields = _model_converters(annotation)
            if not fields:
                return None
            return lambda value: _convert_struct(value, fields)
        if issubclass(annotation, dt.datetime):
            return iso_utc
        if issubclass(annotation, dt.date):
            return lambda value: value.isoformat()
        if issubclass(annotation, bytes):
            return lambda value: base64.b64encode(value).decode("ascii")
    return None


def float32(value: float) -> float:
    """``value`` as the archive stores it (a 32-bit float), written with the fewest digits that
    read back as that float: 0.95 from a pipeline row and 0.949999988079071 read back from Parquet
    both become 0.95, so a run and a backfill send the same document."""
    stored = struct.unpack("<f", struct.pack("<f", value))[0]
    for digits in range(6, 10):  # nine significant digits always identify a 32-bit float
        shortest = float(f"{stored:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", shortest))[0] == stored:
            return shortest
    return stored


def _convert_struct(value: dict[str, Any], fields: dict[str, Convert]) -> dict[str, Any]:
    return {k: (fields[k](v) if k in fields and v is not None else v) for k, v in value.items()}


def _to_object(value: Any, value_conv: Convert | None) -> dict[str, Any]:
    items = value.items() if isinstance(value, dict) else value  # Arrow maps: [(key, value), ...]
    if value_conv is None:
        return dict(items)
    return {k: (None if v is None else value_conv(v)) for k, v in items}


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    return annotation
