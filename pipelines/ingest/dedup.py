"""Choosing one record per record id: within a run, and against what is already archived.

Pure function, called by the pipeline after grouping by record id.

* Same id, same content (a re-delivery, a file read twice, a restarted run): one is kept, the
  others are counted as duplicates.
* Same id, different content: the first is kept and each other version becomes a dead letter
  (``conflicting_duplicate``) with both content hashes, because silently keeping either would be
  an archive that cannot be trusted. "First" means already archived, else the earliest
  ``(source_name, source_offset)``: deterministic whatever order the runner delivers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipelines.ingest.parse import dead_letter
from pipelines.record import DeadLetterStage


@dataclass
class Choice:
    keep: dict[str, Any] | None = None
    duplicates: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def choose(
    record_id: str, candidates: Iterable[dict[str, Any]], archived_sha: str | None, *, now: dt.datetime
) -> Choice:
    ordered = sorted(candidates, key=lambda r: (r["source_name"], r["source_offset"]))
    choice = Choice()
    reference = archived_sha
    for row in ordered:
        if reference is None:
            choice.keep, reference = row, row["content_sha256"]
        elif row["content_sha256"] == reference:
            choice.duplicates += 1
        else:
            where = "an archived record" if archived_sha is not None else "an earlier event in this run"
            raw = json.dumps(
                {k: v for k, v in row.items() if k not in ("ingest_time",)}, default=str, ensure_ascii=False
            ).encode()
            choice.conflicts.append(
                dead_letter(
                    stage=DeadLetterStage.DEDUP.value,
                    code="conflicting_duplicate",
                    reason=(
                        f"record id {record_id} already belongs to {where} with different content "
                        f"(content {reference[:12]}… kept, {row['content_sha256'][:12]}… refused); "
                        "the source reused an event id — ask its owner which is right"
                    ),
                    source=row["source_name"],
                    offset=row["source_offset"],
                    raw=raw,
                    record_id=record_id,
                    now=now,
                )
            )
    return choice
