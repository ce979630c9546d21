"""``vigil run``: archive event files."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from pipelines.cli.dlp import default_rules_dir
from pipelines.cli.es import config_from, connection_options, max_request
from pipelines.cli.hints import quoted, vigil_command
from pipelines.errors import ArchiveError, IndexingError
from pipelines.ingest.lines import MAX_LINE_BYTES
from pipelines.record import MAX_BODY_CHARS

#: the longest line --max-line-bytes may allow: a line up to the limit is held whole in memory
MAX_LINE_BYTES_LIMIT = 1 << 30  # 1 GiB
#: the largest --future-skew-minutes: 1e10 minutes (19,000 years) reach past year 9999 from any
#: time the archive takes (2000 on), so a larger skew would mean the same, "no check"
MAX_FUTURE_SKEW_MINUTES = 1e10
#: the longest --interval and --settle, in seconds: a day
MAX_SECONDS = 86_400.0
#: the largest --es-batch-size, as `vigil es index --batch-size`
MAX_ES_BATCH = 10_000


def _finite(example: str) -> Any:
    """A callback refusing ``nan`` (FloatRange lets it through: it fails no comparison)."""

    def check(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise click.BadParameter(f"{value} is not a number of {example}")
        return value

    return check


class _RunCommand(click.Command):
    """``vigil run`` passes the options it does not define to Beam, so it checks first what click
    would otherwise let slip: one of its own options given twice (click keeps the last, so
    ``--input a --input b`` would archive only ``b`` without a word) or spelled Beam's way
    (``--stop_after_idle``, which Beam would then call unknown)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        own = {
            name: param
            for param in self.params
            if isinstance(param, click.Option) and not param.is_flag and not param.multiple
            for name in param.opts
            if name.startswith("--")
        }
        every = {name for param in self.params for name in param.opts if name.startswith("--")}
        given: dict[str, list[str]] = {}
        words = iter(args)
        for arg in words:
            if arg == "--":
                break
            name, eq, value = arg.partition("=")
            if name in own:
                given.setdefault(name, []).append(value if eq else next(words, ""))
            elif name.startswith("--") and "_" in name and (dashed := name.replace("_", "-")) in every:
                raise click.UsageError(f"no such option {name}: did you mean {dashed}?", ctx)
        for name, values in given.items():
            if len(values) > 1:
                raise click.UsageError(
                    f"{name} given more than once ({', '.join(values)}); `vigil run` takes one: give it once",
                    ctx,
                )
        return super().parse_args(ctx, args)


