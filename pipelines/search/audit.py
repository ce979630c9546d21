"""The access log: every search, conversation view and export, hash-chained.

Entries go to ``ARCHIVE/_ledger/audit.jsonl`` through :class:`pipelines.archive.ledger.Ledger`, so
they are tamper-evident the same way as the manifest and ``vigil verify`` checks their chain. An
entry is written *before* results are shown: if the log cannot be written, nothing is disclosed.

Entry fields (plus the ledger's ``seq``, ``prev`` and ``hash``)::

    {"op": "access", "time": "2026-02-01T09:30:00.123456+00:00", "user": "a.chan",
     "role": "reviewer", "action": "search", "engine": "embedded",
     "query": {"text": "card", "channels": ["wechat"]}, "results": 12, "details": {...}}

``action`` is ``search``, ``conversation`` (viewed in the terminal) or ``export`` (written to a
file); ``details`` holds what else matters for that action (page, sort, output file, ...).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pipelines.archive import layout
from pipelines.archive.ledger import Ledger
from pipelines.errors import ArchiveError
from pipelines.search.access import Identity

ACTIONS = ("search", "conversation", "export")


def audit_ledger(archive: Path) -> Ledger:
    return Ledger(Path(archive) / layout.AUDIT)


def record_access(
    archive: Path,
    identity: Identity,
    action: str,
    *,
    query: dict[str, Any],
    results: int,
    engine: str,
    details: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Append one access entry; returns it as written (with its hash)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = {
        "op": "access",
        "time": (now or dt.datetime.now(dt.UTC)).isoformat(),
        "user": identity.user,
        "role": identity.role.value,
        "action": action,
        "engine": engine,
        "query": query,
        "results": results,
        "details": details or {},
    }
    try:
        (written,) = audit_ledger(archive).append([entry])
    except OSError as exc:
        raise ArchiveError(
            f"cannot write the audit log {Path(archive) / layout.AUDIT} ({exc.strerror or exc}); "
            "nothing was shown. Check that the archive folder is writable."
        ) from None
    return written
