"""``vigil run``: build the ingest pipeline, run it, and account for every event.

:func:`run` is what the CLI and the tests call. It takes the archive lock, recovers what an
interrupted run left, lists the input files (skipping those a previous commit already consumed
unchanged), runs the Beam pipeline on the chosen runner and returns a :class:`RunSummary` whose
counts add up: ``read = archived + dead_lettered + duplicates``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import difflib
import functools
import gc
import logging
import os
import pickle
import re
import shlex
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import progress
from pipelines.archive import layout, writer
from pipelines.archive.manifest import load_state
from pipelines.errors import ArchiveError, ConfigError, IndexingError, causes, interrupted
from pipelines.ingest import parse, stopping
from pipelines.ingest.extras import missing_extra, missing_for_runner, pip_install
from pipelines.ingest.lines import MAX_LINE_BYTES, unfinished_tail
from pipelines.ingest.read import (
    FILE_PROBLEMS,
    SUFFIXES_TEXT,
    SourceFile,
    canonical,
    check_input,
    ends_a_line,
    is_local,
    list_input,
    prefix_sha256,
    resumable,
)
from pipelines.ingest.transforms import (
    DEAD,
    NAMESPACE,
    POSITIONS,
    ApplyDlp,
    DropDuplicates,
    ReadEvents,
    ValidateEvents,
    WriteArchive,
    uninspected,
)
from pipelines.invisible import escaped
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
    #: follow mode: a file unchanged for this long is complete (its writer is done): a last line
    #: without its line end is read as it is when it is whole JSON (held while it stops half-way),
    #: and a gzip stream that ends early is cut short
    settle_seconds: float = 10.0
    policy: str | None = None  # DLP policy file, policy-set file or folder; None: the shipped active set
    dlp: bool = True  # False: archive without a DLP verdict (not for production)
    es: Any = None  # exporters.elasticsearch.config.EsConfig: also index into Elasticsearch
    es_batch_size: int = 500
    on_warning: Any = None  # called with one line when something optional is skipped (ES down)


#: how many unread input files a summary names (the count is always exact)
UNREAD_LISTED = 20


def dlp_labels(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Records by DLP action as a summary words them, strongest first: ``[("blocked", 3), ...]``."""
    names = {"block": "blocked", "redact": "redacted", "flag": "flagged"}
    return [(names[a], counts[a]) for a in ("block", "redact", "flag") if counts.get(a)]


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
    resumed_sources: int = 0  # appended files read on from where the last commit stopped
    es_unavailable: str | None = None  # why nothing was indexed (the cluster did not answer at start)
    es_resend: str | None = None  # the `vigil es index` command that re-sends, secrets left out
    es_resend_env: str | None = None  # the variable that command needs this run's secret in
    #: follow mode: files changed moments ago with something read only once they settle (a gzip
    #: file, a last line without line end)
    waiting_sources: int = 0
    #: follow mode: settled files whose last line has no line end and is not yet whole JSON (held)
    unfinished_tails: int = 0
    unread_count: int = 0  # files in the input not named like event files (not read)
    unread_files: list[str] = field(default_factory=list)  # the first few of them
    vanished_files: int = 0  # listed, then gone before they could be opened (not read, not consumed)
    #: named like event files but not readable as files (a pipe, a link to nothing, a name that is
    #: not UTF-8): how many, and the first few as "name (why)"
    unreadable_count: int = 0
    unreadable_files: list[str] = field(default_factory=list)
    #: named like event files but left out: bookkeeping (``_`` or ``.`` starting the name or a
    #: folder on the way, such as the simulator's ``_labels.jsonl``) or still being written (``.tmp``)
    left_out_count: int = 0
    left_out_files: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.read == self.archived + self.dead_lettered + self.duplicates

    @property
    def input_incomplete(self) -> bool:
        """Something named like an event file could not be read (to its end): not a file Vigil can
        read, gone before it was opened, or one dead letter for the whole file. All of it is named
        and counted; the run still exits 1 so a scheduler notices (the next run reads it again)."""
        unreadable = sum(self.dead_letter_reasons.get(code, 0) for code in FILE_PROBLEMS)
        return bool(self.unreadable_count or self.vanished_files or unreadable)

    @property
    def es_incomplete(self) -> bool:
        """Indexing was asked for and some archived records are not in Elasticsearch: it did not
        answer at the start, or it dead-lettered documents during the run."""
        return bool(self.es_unavailable or (self.es and self.es.get("dead_lettered")))

    def describe_unread(self, shown: int = 3) -> str:
        """One line about the input's files that were not read: how many, a few names, why."""
        names = ", ".join(map(escaped, self.unread_files[:shown]))
        names += ", ..." if self.unread_count > shown else ""
        return (
            f"{self.unread_count:,} other file(s) in the input not read ({names}): event files "
            f"end in {SUFFIXES_TEXT}"
        )

    def describe_unreadable(self, shown: int = 3) -> str:
        """One line about the entries named like event files that are not files Vigil can read."""
        names = "; ".join(map(escaped, self.unreadable_files[:shown]))
        names += "; ..." if self.unreadable_count > shown else ""
        return f"{self.unreadable_count:,} event file(s) or folder(s) in the input could not be read: {names}"

    def describe_left_out(self, shown: int = 3) -> str:
        """One line about the files named like event files that were left out on purpose."""
        names = ", ".join(map(escaped, self.left_out_files[:shown]))
        names += ", ..." if self.left_out_count > shown else ""
        return (
            f"{self.left_out_count:,} file(s) named like event files left out as bookkeeping ({names}): "
            "names or folders starting with _ or . are bookkeeping and .tmp files are still being "
            "written, so neither is read; rename an event file put there by mistake"
        )

    def _dlp_labels(self) -> list[tuple[str, int]]:
        return dlp_labels(self.dlp)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"balanced": self.balanced, "input_incomplete": self.input_incomplete}

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
        if self.unread_count:
            lines.append(f"  ({self.describe_unread()})")
        if self.unreadable_count:
            lines.append(f"  ({self.describe_unreadable()})")
        if self.left_out_count:
            lines.append(f"  ({self.describe_left_out()})")
        if self.vanished_files:
            lines.append(
                f"  ({self.vanished_files:,} file(s) removed from the input after they were listed, before "
                "they could be read: nothing of them is archived; put them back to have them read)"
            )
        if self.waiting_sources:
            lines.append(
                f"  ({self.waiting_sources} file(s) changed moments ago: a gzip file, or a last line "
                "without line end, is read once the file is unchanged for --settle seconds)"
            )
        if self.unfinished_tails:
            lines.append(f"  ({describe_unfinished(self.unfinished_tails)})")
        unreadable = sum(self.dead_letter_reasons.get(code, 0) for code in FILE_PROBLEMS)
        if unreadable:
            lines.append(
                f"  ({unreadable:,} file(s) could not be read to the end: each is one dead letter, counted "
                "as one read event, and is read again by the next run; --follow reads it again once it "
                "changes)"
            )
        if self.dlp_policy:
            acted = ", ".join(f"{n:,} {label}" for label, n in self._dlp_labels()) or "nothing to act on"
            lines.append(f"DLP ({self.dlp_policy}): {acted}")
            if self.notices:
                lines.append(f"  + {self.notices:,} notice(s) to employees about blocked messages (archived)")
        else:
            lines.append(
                "DLP: off (--no-dlp): records were archived without a verdict and without a redacted "
                "view (reviewers and the CRM role see their text as withheld)"
            )
        if self.es_resend is None:  # a summary built by hand
            resend = (
                f"`vigil es index --archive {shlex.quote(str(archive))} --role officer` "
                "(with this run's --es-url and credentials)"
            )
        else:
            secret = "API key" if self.es_resend_env == "ES_API_KEY" else "password"
            resend = f"`{self.es_resend}`" + (
                f" (with this run's {secret} in {self.es_resend_env})" if self.es_resend_env else ""
            )
        if self.es_unavailable:
            lines.append(f"Elasticsearch unreachable: nothing indexed; run {resend} when it is back")
        if self.es is not None:
            lines.append(
                f"Elasticsearch: {self.es['indexed']:,} indexed, {self.es['dead_lettered']:,} dead-lettered "
                f"({self.es['retried']:,} retries)"
                + (
                    f"; {self.es['refused_credentials']:,} because it refused the credentials: fix them "
                    "(--api-key, or --username and --password; ES_API_KEY, ES_USERNAME, ES_PASSWORD)"
                    if self.es.get("refused_credentials")
                    else ""
                )
                + (f"; re-send with {resend}" if self.es["dead_lettered"] else "")
            )
        lines.append(
            f"{self.files_written} file(s) committed in {self.seconds:.1f}s "
            f"({self.read / self.seconds if self.seconds else 0:,.0f} events/s); commit {self.commit}"
        )
        lines.append(f"Archive: {archive}  (manifest head {self.manifest_head[:16]}…)")
        return "\n".join(lines)


