"""The ingest pipeline's Beam shell: composite transforms named for what they do.

    ReadEvents → ValidateEvents → DropDuplicates → (ApplyDlp) → WriteArchive
                      │                 │              │
                      └── dead letters ─┴──────────────┴──→ WriteArchive (dead-letter files)

All logic lives in pure modules (read, parse, dedup, the DLP engine, the archive writer); the
DoFns here only route elements and count them with ``Metrics`` (namespace ``vigil``), which is
what the run summary reads back.
"""

from __future__ import annotations

import datetime as dt
import functools
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipelines import progress
from pipelines.archive import layout, reader, writer
from pipelines.archive.record_index import RecordIndex
from pipelines.ingest import dedup, parse, stopping
from pipelines.ingest.lines import whole_json
from pipelines.ingest.read import (
    FILE_PROBLEMS,
    PrefixHash,
    ends_a_line,
    file_problem,
    prefix_sha256,
    read_lines,
    resumable,
)
from pipelines.record import DeadLetterStage, from_micros, to_micros

NAMESPACE = "vigil"
DEAD = "dead"


@functools.lru_cache(maxsize=256)
def counter(name: str) -> Any:
    """A Beam counter in Vigil's namespace (cached: some are looked up per element)."""
    return Metrics.counter(NAMESPACE, name)


# ------------------------------------------------------------------------------------------------
# read + validate


POSITIONS = "positions"
VANISHED = -1  # the position of a file that was gone when it was to be read
JSON_SPACE = b" \t\r\n"  # a line of only these is blank; a form feed or vertical tab is not JSON


class _ReadLines(beam.DoFn):
    def __init__(self, max_line_bytes: int):
        self.max_line_bytes = max_line_bytes
        self.lines = counter("read")
        self.blank = counter("blank_lines")
        self.vanished = counter("vanished_files")

    def process(self, item: tuple[str, int, bool] | tuple[str, int, bool, int | None]) -> Iterator[Any]:
        source, start, hold = item[:3]
        until = item[3] if len(item) > 3 else None
        end = start
        prefix = PrefixHash() if resumable(source) else None
        lines = read_lines(
            source, self.max_line_bytes, hold_partial_tail=hold, start=start, prefix=prefix, until=until
        )
        try:
            for line in lines:
                stopping.check()
                progress.report("reading (bytes)", line.span)
                if line.span > line.size or (line.problem is None and whole_json(line.raw)):
                    # ended by a newline, or a last line without one that is whole JSON (its writer
                    # does not end lines): read on after it. A last line cut short is read again.
                    end = line.offset + line.span
                if line.problem is None and not line.too_long and not line.raw.strip(JSON_SPACE):
                    # at ``start`` after a last line an earlier run read without its line end (whole
                    # JSON), this is that line's end arriving, not a blank line of the input
                    if not (line.offset == start and start and not ends_a_line(source, start)):
                        self.blank.inc()
                    continue
                self.lines.inc()
                yield line
        except FileNotFoundError:
            # removed between listing and opening (an open file is read to the end even if it is
            # deleted meanwhile): nothing was read from it, and it is not marked consumed
            self.vanished.inc()
            yield TaggedOutput(POSITIONS, (source, VANISHED, "", False))
            return
        except OSError as exc:
            # unreadable since it was listed (permissions changed, a disk error): one dead letter
            # for the file, which is not consumed, so the next run reads it again
            self.lines.inc()
            yield file_problem(
                source,
                end,
                "unreadable_file",
                f"cannot read the file after {end - start:,} bytes ({exc.strerror or exc}); the lines "
                "before were read, nothing after; fix the file or its permissions and run again",
            )
            return
        if prefix is not None:  # where the next run goes on, and a hash to tell it nothing changed before
            sha = prefix.hexdigest() if prefix.upto == end else prefix_sha256(source, end)
            # bytes after the last line end were left for the writer to finish
            held = hold and prefix.position > end
            yield TaggedOutput(POSITIONS, (source, end, sha, held))


