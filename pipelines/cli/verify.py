"""``vigil verify``: check the archive against its manifest and the audit log's chain."""

from __future__ import annotations

import re
from pathlib import Path

import click

from pipelines.errors import IntegrityError
from pipelines.invisible import escaped

_HEAD = re.compile(r"[0-9a-f]{64}")


def _head(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A head as ``verify`` prints it: 64 hex digits (any case, spaces around ignored). A shortened
    one (``vigil run`` shows the first 16 and ``…``) can never equal the real head, and comparing
    it would report an intact archive as cut short, so it is refused as a usage mistake."""
    if value is None:
        return None
    head = value.strip().lower()
    if not _HEAD.fullmatch(head):
        audit = param.name == "expect_audit_head"
        which = "'audit head:'" if audit else "'manifest head:' (`vigil run` shows only the first 16)"
        raise click.BadParameter(
            f"{value!r} is not a whole head: give the 64 hex digits `vigil verify` prints after {which}"
        )
    return head


def _shown(head: str, damaged_line: int | None) -> str:
    """A head as printed: after damage it is not one to keep (nor to compare a kept one with)."""
    if damaged_line is None:
        return head or "(empty)"
    if not head:
        return f"unknown (the chain is damaged at line {damaged_line})"
    return f"{head} (untrustworthy: the chain is damaged at line {damaged_line})"


@click.command("verify")
@click.option(
    "--archive", type=click.Path(file_okay=False, path_type=Path), required=True, help="Archive folder."
)
@click.option(
    "--expect-head",
    default=None,
    callback=_head,
    help="Manifest head hash you recorded earlier (detects truncation).",
)
@click.option(
    "--expect-audit-head",
    default=None,
    callback=_head,
    help="Audit log head hash you recorded earlier (detects entries cut from its end).",
)
def command(archive: Path, expect_head: str | None, expect_audit_head: str | None) -> None:
    """Check every committed file's SHA-256 and row count, look for files added or removed behind the
    manifest's back, and check the hash chains of the manifest and the audit log (and that the audit
    log still reaches the entry the newest `vigil run` commit recorded).

    Exits 0 when the archive is intact, 1 when it is not (each problem is named)."""
    from pipelines.archive.verify import verify

    if not archive.is_dir():
        raise click.BadParameter(f"{archive} is not a folder", param_hint="--archive")
    report = verify(archive, expect_head=expect_head, expect_audit_head=expect_audit_head)
    for note in report.notes:
        click.echo(f"note: {escaped(note)}")
    click.echo(
        f"checked {report.files_checked} file(s), {report.rows_checked:,} row(s), "
        f"{report.run_reports_checked} run report(s), "
        f"{report.audit_entries} audit entr{'y' if report.audit_entries == 1 else 'ies'}"
    )
    click.echo(f"manifest head: {_shown(report.manifest_head, report.manifest_break)}")
    audit = "(cannot be read)" if report.audit_unreadable else _shown(report.audit_head, report.audit_break)
    click.echo(f"audit head:    {audit}")
    if not report.ok:
        raise IntegrityError(report.problems)
    click.secho("archive intact", fg="green")