@click.command(
    "run",
    cls=_RunCommand,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog="""\b
Runners:
  default     Beam's in-process FnApiRunner (offline; nothing to install)
  --runner FlinkRunner --flink_master=HOST:8081 --environment_type=LOOPBACK
  --runner SparkRunner --spark_master_url=spark://HOST:7077
  --runner DataflowRunner --project=P --region=R --temp_location=gs://B/tmp
Other --name=value options are passed to Beam as pipeline options; an option
neither `vigil run` nor Beam knows (a typo such as --follw) is refused.
""",
)
@click.option(
    "--input",
    "input_path",
    required=True,
    help="Folder (or glob, or one file) of .jsonl, .jsonl.gz, .ndjson or .ndjson.gz event files.",
)
@click.option(
    "--archive", type=click.Path(file_okay=False, path_type=Path), required=True, help="Archive folder."
)
@click.option("--follow", is_flag=True, help="Keep polling the input for new files (micro-batches).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1, max=MAX_SECONDS),
    callback=_finite("seconds; give one such as 5"),
    default=5.0,
    show_default=True,
    help="Seconds between polls with --follow (0.1 to 86400).",
)
@click.option(
    "--settle",
    "settle_seconds",
    type=click.FloatRange(min=0, max=MAX_SECONDS),
    callback=_finite("seconds; give one such as 10"),
    default=10.0,
    show_default=True,
    help="With --follow: seconds a file must stay unchanged to count as finished (its last line is "
    "then read without a line end if it is whole JSON, held if it stops half-way; a .gz file is "
    "read only then).",
)
@click.option(
    "--stop-after-idle",
    type=click.IntRange(min=1),
    default=None,
    help="With --follow: stop after this many empty polls.",
)
@click.option("--reprocess", is_flag=True, help="Read every input file again, even ones already archived.")
@click.option("--runner", default=None, help="Beam runner (default: the embedded in-process runner).")
@click.option(
    "--max-line-bytes",
    type=click.IntRange(min=1024, max=MAX_LINE_BYTES_LIMIT),
    default=MAX_LINE_BYTES,
    show_default=True,
    help="Longer lines are dead-lettered (1024 to 1073741824, 1 GiB).",
)
@click.option(
    "--max-body-chars",
    type=click.IntRange(min=1),
    default=MAX_BODY_CHARS,
    show_default=True,
    help="Longer bodies are dead-lettered; may be raised above the default.",
)
@click.option(
    "--future-skew-minutes",
    type=click.FloatRange(min=0, max=MAX_FUTURE_SKEW_MINUTES),
    callback=_finite("minutes; give one such as 15 (or 1e9 for no check)"),
    default=15.0,
    show_default=True,
    help="Allowed clock skew into the future (0 to 1e10; 1e9 for no check).",
)
@click.option(
    "--policy",
    default=None,
    help="DLP policy file, policy-set file or folder  [default: the shipped dlp_rules/active.yaml]",
)
@click.option(
    "--no-dlp", is_flag=True, help="Archive without DLP verdicts (testing only; not for production)."
)
@click.option(
    "--es-batch-size",
    type=click.IntRange(min=1, max=MAX_ES_BATCH),
    default=500,
    show_default=True,
    help="Documents per bulk request with --es-url (1 to 10000).",
)
@click.option(
    "--es-max-request-mb",
    type=click.FloatRange(min=0.01, max=2047),
    default=None,
    help="Largest bulk request with --es-url, in MiB; bigger batches are split  [default: 10]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@connection_options
@click.pass_context
def command(
    ctx: click.Context,
    input_path: str,
    archive: Path,
    follow: bool,
    interval: float,
    settle_seconds: float,
    stop_after_idle: int | None,
    reprocess: bool,
    runner: str | None,
    max_line_bytes: int,
    max_body_chars: int,
    future_skew_minutes: float,
    policy: str | None,
    no_dlp: bool,
    es_batch_size: int,
    es_max_request_mb: float | None,
    as_json: bool,
    quiet: bool,
    **es_options: Any,
) -> None:
    """Archive event files: validate, de-duplicate, write Parquet, commit to the manifest.

    Every event ends up archived, dead-lettered (with the reason) or counted as a duplicate, and the
    summary shows that these add up. Safe to kill and re-run: the archive then holds exactly what a
    clean run would have written. Ctrl-C or SIGTERM stops it within moments, keeping nothing it had
    not committed: exit code 130 (143 for SIGTERM), and a second Ctrl-C ends it at once; a --follow
    session ends with its totals and 0. With --es-url, records are also indexed into Elasticsearch
    (run `vigil es setup` once first); documents it refuses become dead letters, never silent gaps.
    Indexing is on only when --es-url is given (ES_URL alone does not turn it on). If the cluster
    does not answer at the start, the files are archived anyway, nothing is indexed, and the exit
    code is 4; so it is when Elasticsearch dead-lettered documents during the run (`vigil es index`
    re-sends them). When a file named like an event file could not be read (to its end), the rest
    is archived, the summary names it and the exit code is 1; the next run reads it again. `vigil
    deadletters` lists what was refused.
    """
    from pipelines.ingest.read import SUFFIXES_TEXT
    from pipelines.ingest.run import RunOptions, describe_unfinished, dlp_labels, run

    if not follow:
        for name, flag in (
            ("interval", "--interval"),
            ("settle_seconds", "--settle"),
            ("stop_after_idle", "--stop-after-idle"),
        ):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(
                    f"{flag} only applies with --follow: add --follow to keep polling, or leave {flag} out",
                    ctx,
                )
    es = config_from({**es_options, **max_request(es_max_request_mb)}) if es_options.get("es_url") else None
    if es is not None:
        for name in ("elastic_transport", "elasticsearch"):  # their retries log tracebacks
            logging.getLogger(name).setLevel(logging.CRITICAL)
    opts = RunOptions(
        input=input_path,
        archive=archive,
        runner=runner,
        beam_args=list(ctx.args),
        max_line_bytes=max_line_bytes,
        max_body_chars=max_body_chars,
        future_skew=dt.timedelta(minutes=future_skew_minutes),
        only_new_sources=not reprocess,
        show_progress=not quiet and not as_json,
        policy=policy,
        dlp=not no_dlp,
        es=es,
        es_batch_size=es_batch_size,
        on_warning=lambda text: click.echo(text, err=True),
        settle_seconds=settle_seconds,
    )
    if follow:
        from pipelines.ingest.follow import follow as follow_loop

        if reprocess:
            raise click.UsageError(
                "--reprocess reads every file again once; run it without --follow, then follow"
            )
        click.echo(
            f"Following {input_path} every {interval:g}s; "
            "Ctrl-C (or SIGTERM) stops (an interrupted batch is redone next time).",
            err=True,
        )

        def on_batch(s: Any) -> None:
            if s.recovered:
                click.echo(s.recovered, err=True)
            if not (s.read or s.files_written):
                return  # a batch that only took note of a file still being written: not news
            click.echo(
                json.dumps({"event": "batch", **s.as_dict()}, default=str) if as_json else s.render(archive)
            )

        def on_compact(r: Any) -> None:
            if as_json:
                click.echo(json.dumps({"event": "compaction", **asdict(r)}, default=str))
            else:
                click.echo(
                    f"compacted {r.files_before} small file(s) into {r.files_after} ({r.rows:,} rows, "
                    "records and dead letters together)"
                )

        result = follow_loop(
            opts, interval=interval, stop_after_idle=stop_after_idle, on_batch=on_batch, on_compact=on_compact
        )
        t = result.totals
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "event": "stopped",
                        "polls": result.polls,
                        "batches": result.batches,
                        "compactions": result.compactions,
                        "unfinished_tails": result.unfinished_tails,
                        "waiting_files": result.waiting,
                        "unreadable_files": result.unreadable.unreadable_files if result.unreadable else [],
                        "input_problem": result.input_problem,
                        "compaction_problem": result.compaction_problem,
                        "totals": t,
                        "dlp": dict(sorted(result.dlp.items())),
                        "balanced": t["read"] == t["archived"] + t["dead_lettered"] + t["duplicates"],
                    },
                    default=str,
                )
            )
        else:
            click.echo(
                f"Stopped after {result.polls} poll(s), {result.batches} batch(es): read {t['read']:,} = "
                f"archived {t['archived']:,} + dead-lettered {t['dead_lettered']:,} + "
                f"duplicates {t['duplicates']:,}; {result.compactions} compaction(s)."
            )
            if result.batches and not no_dlp:  # what each batch's summary said, added up
                acted = (
                    ", ".join(f"{n:,} {word}" for word, n in dlp_labels(result.dlp)) or "nothing to act on"
                )
                click.echo(f"DLP over the session: {acted}")
            if t["notices"]:
                click.echo(f"  + {t['notices']:,} notice(s) to employees about blocked messages (archived)")
            if result.unfinished_tails:
                click.echo(describe_unfinished(result.unfinished_tails) + ".")
            if result.waiting:
                click.echo(
                    f"{result.waiting} file(s) changed moments before the stop were not read to their end "
                    "(a gzip file, or a last line without line end, waiting to settle): run again once "
                    "their writers are done and they are read then."
                )
            if result.unreadable:
                click.echo(result.unreadable.describe_unreadable() + ".")
            if result.input_problem:
                click.echo(f"The input could not be listed at the last poll: {result.input_problem}.")
            if result.compaction_problem:
                click.echo(f"Compaction was refused and turned off: {result.compaction_problem}.")
        if result.compaction_problem:
            sys.exit(ArchiveError.exit_code)  # archived, but the archive has a problem: a scheduler notices
        if result.es_incomplete:
            _es_was_down(archive)
        return
    from pipelines.ingest import stopping

    # Ctrl-C and SIGTERM stop the run (see stopping.py), and likewise while its summary is printed
    stop = ctx.with_resource(stopping.signals())
    summary = run(opts)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), default=str))
        _exit_if_incomplete(summary, archive)
        return
    if summary.recovered:
        click.echo(summary.recovered, err=True)
    if summary.commit is None:
        if summary.skipped_sources:
            click.echo(
                f"Nothing new to archive in {input_path} ({summary.skipped_sources} file(s) already "
                "archived; --reprocess reads them again)."
            )
            if summary.unread_count:  # a new export named unlike an event file must not go unseen
                click.echo(summary.describe_unread())
        else:
            click.echo(f"No event files in {input_path}; nothing archived.")
            click.echo(
                summary.describe_unread()
                if summary.unread_count
                else f"Vigil reads newline-delimited JSON from files ending in {SUFFIXES_TEXT}."
            )
        if summary.unreadable_count:
            click.echo(summary.describe_unreadable())
        if summary.left_out_count:
            click.echo(summary.describe_left_out())
        _exit_if_incomplete(summary, archive)
        return
    click.echo(summary.render(archive))
    # shell-quoted, so each line can be pasted whatever the path or the conversation id holds
    vigil = vigil_command()
    with stopping.deferred():  # DuckDB would turn a stop raised in its query into "Query interrupted"
        busiest = quoted(_busiest_conversation(archive, summary.commit) or "ID")
    stop.check()
    at = quoted(archive)
    # the strongest action this run took, so the search shows something
    action, what = next(
        (
            (a, w)
            for a, w in (("block", "stopped"), ("redact", "redacted"), ("flag", "flagged"))
            if summary.dlp.get(a)
        ),
        ("block", "stopped"),
    )
    dlp_line = (
        f"  {vigil} dlp dry-run --policy {quoted(default_rules_dir() / 'active.yaml')} --archive {at} "
        "--role officer  # what DLP would do (this run had none)\n"
        if no_dlp
        else f"  {vigil} search --archive {at} --role officer {f'dlp:{action}':<21}# what DLP {what}\n"
    )
    click.echo(
        "Look at it:\n"
        f"  {vigil} search --archive {at} --role reviewer portfolio           # find messages\n"
        f"{dlp_line}"
        f"  {vigil} conversation {busiest} --archive {at} --role officer --html c.html\n"
        + (
            f"  {vigil} deadletters --archive {at} --role officer                 # what was refused, why\n"
            if summary.dead_lettered
            else ""
        )
        + f"  {vigil} verify --archive {at}                                     # tamper check\n"
        f"  Parquet files: {archive}/records/event_month=*/ch=*/*.parquet (DuckDB and pyarrow read them)"
    )
    _exit_if_incomplete(summary, archive)


