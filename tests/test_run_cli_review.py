"""`vigil run` as an operator on a new, offline machine types it: runners, Beam options passed
through, options given twice, and an input that is (inside) the archive. Each mistake is one line
and exit code 2, before anything is read or written; nothing is silently dropped or ignored."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import pytest
from factories import event, write_jsonl

from pipelines.cli import main
from pipelines.errors import ConfigError
from pipelines.ingest import extras
from pipelines.ingest import run as run_module
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
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, paths: tuple[str, str]
) -> None:
    monkeypatch.setattr(run_module, "missing_for_runner", lambda runner: None)  # as with apache-beam[gcp]
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--runner", "DataflowRunner")
    _refused(code, err, "--runner DataflowRunner cannot start with these options")
    assert "Missing required option: project" in err and "region" in err
    assert len(err.strip().splitlines()) == 1
    assert not Path(archive).exists()


def test_a_runner_whose_workers_run_elsewhere_gets_a_word_about_the_archive(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(run_module, "missing_for_runner", lambda runner: None)  # as with apache-beam[gcp]
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
    assert not Path(archive).exists()  # the folder the run made is gone again: no "empty archive"


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


DATAFLOW = ["--project=my-project-123", "--region=us-central1", "--temp_location=gs://my-bucket-abc/tmp"]


def _installs(extra: str) -> str:
    from apache_beam.version import __version__

    return f"pip install 'apache-beam[{extra}]=={__version__}'"


@pytest.mark.skipif(
    extras.importable("apache_beam.runners.dataflow.internal.apiclient"),
    reason="apache-beam[gcp] is installed",
)
@pytest.mark.parametrize("follow", [False, True])
def test_dataflow_without_beams_gcp_extra_names_the_extra_and_leaves_no_folder(
    capsys: pytest.CaptureFixture[str], paths: tuple[str, str], follow: bool
) -> None:
    src, archive = paths
    extra = ["--follow", "--stop-after-idle", "1", "--interval", "0.1"] if follow else []
    code, _, err = _run(
        capsys, "--input", src, "--archive", archive, "--runner", "DataflowRunner", *DATAFLOW, *extra
    )
    _refused(
        code,
        err,
        f"--runner DataflowRunner needs Beam's gcp extra, which is not installed: {_installs('gcp')}",
    )
    assert err.strip().splitlines()[-1].startswith("error: --runner")  # one line (--follow says it follows)
    assert not Path(archive).exists()


@pytest.mark.skipif(
    extras.importable("apache_beam.runners.dataflow.internal.apiclient"),
    reason="apache-beam[gcp] is installed",
)
def test_a_missing_extra_beam_names_only_once_the_job_starts_is_one_line_and_no_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, paths: tuple[str, str]
) -> None:
    # a runner check_runner does not know: Beam raises its ImportError when the run holds the archive
    monkeypatch.setattr(run_module, "missing_for_runner", lambda runner: None)
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--runner", "DataflowRunner", *DATAFLOW)
    _refused(code, err, f"needs Beam's gcp extra, which is not installed: {_installs('gcp')}")
    assert not Path(archive).exists()


@pytest.mark.parametrize(
    ("runner", "extra", "module"),
    [
        ("InteractiveRunner", "interactive", "IPython"),  # Beam's ImportError names the extra
        ("apache_beam.runners.dask.dask_runner.DaskRunner", "dask", "dask"),  # a module of the extra's
    ],
)
def test_a_runner_beam_cannot_import_without_an_extra_names_the_extra(
    capsys: pytest.CaptureFixture[str], paths: tuple[str, str], runner: str, extra: str, module: str
) -> None:
    if extras.importable(module):
        pytest.skip(f"apache-beam[{extra}] is installed")
    src, archive = paths
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--runner", runner)
    _refused(
        code, err, f"--runner {runner} needs Beam's {extra} extra, which is not installed: {_installs(extra)}"
    )
    assert not Path(archive).exists()


@pytest.mark.parametrize(
    ("url", "extra", "module"),
    [
        ("gs://nonexistent-bucket-xyz/events", "gcp", "google.cloud.storage"),
        ("gs://nonexistent-bucket-xyz/*.jsonl", "gcp", "google.cloud.storage"),
        ("s3://bucket-xyz/events", "aws", "boto3"),
        ("azfs://account/container/events", "azure", "azure.storage.blob"),
        ("hdfs://namenode:8020/events", "hadoop", "hdfs"),
    ],
)
@pytest.mark.parametrize("follow", [False, True])
def test_an_input_whose_beam_file_system_is_not_installed_names_the_extra(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str, extra: str, module: str, follow: bool
) -> None:
    if extras.importable(module):
        pytest.skip(f"apache-beam[{extra}] is installed")
    archive = tmp_path / "archive"
    more = ["--follow", "--stop-after-idle", "1", "--interval", "0.1"] if follow else []
    code, _, err = _run(capsys, "--input", url, "--archive", str(archive), *more)
    scheme = url.split("://")[0]
    _refused(
        code,
        err,
        f"input {url}: Beam reads {scheme}:// paths only with its {extra} extra, which is not installed: "
        f"{_installs(extra)}",
    )
    assert "Traceback" not in err and "unexpected" not in err
    assert not archive.exists()


def test_an_input_no_beam_file_system_reads_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "--input", "ftp://host/events", "--archive", str(tmp_path / "archive"))
    _refused(code, err, "input ftp://host/events: no Beam file system reads ftp:// paths")
    assert not (tmp_path / "archive").exists()


def test_an_archive_given_as_a_url_is_refused_not_made_a_local_folder(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    paths: tuple[str, str],
) -> None:
    monkeypatch.chdir(tmp_path)  # Path("gs://bucket/archive") is the local folder gs:/bucket/archive
    src, _ = paths
    code, _, err = _run(capsys, "--input", src, "--archive", "gs://my-bucket-abc/archive")
    _refused(
        code, err, "--archive gs://my-bucket-abc/archive is a URL, but the archive is a folder on a POSIX"
    )
    assert not (tmp_path / "gs:").exists()


HASHING = """\
id: hashing
description: Hashes findings with a key from the environment.
operator: {type: hash, key_env: VIGIL_TEST_UNSET_HASH_KEY}
rules:
  - id: hashing.employee-id
    description: Internal employee numbers
    severity: medium
    action: redact
    detectors:
      - type: pattern
        entity: EMPLOYEE_ID
        regex: '\\bEMP-\\d{6}\\b'
