"""``vigil search``: find records in the archive (embedded engine) or in Elasticsearch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipelines.cli.es import config_from, connection_options
from pipelines.cli.identity import identity_options
from pipelines.errors import QueryError

FILTER_FLAGS = (
    ("channel", "Channel (repeatable: any of them)."),
    ("participant", "Party id, handle or name on any side (repeatable: all of them)."),
    ("conversation", "Conversation id (repeatable)."),
    ("direction", "inbound, outbound, internal or system (repeatable)."),
    ("kind", "message, auto_message or event (repeatable)."),
    ("type", "Event type, e.g. opted_in (repeatable)."),
    ("dlp", "DLP verdict: none, flag, redact or block (repeatable)."),
    ("rule", "DLP rule id or its start, e.g. pii.card (repeatable)."),
    ("org", "Organisation, or org/sub-organisation (repeatable)."),
)


def _filter_options(func: Any) -> Any:
    for name, help_ in reversed(FILTER_FLAGS):
        func = click.option(f"--{name}", f"flag_{name}", multiple=True, metavar="VALUE", help=help_)(func)
    func = click.option("--to", "flag_to", default=None, metavar="DATE", help="Last day (UTC), inclusive.")(
        func
    )
    return click.option("--from", "flag_from", default=None, metavar="DATE", help="First day (UTC).")(func)


class _SearchCommand(click.Command):
    """``vigil search``: a query word that starts with ``-`` would read as an option (or as a
    cluster of short ones: ``-hello`` as ``-h`` for help and more); every option of the command is
    long, so such a word is named before click parses, with how to pass it as a word."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        short_help = {name for name in self.get_help_option_names(ctx) if not name.startswith("--")}
        # options that take a value, which may start with "-" ("--sort -time")
        valued = {
            name
            for param in self.params
            if isinstance(param, click.Option) and not param.is_flag
            for name in param.opts
        }
        words = iter(args)
        for arg in words:
            if arg == "--":
                break
            if arg in valued:
                next(words, None)
            elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1 and arg not in short_help:
                raise QueryError(
                    f"{arg!r} reads as an option; put query words that start with '-' after '--' "
                    f"(vigil search --archive A -- {arg}), where the '-' is part of the word; to "
                    f"leave out texts with a word, write NOT ('NOT {arg[1:]}')"
                )
        return super().parse_args(ctx, args)


@click.command(
    "search",
    cls=_SearchCommand,
    epilog="""\b
Examples:
  vigil search --archive A settlement
  vigil search --archive A '"value date"' channel:wechat from:2026-01-05 to:2026-01-31
  vigil search --archive A 'card AND (swift OR iban) NOT test' dlp:block rule:pii.card
  vigil search --archive A 结算 participant:+85291234567 --json
  vigil search --archive A --es-url https://es:9200 'settl*' kind:message
Filters: channel: participant: conversation: direction: kind: type: from: to: dlp: rule: org:
Quote phrases for your shell: '"settlement date"'.""",
)
@click.argument("query", nargs=-1)
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Archive folder (searched by the embedded engine; the audit log lives there).",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "embedded", "elasticsearch"]),
    default="auto",
    show_default=True,
    help="auto: Elasticsearch when --es-url is given, else the embedded engine.",
)
@connection_options
@_filter_options
@click.option("--page", type=int, default=1, show_default=True, help="Page number, from 1.")
@click.option("--size", type=int, default=20, show_default=True, help="Hits per page.")
@click.option(
    "--sort",
    type=click.Choice(["-time", "time"]),
    default="-time",
    show_default=True,
    help="-time: newest first; time: oldest first.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit, per line.")
