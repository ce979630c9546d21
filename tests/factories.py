"""Small, explicit event builders for tests that need exact control over each field."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

BASE_TIME = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)

EMPLOYEE = {
    "id": "emp-1",
    "name": "Dana Whitfield",
    "role": "employee",
    "handle": "+12125550101",
    "groups": ["advisors"],
}
CUSTOMER = {"id": "cust-1", "name": "Wei Zhang", "role": "customer", "handle": "+85291234567", "groups": []}


def event(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid message event; ``n`` varies the id and time."""
    when = BASE_TIME + dt.timedelta(minutes=n)
    data: dict[str, Any] = {
        "event_id": f"evt-{n:06d}",
        "org": "acme",
        "sub_org": "wealth-hk",
        "channel": "whatsapp",
        "kind": "message",
        "direction": "outbound",
        "event_time": when.isoformat(),
        "received_time": (when + dt.timedelta(seconds=1)).isoformat(),
        "conversation_id": "conv-1",
        "thread_id": "thr-1",
        "participants": [EMPLOYEE, CUSTOMER],
        "sender": EMPLOYEE,
        "recipients": [CUSTOMER],
        "body": f"Message number {n} about the quarterly review.",
    }
    data.update(overrides)
    return data


def line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode() + b"\n"


def write_jsonl(path: Path, items: list[dict[str, Any] | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for item in items:
            f.write(item if isinstance(item, bytes) else line(item))
    return path
