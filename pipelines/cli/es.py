"""``vigil es``: install the index template and retention policy, check them, (re)index the archive.

Elasticsearch is an optional search index next to the Parquet archive, which stays the system of
record. This module is only imported for ``vigil es ...``; the client library loads here, not in
``vigil --help`` or ``vigil run`` without ``--es-url``.

:func:`connection_options` is the shared set of connection flags, reused by other commands that
take ``--es-url`` (``vigil run``, ``vigil search``); :func:`config_from` turns their values into an
``EsConfig``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pipelines.archive import layout
from pipelines.cli.identity import identity_options

F = Callable[..., Any]

_CONNECTION_OPTIONS = (
    click.option("--es-url", help="Cluster URL, e.g. https://es.example.com:9200  [env: ES_URL]"),
    click.option("--api-key", help="API key (base64 id:key)  [env: ES_API_KEY; prefer the env var]"),
    click.option("--username", help="Basic-auth user  [env: ES_USERNAME]"),
    click.option("--password", help="Basic-auth password  [env: ES_PASSWORD; prefer the env var]"),
    click.option(
        "--ca-certs",
        type=click.Path(dir_okay=False, path_type=Path),
        help="PEM bundle of the CA that signed the cluster's certificate  [env: ES_CA_CERTS]",
    ),
    click.option(
        "--verify-certs/--no-verify-certs",
        default=True,
        show_default=True,
        help="Check the cluster's TLS certificate (turn off only for a throw-away test cluster).",
    ),
    click.option("--request-timeout", type=float, default=None, help="Seconds per request  [default: 30]"),
    click.option("--max-retries", type=int, default=None, help="Retries per request  [default: 5]"),
    click.option(
        "--index-prefix",
        default=None,
        help="Indices are PREFIX-YYYY.MM.01, the read alias is PREFIX  [default: vigil-records]",
    ),
)

_LAYOUT_OPTIONS = (
    click.option(
        "--retention-days", type=int, default=None, help="Days records stay in Elasticsearch  [default: 2557]"
    ),
    click.option("--shards", type=int, default=None, help="Primary shards per monthly index  [default: 1]"),
    click.option("--replicas", type=int, default=None, help="Replicas per shard  [default: 1]"),
)


def connection_options(func: F) -> F:
    """Add the Elasticsearch connection flags to a click command."""
    for option in reversed(_CONNECTION_OPTIONS):
        func = option(func)
    return func


def layout_options(func: F) -> F:
    for option in reversed(_LAYOUT_OPTIONS):
        func = option(func)
    return func


def config_from(options: dict[str, Any]) -> Any:
    """``EsConfig`` from the values of :func:`connection_options` (and layout options); env fills gaps."""
    from exporters.elasticsearch.config import EsConfig

    values = dict(options)
    values["url"] = values.pop("es_url", None)
    return EsConfig.from_options(**values)


@click.group("es")
def command() -> None:
    """Elasticsearch: install the index template, check it, (re)index the archive.

    \b
    Elasticsearch is optional: the archive and the embedded search work without it.
    Typical first use:
      export ES_URL=https://es.example.com:9200 ES_API_KEY=...
      vigil es setup
      vigil es index --archive demo/archive --role officer
      vigil es check
    """


def max_request(mebibytes: float | None) -> dict[str, int]:
    """The ``max_request_bytes`` setting for a ``--max-request-mb`` value (nothing if not given)."""
    return {} if mebibytes is None else {"max_request_bytes": int(mebibytes * 1024 * 1024)}


@command.command("setup")
@connection_options
@layout_options
def setup_command(**options: Any) -> None:
    """Install or update the ILM retention policy and the index template (idempotent)."""
    from exporters.elasticsearch.config import make_client
    from exporters.elasticsearch.setup import install

    cfg = config_from(options)
    client = make_client(cfg)
    try:
        report = install(client, cfg)
    finally:
        client.close()
    click.echo(f"Elasticsearch {report.version} at {cfg.safe_url} (cluster {report.cluster})")
    for line in report.changes:
        click.echo(f"  changed: {line}")
    for line in report.unchanged:
        click.echo(f"  ok:      {line}")
    if report.stale:
        from exporters.elasticsearch.setup import stale_message

        click.echo(f"  warning: {stale_message(report.stale)}")
    if not report.changed:
        click.echo("Nothing to do: everything was already installed.")


@command.command("check")
@connection_options
@layout_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check_command(ctx: click.Context, as_json: bool, **options: Any) -> None:
    """Compare what the cluster has with what this Vigil expects. Exit 1 if something is off."""
    from exporters.elasticsearch.config import make_client
    from exporters.elasticsearch.setup import check

    cfg = config_from(options)
    client = make_client(cfg)
    try:
        report = check(client, cfg)
    finally:
        client.close()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "url": cfg.safe_url,
                    "cluster": report.cluster,
                    "version": report.version,
                    "ok": report.ok,
                    "problems": report.problems,
                    "indices": report.indices,
                    "documents": report.documents,
                },
                indent=2,
            )
        )
    else:
        click.echo(f"Elasticsearch {report.version} at {cfg.safe_url} (cluster {report.cluster})")
        for line in report.ok_items:
            click.echo(f"  ok:      {line}")
        for line in report.problems:
            click.echo(f"  problem: {line}")
        docs = "" if report.documents is None else f", {report.documents:,} documents"
        click.echo(f"  {len(report.indices)} monthly index(es) under alias {cfg.alias}{docs}")
    if not report.ok:
        ctx.exit(1)


@command.command("index")
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Archive folder (the system of record) to index from.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Documents per bulk request.",
)
@click.option(
    "--max-request-mb",
    type=click.FloatRange(min=0.01, max=2047),
    default=None,
    help="Largest bulk request, in MiB; bigger batches are split  [default: 10]",
)
@click.option("--quiet", is_flag=True, help="No progress display.")
@connection_options
@identity_options
@click.pass_context
def index_command(
    ctx: click.Context,
    archive: Path,
    batch_size: int,
    max_request_mb: float | None,
    quiet: bool,
    config_path: Path | None,
    role: str | None,
    user: str | None,
    **options: Any,
) -> None:
    """Index (or re-index) every archived record. Safe to re-run: documents are overwritten by id.

    Use it to backfill a new cluster, to rebuild after a mapping change, and to send again what an
    earlier run dead-lettered. Exit 1 if some documents could not be indexed; they are listed, with
    the reason, in the archive's dead-letter store (stage ``index``). If the cluster stops
    answering, it stops at once and exits 4, without dead letters for what it did not send: run it
    again once the cluster is healthy (the archive holds every record).

    The index holds the original text, which only officers may see: it needs the officer role
    (--role officer, or the config), and the export is recorded in the archive's access log before
    the first record is sent.
    """
    from exporters.elasticsearch.archive_source import count_rows, iter_archive_rows
    from exporters.elasticsearch.bulk import IndexReport, index_rows
    from exporters.elasticsearch.config import make_client
    from exporters.elasticsearch.setup import preflight
    from pipelines.errors import IndexingError
    from pipelines.progress import Reporter, declare, report, reporting
    from pipelines.search.access import load_identity
    from pipelines.search.audit import record_access, require_officer

    identity = load_identity(config=config_path, role=role, user=user)
    cfg = config_from({**options, **max_request(max_request_mb)})
    total = count_rows(archive)  # also says, before anything is logged, if this is no archive
    exported = {"destination": cfg.alias}
    details: dict[str, Any] = {"es_url": cfg.safe_url}
    require_officer(
        archive,
        identity,
        "export",
        what="vigil es index copies the original text of every record into Elasticsearch",
        query=exported,
        engine="elasticsearch",
        details=details,
    )
    client = make_client(cfg)
    started = time.monotonic()
    from pipelines.archive import deadletters

    pending: list[dict[str, Any]] = []
    stored = 0
    by_code: dict[str, int] = {}  # reason code -> dead letters, for the closing message
    example: dict[str, str] = {}  # reason code -> the first reason seen (it says what to do)

    def keep(flush: bool = False) -> None:
        nonlocal stored
        if pending and (flush or len(pending) >= 10_000):
            stored += deadletters.append(archive, pending, action="es-index")
            pending.clear()

    def on_batch(batch: IndexReport) -> None:
        pending.extend(batch.dead_letters)
        for letter in batch.dead_letters:
            by_code[letter["reason_code"]] = by_code.get(letter["reason_code"], 0) + 1
            example.setdefault(letter["reason_code"], letter["reason"])
        keep()
        report("records", batch.read)  # the bar completes even when some are dead-lettered
        if batch.dead_lettered:
            report("dead-lettered", batch.dead_lettered)

    try:
        preflight(client, cfg)
        # logged before the first record leaves the archive: no log entry, no export
        record_access(
            archive,
            identity,
            "export",
            query=exported,
            results=total,
            engine="elasticsearch",
            details=details,
        )
        with reporting(Reporter(enabled=not quiet)):
            declare("records", total)
            summary = index_rows(
                client,
                iter_archive_rows(archive),
                cfg,
                batch_size=batch_size,
                on_batch=on_batch,
                stop_when_unavailable=True,
            )
    finally:
        client.close()
        keep(flush=True)
    if summary.stopped is not None:
        raise IndexingError(_stopped_message(summary, total, stored, cfg, archive))
    seconds = time.monotonic() - started
    rate = summary.read / seconds if seconds > 0 else 0.0
    click.echo(
        f"read {summary.read:,}, indexed {summary.indexed:,}, dead-lettered {summary.dead_lettered:,} "
        f"({summary.retried:,} retried, {summary.http_requests:,} bulk requests, "
        f"{seconds:.1f}s, {rate:,.0f} docs/s) "
        f"into {cfg.alias} at {cfg.safe_url}"
    )
    if summary.dead_lettered:
        click.echo(
            f"{summary.dead_lettered:,} dead letter(s) ({stored:,} new) are in the archive's dead-letter "
            f"store ({archive / layout.DEAD_LETTERS / 'at_stage=index'}); fix the cause and run this "
            "command again:",
            err=True,
        )
        for code, count in sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0])):
            click.echo(f"  {code}: {count:,} (e.g. {example[code]})", err=True)
        ctx.exit(1)


def _stopped_message(summary: Any, total: int, stored: int, cfg: Any, archive: Path) -> str:
    """The one line of a backfill that stopped because the cluster stopped answering."""
    not_sent = max(total - summary.indexed - summary.dead_lettered, summary.unsent)
    refused = ""
    if summary.dead_lettered:
        refused = (
            f" ({summary.dead_lettered:,} dead-lettered before that, {stored:,} new in the dead-letter store "
            f"{archive / layout.DEAD_LETTERS / 'at_stage=index'})"
        )
    from exporters.elasticsearch.bulk import REFUSED_CREDENTIALS

    credentials = REFUSED_CREDENTIALS in summary.stopped
    what = "refused the credentials" if credentials else "stopped answering"
    then = "the credentials are fixed" if credentials else "the cluster is healthy"
    return (
        f"indexed {summary.indexed:,} of {total:,} record(s){refused}, then Elasticsearch at "
        f"{cfg.safe_url} {what} (last error: {summary.stopped}); stopped without sending "
        f"the other {not_sent:,}. Nothing is lost, the archive holds every record: run the same `vigil "
        f"es index` again once {then}"
    )
