"""The command line as a user meets it: every command has help, mistakes get messages, not tracebacks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pytest
from helpers import VIGIL

from pipelines.cli import COMMANDS, cli


def _all_commands() -> list[list[str]]:
    paths: list[list[str]] = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None, name
        paths.append([name])
        if isinstance(command, click.Group):
            paths.extend([name, sub] for sub in command.list_commands(ctx))
    return paths


def test_every_registered_command_exists() -> None:
    assert {p[0] for p in _all_commands()} == set(COMMANDS)


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p))
def test_help_everywhere(path: list[str]) -> None:
    result = subprocess.run([*VIGIL, *path, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: vigil " + " ".join(path))
    assert "apitools" not in result.stderr  # Beam's import-time noise is filtered


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["nonsense"], 2, "No such command"),
        (["run", "--archive", "x"], 2, "Missing option '--input'"),
        (["verify", "--archive", "/definitely/not/here"], 2, "is not a folder"),
        (["compact", "--archive", "x", "--min-files", "1"], 2, "1 is not in the range x>=2"),
        (["compact", "--archive", "x", "--target-rows", "0"], 2, "0 is not in the range x>=1"),
    ],
)
def test_mistakes_get_messages_not_tracebacks(argv: list[str], code: int, message: str) -> None:
    result = subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [b"search", b"--archive", b"a", b"--role", b"officer", b"caf\xe9"],  # Latin-1 terminal
        [b"search", b"--archive", b"a", b"--role", b"officer", b"--user", b"bad\xffuser", b"x"],
        [b"run", b"--input", b"caf\xe9", b"--archive", b"a"],
    ],
)
def test_an_argument_that_is_not_utf8_is_named(tmp_path, argv: list[bytes]) -> None:
    result = subprocess.run([*VIGIL, *argv], capture_output=True, cwd=tmp_path, timeout=120)
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in err, err
    bad = next(a for a in argv if not a.isascii()).decode("utf-8", "backslashreplace")
    assert err.startswith(f"error: the argument '{bad}' is not valid UTF-8") and err.count("\n") == 1
    assert not (tmp_path / "a").exists()  # refused before anything is touched


READERS = {
    "search": ["search", "--role", "officer", "--user", "t", "card"],
    "conversation": ["conversation", "c1", "--role", "officer", "--user", "t"],
    "compact": ["compact"],
    "dlp dry-run": [
        "dlp",
        "dry-run",
        "--policy",
        str(Path(__file__).parent.parent / "dlp_rules" / "conduct.yaml"),
    ],
    "es index": ["es", "index", "--es-url", "http://127.0.0.1:9"],
}


@pytest.mark.parametrize("argv", READERS.values(), ids=READERS.keys())
def test_a_folder_that_is_no_archive_is_named_and_left_untouched(tmp_path, argv: list[str]) -> None:
    # a mistyped --archive must not look like an archive with no hits, nor collect an audit log
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8")
    missing = tmp_path / "nope"
    for target, message in (
        (folder, f"error: no Vigil archive at {folder} (no _ledger/manifest.jsonl)"),
        (missing, f"error: --archive {missing}: no such folder"),
    ):
        result = subprocess.run(
            [*VIGIL, *argv, "--archive", str(target)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(message) and "Traceback" not in result.stderr
    assert [p.name for p in folder.iterdir()] == ["cat.jpg"]
    assert not missing.exists()


def test_run_on_a_missing_input_folder_says_so(tmp_path) -> None:
    result = subprocess.run(
        [*VIGIL, "run", "--input", str(tmp_path / "nope"), "--archive", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"input {tmp_path / 'nope'} does not exist" in result.stderr


def test_run_on_an_empty_folder_says_there_is_nothing(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [*VIGIL, "run", "--input", str(tmp_path / "empty"), "--archive", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "No event files" in result.stdout


def test_run_accepts_a_single_file(tmp_path) -> None:
    from factories import event, write_jsonl

    write_jsonl(tmp_path / "one.jsonl", [event(1), event(2)])
    write_jsonl(tmp_path / "other.jsonl", [event(3)])
    result = subprocess.run(
        [*VIGIL, "run", "--input", str(tmp_path / "one.jsonl"), "--archive", str(tmp_path / "a"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Read 2 events from 1 file(s)" in result.stdout


def test_an_unforeseen_error_is_one_line_with_exit_3(tmp_path) -> None:
    (tmp_path / "a" / "_ledger" / "manifest.jsonl").mkdir(parents=True)  # a folder where a file belongs
    result = subprocess.run(
        [*VIGIL, "verify", "--archive", str(tmp_path / "a")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3
    assert result.stderr.startswith("error: unexpected IsADirectoryError")
    assert "VIGIL_DEBUG=1" in result.stderr and "Traceback" not in result.stderr
