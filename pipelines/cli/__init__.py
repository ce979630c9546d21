"""The ``vigil`` command line.

Each subcommand lives in its own module and is imported only when used, so ``vigil dlp scan`` does
not pay for importing Apache Beam and ``vigil --help`` stays fast.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import re
import signal
import sys
from typing import Any, NoReturn

import click

from pipelines.errors import VigilError, causes, interrupted
from pipelines.invisible import escaped
from pipelines.json_lines import is_utf8

#: exit code of an error Vigil did not foresee (a bug, or the environment failing under it)
UNEXPECTED_EXIT = 3

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("pipelines.cli.simulate", "Write a deterministic week of simulated multi-channel traffic."),
    "run": ("pipelines.cli.run", "Archive event files: validate, deduplicate, apply DLP, write Parquet."),
    "verify": ("pipelines.cli.verify", "Check the archive and audit log against their hash-chained ledgers."),
    "compact": ("pipelines.cli.compact", "Merge small archive files (left by --follow) into larger ones."),
    "dlp": (
        "pipelines.cli.dlp",
        "Author DLP policies: run their tests, scan text, dry-run against the archive.",
    ),
    "search": ("pipelines.cli.search", "Search the archive (embedded engine or Elasticsearch)."),
    "conversation": ("pipelines.cli.conversation", "Reconstruct a conversation as it happened."),
    "es": ("pipelines.cli.es", "Elasticsearch: install the index template, (re)index the archive."),
    "deadletters": (
        "pipelines.cli.deadletters",
        "List the events the archive refused; export their raw lines.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="vigil")
def cli() -> None:
    """Vigil: compliance archive, DLP and search for business messaging.

    \b
    Quick look:
      vigil simulate --out demo/events --days 7 --seed 7
      vigil run --input demo/events --archive demo/archive
      vigil verify --archive demo/archive
    """


class _QuietImports(logging.Filter):
    """Beam warns at import time about optional Google Cloud clients Vigil does not use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


def _os_error_message(exc: OSError, command: str | None) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc)
    advice = {
        errno.EEXIST: "a file is where Vigil needs a folder (or the other way round): move it away",
        errno.ENOTDIR: "part of the path is a file where Vigil needs a folder: move that file away",
        errno.EISDIR: "a folder is where Vigil needs a file: move that folder away",
        errno.ENOSPC: "the disk is full: make room",
        errno.EDQUOT: "the disk quota is used up: make room",
        errno.EACCES: "the user running Vigil may not use it: fix its permissions",
        errno.EPERM: "the user running Vigil may not use it: fix its permissions",
        errno.EROFS: "the file system is read-only: use a writable one",
    }.get(exc.errno or 0)
    if advice:
        message = f"cannot use{where}: {reason}; {advice}, then run the command again"
    else:
        message = (
            f"cannot use{where}: {reason}. Check that the path exists, that the user running Vigil "
            "may read and write it, and that the disk has room; then run the command again"
        )
    if command == "run":
        message += " (it resumes where the archive's last commit ended)"
    return message


_BEAM_STEP = re.compile(r"\s*\[while running '[^\n]*'\]\s*$")


def _without_step(exc: BaseException) -> str:
    return _BEAM_STEP.sub("", str(exc))


def _command(argv: list[str] | None) -> str | None:
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)


def _say_interrupted(argv: list[str] | None, exc: BaseException) -> NoReturn:
    """Ctrl-C (exit code 130), or SIGTERM where a command takes it as a stop (``vigil run``: 143)."""
    from pipelines.ingest.stopping import Stopped  # no Beam: a module of its own

    stop = next((c for c in causes(exc) if isinstance(c, Stopped)), Stopped())
    message = "Aborted." if stop.signum == signal.SIGINT else f"Aborted ({signal.Signals(stop.signum).name})."
    if stop.commit is not None:  # it came after the run's commit point: that commit stands
        message += (
            f" It came after this run's commit {stop.commit}: what the run read is archived (its summary "
            f"is in the archive's _runs/{stop.commit}.json; vigil verify shows the archive is intact)"
        )
    elif _command(argv) in ("run", "compact"):
        message += (
            " Nothing after the archive's last commit was kept (vigil verify shows the archive is "
            "intact); run the same command again to resume"
        )
    elif _command(argv) == "simulate":
        message += " The files this run had written were removed; run the same command again"
    click.echo(message, err=True)
    sys.exit(stop.exit_code)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: turns Vigil errors into a clear message and an exit code, never a traceback."""
    logging.getLogger().addFilter(_QuietImports())
    if not os.environ.get("VIGIL_DEBUG"):
        # Beam logs an error inside a pipeline step with its traceback before re-raising it; the
        # message below says what went wrong (VIGIL_DEBUG=1 shows both)
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    for arg in sys.argv[1:] if argv is None else argv:
        if not is_utf8(arg):
            shown = os.fsencode(arg).decode("utf-8", "backslashreplace")
            click.secho(
                f"error: the argument '{shown}' is not valid UTF-8 (a terminal or file name in another "
                "encoding?); Vigil records what it is given as UTF-8: retype it, or rename the file",
                fg="red",
                err=True,
            )
            sys.exit(2)
    try:
        return cli.main(args=argv, prog_name="vigil", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        _say_interrupted(argv, exc)
    except VigilError as exc:
        click.secho(f"error: {escaped(_without_step(exc), keep=chr(10))}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug or an environment problem: one line, the details on request
        if os.environ.get("VIGIL_DEBUG"):
            raise
        if interrupted(exc):  # Ctrl-C inside a Beam step, re-raised by Beam as another error
            _say_interrupted(argv, exc)
        chain = causes(exc)
        if vigil := next((c for c in chain if isinstance(c, VigilError)), None):
            # Beam re-raises an error of a step as one of the same type with the step's name added
            click.secho(f"error: {escaped(_without_step(vigil), keep=chr(10))}", fg="red", err=True)
            sys.exit(vigil.exit_code)
        if os_error := next((c for c in chain if isinstance(c, OSError)), None):
            click.secho(f"error: {escaped(_os_error_message(os_error, _command(argv)))}", fg="red", err=True)
            sys.exit(UNEXPECTED_EXIT)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        click.secho(
            f"error: unexpected {type(exc).__name__}: {first} (set VIGIL_DEBUG=1 to see the traceback; "
            "please report it)",
            fg="red",
            err=True,
        )
        sys.exit(UNEXPECTED_EXIT)
