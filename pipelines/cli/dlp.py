"""``vigil dlp``: tools for the people who write DLP policies.

vigil dlp lint    --policy dlp_rules                  validate policies, print a summary
vigil dlp test    [--policy FILE|DIR]                 run the policies' own test cases
vigil dlp scan    --policy FILE [--input F]           NDJSON texts in, verdicts out
vigil dlp dry-run --policy NEW --archive DIR [--against CURRENT]
                                                    what a policy change would change
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, TextIO, cast

import click

from pipelines.cli.hints import cannot_write
from pipelines.cli.identity import identity_options
from pipelines.errors import ConfigError, InputError, PolicyTestFailure, VigilError
from pipelines.json_lines import json_stdout
from pipelines.record import MAX_BODY_CHARS


def default_rules_dir() -> Path:
    """``./dlp_rules`` when run from a checkout, else the rules shipped with the package."""
    local = Path("dlp_rules")
    if local.is_dir():
        return local
    import dlp_rules

    return Path(dlp_rules.__file__).parent


POLICY_HELP = "Policy file, policy-set file (e.g. dlp_rules/active.yaml) or directory."
#: the longest text ``dlp scan`` takes: its input line (12 bytes a character at worst, see
#: ``pipelines.dlp.scan.max_line_bytes``) then stays within 1 GiB, held whole in memory
MAX_TEXT_CHARS_LIMIT = (1 << 30) // 12


@click.group(name="dlp")
def command() -> None:
    """Author DLP policies: validate them, run their tests, scan text, dry-run against the archive."""


@command.command("lint")
@click.option("--policy", "policy", type=click.Path(path_type=Path), default=None, help=POLICY_HELP)
@click.option(
    "--entities",
    "list_entities",
    is_flag=True,
    help="List every Presidio entity a policy can name, and exit.",
)
def lint(policy: Path | None, list_entities: bool) -> None:
    """Validate policies and print what they contain."""
    from pipelines.dlp import load_policy_set
    from pipelines.dlp.policy import unlisted_policy_files

    if list_entities:
        from pipelines.dlp.presidio_entities import is_ner_entity, known_entities

        for name in sorted(known_entities()):
            click.echo(f"{name}{'  (NER: needs the spaCy model)' if is_ner_entity(name) else ''}")
        return

    policy_set = load_policy_set(policy or default_rules_dir())
    for p in policy_set.policies:
        click.echo(f"{p.path}: policy {p.id!r}, {len(p.rules)} rule(s)")
        for rule in p.rules:
            entities = sorted({d.entity for d in rule.detectors})
            click.echo(f"  {rule.id:<36} {rule.action:<7} {rule.severity.value:<9} {', '.join(entities)}")
    from pipelines.dlp.redact import key_problems

    for problem in key_problems(policy_set, os.environ):
        # the key belongs to where the pipeline runs, not to the policy: said, not refused
        click.echo(
            f"warning: {problem} (`vigil run` and `vigil dlp scan` refuse to start without it)", err=True
        )
    target = policy or default_rules_dir()
    if unlisted := unlisted_policy_files(target):
        # the folder stands for its active.yaml: say what that leaves out, or a new policy file
        # next to it would read as checked
        names = ", ".join(p.name for p in unlisted)
        click.echo(
            f"note: {target / 'active.yaml'} does not list {names}, so lint did not check "
            f"{'them' if len(unlisted) > 1 else 'it'}; lint one with --policy FILE, or add it to the set",
            err=True,
        )
    ner = "needs the spaCy NER model" if policy_set.needs_ner else "no language model needed"
    click.echo(f"ok: set {policy_set.label}, {len(policy_set.rules)} rule(s), {ner}")


@command.command("test")
@click.option("--policy", "policy", type=click.Path(path_type=Path), default=None, help=POLICY_HELP)
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
def test(policy: Path | None, verbose: bool) -> None:
    """Run the test cases next to the policies (<name>.tests.yaml); exit 1 if any fails."""
    from pipelines.dlp.casefile import case_files, run_casefile

    target = policy or default_rules_dir()
    files = case_files(target)
    if not files:
        raise InputError(f"{target}: no test case files (<policy>.tests.yaml) found")
    counts = {"passed": 0, "failed": 0, "known_miss": 0, "fixed": 0}
    for path in files:
        results = run_casefile(path)
        failed = sum(r.failed for r in results)
        mark = click.style("FAIL", fg="red") if failed else click.style("ok  ", fg="green")
        click.echo(f"{mark} {path} ({len(results)} case(s))")
        for r in results:
            counts[r.status] += 1
            if r.status == "failed":
                click.echo(f"  FAIL {r.where} {r.name}")
                for problem in r.problems:
                    click.echo(f"       - {problem}")
            elif r.status == "known_miss":
                click.echo(f"  miss {r.where} {r.name} (known miss)")
            elif r.status == "fixed":
                click.echo(f"  FIXED {r.where} {r.name}: now passes; remove known_miss")
            elif verbose:
                click.echo(f"  pass {r.where} {r.name}")
    summary = f"{counts['passed']} passed, {counts['failed']} failed, {counts['known_miss']} known misses" + (
        f", {counts['fixed']} fixed" if counts["fixed"] else ""
    )
    click.echo(summary)
    if counts["failed"]:
        raise PolicyTestFailure(f"{counts['failed']} policy test case(s) failed")


@command.command("scan")
@click.option("--policy", "policy", type=click.Path(path_type=Path), required=True, help=POLICY_HELP)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help='NDJSON file of {"id", "text"} objects (default: standard input).',
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Default: stdout.",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1024, show_default=True)
@click.option(
    "--max-text-chars",
    type=click.IntRange(1, MAX_TEXT_CHARS_LIMIT),
    default=MAX_BODY_CHARS,
    show_default=True,
    help="Longer texts get an error object (default: the body cap of vigil run; at most "
    f"{MAX_TEXT_CHARS_LIMIT:,}, whose line may be 1 GiB).",
)
@click.pass_context
def scan(
    ctx: click.Context,
    policy: Path,
    input_path: Path | None,
    output_path: Path | None,
    batch_size: int,
    max_text_chars: int,
) -> None:
    """Scan newline-delimited JSON texts; one JSON verdict per input line.

    \b
    Input:  {"id": 1, "text": "...", "channel": "sms", "direction": "outbound"}
    Output: {"id": 1, "action": "redact", "findings": [...], "redacted_text": "..."}
    Lines that cannot be used produce {"line": n, "id": ..., "error": "..."}; exit code 1 if any did.
    """
    from pipelines.dlp import Engine, load_policy_set
    from pipelines.dlp.scan import scan as run_scan

    engine = Engine(load_policy_set(policy))
    if input_path and output_path and output_path.exists() and os.path.samefile(input_path, output_path):
        raise ConfigError(
            f"--output {output_path} is the --input file: opening it for writing would empty it "
            "before it is read; write the verdicts to another file"
        )
    if input_path is None and sys.stdin is None:
        raise InputError("standard input is closed: pass the texts with --input FILE")
    if output_path is None and sys.stdout is None:
        raise ConfigError("standard output is closed: write the verdicts with --output FILE")
    try:
        source = input_path.open("rb") if input_path else sys.stdin.buffer
    except OSError as exc:
        raise InputError(f"{input_path}: cannot read: {exc.strerror}") from None
    try:
        if output_path is None:
            json_stdout()
        sink = output_path.open("w", encoding="utf-8") if output_path else sys.stdout
    except OSError as exc:
        if input_path:
            source.close()
        assert output_path is not None  # stdout cannot fail to open
        raise ConfigError(cannot_write("--output", output_path, exc)) from None
    where = f"--output {output_path}" if output_path else "standard output"
    out = _Verdicts(sink)
    try:
        stats = run_scan(
            engine, source, cast(TextIO, out), batch_size=batch_size, max_text_chars=max_text_chars
        )
        out.flush()
    except _WriteFailed as failed:
        error = failed.error
        if isinstance(error, BrokenPipeError):
            # the reader went away (`| head`): stop quietly, as a pipe's writer does (and keep
            # Python's own flush at exit from complaining about the same closed pipe)
            if output_path is None:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(1)
        # the path is the one given, which a failed write does not carry
        raise ConfigError(
            f"cannot write the verdicts to {where}: {error.strerror or error}; free space there, or pass "
            "another --output, and scan again"
        ) from None
    except OSError as exc:
        if exc.filename is not None:
            raise
        source_name = f"--input {input_path}" if input_path else "standard input"
        raise InputError(
            f"cannot read the texts from {source_name}: {exc.strerror or exc}; check that it is a "
            "readable file of JSON lines, and scan again"
        ) from None
    finally:
        if input_path:
            source.close()
        if output_path:
            with contextlib.suppress(OSError):  # a write error above is the one to report
                sink.close()
    click.echo(
        f"scanned {stats.lines} line(s): {stats.blocked} blocked, {stats.redacted} redacted, "
        f"{stats.flagged} flagged, {stats.errors} error(s)",
        err=True,
    )
    if stats.errors:
        ctx.exit(1)


class _WriteFailed(Exception):
    """A write of the verdicts failed (told apart from an error reading the input)."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