@identity_options
def command(
    query: tuple[str, ...],
    archive: Path,
    engine: str,
    page: int,
    size: int,
    sort: str,
    as_json: bool,
    config_path: Path | None,
    role: str | None,
    user: str | None,
    **options: Any,
) -> None:
    """Search messages, auto-messages and events.

    QUERY mixes free text (words, "quoted phrases", prefix*, AND / OR / NOT, parentheses) and
    key:value filters. Words match whole words, case-insensitively; Chinese and Japanese text
    matches as written, anywhere in the text. Filters apply to the whole query. A participant
    search that finds nothing suggests the closest names and handles. Every search is recorded
    in the archive's audit log.
    """
    from pipelines.archive.reader import require_archive
    from pipelines.errors import QueryError
    from pipelines.json_lines import json_stdout
    from pipelines.search import render
    from pipelines.search.access import check_query, load_identity
    from pipelines.search.audit import record_access, record_refusal
    from pipelines.search.parse import parse_query
    from pipelines.search.results import Page

    identity = load_identity(config=config_path, role=role, user=user)
    filters = {name: options.pop(f"flag_{name}") for name, _ in FILTER_FLAGS}
    filters["date_from"] = options.pop("flag_from")
    filters["date_to"] = options.pop("flag_to")
    parsed = parse_query(list(query), **filters)
    paging = Page(number=page, size=size, sort=sort)
    require_archive(archive)  # also with Elasticsearch: the audit log is kept in the archive
    use_es = engine == "elasticsearch" or (engine == "auto" and options.get("es_url"))
    details: dict[str, Any] = {
        "page": page,
        "size": size,
        "sort": sort,
        "output": "json" if as_json else "table",
    }
    try:
        check_query(parsed, identity)
    except QueryError as exc:
        # asking for what the role may not see is an access attempt: on record, though refused
        engine = "elasticsearch" if use_es else "embedded"
        record_refusal(
            archive,
            identity,
            "search",
            query=parsed.to_dict(),
            engine=engine,
            details=details,
            refusal=str(exc),
        )
        raise
    if use_es:
        from pipelines.search import es_engine

        cfg = config_from(options)
        result = es_engine.search(cfg, parsed, identity, paging)
        details["es_url"] = cfg.safe_url
        details["index"] = cfg.alias
    else:
        from pipelines.search import embedded

        result = embedded.search(archive, parsed, identity, paging)
    details["returned"] = [hit.record_id for hit in result.hits]
    suggestions: dict[str, list[str]] = {}
    if result.total == 0 and parsed.participants:
        from pipelines.search.embedded import closest_parties

        # party keys from the archive are shown too: they are found, and logged, first
        suggestions = closest_parties(archive, parsed, identity)
        if suggestions:
            details["suggested"] = suggestions
    # logged before anything is shown: no log entry, no disclosure
    record_access(
        archive,
        identity,
        "search",
        query=parsed.to_dict(),
        results=result.total,
        engine=result.engine,
        details=details,
    )
    if as_json:
        json_stdout()
        for line in render.json_lines(result):
            click.echo(line)
        for note in render.note_lines(result):  # standard output stays JSON lines only
            click.echo(note, err=True)
    else:
        render.print_table(result, identity.role.value)
    for key, near in suggestions.items():
        suggested = ", ".join(f'participant:"{k}"' if " " in k else f"participant:{k}" for k in near)
        click.echo(
            f"note: no record has participant:{render.safe(key)}; did you mean {render.safe(suggested)}?",
            err=True,
        )
    if result.total == 0:
        for key in parsed.participants:
            if comma := comma_note(key):
                click.echo(f"note: {render.safe(comma)}", err=True)


def comma_note(key: str) -> str | None:
    """For a ``participant:`` value with a comma (``participant:alice,bob``), which other filters
    would read as "either": a participant's value is one name (a name may hold a comma), and
    several people are required by repeating the filter. ``None`` when there is no comma."""
    parts = [" ".join(p.split()) for p in key.split(",")]
    parts = [p for p in parts if p]
    if "," not in key or len(parts) < 2:
        return None
    repeated = " ".join(_participant(p) for p in parts)
    return (
        f"{_participant(key)} is one name (a name may hold a comma), not a list, and no record has "
        f"it; for records with several people, repeat the filter: {repeated}"
    )


def _participant(value: str) -> str:
    quote = any(c.isspace() or c in "()" for c in value)
    return f'participant:"{value}"' if quote else f"participant:{value}"