"""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--policy", "nonexist"], "nonexist: no such policy file or directory"),
        (["--policy", "HASHING"], "$VIGIL_TEST_UNSET_HASH_KEY, which is not set"),
    ],
    ids=["missing policy", "hash key not set"],
)
@pytest.mark.parametrize("follow", [False, True])
def test_a_run_refused_for_its_policy_leaves_no_archive_folder(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    paths: tuple[str, str],
    options: list[str],
    message: str,
    follow: bool,
) -> None:
    monkeypatch.delenv("VIGIL_TEST_UNSET_HASH_KEY", raising=False)
    (tmp_path / "hashing.yaml").write_text(HASHING)
    options = [str(tmp_path / "hashing.yaml") if o == "HASHING" else o for o in options]
    src, _ = paths
    archive = tmp_path / "new" / "archive"
    more = ["--follow", "--stop-after-idle", "1", "--interval", "0.1"] if follow else []
    code, _, err = _run(capsys, "--input", src, "--archive", str(archive), *options, *more)
    _refused(code, err, message)
    assert not (tmp_path / "new").exists()
    # so `vigil verify` does not call the mistyped path an intact (empty) archive
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--archive", str(archive)])
    assert exited.value.code == 2 and "is not a folder" in capsys.readouterr().err


def test_a_run_refused_for_its_policy_leaves_an_existing_archive_untouched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, paths: tuple[str, str]
) -> None:
    src, archive = paths
    main(["run", "--quiet", "--input", src, "--archive", archive])
    before = sorted((p.relative_to(archive), p.stat().st_mtime_ns) for p in Path(archive).rglob("*"))
    write_jsonl(Path(src) / "b.jsonl", [event(3)])
    code, _, err = _run(capsys, "--input", src, "--archive", archive, "--policy", "nonexist")
    _refused(code, err, "no such policy file")
    assert sorted((p.relative_to(archive), p.stat().st_mtime_ns) for p in Path(archive).rglob("*")) == before