#: what ``--runner`` is when Vigil chooses: the embedded in-process runner
EMBEDDED = (None, "", "embedded")
#: argparse's actions that keep one value (a second one silently replaces the first); Beam's own
#: actions (``--experiment``, ``--transform_name_mapping``) collect every value given
_STORE_ONCE = (argparse._StoreAction, argparse._StoreConstAction)


def _beam_parser() -> argparse.ArgumentParser:
    """Beam's own pipeline-option parser (the one ``PipelineOptions`` uses), but one whose
    mistakes are a :class:`ConfigError` rather than Beam's whole usage text and an exit."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    class Parser(_BeamArgumentParser):
        def error(self, message: str) -> NoReturn:  # type: ignore[override]
            raise ConfigError(f"Beam pipeline option {message.removeprefix('argument ')}")

    parser = Parser(allow_abbrev=False, add_help=False)
    classes: dict[str, Any] = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)
    return parser


def check_beam_args(args: list[str]) -> None:
    """Refuse what Beam would ignore or choke on: an option no Beam pipeline option defines (a
    typo such as ``--follw``, or ``--direct-num-workers`` with dashes, which Beam skips with a
    warning), a stray word, a value of the wrong kind (Beam would print its whole usage and exit)
    and an option given twice (Beam would keep the last without a word)."""
    parser = _beam_parser()
    _, rest = parser.parse_known_args(args)
    unknown = [arg.split("=", 1)[0] for arg in rest if arg.startswith("-")]
    if unknown:
        names = [name for action in parser._actions for name in action.option_strings]
        hints = [
            f"{arg}: did you mean {close[0]}?"
            for arg in unknown
            if (close := difflib.get_close_matches("--" + arg.lstrip("-").replace("-", "_"), names, 1))
        ]
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)}: neither `vigil run` nor Beam's pipeline options "
            "define them (see `vigil run --help`)" + (f" ({'; '.join(hints)})" if hints else "")
        )
    if rest:
        raise ConfigError(f"unexpected argument(s) {' '.join(rest)}; Beam options are written --name=value")
    given: dict[str, list[str]] = {}
    for arg in args:
        action = parser._option_string_actions.get(arg.split("=", 1)[0]) if arg.startswith("--") else None
        if type(action).__module__ == "argparse" and isinstance(action, _STORE_ONCE):
            given.setdefault(action.dest, []).append(arg.split("=", 1)[0])  # type: ignore[union-attr]
    twice = sorted({names[0] for names in given.values() if len(names) > 1})
    if twice:
        raise ConfigError(
            f"option(s) {', '.join(twice)} given more than once; Beam would keep only the last: give "
            "each once"
        )


def check_runner(opts: RunOptions) -> None:
    """Refuse an unknown runner, unknown options, options the runner needs and lacks, or a cluster
    runner whose master does not answer, with one line each (Beam itself would print pages of
    tracebacks)."""
    check_beam_args(opts.beam_args)
    _check_values(opts)
    if opts.runner in EMBEDDED:
        _no_other_runners_options(opts.beam_args)
        return
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
    from apache_beam.runners.runner import create_runner

    try:
        runner = create_runner(opts.runner)
    except (ValueError, ImportError) as exc:
        if extra := missing_extra(exc):
            raise _needs_extra(opts.runner, extra) from None
        raise ConfigError(
            f"--runner {opts.runner} is not a Beam runner Vigil can load ({str(exc).splitlines()[0][:160]})"
        ) from None
    if extra := missing_for_runner(runner):  # Beam would import it only once the job starts
        raise _needs_extra(opts.runner, extra)
    if isinstance(runner, BundleBasedDirectRunner):
        raise ConfigError(
            f"--runner {opts.runner} is Beam's legacy direct runner, which hands one step's outputs to "
            "the wrong consumer in this pipeline (Beam's own defect), so it cannot archive; leave out "
            "--runner for the embedded runner (or --runner DirectRunner, which picks a working one)"
        )
    options = PipelineOptions([f"--runner={opts.runner}", *opts.beam_args])
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)  # "Unable to create default GCS bucket": the line below says it
    try:
        missing = PipelineOptionsValidator(options, runner).validate()
    finally:
        beam_log.setLevel(level)
    if missing:
        raise ConfigError(
            f"--runner {opts.runner} cannot start with these options: "
            + "; ".join(str(m).strip().rstrip(".") for m in missing)
        )
    values = options.get_all_options()
    elsewhere = type(runner).__name__ == "DataflowRunner" or (
        type(runner).__name__ in ("FlinkRunner", "SparkRunner", "PortableRunner")
        and str(values.get("environment_type") or "").upper() != "LOOPBACK"
    )  # LOOPBACK: the workers run in this process, beside the archive
    if elsewhere and opts.on_warning is not None:
        opts.on_warning(
            f"warning: --runner {opts.runner} runs the pipeline's steps on other machines, which write "
            f"the archive at {Path(opts.archive).absolute()} on their own file system: that must be one "
            "folder every worker and this machine mount at that path (NFS, Filestore); otherwise the "
            "run ends with nothing committed (exit 3)"
        )
    for flag in ("flink_master", "spark_master_url", "job_endpoint"):
        master = str(values.get(flag) or "").split("://", 1)[-1].rstrip("/")
        if ":" in master and master.rsplit(":", 1)[1].isdigit():  # [auto], [local], local need no check
            _reachable(flag, master)


def _check_values(opts: RunOptions) -> None:
    """Refuse option values Beam accepts on the command line and then fails on, deep inside the
    run, as an error that names nothing the user typed."""
    import importlib.util

    values = PipelineOptions(list(opts.beam_args)).get_all_options()
    workers = values.get("direct_num_workers")
    if isinstance(workers, int) and workers < 0:
        raise ConfigError(
            f"--direct_num_workers={workers}: give a number of workers (1 or more), or 0 for one per core"
        )
    if values.get("pickle_library") == "dill" and importlib.util.find_spec("dill") is None:
        raise ConfigError(
            f"--pickle_library=dill needs Beam's dill extra, which is not installed: {pip_install('dill')} "
            "(into Vigil's environment), or leave the option out"
        )
    if values.get("performance_runtime_type_check") or values.get("type_check_strictness") == "ALL_REQUIRED":
        raise ConfigError(
            "--performance_runtime_type_check and --type_check_strictness=ALL_REQUIRED stop Beam on its "
            "own steps' outputs (a defect of Beam's, not of the data): leave them out"
        )
    if opts.runner == "PortableRunner" and not values.get("job_endpoint"):
        raise ConfigError(
            "--runner PortableRunner needs --job_endpoint=HOST:PORT (a running Beam job server); for a "
            "Flink or Spark cluster use --runner FlinkRunner or SparkRunner"
        )
    prism = str(values.get("prism_location") or "")
    if prism and "://" not in prism and not os.path.isfile(prism):
        raise ConfigError(
            f"--prism_location={prism}: there is no such file; give the path of the prism binary"
        )


#: Beam's option groups only another runner reads, and the runner to name: given with the embedded
#: runner they would be ignored without a word (a left-out --runner would archive here instead)
OTHER_RUNNERS_OPTIONS = {
    "FlinkRunnerOptions": "FlinkRunner",
    "SparkRunnerOptions": "SparkRunner",
    "PrismRunnerOptions": "PrismRunner",
    "JobServerOptions": "FlinkRunner or SparkRunner",
}
#: ... and single options of groups the embedded runner shares
OTHER_RUNNERS_SINGLE = {
    "--job_endpoint": "PortableRunner",
    "--artifact_endpoint": "PortableRunner",
    "--job_server_timeout": "PortableRunner",
}


def _no_other_runners_options(args: list[str]) -> None:
    import argparse

    from apache_beam.options import pipeline_options

    owner = dict(OTHER_RUNNERS_SINGLE)
    for group, runner in OTHER_RUNNERS_OPTIONS.items():
        cls = getattr(pipeline_options, group, None)
        if cls is None:
            continue
        parser = argparse.ArgumentParser(add_help=False)
        cls._add_argparse_args(parser)
        for action in parser._actions:
            owner.update(dict.fromkeys(action.option_strings, runner))
    names = [arg.split("=", 1)[0] for arg in args]
    given = {name: owner[name] for name in names if name in owner}
    if given:
        runners = sorted(set(given.values()))
        which = f"option {next(iter(given))} is" if len(given) == 1 else f"options {', '.join(given)} are"
        raise ConfigError(
            f"{which} for {' / '.join(runners)}, but no --runner is given: the "
            f"embedded runner would ignore them and archive here. Add --runner {runners[0].split()[0]} "
            "(see `vigil run --help`), or leave them out"
        )


def _needs_extra(runner: str, extra: str) -> ConfigError:
    return ConfigError(
        f"--runner {runner} needs Beam's {extra} extra, which is not installed: {pip_install(extra)} "
        "(into Vigil's environment), or leave out --runner for the embedded runner"
    )


def _download_failure(exc: BaseException) -> str | None:
    """Why Beam could not fetch a runner's artefact (a job-server jar, the Prism binary), if that
    is what ``exc`` is (an offline machine), else None."""
    import urllib.error

    found = next((c for c in causes(exc) if isinstance(c, urllib.error.URLError)), None)
    return None if found is None else str(getattr(found, "reason", found))


def _reachable(flag: str, address: str) -> None:
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=3):
            return
    except (OSError, ValueError):
        raise ConfigError(
            f"--{flag}={address} does not answer; start the cluster (or fix the address) and run again"
        ) from None


def pipeline_options(opts: RunOptions) -> tuple[Any, PipelineOptions]:
    """The runner and options. The embedded default is Beam's in-process FnApiRunner, chosen
    explicitly because the default DirectRunner may try to download the Prism runner."""
    args = list(opts.beam_args)
    if opts.runner in EMBEDDED:
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


_KEY = ("name", "size", "mtime_ns")


def _by_canonical_name(sources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {canonical(name): {**seen, "name": canonical(name)} for name, seen in sources.items()}


def describe_unfinished(count: int) -> str:
    return (
        f"{count} file(s) end in a half-written line (no line end, not yet whole JSON): held until "
        "its writer finishes it; a `vigil run` after the session reads it as it is"
    )


@dataclass(frozen=True)
class Selection:
    """The files a run reads, how many it skipped as consumed unchanged, where to start in each,
    which of them a writer may still be appending to (their last line is held back unless it ends
    in a line end), how many wait for their writer (a gzip file changed moments ago) and the
    input's files that are not event files (named in the summary, never read)."""

    files: list[SourceFile]
    skipped: int
    starts: dict[str, int]
    held: frozenset[str]
    waiting: int
    unread: list[str]
    unfinished: int = 0  # follow mode: settled files whose last line is half-written (held back)
    unreadable: list[str] = field(default_factory=list)  # named like event files, not files: "name (why)"
    left_out: list[str] = field(default_factory=list)  # named like event files, bookkeeping or .tmp


