"""``vigil run``: build the ingest pipeline, run it, and account for every event.

:func:`run` is what the CLI and the tests call. It takes the archive lock, recovers what an
interrupted run left, lists the input files (skipping those a previous commit already consumed
unchanged), runs the Beam pipeline on the chosen runner and returns a :class:`RunSummary` whose
counts add up: ``read = archived + dead_lettered + duplicates``.
"""

from __future__ import annotations

import datetime as dt
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import progress
from pipelines.archive import layout, writer
from pipelines.archive.manifest import load_state
from pipelines.errors import ArchiveError, ConfigError
from pipelines.ingest import parse
from pipelines.ingest.read import MAX_LINE_BYTES, SourceFile, discover
from pipelines.ingest.transforms import (
    DEAD,
    NAMESPACE,
    ApplyDlp,
    DropDuplicates,
    ReadEvents,
    ValidateEvents,
    WriteArchive,
)
from pipelines.record import MAX_BODY_CHARS, SCHEMA_VERSION, UTC


@dataclass
class RunOptions:
    input: str
    archive: Path
    runner: str | None = None  # None: the embedded in-process runner
    beam_args: list[str] = field(default_factory=list)
    max_line_bytes: int = MAX_LINE_BYTES
    max_body_chars: int = MAX_BODY_CHARS
    future_skew: dt.timedelta = parse.DEFAULT_FUTURE_SKEW
    only_new_sources: bool = True  # skip files a commit already consumed with the same size and mtime
    now: dt.datetime | None = None  # ingest time; tests pin it
    show_progress: bool = True
    hold_partial_tail: bool = False  # follow mode: an unterminated last line is read on a later poll
    policy: str | None = None  # DLP policy file, policy-set file or folder; None: the shipped active set
    dlp: bool = True  # False: archive without a DLP verdict (not for production)
    es: Any = None  # exporters.elasticsearch.config.EsConfig: also index into Elasticsearch
    es_batch_size: int = 500


@dataclass
class RunSummary:
    commit: str | None
    sources: int = 0
    skipped_sources: int = 0
    read: int = 0
    blank_lines: int = 0
    archived: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    dead_letters_already_stored: int = 0
    files_written: int = 0
    seconds: float = 0.0
    notices: int = 0  # DLP notices the pipeline added (archived on top of ``archived``)
    dlp_policy: str | None = None
    dlp: dict[str, int] = field(default_factory=dict)  # archived records by DLP action
    es: dict[str, int] | None = None  # Elasticsearch: indexed, retried, dead_lettered
    recovered: str | None = None
    committed: bool = False
    manifest_head: str = ""

    @property
    def balanced(self) -> bool:
        return self.read == self.archived + self.dead_lettered + self.duplicates

    def _dlp_labels(self) -> list[tuple[str, int]]:
        names = {"block": "blocked", "redact": "redacted", "flag": "flagged"}
        return [(names[a], self.dlp[a]) for a in ("block", "redact", "flag") if self.dlp.get(a)]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"balanced": self.balanced}

    def render(self, archive: Path) -> str:
        lines = [
            f"Read {self.read:,} events from {self.sources} file(s)"
            + (f" ({self.skipped_sources} already archived, skipped)" if self.skipped_sources else ""),
            f"  archived       {self.archived:>10,}",
            f"  dead-lettered  {self.dead_lettered:>10,}"
            + (
                f"   ({self.dead_letters_already_stored:,} were stored by an earlier run)"
                if self.dead_letters_already_stored
                else ""
            ),
        ]
        for reason, n in sorted(self.dead_letter_reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"      {reason:<24}{n:>8,}")
        lines += [
            f"  duplicates     {self.duplicates:>10,}",
            f"  {'= ' if self.balanced else '≠ '}{self.archived + self.dead_lettered + self.duplicates:,} "
            + (
                "(every event accounted for)"
                if self.balanced
                else "COUNTS DO NOT ADD UP — please report this"
            ),
        ]
        if self.blank_lines:
            lines.append(f"  ({self.blank_lines:,} blank line(s) ignored)")
        if self.dlp_policy:
            acted = ", ".join(f"{n:,} {label}" for label, n in self._dlp_labels()) or "nothing to act on"
            lines.append(f"DLP ({self.dlp_policy}): {acted}")
            if self.notices:
                lines.append(f"  + {self.notices:,} notice(s) to employees about blocked messages (archived)")
        else:
            lines.append("DLP: off (--no-dlp): records were archived without a verdict")
        if self.es is not None:
            lines.append(
                f"Elasticsearch: {self.es['indexed']:,} indexed, {self.es['dead_lettered']:,} dead-lettered "
                f"({self.es['retried']:,} retries)"
                + ("; re-send with `vigil es index --archive ...`" if self.es["dead_lettered"] else "")
            )
        lines.append(
            f"{self.files_written} file(s) committed in {self.seconds:.1f}s "
            f"({self.read / self.seconds if self.seconds else 0:,.0f} events/s); commit {self.commit}"
        )
        lines.append(f"Archive: {archive}  (manifest head {self.manifest_head[:16]}…)")
        return "\n".join(lines)


