"""Records and settings shared by the Elasticsearch tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from exporters.elasticsearch.config import EsConfig
from pipelines.record import (
    Event,
    Record,
    content_sha256,
    record_id_for,
    record_to_row,
)

BASE = dt.datetime(2026, 1, 31, 22, 0, tzinfo=dt.UTC)
EMPLOYEE = {
    "id": "emp-7",
    "name": "Ines Moreau",
    "role": "employee",
    "handle": "+33612345678",
    "groups": ["fx-desk"],
}
CUSTOMER = {"id": "cust-3", "name": "Kenji Sato", "role": "customer", "handle": "U4af4980629", "groups": []}


def record(n: int = 0, *, minutes_apart: int = 30, **overrides: Any) -> Record:
    """A valid record; consecutive ``n`` are ``minutes_apart`` apart, so they cross a month end."""
    when = BASE + dt.timedelta(minutes=n * minutes_apart)
    data: dict[str, Any] = {
        "event_id": f"line-{n:05d}",
        "org": "acme",
        "channel": "line",
        "kind": "message",
        "direction": "inbound",
        "event_time": when,
        "received_time": when + dt.timedelta(seconds=2),
        "conversation_id": "conv-line-1",
        "thread_id": "thr-1",
        "participants": [EMPLOYEE, CUSTOMER],
        "sender": CUSTOMER,
        "recipients": [EMPLOYEE],
        "body": f"Order {n}: please confirm the settlement date",
        "attributes": {"line_validated_phone": "+819012345678"},
    }
    extra = {k: overrides.pop(k) for k in list(overrides) if k not in Event.model_fields}  # DLP verdict
    data.update(overrides)
    event = Event.model_validate(data)
    return Record(
        **event.model_dump(),
        **extra,
        record_id=record_id_for(event.org, event.channel, event.event_id),
        source_name="line/2026-01-31.jsonl",
        source_offset=n * 400,
        ingest_time=BASE + dt.timedelta(days=1),
        content_sha256=content_sha256(event),
    )


def rows(count: int, start: int = 0, **overrides: Any) -> list[dict[str, Any]]:
    return [record_to_row(record(n, **overrides)) for n in range(start, start + count)]


def config(url: str, **overrides: Any) -> EsConfig:
    """Settings with tiny backoffs and timeouts, so fault tests take milliseconds, not minutes."""
    values: dict[str, Any] = {
        "url": url,
        "max_retries": 3,
        "retry_backoff": 0.01,
        "retry_backoff_max": 0.05,
        "request_timeout": 2.0,
        "replicas": 0,
    }
    values.update(overrides)
    return EsConfig(**values)


def write_archive(root: Path, batch: list[dict[str, Any]]) -> Path:
    """A committed archive holding ``batch``, written through the archive's own writer."""
    from pipelines.archive import layout, writer

    writer.commit_rows(root, batch, kind=layout.RECORDS, action="test")
    return root
