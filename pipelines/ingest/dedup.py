"""Choosing one record per record id: within a run, and against what is already archived.

Pure function, called by the pipeline after grouping by record id.

* Same id, same content (a re-delivery, a file read twice, a restarted run): one is kept, the
  others are counted as duplicates.
* Same id, different content: the first is kept and each other version becomes a dead letter
  (``conflicting_duplicate``) with both content hashes, because silently keeping either would be
  an archive that cannot be trusted. "First" means already archived, else the earliest
  ``(source_name, source_offset)``: deterministic whatever order the runner delivers.

Rows travel through the shuffle packed (:func:`pack`): the few fields de-duplication and
partitioning need, plus the whole row pickled once. Unpacking a nested row is the expensive part of
moving it between stages, so it happens once, where the row is written.
"""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pipelines.ingest.parse import dead_letter, original_bytes
from pipelines.record import DeadLetterStage, event_month


class Packed(NamedTuple):
    content_sha256: str
    source_name: str
    source_offset: int
    partition: tuple[str, str]  # (event_month, channel)
    dlp_action: str
    payload: bytes  # the row, pickled
    riders: tuple[tuple[tuple[str, str], bytes], ...]  # rows archived only if this one is (DLP notices)

    def row(self) -> dict[str, Any]:
        return pickle.loads(self.payload)


def _packed_row(row: dict[str, Any]) -> tuple[tuple[str, str], bytes]:
    return (event_month(row), row["channel"]), pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)


def pack(item: tuple[dict[str, Any], list[dict[str, Any]]]) -> tuple[str, tuple]:
    """``(row, riders)`` → ``(record_id, packed)``; plain tuples so Beam's fast coder moves them.

    Riders are rows that exist because of this one (the notice telling an employee their message
    was blocked): they are archived exactly when their row is, so they never need de-duplicating."""
    row, riders = item
    partition, payload = _packed_row(row)
    packed = (
        row["content_sha256"],
        row["source_name"],
        row["source_offset"],
        partition,
        row["dlp_action"],
        payload,
        tuple(_packed_row(r) for r in riders),
    )
    return row["record_id"], packed


@dataclass
class Choice:
    keep: Packed | None = None
    duplicates: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def choose(
    record_id: str, candidates: Iterable[tuple], archived_sha: str | None, *, now: dt.datetime
) -> Choice:
    ordered = sorted((Packed(*c) for c in candidates), key=lambda c: (c.source_name, c.source_offset))
    choice = Choice()
    reference = archived_sha
    for candidate in ordered:
        if reference is None:
            choice.keep, reference = candidate, candidate.content_sha256
        elif candidate.content_sha256 == reference:
            choice.duplicates += 1
        else:
            where = "an archived record" if archived_sha is not None else "an earlier event in this run"
            choice.conflicts.append(
                dead_letter(
                    stage=DeadLetterStage.DEDUP.value,
                    code="conflicting_duplicate",
                    reason=(
                        f"record id {record_id} already belongs to {where} with different content "
                        f"(content {reference[:12]}… kept, {candidate.content_sha256[:12]}… refused); "
                        "the source reused an event id — ask its owner which is right"
                    ),
                    source=candidate.source_name,
                    offset=candidate.source_offset,
                    raw=original_bytes(candidate.source_name, candidate.source_offset, candidate.row()),
                    record_id=record_id,
                    now=now,
                )
            )
    return choice
