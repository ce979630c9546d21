"""`vigil run` as an operator on a new, offline machine types it: runners, Beam options passed
through, options given twice, and an input that is (inside) the archive. Each mistake is one line
and exit code 2, before anything is read or written; nothing is silently dropped or ignored."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import pytest
from factories import event, write_jsonl

from pipelines.archive.manifest import load_state
from pipelines.cli import main
from pipelines.errors import ConfigError
from pipelines.ingest.run import RunOptions, check_runner


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--quiet", *argv])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.fixture
def paths(tmp_path: Path) -> tuple[str, str]:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1), event(2)])
    return str(tmp_path / "in"), str(tmp_path / "archive")


def _refused(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err and "usage:" not in err


def test_input_given_twice_is_refused_rather_than_archiving_only_the_last(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, paths: tuple[str, str]
) -> None:
    src, archive = paths
    write_jsonl(tmp_path / "more" / "b.jsonl", [event(3)])
    code, _, err = _run(capsys, "--input", src, "--input", str(tmp_path / "more"), "--archive", archive)
    _refused(code, err, "--input given more than once")
    code, _, err = _run(capsys, "--input", src, "--archive", archive, f"--archive={tmp_path / 'other'}")
    _refused(code, err, "--archive given more than once")
    assert not Path(archive).exists() and not (tmp_path / "other").exists()


def test_an_own_option_spelled_the_beam_way_is_named_with_its_real_spelling(
    capsys: pytest.CaptureFixture[str], paths: tuple[str, str]
) -> None:
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--stop_after_idle=2")
    _refused(code, err, "did you mean --stop-after-idle?")


def test_a_beam_option_with_dashes_is_refused_not_silently_ignored(
    capsys: pytest.CaptureFixture[str], paths: tuple[str, str]
) -> None:
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--direct-num-workers=2")
    _refused(code, err, "unknown option(s) --direct-num-workers")
    assert "did you mean --direct_num_workers?" in err
    assert not Path(archive).exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--direct_num_workers=abc", "--direct_num_workers: invalid int value: 'abc'"),
        ("--direct_running_mode=bogus", "--direct_running_mode: invalid choice: 'bogus'"),
        ("--streaming=false", "--streaming: ignored explicit argument 'false'"),
    ],
)
def test_a_bad_beam_option_value_is_one_line_not_beams_usage_page(
    capsys: pytest.CaptureFixture[str], paths: tuple[str, str], option: str, message: str
) -> None:
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, option)
    _refused(code, err, message)
    assert len(err.strip().splitlines()) == 1
    assert not Path(archive).exists()


def test_a_beam_option_given_twice_is_refused_but_collecting_options_may_repeat(
    capsys: pytest.CaptureFixture[str], paths: tuple[str, str]
) -> None:
    src, archive = paths
    code, _, err = _run(
        capsys, "--input", src, "--archive", archive, "--direct_num_workers=2", "--direct_num_workers=1"
    )
    _refused(code, err, "--direct_num_workers given more than once")
    from pipelines.ingest.run import check_beam_args

    check_beam_args(["--experiments=a", "--experiment", "b", "--project", "P", "--save_main_session"])
    with pytest.raises(ConfigError, match="unexpected argument"):
        check_beam_args(["--save_main_session", "stray"])


def test_beams_legacy_bundle_based_runner_is_refused_up_front(
    capsys: pytest.CaptureFixture[str], paths: tuple[str, str]
) -> None:
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--runner", "BundleBasedDirectRunner")
    _refused(code, err, "--runner BundleBasedDirectRunner is Beam's legacy direct runner")
    assert not Path(archive).exists()


def test_dataflow_without_its_options_names_what_is_missing(
    capsys: pytest.CaptureFixture[str], paths: tuple[str, str]
) -> None:
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--runner", "DataflowRunner")
    _refused(code, err, "--runner DataflowRunner cannot start with these options")
    assert "Missing required option: project" in err and "region" in err
    assert len(err.strip().splitlines()) == 1
    assert not Path(archive).exists()


def test_a_runner_whose_workers_run_elsewhere_gets_a_word_about_the_archive(tmp_path: Path) -> None:
    said: list[str] = []
    dataflow = ["--project=my-project", "--region=europe-west1", "--temp_location=gs://my-bucket/tmp"]
    check_runner(
        RunOptions(
            input="in",
            archive=Path("arch"),
            runner="DataflowRunner",
            beam_args=dataflow,
            on_warning=said.append,
        )
    )
    assert len(said) == 1 and "runs the pipeline's steps on other machines" in said[0]
    assert str(Path("arch").absolute()) in said[0]
    said.clear()  # LOOPBACK runs the workers in this process, beside the archive
    check_runner(
        RunOptions(
            input="in",
            archive=Path("arch"),
            runner="FlinkRunner",
            beam_args=["--environment_type=LOOPBACK"],
            on_warning=said.append,
        )
    )
    assert said == []


def test_a_runner_beam_cannot_download_offline_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    paths: tuple[str, str],
) -> None:
    from apache_beam.runners.portability import prism_runner

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(prism_runner, "urlopen", offline)  # as on a machine without internet
    monkeypatch.setattr(prism_runner.PrismJobServer, "BIN_CACHE", str(tmp_path / "cache"))
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--runner", "PrismRunner")
    _refused(code, err, "--runner PrismRunner could not start: Beam had to download")
    assert "Name or service not known" in err and "leave out --runner" in err
    assert "cannot use" not in err  # not the archive's fault: exit 2, not 3
    assert load_state(Path(archive)).commits == {}


@pytest.mark.parametrize("follow", [False, True])
def test_an_input_that_is_the_archive_or_inside_it_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, follow: bool
) -> None:
    archive = tmp_path / "archive"
    write_jsonl(archive / "incoming" / "a.jsonl", [event(1)])
    extra = ["--follow", "--stop-after-idle", "1", "--interval", "0.1"] if follow else []
    code, _, err = _run(capsys, "--input", str(archive), "--archive", str(archive), *extra)
    _refused(code, err, "is the archive folder")
    spelled_apart = f"{tmp_path}/x/../archive"  # the same folder, written another way
    code, _, err = _run(capsys, "--input", str(archive / "incoming"), "--archive", spelled_apart, *extra)
    _refused(code, err, "is inside the archive")
    assert sorted(p.name for p in archive.iterdir()) == ["incoming"]  # no lock, no ledger made


def test_a_run_that_archives_no_record_still_hints_at_a_real_conversation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # read again with --reprocess: every event is a duplicate and a broken line a dead letter, so
    # the commit holds no record; the hint names the newest conversation archived, not "ID"
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1, conversation_id="conv-7"), b"{broken\n"])
    src, archive = str(tmp_path / "in"), str(tmp_path / "archive")
    main(["run", "--input", src, "--archive", archive])
    capsys.readouterr()
    main(["run", "--input", src, "--archive", archive, "--reprocess"])
    out = capsys.readouterr().out
    assert "duplicates              1" in out
    (hint,) = [x for x in out.splitlines() if " conversation " in x]
    assert hint.split()[2] == "conv-7"