#: follow mode: for each file stamped ahead of this process's clock, its size and mtime and when
#: it was first seen so: such a file settles that long after, whatever its mtime says
_SEEN_AHEAD: dict[str, tuple[int, int, float]] = {}


def select_sources(opts: RunOptions) -> Selection:
    """Files to read and where to start in each: a plain file that only grew since a commit
    consumed it (its first ``bytes_read`` bytes hash the same) is read on from there; anything else
    from its start. A file a commit consumed unchanged is skipped unless that commit held back its
    last line (no line end yet, in follow mode) and the file has since settled."""
    listing = list_input(opts.input, exclude=str(opts.archive))
    found = listing.files
    now = time.time()
    listed = {source.name for source in found}
    for gone in [name for name in _SEEN_AHEAD if name not in listed]:
        del _SEEN_AHEAD[gone]  # removed or renamed: a session's memory does not grow with them

    def being_written(source: SourceFile) -> bool:
        if not opts.hold_partial_tail:
            return False
        age = now - source.mtime_ns / 1e9
        if age >= 0:
            return age < opts.settle_seconds
        # stamped ahead of this clock (a writer whose clock runs ahead, `tar x` or `cp -p` of
        # future-stamped files): its mtime cannot say how long ago it changed, so it settles
        # `--settle` seconds after this process first saw it as it is now
        seen = _SEEN_AHEAD.get(source.name)
        if seen is None or seen[:2] != (source.size, source.mtime_ns):
            seen = _SEEN_AHEAD[source.name] = (source.size, source.mtime_ns, now)  # one per file
        return now - seen[2] < opts.settle_seconds

    if not opts.only_new_sources:
        return Selection(
            found,
            0,
            {},
            frozenset(),
            0,
            listing.unread,
            unreadable=listing.skipped,
            left_out=listing.left_out,
        )
    state = load_state(opts.archive)
    # names as found now; manifests written before names were made canonical hold them as typed
    consumed = _by_canonical_name(state.consumed_sources())
    # follow mode polls often: a broken file is dead-lettered once, then read again only if it changes
    broken = (
        _by_canonical_name(state.consumed_sources("unfinished_sources")) if opts.hold_partial_tail else {}
    )
    fresh: list[SourceFile] = []
    starts: dict[str, int] = {}
    held: set[str] = set()
    waiting = unfinished = 0
    for source in found:
        writing = being_written(source)
        if writing and not resumable(source.name):
            waiting += 1  # a gzip stream is read from its start: once, when its writer is done
            continue
        before = consumed.get(source.name)
        done = int((before or {}).get("bytes_read") or 0)
        unchanged = before is not None and {k: before.get(k) for k in _KEY} == source.key()
        held_back = bool((before or {}).get("held_tail"))  # its last line had no line end yet
        if unchanged and not (held_back and not writing):
            # consumed unchanged; or its held-back last line is read once the file has settled
            waiting += held_back
            continue
        # the bytes a commit read are still the file's first bytes: hashed when first asked, once
        same_prefix = functools.cache(
            lambda source=source, before=before, done=done: (
                done > 0
                and source.size >= done
                and resumable(source.name)
                and prefix_sha256(source.name, done) == (before or {}).get("prefix_sha256")
            )
        )
        if not unchanged and done == source.size and same_prefix():
            continue  # the same bytes written again (`simulate --overwrite`): all read already
        # settled, but its last line stops half-way: a writer that paused, not a finished file
        paused = (
            opts.hold_partial_tail
            and not writing
            and resumable(source.name)
            # unchanged since the commit that held its tail: that tail starts at bytes_read
            # judged on the bytes listed, which are what the batch reads (see build)
            and unfinished_tail(
                source.name, opts.max_line_bytes, start=done if unchanged else 0, end=source.size
            )
        )
        unfinished += paused
        if unchanged and paused:
            continue  # nothing new before it: wait for the rest
        failed = broken.get(source.name)
        if failed is not None and {k: failed.get(k) for k in _KEY} == source.key():
            continue
        fresh.append(source)
        # settled and ending in a line end: its writer may still begin a line while this batch
        # reads it (the listing is a second or more before the reading), which is then held too
        quiet = opts.hold_partial_tail and resumable(source.name) and ends_a_line(source.name, source.size)
        if writing or paused or quiet:
            held.add(source.name)
        if same_prefix():
            starts[source.name] = done
    return Selection(
        fresh,
        len(found) - len(fresh) - waiting,
        starts,
        frozenset(held),
        waiting,
        listing.unread,
        unfinished,
        listing.skipped,
        listing.left_out,
    )


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
    starts: dict[str, int] | None = None,
    held: frozenset[str] = frozenset(),
) -> None:
    limits = parse.Limits(
        max_line_bytes=opts.max_line_bytes, max_body_chars=opts.max_body_chars, future_skew=opts.future_skew
    )
    starts = starts or {}
    # follow mode: a settled file read without holding its tail (its last line is whole JSON with
    # no line end) is read up to the size it was listed with; what its writer appends meanwhile (a
    # line end, then half a line) is for the next poll, not a half line to dead-letter now; a
    # settled gzip file likewise up to its listed (compressed) size: a member its writer adds
    # meanwhile is for the next poll, not a cut stream to dead-letter
    read = pipeline | "ReadEvents" >> ReadEvents(
        [
            (
                s.name,
                starts.get(s.name, 0),
                s.name in held,
                s.size if opts.hold_partial_tail and s.name not in held else None,
            )
            for s in sources
        ],
        opts.max_line_bytes,
    )
    validated = read.lines | "ValidateEvents" >> ValidateEvents(now, limits)
    extra_dead = []
    if engine is None:
        checked = validated.records | "NoPolicy" >> beam.Map(lambda row: (uninspected(row), []))
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
    extra: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "dlp_policy": engine_id(engine)}
    from pipelines.search.audit import audit_position

    audit = audit_position(opts.archive)
    if audit is not None:  # anchors the access log: verify then notices if it is cut or deleted later
        extra["audit"] = audit
    (records, dead, read[POSITIONS]) | "WriteArchive" >> WriteArchive(
        opts.archive, commit, [s.key() for s in sources], extra
    )