def _exit_if_incomplete(summary: Any, archive: Path) -> None:
    """Exit 4 when Elasticsearch did not get everything, 1 when part of the input could not be read
    (named in the summary; the next run reads it again): either way a scheduler notices."""
    if summary.es_incomplete:
        _es_was_down(archive)
    if summary.input_incomplete:
        sys.exit(1)


def _es_was_down(archive: Path) -> None:
    """Archived, not all indexed (the summary says so and how to re-send): exit 4 so a scheduler
    notices."""
    sys.exit(IndexingError.exit_code)


def _busiest_conversation(archive: Path, commit: str | None) -> str | None:
    """A conversation worth replaying in the hint: messages, auto-messages and events, and many of
    them. Only this run's files are read (or, when it archived no record, those of the newest commit
    that did), so the hint costs the same however large the archive."""
    import duckdb

    from pipelines.archive.reader import live_files

    files = live_files(archive)
    if files and not any(f.commit == commit for f in files):
        commit = max(f.commit for f in files)  # commit ids sort by time
    paths = [str(archive / f.path) for f in files if f.commit == commit]
    if not paths:
        return None
    row = (
        duckdb.connect()
        .execute(
            "SELECT conversation_id FROM read_parquet(?, union_by_name = true) "
            "GROUP BY 1 ORDER BY count(DISTINCT kind) DESC, count(DISTINCT event_type) DESC, "
            "count(*) DESC, 1 LIMIT 1",
            [paths],
        )
        .fetchall()
    )
    return row[0][0] if row else None
