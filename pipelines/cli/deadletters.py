"""``vigil deadletters``: list the events the archive refused, and write their raw lines back out.

Dead letters keep the line exactly as it was received, card numbers and all, so the command is
for officers only and every listing or export is recorded in the archive's audit log (action
``deadletters``) before anything is shown or written, as ``vigil search`` and ``vigil
conversation`` are. Reading goes through :mod:`pipelines.archive.deadletter_reader`.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from pipelines.cli.hints import cannot_write, check_export_target, staging_path
from pipelines.cli.identity import identity_options
from pipelines.record import DeadLetterStage

ACTION = "deadletters"
ENGINE = "embedded"
#: what an export is named for ``vigil run`` to read it (``pipelines.ingest.read.SUFFIXES``, less
#: the compressed ones: the export is plain text)
PLAIN_SUFFIXES = (".jsonl", ".ndjson")
#: the reason column is cut to what is left of the terminal's width, but never below this
MIN_REASON = 40
RECORD_ID_CHARS = 12


@click.command("deadletters")
@click.option(
    "--archive", type=click.Path(file_okay=False, path_type=Path), required=True, help="Archive folder."
)
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    metavar="CODE[,CODE]",
    help="Only these reason codes, e.g. malformed_json (comma-separated or repeated).",
)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    type=click.Choice([s.value for s in DeadLetterStage]),
    help="Only letters of this stage (repeatable): ingest, dedup, dlp or index (Elasticsearch).",
)
@click.option(
    "--source", default=None, metavar="TEXT", help="Only letters whose source file name contains TEXT."
)
@click.option("--from", "date_from", default=None, metavar="DATE", help="Stored on or after this day (UTC).")
@click.option("--to", "date_to", default=None, metavar="DATE", help="Stored up to this day (UTC), inclusive.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="At most N letters, the first by file and offset.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per letter, raw line as raw_text.")
@click.option(
    "--export-raw",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write the raw lines, as stored, to FILE (to correct and put back in the input).",
)
@click.option("--overwrite", is_flag=True, help="Let --export-raw replace an existing file.")
@identity_options
def command(
    archive: Path,
    reasons: tuple[str, ...],
    stages: tuple[str, ...],
    source: str | None,
    date_from: str | None,
    date_to: str | None,
    limit: int | None,
    as_json: bool,
    export_path: Path | None,
    overwrite: bool,
    config_path: Path | None,
    role: str | None,
    user: str | None,
) -> None:
    """List the dead letters of an archive: the lines Vigil refused, with their reason code,
    source file and offset, ordered by source file and offset.

    --export-raw writes their raw lines, exactly as received, one per line, to a new file: correct
    them there and put the file in the input folder, and the next `vigil run` archives them. Dead
    letters hold the original text, so this needs the officer role; every listing and export is
    recorded in the archive's audit log.
    """
    from pipelines.archive.deadletter_reader import Filters, raw_lines, select
    from pipelines.archive.reader import require_archive
    from pipelines.errors import ConfigError
    from pipelines.json_lines import json_stdout
    from pipelines.search.access import load_identity
    from pipelines.search.audit import record_access, require_officer
    from pipelines.search.query import Query, check_range, parse_time

    identity = load_identity(config=config_path, role=role, user=user)
    if as_json and export_path is not None:
        raise ConfigError("--json and --export-raw: pick one (--export-raw prints only what it wrote)")
    if overwrite and export_path is None:
        raise ConfigError("--overwrite is for --export-raw FILE; add it, or leave out --overwrite")
    codes = _reason_codes(reasons)
    if source is not None and not source:
        raise ConfigError("--source is empty; give part of a source file's name, e.g. --source 2026-01-05")
    window = check_range(
        Query(
            time_from=parse_time(date_from, end=False, key="--from") if date_from else None,
            time_to=parse_time(date_to, end=True, key="--to") if date_to else None,
        ),
        keys=("--from", "--to"),
    )
    filters = Filters(
        reasons=codes,
        stages=tuple(dict.fromkeys(stages)),
        source=source,
        time_from=window.time_from,
        time_to=window.time_to,
    )
    query = _query(filters, window.to_dict(), limit)
    details: dict[str, Any] = {"output": "raw" if export_path else "json" if as_json else "table"}
    if export_path is not None:
        details["file"] = str(export_path.resolve())
    require_archive(archive)
    require_officer(
        archive,
        identity,
        ACTION,
        what=(
            "vigil deadletters shows the lines Vigil refused as they were received (message text, "
            "card numbers and other personal data)"
        ),
        query=query,
        engine=ENGINE,
        details=details,
    )
    if export_path is not None:
        _check_target(export_path, archive, overwrite)
    selection = select(archive, filters, limit=limit, with_raw=as_json or export_path is not None)
    details["returned"] = [letter["dead_letter_id"] for letter in selection.letters]
    details["matching"] = selection.matching
    details["in_archive"] = selection.total
    results = len(selection.letters)

    if export_path is not None:
        export = raw_lines(selection.letters)
        details["exported"] = export.lines
        if export.left_out:
            details["left_out"] = {why: len(letters) for why, letters in sorted(export.left_out.items())}
        if not export.lines:
            # the selection was read, so the attempt is on record; an empty file helps nobody
            details.pop("file")
            record_access(
                archive, identity, ACTION, query=query, results=results, engine=ENGINE, details=details
            )
            if not results:
                click.echo(_nothing_selected(archive, selection, filters, limit))
            _left_out_notes(export.left_out)
            click.echo(f"no file written: none of the {results:,} letter(s) selected has a line to put back")
            return
        staged = _stage(export_path, export.data, overwrite)
        try:
            # logged before the file appears under its name: no log entry, no export
            record_access(
                archive, identity, ACTION, query=query, results=results, engine=ENGINE, details=details
            )
            _publish(staged, export_path, overwrite)
        except OSError as exc:
            raise ConfigError(cannot_write("--export-raw", export_path, exc)) from None
        finally:
            staged.unlink(missing_ok=True)
        click.echo(
            f"wrote {_shown(str(export_path))}: {export.lines:,} line(s), as stored, in source file and "
            f"offset order ({_of_archive(selection)})"
        )
        _left_out_notes(export.left_out)
        _name_note(export_path)
        click.echo(
            "Correct the lines, put the file in the input folder and run `vigil run` again; the dead "
            "letters stay in the archive as the record of what was received."
        )
        return

    # logged before anything is shown: no log entry, no disclosure
    record_access(archive, identity, ACTION, query=query, results=results, engine=ENGINE, details=details)
    if as_json:
        from pipelines.search.render import json_text

        json_stdout()
        for letter in selection.letters:
            click.echo(json_text(_to_json(letter)))
        said = _count_line if selection.letters else _nothing_selected
        click.echo(said(archive, selection, filters, limit), err=True)  # standard output: JSON only
        return
    if not selection.letters:
        click.echo(_nothing_selected(archive, selection, filters, limit))
        if selection.total:
            click.echo("")
            click.echo(_reason_table(selection))
        return
    click.echo(_count_line(archive, selection, filters, limit))
    click.echo("")
    click.echo(_letters_table(selection.letters))
    click.echo("")
    click.echo(_reason_table(selection))


# ---------------------------------------------------------------------------------------------
# options and the audit log's query


def _reason_codes(values: Sequence[str]) -> tuple[str, ...]:
    from pipelines.errors import ConfigError

    codes: list[str] = []
    for value in values:
        parts = [p.strip() for p in value.split(",")]
        if not all(parts):
            raise ConfigError(
                f"--reason {value!r} holds an empty code; write codes separated by commas, e.g. "
                "--reason malformed_json,invalid_utf8"
            )
        codes.extend(parts)
    return tuple(dict.fromkeys(codes))


def _query(filters: Any, window: dict[str, Any], limit: int | None) -> dict[str, Any]:
    """The filters as the access log records them: only what is set."""
    query: dict[str, Any] = {}
    if filters.reasons:
        query["reason_codes"] = list(filters.reasons)
    if filters.stages:
        query["stages"] = list(filters.stages)
    if filters.source is not None:
        from pipelines.search.access import printable

        query["source"] = printable(filters.source)
    query.update(window)  # time_from / time_to, as the user would write them
    if limit is not None:
        query["limit"] = limit
    return query


# ---------------------------------------------------------------------------------------------
# the table


def _shown(text: str) -> str:
    """``text`` safe to print: control characters (line breaks included), escape sequences and
    bidi controls as visible escapes, as ``vigil run`` shows file names."""
    from pipelines.invisible import escaped

    return escaped(text)


def _one_line(text: str, width: int) -> str:
    line = _shown(" ".join(text.split()))
    return line if len(line) <= width else line[: max(width - 1, 1)] + "…"


def _when(value: Any) -> str:
    return str(value.strftime("%Y-%m-%d %H:%M"))


def _letters_table(letters: Sequence[dict[str, Any]]) -> str:
    """The letters grouped under their source file, one line each: offset, reason code, record
    id (its start), when stored (UTC) and the reason, cut to the terminal's width (on a terminal
    too narrow to leave the reason :data:`MIN_REASON` characters, the reason goes on a line of its
    own under the rest)."""
    width = shutil.get_terminal_size((100, 24)).columns
    code_w = max(len("reason code"), *(len(_shown(x["reason_code"])) for x in letters))
    offset_w = max(len("offset"), *(len(str(x["source_offset"])) for x in letters))
    id_w = RECORD_ID_CHARS + 1
    time_w = len("2026-01-05 09:30")
    fixed = 2 + offset_w + 2 + code_w + 2 + id_w + 2 + time_w + 2
    below = width - fixed - 1 < MIN_REASON
    reason_w = width - 7 if below else width - fixed - 1
    head = (
        f"  {'offset':>{offset_w}}  {'reason code':<{code_w}}  {'record id':<{id_w}}  "
        f"{'stored (UTC)':<{time_w}}" + ("" if below else "  reason")
    ).rstrip()
    lines: list[str] = []
    current: str | None = None
    for x in letters:
        if x["source_name"] != current:
            if current is not None:
                lines.append("")
            current = x["source_name"]
            lines.append(_shown(current))
            lines.append(head)
        record = x["record_id"]
        shown_id = "-" if not record else _shown(record)
        if len(shown_id) > RECORD_ID_CHARS:
            shown_id = shown_id[:RECORD_ID_CHARS] + "…"
        row = (
            f"  {x['source_offset']:>{offset_w}}  {_shown(x['reason_code']):<{code_w}}  {shown_id:<{id_w}}  "
            f"{_when(x['dead_letter_time']):<{time_w}}"
        )
        reason = _one_line(x["reason"], max(reason_w, MIN_REASON))
        lines.extend([row, f"      {reason}"] if below else [f"{row}  {reason}"])
    return "\n".join(lines)


def _reason_table(selection: Any) -> str:
    """Letters per reason code, listed and in the archive; each column adds up to its total."""
    listed: Counter[str] = selection.listed
    stored: Counter[str] = selection.in_archive
    codes = sorted(stored, key=lambda c: (-listed[c], -stored[c], c))
    code_w = max(len("reason code"), len("total"), *(len(_shown(c)) for c in codes))
    rows = [f"{'reason code':<{code_w}}  {'listed':>8}  {'in archive':>10}"]
    rows += [f"{_shown(c):<{code_w}}  {listed[c]:>8,}  {stored[c]:>10,}" for c in codes]
    rows.append(f"{'total':<{code_w}}  {sum(listed.values()):>8,}  {sum(stored.values()):>10,}")
    return "\n".join(rows)


def _filtered(filters: Any) -> bool:
    return bool(filters.reasons or filters.stages or filters.source or filters.time_from or filters.time_to)


def _of_archive(selection: Any) -> str:
    return f"of {len(selection.letters):,} dead letter(s) selected, {selection.total:,} in the archive"


def _count_line(archive: Path, selection: Any, filters: Any, limit: int | None) -> str:
    """What was listed, of what matched and of what the archive holds."""
    listed = len(selection.letters)
    line = f"{listed:,} dead letter(s) of {selection.total:,} in {_shown(str(archive))}"
    if _filtered(filters):
        line += f" ({selection.matching:,} match the filters)"
    line += ", by source file and offset"
    if limit is not None and selection.matching > listed:
        line += f"; --limit {limit:,} left out the other {selection.matching - listed:,}"
    return line


def _nothing_selected(archive: Path, selection: Any, filters: Any, limit: int | None) -> str:
    if not selection.total:
        return f"No dead letters in {_shown(str(archive))}: it has refused nothing it was given."
    codes = ", ".join(_shown(c) for c in sorted(selection.in_archive))
    return (
        f"No dead letter matches the filters (of {selection.total:,} in {_shown(str(archive))}; "
        f"reason codes there: {codes})."
    )


# ---------------------------------------------------------------------------------------------
# JSON


def _to_json(letter: dict[str, Any]) -> dict[str, Any]:
    """Every stored field but the raw bytes, which are ``raw_text`` (UTF-8, bytes that are not
    as ``\\xff`` escapes) with ``raw_complete`` saying whether they are the whole payload."""
    from pipelines.archive.deadletter_reader import whole

    out = {k: v for k, v in letter.items() if k != "raw"}
    out["dead_letter_time"] = letter["dead_letter_time"].isoformat()
    out["raw_text"] = letter["raw"].decode("utf-8", "backslashreplace")
    out["raw_complete"] = whole(letter)
    return out


# ---------------------------------------------------------------------------------------------
# --export-raw


_LEFT_OUT = {
    "cut": (
        "hold only the first 64 KiB of their line; the whole line is still in its source file "
        "(`vigil deadletters --reason {codes}` lists file and offset; `tail -c +$((OFFSET + 1)) FILE "
        "| head -n 1` prints it)"
    ),
    "whole_file": "are about a whole file that could not be read (no line: fix or replace the file itself)",
    "index": (
        "are Elasticsearch documents of records already archived, no input lines (`vigil es index` "
        "sends them again)"
    ),
    "line_break": "hold a line break, so they would not read back as one line",
}


def _left_out_notes(left_out: dict[str, list[dict[str, Any]]]) -> None:
    for why, letters in sorted(left_out.items()):
        codes = Counter(x["reason_code"] for x in letters)
        by_code = ", ".join(f"{_shown(c)} {n:,}" for c, n in sorted(codes.items()))
        why_text = _LEFT_OUT[why].replace("{codes}", ",".join(_shown(c) for c in sorted(codes)))
        click.echo(f"note: {len(letters):,} letter(s) not written ({by_code}): they {why_text}", err=True)


def _name_note(target: Path) -> None:
    name = target.name
    if not name.endswith(PLAIN_SUFFIXES) or name.startswith(("_", ".")):
        click.echo(
            f"note: `vigil run` reads only files named *.jsonl or *.ndjson that do not start with _ or . "
            f"(this one is plain text, not gzip): rename {_shown(name)} before putting it in the input",
            err=True,
        )


def _check_target(target: Path, archive: Path, overwrite: bool) -> None:
    """Refuse a target inside the archive folder or not a plain file (see
    :func:`~pipelines.cli.hints.check_export_target`), and an existing file unless ``overwrite``.
    Checked before anything is read or logged."""
    from pipelines.errors import ConfigError

    check_export_target(target, archive, "--export-raw", "fixes.jsonl")
    if target.exists() and not overwrite:
        raise ConfigError(
            f"--export-raw {_shown(str(target))}: the file exists; pass --overwrite to replace it, or "
            "give the name of a new file"
        )


def _stage(target: Path, data: bytes, overwrite: bool) -> Path:
    """``data`` in a temporary file beside ``target`` (a name `vigil run` skips: it starts with a
    dot and ends in .tmp), flushed to disk. A new file is readable by its owner only (the lines
    hold personal data); one that replaces a file keeps that file's mode."""
    from pipelines.errors import ConfigError

    staged = staging_path(target)
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(cannot_write("--export-raw", target, exc)) from None
    try:
        with open(fd, "wb") as handle:
            if overwrite and target.is_file():
                os.fchmod(fd, stat.S_IMODE(target.stat().st_mode))
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise ConfigError(cannot_write("--export-raw", target, exc)) from None
    return staged


def _publish(staged: Path, target: Path, overwrite: bool) -> None:
    """Move ``staged`` to ``target`` in one step: replacing it with ``overwrite``, else only if no
    file took the name since it was checked (a hard link fails on an existing name)."""
    from pipelines.errors import ConfigError

    if overwrite:
        os.replace(staged, target)
        return
    try:
        os.link(staged, target)
    except FileExistsError:
        raise ConfigError(
            f"--export-raw {_shown(str(target))}: a file of that name appeared while the lines were "
            "read; pass --overwrite to replace it, or give the name of a new file"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # a file system without hard links: the check before this is what keeps the file safe
        if target.exists():
            raise ConfigError(
                f"--export-raw {_shown(str(target))}: the file exists; pass --overwrite to replace it"
            ) from None
        os.replace(staged, target)