#: the start of a URL (``gs://``, ``s3:/`` once a Path has been made of it)
_URL_LIKE = re.compile(r"([A-Za-z][-A-Za-z0-9+.]*):/")


def check_places(opts: RunOptions) -> None:
    """Refuse an input that is the archive folder or inside it: the archive is skipped when the
    input is listed, so its files would never be read (and a run would say only "no event files").
    Refuse an archive written as a URL too: the writer needs a POSIX file system, and the path
    would make a local folder named ``gs:``."""
    archive = Path(opts.archive)
    if archive.exists() and not archive.is_dir():
        raise ConfigError(f"--archive {archive} exists and is not a folder")
    if url := _URL_LIKE.match(str(opts.archive)):  # Path makes gs://b/a gs:/b/a: a local folder "gs:"
        raise ConfigError(
            f"--archive {url.group(1)}://{str(opts.archive)[url.end() :].lstrip('/')} is a URL, but the "
            "archive is a folder on a POSIX file system (a local disk, or NFS or Filestore every worker "
            "mounts): pass its path"
        )
    if not is_local(opts.input):
        return
    where, inside = Path(os.path.realpath(opts.input)), Path(os.path.realpath(archive))
    if where == inside or inside in where.parents:
        raise ConfigError(
            f"--input {opts.input} is {'the archive folder' if where == inside else 'inside the archive'} "
            f"{archive}: Vigil never reads its own archive, so nothing in it would be archived; keep "
            "event files in a folder of their own (the archive may sit inside the input folder)"
        )


