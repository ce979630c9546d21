"""`vigil simulate` from the command line: runs, prints a summary whose counts add up, fails clearly."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import NOBODY, VIGIL, as_another_user, shared_tmp

from pipelines.cli import cli, main
from pipelines.simulate import FAULTS_FILE, LABELS_FILE, SIMULATION_FILE

ARGS = ["--days", "2", "--employees", "3", "--contacts", "12", "--seed", "4"]


def _numbers(line: str) -> dict[str, int]:
    return {
        name: int(count.replace(",", ""))
        for name, count in re.findall(r"([A-Za-z_][A-Za-z0-9_]*) ([\d,]+)", line)
    }


def _line(output: str, label: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(label))


def test_cli_writes_files_and_a_summary_that_adds_up(tmp_path: Path) -> None:
    out = tmp_path / "events"
    result = CliRunner().invoke(
        cli, ["simulate", "--out", str(out), *ARGS, "--inject-pii", "--inject-faults", "0.02", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    head = re.search(r"Wrote ([\d,]+) events \(([\d,]+) lines", result.output)
    assert head is not None
    events, lines = (int(g.replace(",", "")) for g in head.groups())
    channels = _numbers(_line(result.output, "channels"))
    kinds = _numbers(_line(result.output, "kinds"))
    directions = _numbers(_line(result.output, "directions"))
    faults = _numbers(_line(result.output, "faults").split(":", 1)[1])
    labels = _numbers(_line(result.output, "labels").split(":", 1)[1])
    assert sum(channels.values()) == sum(kinds.values()) == sum(directions.values()) == events
    assert events + sum(faults.values()) == lines
    assert sum(labels.values()) == len((out / LABELS_FILE).read_text().splitlines())
    assert sum(faults.values()) == len((out / FAULTS_FILE).read_text().splitlines())
    counts = json.loads((out / SIMULATION_FILE).read_text())["counts"]
    assert (counts["events"], counts["lines"], counts["by_channel"]) == (events, lines, channels)
    written = sum(len(p.read_bytes().splitlines()) for p in out.glob("events-*.jsonl"))
    assert written == lines
    assert f"vigil run --input {out}" in result.output


def test_cli_reports_progress_on_stderr_unless_quiet(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["simulate", "--out", str(tmp_path / "a"), *ARGS])
    assert result.exit_code == 0
    assert "progress: simulate: days" in result.stderr
    quiet = CliRunner().invoke(cli, ["simulate", "--out", str(tmp_path / "b"), *ARGS, "--quiet"])
    assert "progress" not in quiet.stderr


def test_existing_output_is_an_error_with_a_hint_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["simulate", "--out", str(tmp_path), *ARGS, "--quiet"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--out", str(tmp_path), *ARGS, "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--days", "0"], "--days"),
        (["--inject-faults", "0.9"], "--inject-faults"),
        (["--contacts", "1"], "--contacts"),
        # the calendar's ends: the days and the hours after them must stay inside it
        (["--start", "9999-12-31"], "--start must be between 2000-01-01"),
        (["--start", "0001-01-01"], "--start must be between 2000-01-01"),
        (["--start", "1999-12-31"], "(the archive refuses earlier timestamps) and 9997-12-31"),
    ],
)
def test_bad_options_are_reported_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--out", str(tmp_path), *ARGS, *extra, "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(cli, ["simulate", "--help"])
    assert result.exit_code == 0
    for option in (
        "--out",
        "--days",
        "--seed",
        "--employees",
        "--contacts",
        "--start",
        "--inject-pii",
        "--inject-faults",
        "--activity",
        "--target-events",
    ):
        assert option in result.output


def test_a_directory_holding_other_files_is_refused_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vigil run` reads every *.jsonl in the directory: simulating into someone's files mixes them in."""
    (tmp_path / "orders.jsonl").write_text('{"not": "an event"}\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--out", str(tmp_path), *ARGS, "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty" in err and "orders.jsonl" in err
    assert len(err.strip().splitlines()) == 1 and "--overwrite" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orders.jsonl"]  # nothing written


def test_an_out_directory_under_a_file_is_one_line_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "events"
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--out", str(out), *ARGS, "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write to --out {out}") and "Traceback" not in err
    assert "vigil run" not in err and len(err.strip().splitlines()) == 1


def test_a_read_only_out_directory_is_one_line_naming_the_option() -> None:
    import shutil
    import subprocess

    prefix = as_another_user()
    base = shared_tmp()
    try:
        out = base / "ro"
        out.mkdir()
        if os.geteuid() == 0:
            os.chown(out, NOBODY, NOBODY)
        out.chmod(0o555)
        result = subprocess.run(
            [*prefix, *VIGIL, "simulate", "--out", str(out), *ARGS, "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        err = result.stderr
        assert err.startswith(f"error: cannot write to --out {out}") and "Traceback" not in err
        assert "vigil run" not in err and len(err.strip().splitlines()) == 1
        assert not any(out.iterdir())
    finally:
        out.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("target", ["10000000000", "99999999999999999999999"])
def test_a_target_beyond_what_any_activity_gives_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--out", str(tmp_path / "ev"), *ARGS, "--target-events", target, "--quiet"])
    assert exit_info.value.code == 2
    assert "--target-events" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists() or not any((tmp_path / "ev").iterdir())


def test_a_target_needing_more_than_the_activity_limit_is_refused_after_the_pilot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two employees for a day cannot be made to write 100 million events: the calibrated activity
    would be far above --activity's limit (the run would not finish), so say what to change."""
    args = ["--days", "1", "--employees", "2", "--contacts", "4", "--seed", "4"]
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--out", str(tmp_path / "ev"), *args, "--target-events", "100000000", "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--target-events" in err and "--activity" in err and "--contacts" in err
    assert len(err.strip().splitlines()) == 1


def test_ctrl_c_removes_what_the_run_wrote_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.simulate.output as output

    real = output.generate

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        for number, emitted in enumerate(real(*args, **kwargs)):
            if number == 300:
                raise KeyboardInterrupt
            yield emitted

    monkeypatch.setattr(output, "generate", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--out", str(tmp_path / "events"), *ARGS, "--quiet"])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert err.strip().startswith("Aborted.") and "removed" in err and "Traceback" not in err
    assert list((tmp_path / "events").iterdir()) == []