class ReadEvents(beam.PTransform):
    """Input files ``(name, start offset, hold[, until])`` → their non-blank lines (raw bytes with
    source and offset) as the main output, and ``(name, bytes read, SHA-256 of those bytes)`` per
    plain file as ``positions`` (``(name, VANISHED, "", False)`` for a file removed before it could
    be opened: it is then not consumed). ``hold``: a writer may still be appending to the file, so a
    last line without its line end is left for a later read. ``until``: stop at that byte offset
    (the size listed; None reads to the end)."""

    def __init__(self, sources: list[tuple[str, int, bool, int | None]], max_line_bytes: int):
        super().__init__()
        self.sources = sources
        self.max_line_bytes = max_line_bytes

    def expand(self, pbegin: Any) -> Any:
        return (
            pbegin
            | "ListFiles" >> beam.Create(self.sources, reshuffle=False)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadLines" >> beam.ParDo(_ReadLines(self.max_line_bytes)).with_outputs(POSITIONS, main="lines")
        )


class _Parse(beam.DoFn):
    def __init__(self, now_us: int, limits: parse.Limits):
        self.now_us = now_us
        self.limits = limits
        self.parsed = counter("parsed")

    def setup(self) -> None:
        self.now = from_micros(self.now_us)

    def process(self, line: Any) -> Iterator[Any]:
        stopping.check()
        kind, row = parse.parse_line_safely(line, now=self.now, limits=self.limits)
        if kind == "record":
            self.parsed.inc()
            yield row
        else:
            counter(f"dead_letter.{row['reason_code']}").inc()
            yield TaggedOutput(DEAD, row)


class ValidateEvents(beam.PTransform):
    """Lines → valid archive rows (main output) and dead letters (``dead``)."""

    def __init__(self, now: dt.datetime, limits: parse.Limits):
        super().__init__()
        self.now_us = to_micros(now)
        self.limits = limits

    def expand(self, lines: Any) -> Any:
        return lines | "Parse" >> beam.ParDo(_Parse(self.now_us, self.limits)).with_outputs(
            DEAD, main="records"
        )


# ------------------------------------------------------------------------------------------------
# DLP


class _ApplyDlp(beam.DoFn):
    """Runs the policy engine over a batch of rows; fills the verdict fields in each row."""

    def __init__(self, engine: Any, now_us: int):
        self.engine = engine
        self.now_us = now_us
        self.failed = counter("dead_letter.dlp_failed")

    def setup(self) -> None:
        # imported here, not at module level: the DLP stack is only loaded when a policy applies
        from pipelines.dlp import Scope
        from pipelines.ingest import notices

        self.scope_of, self.notices = Scope.from_row, notices

    def process(self, batch: list[dict[str, Any]]) -> Iterator[Any]:
        stopping.check()
        notices = self.notices
        texts = [(i, row) for i, row in enumerate(batch) if row.get("body")]
        items = [(row["body"], self.scope_of(row)) for _, row in texts]
        verdicts = self.engine.inspect_each(items)  # a text the engine fails on is an exception
        by_index = {i: v for (i, _), v in zip(texts, verdicts, strict=True)}
        policy_id = self.engine.policy_set.label
        for i, row in enumerate(batch):
            verdict = by_index.get(i)
            row["dlp_policy"] = policy_id
            if isinstance(verdict, Exception):
                self.failed.inc()
                yield TaggedOutput(DEAD, _dlp_dead_letter(row, verdict, self.now_us))
                continue
            riders = []
            if verdict is not None and verdict.findings:
                row.update(
                    dlp_action=verdict.action.value,
                    dlp_rule_ids=list(verdict.rule_ids),
                    dlp_findings=[f.model_dump(mode="json") for f in verdict.findings],
                    blocked=verdict.blocked,
                    body_redacted=verdict.redacted_text,
                )
                if verdict.blocked and notices.needs_notice(row):
                    riders.append(
                        notices.blocked_notice(
                            row, rule_ids=list(verdict.rule_ids), reason=verdict.reason, now_us=self.now_us
                        )
                    )
            yield row, riders
        progress.report("DLP (records)", len(batch))


def _dlp_dead_letter(row: dict[str, Any], exc: Exception, now_us: int) -> dict[str, Any]:
    return parse.dead_letter(
        stage="dlp",
        code="dlp_failed",
        reason=f"the DLP engine failed on this record ({type(exc).__name__}: {exc}); "
        "it was not archived unchecked — report the error, fix the policy or engine, and re-run",
        source=row["source_name"],
        offset=row["source_offset"],
        raw=parse.original_bytes(row["source_name"], row["source_offset"], row),
        record_id=row["record_id"],
        now=from_micros(now_us),
    )