class _Verdicts:
    """The stream the verdicts go to, whose failed writes raise :class:`_WriteFailed`."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except OSError as exc:
            raise _WriteFailed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise _WriteFailed(exc) from None


@command.command("dry-run")
@click.option("--policy", "policy", type=click.Path(path_type=Path), required=True, help="The new policy.")
@click.option(
    "--archive", type=click.Path(path_type=Path, file_okay=False), required=True, help="Archive root."
)
@click.option(
    "--against",
    type=click.Path(path_type=Path),
    default=None,
    help="The current policy to compare with (default: the verdicts stored in the archive).",
)
@click.option("--samples", type=click.IntRange(0, 50), default=3, show_default=True, help="Samples per rule.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@identity_options
@click.pass_context
def dry_run(
    ctx: click.Context,
    policy: Path,
    archive: Path,
    against: Path | None,
    samples: int,
    as_json: bool,
    config_path: Path | None,
    role: str | None,
    user: str | None,
) -> None:
    """Replay archived messages through a policy and report what would change, per rule.

    It reads the original text of archived messages, so it needs the officer role (--role or the
    configuration file); each dry-run is recorded in the archive's audit log."""
    from pipelines.archive import layout
    from pipelines.archive.reader import require_archive
    from pipelines.dlp import load_policy_set
    from pipelines.dlp.dryrun import dry_run as run_dry_run
    from pipelines.dlp.dryrun import format_report, to_json_text
    from pipelines.search.access import AccessRole, load_identity
    from pipelines.search.audit import record_access, require_officer

    identity = load_identity(config=config_path, role=role, user=user)
    details: dict[str, Any] = {"samples": samples, "output": "json" if as_json else "report"}

    def officers_only(query: dict[str, Any]) -> None:
        # a policy is a question about the original text: its counts alone would tell a reviewer
        # whether a redacted card number is in the archive
        require_officer(
            archive,
            identity,
            "dlp-dry-run",
            what="vigil dlp dry-run matches policies against the original text of archived messages",
            query=query,
            engine="embedded",
            details=details,
        )

    try:
        new = load_policy_set(policy)
        current = load_policy_set(against) if against else None
    except VigilError:
        if identity.role is not AccessRole.OFFICER and layout.is_archive(Path(archive)):
            # the attempt is logged (and refused) whether or not the policy it named loads
            officers_only({"policy": str(policy), "against": str(against) if against else "stored verdicts"})
        raise
    require_archive(archive)
    officers_only({"policy": new.label, "against": current.label if current else "stored verdicts"})
    query = {"policy": new.label, "against": current.label if current else "stored verdicts"}
    report = run_dry_run(new, archive, against=current, samples=samples)
    details["changed"] = report.changed
    details["returned"] = report.sampled
    # logged before anything is shown: no log entry, no disclosure
    record_access(
        archive,
        identity,
        "dlp-dry-run",
        query=query,
        results=report.messages,
        engine="embedded",
        details=details,
    )
    if as_json:
        json_stdout()
    click.echo(to_json_text(report) if as_json else format_report(report))
    if report.failed:
        ctx.exit(1)  # the report is incomplete: some messages were not compared