#: the garbage collector's first threshold while a pipeline runs (Python's default is 700)
GC_THRESHOLD_WHILE_RUNNING = 20_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run a pipeline with less garbage-collector work; nothing else changes.

    Every row is a few dozen small containers, created by the hundred thousand, and each one
    counts towards the collector's next pass. With the default threshold, those passes go over
    every object the process holds (Beam, pydantic, the compiled policy set: 100k-200k of them)
    again and again, which cost 10-15% of a run. So the objects that exist before the run are
    set aside (``gc.freeze``: still alive, never freed meanwhile, only not re-examined) and the
    first threshold is raised; both are put back when the run ends. Memory stays bounded (cycles
    are still collected, only in larger steps). A process that froze objects itself (a server
    that forks workers) keeps its own arrangement: ``gc.unfreeze`` would undo it."""
    thresholds = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(thresholds[0], GC_THRESHOLD_WHILE_RUNNING), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()


def run(opts: RunOptions) -> RunSummary:
    """One batch run: lock the archive, recover, archive every new input file, commit once.

    Ctrl-C and SIGTERM stop it alike (see :mod:`pipelines.ingest.stopping`) with
    :class:`~pipelines.ingest.stopping.Stopped`: at once outside the pipeline, at its next step
    inside it (what it staged is discarded, nothing is committed). One that comes after the
    steps have committed lets the run write its report, then stops it (``Stopped.commit`` names
    the commit). A second Ctrl-C ends the process at once."""
    with stopping.signals() as stop:
        try:
            summary = _run(opts)
        except Exception as exc:
            if stop.requested and interrupted(exc):  # raised in a step, re-raised by Beam
                raise stop.stopped() from exc
            raise
        stop.commit = summary.commit
    stop.check()  # one that came after the last step that could raise it (or was swallowed)
    return summary


def _run(opts: RunOptions) -> RunSummary:
    check_places(opts)
    check_runner(opts)  # before anything is written: an unknown option or runner is one line
    check_input(opts.input)  # ...and so is an input that is missing or not an event file
    if not os.path.lexists(opts.archive):
        # an input with no event files (a wrong folder, a night without traffic) must not leave an
        # empty archive behind where none was: the summary says what was found, nothing is created
        listing = list_input(opts.input, exclude=str(opts.archive))
        if not listing.files:
            return _summary_of(
                Selection(
                    [],
                    0,
                    {},
                    frozenset(),
                    0,
                    listing.unread,
                    unreadable=listing.skipped,
                    left_out=listing.left_out,
                )
            )
    # a policy that does not load, or a hash key that is not set, is refused before the archive is
    # touched too; and a new archive folder is removed again if the run ends with nothing committed
    engine = load_engine(opts)
    with writer.archive_lock(Path(opts.archive), new_folder=writer.REMOVE_IF_UNUSED):
        return run_locked(opts, engine)


def _summary_of(selection: Selection, commit: str | None = None) -> RunSummary:
    """A run's summary before it reads anything: what the input holds and what it will read."""
    return RunSummary(
        commit=commit,
        sources=len(selection.files),
        skipped_sources=selection.skipped,
        resumed_sources=len(selection.starts),
        waiting_sources=selection.waiting,
        unfinished_tails=selection.unfinished,
        unread_count=len(selection.unread),
        unread_files=selection.unread[:UNREAD_LISTED],
        unreadable_count=len(selection.unreadable),
        unreadable_files=selection.unreadable[:UNREAD_LISTED],
        left_out_count=len(selection.left_out),
        left_out_files=selection.left_out[:UNREAD_LISTED],
    )


