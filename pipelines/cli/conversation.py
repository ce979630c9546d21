"""``vigil conversation``: reconstruct one conversation, in the terminal or as an HTML file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import click

from pipelines.cli.hints import cannot_write, check_export_target, staging_path
from pipelines.cli.identity import identity_options


@click.command("conversation")
@click.argument("conversation_id")
@click.option(
    "--archive", type=click.Path(file_okay=False, path_type=Path), required=True, help="Archive folder."
)
@click.option("--from", "date_from", default=None, metavar="DATE", help="First day (UTC) to show.")
@click.option("--to", "date_to", default=None, metavar="DATE", help="Last day (UTC) to show, inclusive.")
@click.option(
    "--org",
    "org",
    default=None,
    metavar="ORG[/SUB]",
    help="The organisation (or sub-organisation) whose conversation this is, when several use the id.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a self-contained HTML page to this file instead of printing.",
)
@identity_options
def command(
    conversation_id: str,
    archive: Path,
    date_from: str | None,
    date_to: str | None,
    org: str | None,
    html_path: Path | None,
    config_path: Path | None,
    role: str | None,
    user: str | None,
) -> None:
    """Show conversation CONVERSATION_ID as it happened: messages, auto-messages and events in
    order, who was present, queued and refused messages, and where DLP redacted or blocked.

    What you see depends on your role (officer, reviewer, crm). --html writes what your role may
    export: for reviewers and the CRM role, the DLP policy's export view (never more than the
    role sees on screen). Every view and export is recorded in the archive's audit log.
    """
    from pipelines.archive.reader import require_archive
    from pipelines.errors import ConfigError, NotFoundError, QueryError
    from pipelines.search.access import load_identity
    from pipelines.search.audit import record_access, record_refusal
    from pipelines.search.conversation import (
        build_timeline,
        iter_conversation,
        records,
        render_html,
        render_text,
    )
    from pipelines.search.query import Query, check_range, org_ref, parse_time
    from pipelines.search.render import safe, terminal

    if not conversation_id.strip():
        raise ConfigError(
            "the conversation id is empty; give the id `vigil search --json` prints as "
            '"conversation_id" (every record has one)'
        )
    identity = load_identity(config=config_path, role=role, user=user)
    window = check_range(
        Query(
            time_from=parse_time(date_from, end=False, key="--from") if date_from else None,
            time_to=parse_time(date_to, end=True, key="--to") if date_to else None,
            orgs=(org_ref(org, key="--org "),) if org is not None else (),
        ),
        keys=("--from", "--to"),
    )
    require_archive(archive)
    if html_path is not None:
        check_export_target(html_path, archive, "--html", "conversation.html")
    rows = iter_conversation(
        archive,
        conversation_id,
        time_from=window.time_from,
        time_to=window.time_to,
        orgs=window.orgs,
        without_blocked=not identity.sees_dlp,
    )
    query = {"conversations": [conversation_id], **window.to_dict()}
    try:
        timeline = build_timeline(
            conversation_id,
            rows,
            identity,
            window=(window.time_from, window.time_to),
            export=html_path is not None,
        )
    except QueryError as exc:
        # an id two organisations use: the lookup found them, so it is on record, though refused
        action = "export" if html_path is not None else "conversation"
        record_refusal(archive, identity, action, query=query, engine="embedded", refusal=str(exc))
        raise
    details: dict[str, Any] = {"returned": [e.record_id for e in timeline.entries]}
    if html_path is not None:
        details["format"] = "html"
        details["file"] = str(html_path.resolve())
    shown = len(timeline.entries)
    if not shown:
        # the lookup is logged (who looked for what, an export as one though no page is written),
        # and a script can tell a wrong id from a view
        action = "export" if html_path is not None else "conversation"
        record_access(archive, identity, action, query=query, results=0, engine="embedded", details=details)
        where = " in the --from/--to window" if window.time_from or window.time_to else ""
        org_note = f" at {org}" if org is not None else ""
        raise NotFoundError(
            f"no records of conversation {safe(conversation_id)}{safe(org_note)}{where}"
            + ("; no page written" if html_path is not None else "")
            + ': check the id (`vigil search --json` prints it as "conversation_id")'
            + (" and the window" if where else "")
        )
    if html_path is not None:
        # written beside the target first: only a file that exists in full is logged as exported,
        # and it appears under its name only once the log holds the entry
        staged = _stage(html_path, render_html(timeline))
        try:
            record_access(
                archive, identity, "export", query=query, results=shown, engine="embedded", details=details
            )
            os.replace(staged, html_path)
        except OSError as exc:
            raise ConfigError(cannot_write("--html", html_path, exc)) from None
        finally:
            staged.unlink(missing_ok=True)
        click.echo(f"wrote {html_path} ({records(shown)})")
        return
    record_access(
        archive, identity, "conversation", query=query, results=shown, engine="embedded", details=details
    )
    render_text(timeline, terminal())


def _stage(target: Path, page: str) -> Path:
    """``page`` in a temporary file in ``target``'s folder (so the final rename stays on one file
    system); a folder that cannot be written is a one-line error, before anything is logged. The
    page gets the mode of the file it replaces, or a new file's mode under the umask (as ``>``
    would give it): the rename must neither open up nor close off the file."""
    from pipelines.errors import ConfigError

    staged = staging_path(target)
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except OSError as exc:
        raise ConfigError(cannot_write("--html", target, exc)) from None
    try:
        with open(fd, "w", encoding="utf-8") as handle:
            if target.is_file():
                os.fchmod(fd, stat.S_IMODE(target.stat().st_mode))
            handle.write(page)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise ConfigError(cannot_write("--html", target, exc)) from None
    return staged