def uninspected(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as a run without DLP (``--no-dlp``) archives it: no verdict and no redacted view.
    The redacted view is what reviewers and the CRM role see; text no policy has looked at has none,
    so to them it is withheld (as it is in records archived before Vigil had DLP), never shown whole."""
    row["body_redacted"] = None
    return row


class ApplyDlp(beam.PTransform):
    """Rows → ``(row with verdict, notices)`` pairs; rows the engine fails on become dead letters."""

    def __init__(self, engine: Any, now: dt.datetime):
        super().__init__()
        self.engine = engine
        self.now_us = to_micros(now)

    def expand(self, rows: Any) -> Any:
        return (
            rows
            | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=1024)
            | "Inspect" >> beam.ParDo(_ApplyDlp(self.engine, self.now_us)).with_outputs(DEAD, main="main")
        )


# ------------------------------------------------------------------------------------------------
# de-duplicate

_INDEXES: dict[str, RecordIndex] = {}


def archived_index(archive: str) -> dict[str, str]:
    """record_id → content hash of the archive: built once per process, then brought up to date
    with only the files committed since (see :mod:`pipelines.archive.record_index`)."""
    from pipelines.archive.manifest import load_state

    index = _INDEXES.get(archive)
    if index is None:
        _INDEXES.clear()
        index = _INDEXES.setdefault(archive, RecordIndex(Path(archive)))
    return index.update(load_state(Path(archive)))


class _Choose(beam.DoFn):
    def __init__(self, archive: str, now_us: int):
        self.archive = archive
        self.now_us = now_us
        self.duplicates = counter("duplicates")
        self.conflicts = counter("dead_letter.conflicting_duplicate")
        self.unique = counter("unique")
        self.notices = counter("notices")

    def setup(self) -> None:
        self.index = archived_index(self.archive)

    def process(self, element: tuple[str, Iterable[tuple[Any, ...]]]) -> Iterator[Any]:
        stopping.check()
        record_id, grouped = element
        rows = list(grouped)
        choice = dedup.choose(record_id, rows, self.index.get(record_id), now=from_micros(self.now_us))
        self.duplicates.inc(choice.duplicates)
        progress.report("de-duplicating", len(rows))
        for conflict in choice.conflicts:
            self.conflicts.inc()
            yield TaggedOutput(DEAD, conflict)
        if choice.keep is not None:
            self.unique.inc()
            counter(f"dlp.{choice.keep.dlp_action}").inc()
            yield choice.keep.partition, choice.keep.payload
            for rider in choice.keep.riders:
                self.notices.inc()
                yield rider


class DropDuplicates(beam.PTransform):
    """One row per record id, against this run and the archive; conflicts become dead letters.

    Input: ``(row, riders)`` pairs (see :func:`dedup.pack`). Output: ``(partition, packed row)``
    pairs, ready for :class:`WriteArchive`."""

    def __init__(self, archive: Path, now: dt.datetime):
        super().__init__()
        self.archive = str(archive)
        self.now_us = to_micros(now)

    def expand(self, rows: Any) -> Any:
        return (
            rows
            | "KeyById" >> beam.Map(dedup.pack)
            | "GroupById" >> beam.GroupByKey()
            | "Choose" >> beam.ParDo(_Choose(self.archive, self.now_us)).with_outputs(DEAD, main="unique")
        )


# ------------------------------------------------------------------------------------------------
# write + commit


class _StagePartition(beam.DoFn):
    """Writes one partition's rows as staged Parquet files (sorted, split at MAX_FILE_ROWS)."""

    def __init__(self, archive: str, commit: str, kind: str):
        self.archive = archive
        self.commit = commit
        self.kind = kind
        self.rows_written = counter("archived" if kind == layout.RECORDS else "dead_letters_written")
        self.files = counter("files_staged")

    def setup(self) -> None:
        self.known_dead = (
            reader.dead_letter_ids(Path(self.archive)) if self.kind == layout.DEAD_LETTERS else set()
        )

    def process(self, element: tuple[tuple[str, str], Iterable[Any]]) -> Iterator[writer.StagedFile]:
        stopping.check()
        partition, grouped = element
        if self.kind == layout.RECORDS:
            rows = [pickle.loads(payload) for payload in grouped]
        else:
            unique = {r["dead_letter_id"]: r for r in grouped}
            # only input letters: the summary says "N were stored by an earlier run" of its
            # dead-lettered count, which Elasticsearch's letters (stage "index") are not part of
            index = DeadLetterStage.INDEX
            stored = [i for i, r in unique.items() if i in self.known_dead and r["stage"] != index]
            counter("dead_letters_already_stored").inc(len(stored))
            rows = [r for i, r in unique.items() if i not in self.known_dead]
        for staged in writer.stage_partition(Path(self.archive), self.commit, self.kind, partition, rows):
            self.rows_written.inc(staged.rows)
            self.files.inc()
            progress.report("writing (rows)", staged.rows)
            yield staged


class _Commit(beam.DoFn):
    def __init__(self, archive: str, commit: str, sources: list[dict[str, Any]], extra: dict[str, Any]):
        self.archive = archive
        self.commit = commit
        self.sources = sources
        self.extra = extra

    def process(
        self,
        staged: list[writer.StagedFile],
        unfinished: list[str],
        positions: list[tuple[str, int, str, bool]],
    ) -> Iterator[dict[str, Any]]:
        stopping.check()  # the last moment a stop discards the batch; after the commit it counts
        staged = sorted(staged, key=lambda f: f.path)
        progress.report("committing", 1)
        # a file that could not be read to its end is not consumed: the next run reads it again
        where = {
            name: {"bytes_read": end, "prefix_sha256": sha} | ({"held_tail": True} if held else {})
            for name, end, sha, held in positions
            if sha
        }
        gone = {name for name, end, _, _ in positions if end == VANISHED}
        consumed = [
            s | where.get(s["name"], {}) for s in self.sources if s["name"] not in set(unfinished) | gone
        ]
        # recorded apart, so `--follow` does not re-read an unchanged broken file at every poll
        broken = [s for s in self.sources if s["name"] in set(unfinished)]
        extra = self.extra | ({"unfinished_sources": broken} if broken else {})
        done = writer.commit(
            Path(self.archive), self.commit, staged, action="ingest", sources=consumed, extra=extra
        )
        yield {"commit": self.commit, "committed": done, "files": [asdict(f) for f in staged]}


class WriteArchive(beam.PTransform):
    """Packed records (from :class:`DropDuplicates`) and dead letters → staged Parquet per
    partition → one atomic manifest commit."""

    def __init__(self, archive: Path, commit: str, sources: list[dict[str, Any]], extra: dict[str, Any]):
        super().__init__()
        self.archive = str(archive)
        self.commit = commit
        self.sources = sources
        self.extra = extra

    def expand(self, inputs: tuple[Any, ...]) -> Any:
        records, dead_letters, *rest = inputs
        positions = rest[0] if rest else records.pipeline | "NoPositions" >> beam.Create([])
        staged_records = (
            records
            | "GroupRecordPartitions" >> beam.GroupByKey()
            | "StageRecordFiles" >> beam.ParDo(_StagePartition(self.archive, self.commit, layout.RECORDS))
        )
        staged_dead = (
            dead_letters
            | "PartitionDeadLetters" >> beam.Map(lambda r: (writer.dead_letter_partition(r), r))
            | "GroupDeadLetterPartitions" >> beam.GroupByKey()
            | "StageDeadLetterFiles"
            >> beam.ParDo(_StagePartition(self.archive, self.commit, layout.DEAD_LETTERS))
        )
        unfinished = (
            dead_letters
            | "FileProblems" >> beam.Filter(lambda r: r["reason_code"] in FILE_PROBLEMS)
            | "UnfinishedSources" >> beam.Map(lambda r: r["source_name"])
        )
        return (
            (staged_records, staged_dead)
            | "AllStagedFiles" >> beam.Flatten()
            | "CollectStaged" >> beam.combiners.ToList()
            | "Commit"
            >> beam.ParDo(
                _Commit(self.archive, self.commit, self.sources, self.extra),
                beam.pvalue.AsList(unfinished),
                beam.pvalue.AsList(positions),
            )
        )