def pipeline_options(opts: RunOptions) -> tuple[Any, PipelineOptions]:
    """The runner and options. The embedded default is Beam's in-process FnApiRunner, chosen
    explicitly because the default DirectRunner may try to download the Prism runner."""
    args = list(opts.beam_args)
    if opts.runner in (None, "", "embedded"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner(), PipelineOptions(args)
    return None, PipelineOptions([f"--runner={opts.runner}", *args])


def _metrics(result: Any, namespace: str = NAMESPACE) -> dict[str, int]:
    counters: dict[str, int] = {}
    for item in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
        value = item.committed if item.committed is not None else item.attempted
        counters[item.key.metric.name] = counters.get(item.key.metric.name, 0) + int(value or 0)
    return counters


def _es_preflight(cfg: Any) -> None:
    from exporters.elasticsearch.config import make_client
    from exporters.elasticsearch.setup import preflight

    client = make_client(cfg)
    try:
        preflight(client, cfg)
    finally:
        client.close()


def select_sources(opts: RunOptions) -> tuple[list[SourceFile], int]:
    found = discover(opts.input)
    if not opts.only_new_sources:
        return found, 0
    consumed = load_state(opts.archive).consumed_sources()
    fresh = [s for s in found if consumed.get(s.name) != s.key()]
    return fresh, len(found) - len(fresh)


def engine_id(engine: Any) -> str | None:
    return None if engine is None else engine.policy_set.label


def load_engine(opts: RunOptions) -> Any:
    """The DLP engine, compiled before the pipeline starts so a bad policy fails fast and clearly."""
    if not opts.dlp:
        return None
    from pipelines.dlp import Engine, load_policy_set

    return Engine(load_policy_set(opts.policy or default_policy()))


def default_policy() -> str:
    import dlp_rules

    return str(Path(dlp_rules.__file__).parent / "active.yaml")


def build(
    pipeline: beam.Pipeline,
    opts: RunOptions,
    sources: list[SourceFile],
    commit: str,
    now: dt.datetime,
    engine: Any = None,
) -> None:
    limits = parse.Limits(
        max_line_bytes=opts.max_line_bytes, max_body_chars=opts.max_body_chars, future_skew=opts.future_skew
    )
    lines = pipeline | "ReadEvents" >> ReadEvents(
        [s.name for s in sources], opts.max_line_bytes, opts.hold_partial_tail
    )
    validated = lines | "ValidateEvents" >> ValidateEvents(now, limits)
    extra_dead = []
    if engine is None:
        checked = validated.records | "NoPolicy" >> beam.Map(lambda row: (row, []))
    else:
        inspected = validated.records | "ApplyDlp" >> ApplyDlp(engine, now)
        checked, extra_dead = inspected.main, [inspected[DEAD]]
    deduped = checked | "DropDuplicates" >> DropDuplicates(opts.archive, now)
    records = deduped.unique
    dead_sets = [validated[DEAD], deduped[DEAD], *extra_dead]
    if opts.es is not None:
        from exporters.elasticsearch.sink import IndexRecords

        indexed = (
            records
            | "UnpackForIndex" >> beam.Map(lambda kv: pickle.loads(kv[1]))
            | "IndexRecords" >> IndexRecords(opts.es, batch_size=opts.es_batch_size)
        )
        dead_sets.append(indexed.dead_letters)
    dead = tuple(dead_sets) | "AllDeadLetters" >> beam.Flatten()
    extra = {"schema_version": SCHEMA_VERSION, "dlp_policy": engine_id(engine)}
    (records, dead) | "WriteArchive" >> WriteArchive(opts.archive, commit, [s.key() for s in sources], extra)


def run(opts: RunOptions) -> RunSummary:
    """One batch run: lock the archive, recover, archive every new input file, commit once."""
    archive = Path(opts.archive)
    if archive.exists() and not archive.is_dir():
        raise ConfigError(f"--archive {archive} exists and is not a folder")
    with writer.archive_lock(archive):
        return run_locked(opts)


def run_locked(opts: RunOptions) -> RunSummary:
    """:func:`run` for a caller that already holds the archive lock (``--follow``)."""
    archive = Path(opts.archive)
    now = (opts.now or dt.datetime.now(UTC)).astimezone(UTC)
    commit = layout.new_commit_id(dt.datetime.now(UTC))
    started = time.monotonic()
    recovery = writer.recover(archive)
    sources, skipped = select_sources(opts)
    summary = RunSummary(commit=commit, sources=len(sources), skipped_sources=skipped)
    summary.recovered = recovery.describe() if recovery.anything else None
    if recovery.missing:
        raise ArchiveError(
            f"{len(recovery.missing)} committed file(s) are missing, e.g. {recovery.missing[0]}; "
            "run `vigil verify` and restore them from backup before writing more"
        )
    if not sources:
        summary.commit = None
        summary.manifest_head = load_state(archive).head
        return summary
    engine = load_engine(opts)
    if opts.es is not None:
        _es_preflight(opts.es)
    runner, options = pipeline_options(opts)
    reporter = progress.Reporter(enabled=opts.show_progress)
    with progress.reporting(reporter):
        compressed = any(s.name.endswith(".gz") for s in sources)  # sizes on disk are not line bytes
        progress.declare("reading (bytes)", None if compressed else sum(s.size for s in sources))
        pipeline = beam.Pipeline(runner=runner, options=options) if runner else beam.Pipeline(options=options)
        build(pipeline, opts, sources, commit, now, engine)
        try:
            result = pipeline.run()
            result.wait_until_finish()
        except BaseException:
            writer.recover(archive)  # discard this run's staged files now rather than next time
            raise
    counters = _metrics(result)
    state = load_state(archive)
    summary.committed = commit in state.commits
    if not summary.committed:
        raise ArchiveError(f"the pipeline finished but commit {commit} is not in the manifest")
    summary.read = counters.get("read", 0)
    summary.blank_lines = counters.get("blank_lines", 0)
    summary.notices = counters.get("notices", 0)
    summary.archived = counters.get("archived", 0) - summary.notices
    summary.dlp_policy = engine_id(engine)
    summary.dlp = {
        action: counters.get(f"dlp.{action}", 0)
        for action in ("flag", "redact", "block")
        if counters.get(f"dlp.{action}")
    }
    if opts.es is not None:
        es_counts = _metrics(result, "vigil.es")
        summary.es = {name: es_counts.get(name, 0) for name in ("indexed", "retried", "dead_lettered")}
    summary.duplicates = counters.get("duplicates", 0)
    summary.dead_letter_reasons = {
        name.split(".", 1)[1]: n for name, n in counters.items() if name.startswith("dead_letter.") and n
    }
    summary.dead_lettered = sum(summary.dead_letter_reasons.values())
    summary.dead_letters_already_stored = counters.get("dead_letters_already_stored", 0)
    summary.files_written = state.commits[commit]["files_added"]
    summary.manifest_head = state.head
    summary.seconds = time.monotonic() - started
    writer.write_run_report(
        archive,
        commit,
        {
            "summary": summary.as_dict(),
            "input": opts.input,
            "runner": opts.runner or "embedded",
            "ingest_time": now,
        },
    )
    return summary
