"""Reading dead letters back: which ones a ``vigil deadletters`` listing or export selects.

Pure reading: the committed dead-letter files, as the manifest lists them
(:func:`pipelines.archive.reader.iter_tables`, so one committed state even while a compaction
runs), filtered with Arrow one file at a time. Nothing is shown or logged here; the command does
that (:mod:`pipelines.cli.deadletters`).

Letters are ordered by source file and byte offset (then stage and id): the order of the lines in
the input, which is what someone correcting those files works through. The counts per reason code
cover the whole archive as well as the selection, so a listing always says what it left out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.archive import layout, reader
from pipelines.record import DEAD_LETTER_SCHEMA, DeadLetterStage

#: every stored column but the raw bytes (read only when they are shown or exported)
COLUMNS = [name for name in DEAD_LETTER_SCHEMA.names if name != "raw"]
STAGES = tuple(s.value for s in DeadLetterStage)


@dataclass(frozen=True)
class Filters:
    """What to select; an empty tuple or None selects everything."""

    reasons: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    source: str | None = None  # part of the source file's name
    time_from: dt.datetime | None = None  # stored at or after (UTC)
    time_to: dt.datetime | None = None  # stored before (UTC, exclusive)

    def mask(self, table: pa.Table) -> pa.ChunkedArray | None:
        """Which rows of ``table`` pass (None: all of them)."""
        tests: list[Any] = []
        if self.reasons:
            tests.append(pc.is_in(table["reason_code"], value_set=pa.array(self.reasons, pa.string())))
        if self.stages:
            tests.append(pc.is_in(table["stage"], value_set=pa.array(self.stages, pa.string())))
        if self.source:
            tests.append(pc.match_substring(table["source_name"], self.source))
        kind = DEAD_LETTER_SCHEMA.field("dead_letter_time").type
        if self.time_from is not None:
            tests.append(pc.greater_equal(table["dead_letter_time"], pa.scalar(self.time_from, kind)))
        if self.time_to is not None and self.time_to < dt.datetime.max.replace(tzinfo=dt.UTC):
            tests.append(pc.less(table["dead_letter_time"], pa.scalar(self.time_to, kind)))
        if not tests:
            return None
        mask = tests[0]
        for test in tests[1:]:
            mask = pc.and_(mask, test)
        return mask


@dataclass
class Selection:
    """The letters selected (ordered, at most the limit) and the counts a listing reports."""

    letters: list[dict[str, Any]]
    matching: int  # letters that pass the filters (before the limit)
    in_archive: Counter[str] = field(default_factory=Counter)  # reason code -> letters stored

    @property
    def total(self) -> int:
        return sum(self.in_archive.values())

    @property
    def listed(self) -> Counter[str]:
        """Reason code -> letters selected (after the limit)."""
        return Counter(letter["reason_code"] for letter in self.letters)


def order_key(letter: dict[str, Any]) -> tuple[str, int, str, str]:
    return (letter["source_name"], letter["source_offset"], letter["stage"], letter["dead_letter_id"])


def select(
    archive: Path, filters: Filters = Filters(), *, limit: int | None = None, with_raw: bool = False
) -> Selection:
    """The dead letters of ``archive`` that pass ``filters``, in source file and offset order, at
    most ``limit`` of them, each a dict of the stored fields (``raw`` only ``with_raw``) plus
    ``commit``, the commit that stored the file it is in (a compacted file: the compaction's)."""
    columns = [*COLUMNS, "raw"] if with_raw else COLUMNS
    in_archive: Counter[str] = Counter()
    letters: list[dict[str, Any]] = []
    for data_file, table in reader.iter_tables(Path(archive), layout.DEAD_LETTERS, columns):
        in_archive.update(_counts(table))
        mask = filters.mask(table)
        chosen = table if mask is None else table.filter(mask)
        if not chosen.num_rows:
            continue
        for row in chosen.to_pylist():
            row["commit"] = data_file.commit
            letters.append(row)
    letters.sort(key=order_key)
    matching = len(letters)
    if limit is not None:
        letters = letters[:limit]
    return Selection(letters=letters, matching=matching, in_archive=in_archive)


def _counts(table: pa.Table) -> Counter[str]:
    counts = pc.value_counts(table["reason_code"]).to_pylist()
    return Counter({c["values"]: c["counts"] for c in counts})


# ---------------------------------------------------------------------------------------------
# putting the raw lines back


def whole(letter: dict[str, Any]) -> bool:
    """Whether a letter's ``raw`` is its whole payload: not cut at the 64 KiB a letter keeps
    (``line_too_long``, a very long ``oversized_body``), not empty (``unreadable_file`` and
    ``truncated_gzip`` are about a whole file), and hashing to the stored ``raw_sha256``."""
    raw: bytes = letter["raw"]
    return (
        bool(raw)
        and len(raw) == letter["raw_size"]
        and hashlib.sha256(raw).hexdigest() == letter["raw_sha256"]
    )


def why_not_exported(letter: dict[str, Any]) -> str | None:
    """Why a letter's raw bytes cannot go back into the input as a line (None: they can)."""
    if letter["stage"] == DeadLetterStage.INDEX.value:
        return "index"  # the Elasticsearch document of an archived record, not an input line
    if not letter["raw"]:
        return "whole_file"
    if not whole(letter):
        return "cut"
    if b"\n" in letter["raw"]:
        return "line_break"  # would read back as several lines
    return None


@dataclass
class Export:
    """The bytes of an export file and what was left out of it, by why and by letter."""

    data: bytes
    lines: int
    left_out: dict[str, list[dict[str, Any]]]  # why -> letters


def raw_lines(letters: Sequence[dict[str, Any]]) -> Export:
    """The raw lines of ``letters`` (already in source file and offset order), exactly as stored,
    each followed by a newline; letters whose raw bytes are no input line are left out."""
    chunks: list[bytes] = []
    left_out: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        why = why_not_exported(letter)
        if why is not None:
            left_out.setdefault(why, []).append(letter)
            continue
        chunks.append(letter["raw"] + b"\n")
    return Export(data=b"".join(chunks), lines=len(chunks), left_out=left_out)
