"""The command line as a user meets it: every command has help, mistakes get messages, not tracebacks."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from factories import event, write_jsonl
from helpers import VIGIL, ingest

from pipelines.cli import COMMANDS, cli, main
from pipelines.errors import ArchiveError


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
        (
            ["run", "--input", "x", "--archive", "y", "--future-skew-minutes", "nan"],
            2,
            "not a number of minutes",
        ),
        (
            ["run", "--input", "x", "--archive", "y", "--future-skew-minutes", "inf"],
            2,
            "inf is not in the range 0<=x<=10000000000.0",
        ),
        (["run", "--input", "x", "--archive", "y", "--settle", "nan"], 2, "not a number of seconds"),
        (["run", "--input", "x", "--archive", "y", "--interval", "nan"], 2, "not a number of seconds"),
    ],
)
def test_mistakes_get_messages_not_tracebacks(argv: list[str], code: int, message: str) -> None:
    result = subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--future-skew-minutes", "1e13", "0<=x<=10000000000.0"),
        ("--max-line-bytes", str(2**63 - 1), "1024<=x<=1073741824"),
        ("--interval", "1e300", "0.1<=x<=86400.0"),
        ("--settle", "1e300", "0<=x<=86400.0"),
        ("--es-batch-size", str(10**20), "1<=x<=10000"),
    ],
)
def test_a_huge_run_option_is_refused_before_the_archive_is_touched(
    tmp_path: Path, option: str, value: str, allowed: str
) -> None:
    write_jsonl(tmp_path / "in" / "day.jsonl", [event(1)])
    archive = tmp_path / "archive"
    argv = ["run", "--input", str(tmp_path / "in"), "--archive", str(archive), option, value]
    result = subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"Error: Invalid value for '{option}': " in result.stderr and allowed in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert not archive.exists()


def test_the_largest_run_options_are_taken(tmp_path: Path) -> None:
    # the bounds themselves work: "1e9 for no check" and beyond, and the longest line limit
    late = "9999-12-31T23:59:59Z"
    write_jsonl(tmp_path / "in" / "day.jsonl", [event(1), event(2, event_time=late, received_time=late)])
    archive = tmp_path / "archive"
    top = ["--future-skew-minutes", "1e10", "--max-line-bytes", str(2**30), "--es-batch-size", "10000"]
    argv = ["run", "--input", str(tmp_path / "in"), "--archive", str(archive), "--json", "--no-dlp", *top]
    result = subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert '"archived": 2' in result.stdout and '"dead_lettered": 0' in result.stdout


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
        "--role",
        "officer",
        "--policy",
        str(Path(__file__).parent.parent / "dlp_rules" / "conduct.yaml"),
    ],
    "es index": ["es", "index", "--role", "officer", "--user", "t", "--es-url", "http://127.0.0.1:9"],
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
    # a wrong folder, or a night without traffic, leaves no empty archive where there was none
    assert not (tmp_path / "a").exists()


def test_run_on_an_empty_folder_leaves_an_existing_archive_as_it_was(tmp_path) -> None:
    from pipelines.archive.manifest import load_state

    write_jsonl(tmp_path / "in" / "one.jsonl", [event(1)])
    archive = tmp_path / "a"
    assert ingest(tmp_path / "in", archive).archived == 1
    head = load_state(archive).head
    (tmp_path / "empty").mkdir()
    summary = ingest(tmp_path / "empty", archive)
    assert (summary.commit, summary.sources, summary.manifest_head) == (None, 0, head)
    assert load_state(archive).head == head


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


def test_an_unforeseen_error_is_one_line_with_exit_3(monkeypatch, capsys) -> None:
    def boom(**_: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "main", boom)
    with pytest.raises(SystemExit) as stopped:
        main(["verify"])
    assert stopped.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected ZeroDivisionError: division by zero")
    assert "VIGIL_DEBUG=1" in err and "Traceback" not in err


def test_a_vigil_error_re_raised_by_a_pipeline_step_keeps_its_message_and_exit_code(
    monkeypatch, capsys
) -> None:
    def step(**_: object) -> None:
        try:
            raise ArchiveError("the archive is on fire; put it out")
        except ArchiveError as exc:  # what Beam does: a new error naming the step, raised while handling
            raise RuntimeError(f"{exc} [while running 'WriteArchive']") from None

    monkeypatch.setattr(cli, "main", step)
    with pytest.raises(SystemExit) as stopped:
        main(["run"])
    assert stopped.value.code == ArchiveError.exit_code
    assert capsys.readouterr().err.startswith("error: the archive is on fire; put it out")


def test_a_folder_where_the_manifest_belongs_is_a_problem_for_verify_and_named_by_search(tmp_path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(0)])
    ingest(tmp_path / "in", tmp_path / "a")
    manifest = tmp_path / "a" / "_ledger" / "manifest.jsonl"
    manifest.unlink()
    manifest.mkdir()
    checked = subprocess.run(
        [*VIGIL, "verify", "--archive", str(tmp_path / "a")], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 1
    assert "_ledger/manifest.jsonl is a folder, not the manifest" in checked.stderr
    searched = subprocess.run(
        [*VIGIL, "search", "--archive", str(tmp_path / "a"), "--role", "officer", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert searched.returncode == 3
    assert searched.stderr.startswith(
        f"error: cannot use {manifest}: Is a directory; a folder is where Vigil needs a file: "
        "move that folder away"
    )
    assert "resumes" not in searched.stderr  # only a run resumes
    assert "Traceback" not in searched.stderr


def _run_with_a_file_for(tmp_path: Path, folder: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A second run over an archive whose bookkeeping ``folder`` was replaced by a file."""
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(0)])
    archive = tmp_path / "archive"
    ingest(tmp_path / "in", archive)
    shutil.rmtree(archive / folder, ignore_errors=True)
    (archive / folder).write_text(f"a file where the {folder} folder belongs")
    write_jsonl(tmp_path / "in" / "b.jsonl", [event(1)])
    result = subprocess.run(
        [*VIGIL, "run", "--input", str(tmp_path / "in"), "--archive", str(archive), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return archive, result


def test_a_file_error_inside_a_pipeline_step_is_one_line_without_beams_traceback(tmp_path) -> None:
    archive, result = _run_with_a_file_for(tmp_path, "_staging")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot use {archive}/_staging/")
    assert "Not a directory; part of the path is a file where Vigil needs a folder" in result.stderr
    assert "it resumes where the archive's last commit ended" in result.stderr


def test_a_file_where_the_run_reports_folder_belongs_is_named_with_its_fix(tmp_path) -> None:
    archive, result = _run_with_a_file_for(tmp_path, "_runs")
    assert result.returncode == 3, result.stderr
    assert f"cannot use {archive}/_runs" in result.stderr
    assert "a file is where Vigil needs a folder" in result.stderr and "move it away" in result.stderr
    assert "disk has room" not in result.stderr


def test_the_closing_hint_can_be_pasted_whatever_the_path_and_conversation_id_hold(tmp_path) -> None:
    import shlex

    odd = "conv/'x\" <y> $(id)"
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i, conversation_id=odd) for i in range(3)])
    archive = tmp_path / "my archive"
    result = subprocess.run(
        [*VIGIL, "run", "--input", str(tmp_path / "in"), "--archive", str(archive)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if " conversation " in x]
    argv = shlex.split(line)
    assert argv[1:] == [
        "conversation",
        odd,
        "--archive",
        str(archive),
        "--role",
        "officer",
        "--html",
        "c.html",
    ]
    searches = [
        shlex.split(x, comments=True) for x in result.stdout.splitlines() if " search --archive " in x
    ]
    assert [a[1:4] for a in searches] == [["search", "--archive", str(archive)]] * 2


def test_simulates_next_step_can_be_pasted_whatever_the_path_holds(tmp_path) -> None:
    import shlex

    out = tmp_path / "events $(id) 'x'"
    result = subprocess.run(
        [*VIGIL, "simulate", "--out", str(out), "--days", "1", "--employees", "2", "--contacts", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    argv = shlex.split(lines[lines.index("Next, archive it:") + 1])
    assert argv[1:] == ["run", "--input", str(out), "--archive", str(tmp_path / "archive")]


def test_ctrl_c_inside_a_beam_step_of_run_is_an_interruption_with_how_to_resume(
    tmp_path, monkeypatch, capsys
) -> None:
    from pipelines.ingest import parse

    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    real = parse.parse_line_safely

    def ctrl_c(line, **kw):  # the user presses Ctrl-C while the lines are validated
        raise KeyboardInterrupt

    monkeypatch.setattr(parse, "parse_line_safely", ctrl_c)
    with pytest.raises(SystemExit) as stopped:  # Beam re-raises it as a RuntimeError naming the step
        main(["run", "--input", str(src), "--archive", str(archive), "--quiet"])
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert "unexpected" not in err and "run the same command again to resume" in err
    assert not archive.exists()  # nothing was committed: the folder the run made is gone again
    monkeypatch.setattr(parse, "parse_line_safely", real)
    main(["run", "--input", str(src), "--archive", str(archive), "--quiet", "--json"])  # resumes
    assert '"archived": 3' in capsys.readouterr().out


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "replaced":
        data = bytearray(b"not parquet any more\n")
    elif how == "footer":  # same size, magic intact: the footer's metadata no longer decodes
        footer_length = int.from_bytes(data[-8:-4], "little")
        start = len(data) - 8 - footer_length
        data[start : start + 16] = b"\xff" * 16
    else:  # "pages": same size, footer intact, the column data scrambled
        for at in range(8, min(len(data) // 3, 4096)):
            data[at] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["replaced", "footer", "pages"])
def test_a_committed_file_that_is_no_longer_parquet_is_named_with_what_to_do(tmp_path, how) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(i) for i in range(3)])
    ingest(src, archive)
    (damaged,) = sorted((archive / "records").rglob("*.parquet"))
    _damage(damaged, how)
    write_jsonl(src / "b.jsonl", [event(10 + i) for i in range(3)])
    for argv in (
        ["run", "--input", str(src), "--archive", str(archive), "--quiet"],
        [
            "dlp",
            "dry-run",
            "--role",
            "officer",
            "--policy",
            str(Path(__file__).parents[1] / "dlp_rules" / "pii.yaml"),
            "--archive",
            str(archive),
        ],
    ):
        result = subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=300)
        assert result.returncode == ArchiveError.exit_code, result.stderr
        (line,) = result.stderr.splitlines()
        assert str(damaged.relative_to(archive)) in line
        # the writer's de-duplication reads it and fails; a reader first finds its size changed
        assert "cannot be read as Parquet" in line or "bytes where the manifest recorded" in line
        assert "vigil verify" in line and "unexpected" not in line and "while running" not in line


@pytest.mark.parametrize("no_dlp", [False, True])
def test_the_closing_hints_point_at_dlp_the_run_had(tmp_path: Path, no_dlp: bool) -> None:
    # after a run without DLP there is no verdict to search for: the hint is the dry-run that
    # shows what the policy would do, and that command works as printed
    write_jsonl(tmp_path / "in" / "day.jsonl", [event(1), event(2)])
    archive = tmp_path / "archive"
    argv = ["run", "--input", str(tmp_path / "in"), "--archive", str(archive)]
    argv += ["--no-dlp"] if no_dlp else []
    result = subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    hints = [line.strip() for line in result.stdout.splitlines() if "dlp" in line and str(archive) in line]
    assert len(hints) == 1, result.stdout
    if not no_dlp:
        assert "dlp:block" in hints[0]
        return
    assert "dlp dry-run" in hints[0] and "dlp:block" not in result.stdout
    command = shlex.split(hints[0].split("  #")[0])
    replay = subprocess.run([*VIGIL, *command[1:]], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert "2 message(s) were archived without a DLP verdict" in replay.stdout


@pytest.mark.parametrize(
    "option", [["--interval", "2"], ["--settle", "0"], ["--stop-after-idle", "2"], ["--interval=5"]]
)
def test_follow_only_options_without_follow_are_refused_not_ignored(
    tmp_path: Path, option: list[str]
) -> None:
    write_jsonl(tmp_path / "in" / "day.jsonl", [event(1)])
    archive = tmp_path / "archive"
    argv = ["run", "--input", str(tmp_path / "in"), "--archive", str(archive), *option]
    result = subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=120)
    flag = option[0].split("=")[0]
    assert result.returncode == 2, result.stderr
    assert f"{flag} only applies with --follow: add --follow" in result.stderr
    assert not archive.exists()


@pytest.mark.parametrize(
    ("bodies", "suggested"),
    [
        (["card 4012 8888 8888 1881 exp 12/29", "write to dana@example.com"], "dlp:redact"),
        (["write to dana@example.com"], "dlp:flag"),
    ],
)
def test_the_closing_hint_searches_for_the_strongest_action_the_run_took(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bodies: list[str], suggested: str
) -> None:
    """Before, it always suggested dlp:block ("what DLP stopped"), which found nothing in a run
    that blocked nothing."""
    from search_support import vigil

    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i, body=b) for i, b in enumerate(bodies)])
    assert vigil("run", "--input", str(tmp_path / "in"), "--archive", str(tmp_path / "a")) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if " search --archive " in x and " dlp:" in x]
    query = shlex.split(line, comments=True)[-1]
    assert query == suggested
    assert vigil(*shlex.split(line, comments=True)[1:], "--json") == 0
    assert len(capsys.readouterr().out.splitlines()) >= 1  # it finds what the run did
