"""Adding dead letters to the archive from outside the ingest pipeline.

``vigil es index`` (and later exporters) meet records they cannot deliver. Those dead letters belong
in the same store as ingest's, committed through the same manifest, so one place answers "what did
not make it, and why". Letters already stored (same id) are not stored twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.archive import layout, reader, writer


def append(archive: Path, rows: list[dict[str, Any]], *, action: str) -> int:
    """Commit ``rows`` (``DeadLetter`` fields, timestamps in microseconds); returns how many were new.

    Takes the archive lock, so it waits for nothing and fails clearly if a run is writing."""
    if not rows:
        return 0
    root = Path(archive)
    with writer.archive_lock(root):
        writer.recover(root)
        known = reader.dead_letter_ids(root)
        fresh = {r["dead_letter_id"]: r for r in rows if r["dead_letter_id"] not in known}
        if not fresh:
            return 0
        writer.commit_rows(root, list(fresh.values()), kind=layout.DEAD_LETTERS, action=action)
        return len(fresh)