def run_locked(opts: RunOptions, engine: Any = None) -> RunSummary:
    """:func:`run` for a caller that already holds the archive lock and has checked the runner
    (``--follow``, which does both once rather than on every poll). ``engine``: the DLP engine
    :func:`load_engine` made for ``opts`` (None: loaded here, when there is something to read)."""
    archive = Path(opts.archive)
    now = (opts.now or dt.datetime.now(UTC)).astimezone(UTC)
    commit = layout.new_commit_id(dt.datetime.now(UTC))
    started = time.monotonic()
    recovery = writer.recover(archive)
    selection = select_sources(opts)
    sources, starts = selection.files, selection.starts
    summary = _summary_of(selection, commit)
    summary.recovered = recovery.describe() if recovery.anything else None
    recovery.require_complete("nothing was archived")
    if not sources:
        summary.commit = None
        summary.manifest_head = load_state(archive).head
        return summary
    if engine is None:
        engine = load_engine(opts)
    if opts.es is not None:
        resend = f"vigil es index --archive {shlex.quote(str(archive))} --role officer"
        summary.es_resend = opts.es.reconnect_command(resend)
        summary.es_resend_env = opts.es.secret_env
        try:
            _es_preflight(opts.es)
        except IndexingError as exc:
            # the archive is the system of record: an optional index that is down must not block it
            summary.es_unavailable = str(exc)
            opts = dataclasses.replace(opts, es=None)
            if opts.on_warning is not None:
                opts.on_warning(f"warning: Elasticsearch is not usable ({exc}); archiving without indexing")
    runner, options = pipeline_options(opts)
    reporter = progress.Reporter(enabled=opts.show_progress)
    # on the embedded runner a stop (Ctrl-C, SIGTERM) waits for a step to raise it (stopping.py):
    # the last one to is the commit; after it the run writes its report, then stops
    embedded = opts.runner in EMBEDDED
    defer = stopping.deferred() if embedded else contextlib.nullcontext()
    # ... also in steps that run in worker processes (--direct_running_mode=multi_processing)
    shared = stopping.shared() if embedded else contextlib.nullcontext()
    with defer, shared, progress.reporting(reporter):
        compressed = any(s.name.endswith(".gz") for s in sources)  # sizes on disk are not line bytes
        progress.declare("reading (bytes)", None if compressed else sum(s.size for s in sources))
        pipeline = beam.Pipeline(runner=runner, options=options) if runner else beam.Pipeline(options=options)
        build(pipeline, opts, sources, commit, now, engine, starts, selection.held)
        try:
            with fewer_collections():
                result = pipeline.run()
                result.wait_until_finish()
        except BaseException as exc:
            writer.recover(archive)  # discard this run's staged files now rather than next time
            if embedded and (signum := stopping.requested_signal()) is not None and not interrupted(exc):
                # the stop, raised in a step that ran on one of Beam's workers: Beam passes it on as
                # a RuntimeError holding only the traceback's text (threads), or as the failure of
                # a worker process that ended on it; the pipeline committed nothing either way
                raise stopping.Stopped(signum) from exc
            if opts.runner not in EMBEDDED and (extra := missing_extra(exc)):
                raise _needs_extra(opts.runner, extra) from None  # one check_runner could not foresee
            if opts.runner not in EMBEDDED and (failed := _download_failure(exc)):
                raise ConfigError(
                    f"--runner {opts.runner} could not start: Beam had to download what runs it (a job "
                    f"server or the Prism binary) and could not ({failed}). Without internet access, leave "
                    "out --runner for the embedded runner, or give Beam a local copy (--prism_location=FILE, "
                    "--flink_job_server_jar=FILE, --spark_job_server_jar=FILE) or a running job server "
                    "(--job_endpoint=HOST:PORT). Nothing was archived"
                ) from None
            raise
        counters = _metrics(result)
        state = load_state(archive)
        summary.committed = commit in state.commits
        if not summary.committed:
            raise ArchiveError(
                f"the pipeline finished but commit {commit} is not in the manifest of {archive}: the "
                "runner's workers wrote it somewhere else (workers on other machines write --archive on "
                "their own disks unless it is a folder every one of them mounts at that same path). "
                "Nothing was committed here; run again with such a folder or with the embedded runner"
            )
        summary.read = counters.get("read", 0)
        summary.blank_lines = counters.get("blank_lines", 0)
        summary.vanished_files = counters.get("vanished_files", 0)
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
            if es_counts.get("refused_credentials"):
                summary.es["refused_credentials"] = es_counts["refused_credentials"]
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
