"""Bad files and odd inputs on the real pipeline: one dead letter or one line of error, never a
crashed run, never a file read twice, never data silently lost."""

from __future__ import annotations

import gzip
import importlib.util
import os
import shlex
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from factories import event, line, write_jsonl
from helpers import NOBODY, VIGIL, as_another_user, ingest, shared_tmp

from pipelines.archive import layout, reader
from pipelines.archive.manifest import load_state
from pipelines.ingest import run as run_module
from pipelines.ingest.read import read_lines


def _dead(archive: Path) -> list[dict]:
    return reader.read_table(archive, layout.DEAD_LETTERS).to_pylist()


def _gz(path: Path, items: list) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = gzip.compress(b"".join(i if isinstance(i, bytes) else line(i) for i in items))
    path.write_bytes(data)
    return data


def test_a_deeply_nested_line_is_dead_lettered_and_the_run_goes_on(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1), b"[" * 3000 + b"]" * 3000 + b"\n", event(2)])
    summary = ingest(tmp_path / "in", tmp_path / "archive")
    assert (summary.archived, summary.dead_letter_reasons) == (2, {"malformed_json": 1})
    assert "nested too deeply" in _dead(tmp_path / "archive")[0]["reason"]


def test_bad_gzip_files_are_dead_letters_and_other_files_are_archived(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "good.jsonl", [event(1), event(2)])
    (src / "fake.jsonl.gz").write_bytes(line(event(3)))  # plain text named .gz
    whole = _gz(tmp_path / "whole.gz", [event(10 + i, body=f"n{i} " + "x" * 400) for i in range(200)])
    (src / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # a truncated gzip
    summary = ingest(src, archive)
    assert summary.balanced
    assert summary.dead_letter_reasons == {"unreadable_file": 1, "truncated_gzip": 1}
    assert summary.archived > 2  # good.jsonl and the readable part of cut.jsonl.gz
    assert "2 file(s) could not be read to the end" in summary.render(archive)
    by_code = {d["reason_code"]: d for d in _dead(archive)}
    assert by_code["unreadable_file"]["source_name"].endswith("fake.jsonl.gz")
    assert "not gzip-compressed" in by_code["unreadable_file"]["reason"]
    assert "rename it to fake.jsonl (without .gz)" in by_code["unreadable_file"]["reason"]
    cut = by_code["truncated_gzip"]
    assert cut["source_offset"] > 0 and f"{cut['source_offset']:,} decompressed bytes" in cut["reason"]
    consumed = load_state(archive).consumed_sources()
    assert [Path(n).name for n in consumed] == ["good.jsonl"]  # the bad files are read again next time
    again = ingest(src, archive)
    assert again.skipped_sources == 1 and again.dead_letters_already_stored == 2 and again.archived == 0


def test_follow_mode_waits_for_a_gzip_still_being_written(tmp_path: Path) -> None:
    whole = _gz(tmp_path / "whole.gz", [event(i, body="y" * 500) for i in range(300)])
    cut = tmp_path / "growing.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    held = list(read_lines(str(cut), hold_partial_tail=True))
    assert held and all(x.problem is None for x in held)  # no dead letter: the writer is not done
    assert list(read_lines(str(cut)))[-1].problem[0] == "truncated_gzip"  # type: ignore[index]


def test_an_empty_gzip_file_is_a_truncated_gzip_not_a_file_read_whole(tmp_path: Path) -> None:
    """Python's gzip reads 0 bytes as an empty stream; gzip -t refuses it (no header). Before, the
    run recorded it as consumed with nothing said."""
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "good.jsonl", [event(1)])
    (src / "empty.jsonl.gz").write_bytes(b"")
    assert list(read_lines(str(src / "empty.jsonl.gz"), hold_partial_tail=True)) == []  # follow waits
    summary = ingest(src, archive)
    assert summary.balanced and summary.archived == 1
    assert summary.dead_letter_reasons == {"truncated_gzip": 1}
    (letter,) = _dead(archive)
    assert letter["source_name"].endswith("empty.jsonl.gz") and "not even a gzip header" in letter["reason"]
    assert [Path(n).name for n in load_state(archive).consumed_sources()] == ["good.jsonl"]


def test_the_same_input_spelled_differently_is_read_once(tmp_path: Path, monkeypatch) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1), b"{bad\n"])
    assert ingest(src, archive).sources == 1
    monkeypatch.chdir(tmp_path)
    for spelling in ("in", "./in/", str(src) + "/", str(tmp_path / "in" / ".." / "in")):
        summary = ingest(Path(spelling), archive)
        assert (summary.sources, summary.skipped_sources) == (0, 1), spelling
    assert len(_dead(archive)) == 1
    (source,) = load_state(archive).consumed_sources()
    assert source == str(src.resolve() / "a.jsonl")


def test_an_archive_that_recorded_inputs_as_typed_does_not_read_them_again(
    tmp_path: Path, monkeypatch
) -> None:
    # earlier versions kept the input path as typed (`in/a.jsonl`) in the manifest
    from pipelines.ingest import read

    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1), event(2)])
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as old_version:
        old_version.setattr(read, "canonical", lambda path: path)
        assert ingest(Path("in"), archive).archived == 2
    assert list(load_state(archive).consumed_sources()) == ["in/a.jsonl"]
    summary = ingest(src, archive)
    assert (summary.sources, summary.skipped_sources, summary.read) == (0, 1, 0)


def test_files_in_underscore_or_dot_folders_and_the_archive_itself_are_skipped(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write_jsonl(src / "a.jsonl", [event(1)])
    write_jsonl(src / ".staging" / "x.jsonl", [event(2)])
    write_jsonl(src / "_tmp" / "deeper" / "y.jsonl", [event(3)])
    archive = src / "archive"  # the archive inside the input folder
    (src / ".notes.txt").write_text("not named like an event file: not mentioned\n")
    first = ingest(src, archive)
    assert (first.sources, first.archived) == (1, 1)
    # not read, but named: an event file misplaced there is not lost without a word; the archive
    # inside the input is not the input's at all
    assert first.left_out_files == [".staging/x.jsonl", "_tmp/deeper/y.jsonl"]
    assert "2 file(s) named like event files left out as bookkeeping (.staging/x.jsonl, _tmp/deeper/y" in (
        first.render(archive)
    )
    second = ingest(src, archive, only_new_sources=False)  # its manifest.jsonl is not an input
    assert (second.sources, second.read, second.dead_lettered) == (1, 1, 0)
    assert second.left_out_count == 2 and not second.input_incomplete


def test_files_not_named_like_event_files_are_named_in_the_summary_not_read(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write_jsonl(src / "a.jsonl", [event(1)])
    write_jsonl(src / "deeper" / "b.ndjson", [event(2)])
    _gz(src / "c.ndjson.gz", [event(3)])
    write_jsonl(src / "export.json", [event(4)])  # one event per line, but not named so
    write_jsonl(src / "deeper" / "old.jsonl.bak", [event(5)])
    (src / "README.txt").write_text("drop event files here\n")
    write_jsonl(src / "_labels.jsonl", [event(6)])  # bookkeeping: not read, named apart
    write_jsonl(src / "d.jsonl.tmp", [event(7)])  # still being written
    summary = ingest(src, tmp_path / "archive")
    assert (summary.sources, summary.read, summary.archived) == (3, 3, 3)
    assert summary.unread_count == 3
    assert summary.unread_files == ["README.txt", "deeper/old.jsonl.bak", "export.json"]
    text = summary.render(tmp_path / "archive")
    assert "3 other file(s) in the input not read (README.txt, deeper/old.jsonl.bak, export.json)" in text
    assert ".jsonl, .jsonl.gz, .ndjson or .ndjson.gz" in text
    assert summary.as_dict()["unread_count"] == 3
    assert (summary.left_out_count, summary.left_out_files) == (2, ["_labels.jsonl", "d.jsonl.tmp"])
    assert "2 file(s) named like event files left out as bookkeeping (_labels.jsonl, d.jsonl.tmp)" in text
    # a folder of many other files: all counted, a few named
    for i in range(30):
        (src / "scans" / f"page{i:02}.png").parent.mkdir(exist_ok=True)
        (src / "scans" / f"page{i:02}.png").write_bytes(b"\x89PNG")
    again = ingest(src, tmp_path / "archive")
    assert (again.unread_count, len(again.unread_files)) == (33, 20)
    assert "33 other file(s) in the input not read (README.txt, deeper/old.jsonl.bak, export.json, ...)" in (
        again.render(tmp_path / "archive")
    )
    # a glob chooses its files itself: everything it matches is read
    globbed = ingest(Path(f"{src}/*.json"), tmp_path / "archive2")
    assert (globbed.sources, globbed.archived, globbed.unread_files) == (1, 1, [])


def test_a_folder_without_event_files_says_which_files_it_has(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_jsonl(tmp_path / "in" / "events.json", [event(1)])
    result = subprocess.run(
        [*VIGIL, "run", "--input", str(tmp_path / "in"), "--archive", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "No event files in" in result.stdout and "1 other file(s) in the input not read (events.json)" in (
        result.stdout
    )


def test_nothing_new_to_archive_still_names_the_files_it_does_not_read(tmp_path: Path) -> None:
    """Before, a run with every event file already archived said only "Nothing new": a new export
    named unlike an event file went unmentioned and the run looked complete."""
    src = tmp_path / "in"
    write_jsonl(src / "a.jsonl", [event(1)])
    command = [*VIGIL, "run", "--input", str(src), "--archive", str(tmp_path / "a")]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    write_jsonl(src / "day2.json", [event(2)])
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "Nothing new to archive" in again.stdout
    assert "1 other file(s) in the input not read (day2.json): event files end in" in again.stdout


def _refused_input(path: Path, archive: Path) -> subprocess.CompletedProcess[str]:
    """``vigil run --input PATH``, which must be refused in one line (exit 2) without an archive."""
    result = subprocess.run(
        [*VIGIL, "run", "--input", str(path), "--archive", str(archive)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not archive.exists()
    return result


def test_one_file_named_unlike_an_event_file_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.json", [event(1)])
    result = _refused_input(path, tmp_path / "a")
    assert "is not named like an event file" in result.stderr and "rename it" in result.stderr
    # the way round it the message gives works: every file a pattern matches is read
    pattern = result.stderr.split("is read: '")[1].split("'")[0]
    assert pattern == f"{tmp_path}/events.jso[n]"
    assert ingest(Path(pattern), tmp_path / "a").archived == 1


@pytest.mark.parametrize(
    ("name", "why", "instead"),
    [
        ("_labels.jsonl", "bookkeeping (a name starting with _ or .)", "labels.jsonl"),
        (".staged.jsonl", "bookkeeping (a name starting with _ or .)", "staged.jsonl"),
        ("day.jsonl.tmp", "still being written (.tmp)", "day.jsonl"),
    ],
)
def test_one_file_named_as_bookkeeping_is_refused_with_a_name_to_give_it(
    tmp_path: Path, name: str, why: str, instead: str
) -> None:
    # a folder's listing leaves such a file out; named on its own, it is refused, not read as nothing
    path = write_jsonl(tmp_path / name, [event(1)])
    result = _refused_input(path, tmp_path / "a")
    assert f"has a name Vigil leaves out as {why}" in result.stderr
    assert f"rename it (e.g. {instead}) and pass that" in result.stderr


def test_a_file_read_through_an_event_named_link_is_not_called_unread(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write_jsonl(src / "export.txt", [event(1)])
    (src / "feed.jsonl").symlink_to("export.txt")
    summary = ingest(src, tmp_path / "archive")
    assert (summary.sources, summary.archived, summary.unread_files) == (1, 1, [])


def test_an_appended_file_is_read_on_from_where_the_last_commit_stopped(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    path = write_jsonl(src / "log.jsonl", [event(i) for i in range(5)])
    assert ingest(src, archive).read == 5
    with path.open("ab") as f:
        f.write(line(event(5)) + line(event(6)) + b"{bad\n")
    summary = ingest(src, archive)
    assert (summary.read, summary.archived, summary.duplicates, summary.resumed_sources) == (3, 2, 0, 1)
    rows = reader.read_table(archive, columns=["source_offset"]).column(0).to_pylist()
    assert sorted(rows)[-1] == len(b"".join(line(event(i)) for i in range(6)))
    # a rewritten prefix: read from the start again, and de-duplication sorts it out
    path.write_bytes(line(event(100)) + path.read_bytes())
    redo = ingest(src, archive)
    assert (redo.resumed_sources, redo.read) == (0, 9)
    assert (redo.archived, redo.duplicates, redo.dead_lettered) == (1, 7, 1)


def test_entries_named_like_event_files_that_are_not_readable_files_are_named(tmp_path: Path) -> None:
    # a pipe would block the run for ever, a name that is not UTF-8 stopped Beam, and a link to
    # nothing was left out of the listing without a word: each is named, the rest is archived
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "good.jsonl", [event(1), event(2)])
    os.mkfifo(src / "pipe.jsonl")
    (src / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    with open(os.fsencode(src) + b"/caf\xe9.jsonl", "wb") as f:
        f.write(line(event(3)))
    summary = ingest(src, archive)
    assert (summary.read, summary.archived) == (2, 2) and summary.balanced
    assert summary.unreadable_count == 3
    assert summary.unreadable_files == [
        "caf\\xe9.jsonl (its name is not valid UTF-8, which the archive cannot record; rename it)",
        f"gone.jsonl (a link to {tmp_path / 'nowhere.jsonl'}, which does not exist)",
        "pipe.jsonl (not a regular file but a pipe, socket or device; Vigil reads files)",
    ]
    assert "3 event file(s) or folder(s) in the input could not be read: caf\\xe9.jsonl" in summary.render(
        archive
    )
    # nothing else to read: the command says what it skipped
    (src / "good.jsonl").unlink()
    result = subprocess.run(
        [*VIGIL, "run", "--input", str(src), "--archive", str(tmp_path / "other")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # all named, and the run exits 1: what is named like an event file could not be read
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "No event files" in result.stdout
        and "3 event file(s) or folder(s) in the input could not be read" in result.stdout
    )


def test_conflict_and_dlp_dead_letters_keep_the_original_line(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    original = line(event(1))
    conflict = line(event(1, body="the same id, other words"))
    write_jsonl(src / "a.jsonl", [original, conflict])
    summary = ingest(src, archive)
    assert summary.dead_letter_reasons == {"conflicting_duplicate": 1}
    (dead,) = _dead(archive)
    assert dead["raw"] == conflict.rstrip(b"\n")  # replayable as received, not a re-serialised row
    assert dead["source_offset"] == len(original)


def test_plain_pyarrow_and_duckdb_read_the_archive_folders_as_they_are(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1), event(2, channel="sms"), event(3, channel="line"), b"{bad\n"])
    ingest(src, archive)
    records = pq.read_table(archive / layout.RECORDS)
    assert records.num_rows == 3
    assert sorted(records.column("channel").to_pylist()) == ["line", "sms", "whatsapp"]
    assert pq.read_table(archive / layout.DEAD_LETTERS).column("stage").to_pylist() == ["ingest"]
    rows = duckdb.sql(
        f"SELECT channel, event_month FROM read_parquet('{archive}/records/**/*.parquet', "
        "hive_partitioning=1) ORDER BY channel"
    ).fetchall()
    assert rows == [("line", "2026-01"), ("sms", "2026-01"), ("whatsapp", "2026-01")]


def _vigil(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*VIGIL, *argv], capture_output=True, text=True, timeout=300)


def test_out_of_range_options_are_refused_before_anything_is_read(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1)])
    base = ["run", "--input", str(tmp_path / "in"), "--archive", str(tmp_path / "a")]
    for option, value in [
        ("--max-line-bytes", "-1"),
        ("--max-line-bytes", "0"),
        ("--max-body-chars", "-1"),
        ("--future-skew-minutes", "-60"),
        ("--interval", "-1"),
        ("--stop-after-idle", "0"),
    ]:
        result = _vigil(*base, option, value)
        assert result.returncode == 2 and "is not in the range" in result.stderr, (option, result.stderr)
    assert not (tmp_path / "a").exists()  # nothing was read, nothing was marked consumed


def test_runner_and_option_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1)])
    base = ["run", "--input", str(tmp_path / "in"), "--archive", str(tmp_path / "a")]
    cases = [
        (["--runner", "Bogus"], "--runner Bogus is not a Beam runner"),
        (["--follw"], "unknown option(s) --follw"),
        (
            ["--runner", "FlinkRunner", "--flink_master=127.0.0.1:9", "--environment_type=LOOPBACK"],
            "--flink_master=127.0.0.1:9 does not answer",
        ),
        (["--follow", "--stop-after-idle", "1", "--runner", "Bogus"], "--runner Bogus is not a Beam runner"),
        # a job server that does not answer: one line at once (Beam would wait five minutes)
        (
            ["--runner", "PortableRunner", "--job_endpoint=127.0.0.1:9"],
            "--job_endpoint=127.0.0.1:9 does not answer",
        ),
        # another runner's options without --runner: the embedded runner would ignore them
        (
            ["--flink_master=127.0.0.1:9"],
            "option --flink_master is for FlinkRunner, but no --runner is given",
        ),
        (
            ["--job_endpoint", "127.0.0.1:9", "--spark_master_url=spark://h:7077"],
            "options --job_endpoint, --spark_master_url are for PortableRunner / SparkRunner",
        ),
        # values Beam takes on the command line and then fails on deep inside the run
        (["--direct_num_workers=-3"], "--direct_num_workers=-3: give a number of workers"),
        (["--performance_runtime_type_check"], "stop Beam on its own steps' outputs"),
        (["--type_check_strictness=ALL_REQUIRED"], "stop Beam on its own steps' outputs"),
        (["--runner", "PortableRunner"], "--runner PortableRunner needs --job_endpoint=HOST:PORT"),
        (["--runner", "PrismRunner", "--prism_location=/nonexistent/prism"], "no such file"),
    ]
    if importlib.util.find_spec("dill") is None:
        cases.append((["--pickle_library=dill"], "needs Beam's dill extra, which is not installed"))
    for extra, message in cases:
        result = _vigil(*base, *extra)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a").exists()  # refused before the archive folder was made


def test_a_manifest_line_that_is_not_an_object_is_named_not_a_traceback(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1)])
    ingest(src, archive)
    write_jsonl(src / "b.jsonl", [event(2)])
    ingest(src, archive)
    manifest = archive / layout.MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(lines[0] + b"[]\n" + b"".join(lines[2:]))
    verify = _vigil("verify", "--archive", str(archive))
    assert verify.returncode == 1 and "not a JSON object" in verify.stderr
    run = _vigil("run", "--input", str(src), "--archive", str(archive), "--quiet")
    assert run.returncode == 3 and "line 2 is not a JSON object" in run.stderr
    assert "Traceback" not in verify.stderr + run.stderr


def test_run_with_an_unreachable_elasticsearch_archives_anyway(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1), event(2)])
    archive = tmp_path / "a"
    result = _vigil(
        "run", "--input", str(tmp_path / "in"), "--archive", str(archive), "--quiet",
        "--es-url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("warning: Elasticsearch is not usable")
    assert (
        "Elasticsearch unreachable: nothing indexed; run `vigil es index --archive "
        f"{shlex.quote(str(archive))} --role officer --es-url http://127.0.0.1:9` when it is back"
        in result.stdout
    )
    assert reader.read_table(archive).num_rows == 2


def test_simulate_warns_when_its_days_reach_past_now(tmp_path: Path) -> None:
    result = _vigil("simulate", "--out", str(tmp_path / "ev"), "--days", "1", "--start", "2999-01-01")
    assert result.returncode == 0
    assert "will dead-letter those events as future_timestamp" in result.stderr
    quiet = _vigil("simulate", "--out", str(tmp_path / "ok"), "--days", "1", "--start", "2020-01-01")
    assert "future_timestamp" not in quiet.stderr


def test_a_last_line_without_its_newline_is_read_again_whole_once_the_file_grows(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    path = src / "log.jsonl"
    src.mkdir()
    whole = line(event(2))
    path.write_bytes(line(event(1)) + whole[:40])  # the writer is in the middle of a line
    first = ingest(src, archive)
    assert (first.archived, first.dead_letter_reasons) == (1, {"malformed_json": 1})
    with path.open("ab") as f:
        f.write(whole[40:])
    second = ingest(src, archive)
    assert (second.resumed_sources, second.read, second.archived) == (1, 1, 1)
    assert reader.read_table(archive).num_rows == 2


def test_a_dlp_failure_dead_letter_keeps_the_original_line(tmp_path: Path, monkeypatch) -> None:
    from pipelines.dlp.engine import Engine

    real_many = Engine.inspect_many

    def fragile(self, items):  # the pipeline retries a failed batch one text at a time
        if any("BOOM" in text for text, _ in items):
            raise RuntimeError("simulated engine failure")
        return real_many(self, items)

    monkeypatch.setattr(Engine, "inspect_many", fragile)
    src = tmp_path / "in"
    failing = line(event(2, body="BOOM goes the engine"))
    write_jsonl(src / "a.jsonl", [event(1), failing])
    summary = ingest(src, tmp_path / "archive")
    assert (summary.archived, summary.dead_letter_reasons) == (1, {"dlp_failed": 1})
    (dead,) = _dead(tmp_path / "archive")
    assert dead["raw"] == failing.rstrip(b"\n")


def test_a_file_removed_between_listing_and_reading_is_reported_and_the_rest_archived(
    tmp_path: Path, monkeypatch
) -> None:
    # the race a busy drop folder has: listed, then moved away by another job before it is opened
    src, archive = tmp_path / "in", tmp_path / "archive"
    write_jsonl(src / "a.jsonl", [event(1), event(2)])
    write_jsonl(src / "b.jsonl", [event(3)])
    listed = run_module.list_input

    def list_then_remove(*args, **kwargs):
        listing = listed(*args, **kwargs)
        if (archive / "_lock").exists():  # the listing the run reads from (not the check before it)
            (src / "b.jsonl").unlink()
        return listing

    monkeypatch.setattr(run_module, "list_input", list_then_remove)
    summary = ingest(src, archive)
    assert (summary.sources, summary.read, summary.archived, summary.vanished_files) == (2, 2, 2, 1)
    assert summary.balanced
    assert "1 file(s) removed from the input after they were listed" in summary.render(archive)
    consumed = load_state(archive).consumed_sources()
    assert [Path(name).name for name in consumed] == ["a.jsonl"]  # b is read if it comes back
    monkeypatch.setattr(run_module, "list_input", listed)
    write_jsonl(src / "b.jsonl", [event(3)])
    again = ingest(src, archive)
    assert (again.read, again.archived, again.vanished_files) == (1, 1, 0)


def test_a_folder_or_file_with_glob_characters_in_its_name_is_read_as_named(tmp_path: Path) -> None:
    # "in[1]" exists, so it is that folder, not a pattern matching "in1"
    src = tmp_path / "drop [1] *"
    write_jsonl(src / "a.jsonl", [event(1)])
    write_jsonl(src / "deeper?" / "b[2].jsonl", [event(2)])
    write_jsonl(src / "notes.txt", [event(3)])
    summary = ingest(src, tmp_path / "archive")
    assert (summary.sources, summary.archived, summary.unread_files) == (2, 2, ["notes.txt"])
    one = ingest(src / "deeper?" / "b[2].jsonl", tmp_path / "other")
    assert (one.sources, one.archived) == (1, 1)
    # a pattern is still a pattern when no such path exists
    assert ingest(tmp_path / "drop*" / "a.jsonl", tmp_path / "third").archived == 1


def test_only_json_white_space_makes_a_blank_line(tmp_path: Path) -> None:
    # a form feed or vertical tab is not white space to JSON: such a line is refused, not skipped
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1), b" \t\r\n", b"\x0c\n", b"\x0b \n"])
    summary = ingest(tmp_path / "in", tmp_path / "archive")
    assert (summary.read, summary.blank_lines, summary.archived) == (3, 1, 1)
    assert summary.dead_letter_reasons == {"malformed_json": 2} and summary.balanced


def test_a_pipe_given_as_the_input_is_refused_and_named(tmp_path: Path) -> None:
    # inside a folder a pipe is named and skipped; given on its own it was "no event files", exit 0
    fifo = tmp_path / "in" / "fifo.jsonl"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    for given in (str(fifo), "/dev/stdin"):
        result = subprocess.run(
            [*VIGIL, "run", "--input", given, "--archive", str(tmp_path / "archive")],
            input=line(event(1)),
            capture_output=True,
            timeout=120,
        )
        err = result.stderr.decode()
        assert result.returncode == 2, err
        assert err.startswith(f"error: input {given} is a pipe, not a file or folder"), err
        assert err.count("\n") == 1  # one line
        assert "write the events to a file first" in err
    assert not (tmp_path / "archive").exists()


def test_a_link_that_loops_is_named_as_a_loop_not_as_missing(tmp_path: Path) -> None:
    # before: "a link to loop.jsonl, which does not exist", although the name is right there
    src = tmp_path / "in"
    write_jsonl(src / "good.jsonl", [event(1)])
    (src / "loop.jsonl").symlink_to("loop.jsonl")
    (src / "a.jsonl").symlink_to("b.jsonl")  # round two links
    (src / "b.jsonl").symlink_to("a.jsonl")
    summary = ingest(src, tmp_path / "archive")
    assert (summary.archived, summary.unreadable_count) == (1, 3) and summary.balanced
    loops = "which loops (ELOOP): it leads back round to itself, never to a file"
    assert summary.unreadable_files == [
        f"a.jsonl (a link to b.jsonl, {loops})",
        f"b.jsonl (a link to a.jsonl, {loops})",
        f"loop.jsonl (a link to loop.jsonl, {loops})",
    ]


def test_a_glob_reads_every_file_it_matches_and_names_a_link_to_nothing(tmp_path: Path, monkeypatch) -> None:
    # Beam's matching stops `*` at a backslash and drops what it cannot stat: both vanished
    src = tmp_path / "in"
    write_jsonl(src / "ok.jsonl", [event(1)])
    write_jsonl(src / "a\\b.jsonl", [event(2)])
    (src / "gone.jsonl").symlink_to("/nonexistent/day.jsonl")
    (src / "_bookkeeping.jsonl").symlink_to("/nonexistent/other.jsonl")  # skipped, as in a folder
    gone = "gone.jsonl (a link to /nonexistent/day.jsonl, which does not exist)"
    monkeypatch.chdir(tmp_path)
    for n, given in enumerate(["in/*.jsonl", str(src / "*.jsonl"), "in/**"]):
        summary = ingest(Path(given), tmp_path / f"archive{n}")
        assert (summary.sources, summary.read, summary.archived) == (2, 2, 2) and summary.balanced, given
        assert summary.unreadable_files == [gone], given
    folder = ingest(src, tmp_path / "from-the-folder")  # the same as the folder's own listing
    assert (folder.archived, folder.unreadable_files) == (2, [gone])
    # the pattern still matches only what it says
    only = ingest(Path("in/a*.jsonl"), tmp_path / "only")
    assert (only.archived, only.unreadable_files) == (1, [])


def test_a_crash_hole_of_nul_bytes_is_one_dead_letter_that_says_how_to_recover(tmp_path: Path) -> None:
    # what a crash leaves in a log file: NUL bytes up to where the next write landed
    hole = b"\x00" * 4096
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(line(event(1)) + hole + line(event(2)))
    summary = ingest(tmp_path / "in", tmp_path / "archive")
    assert (summary.read, summary.archived, summary.dead_letter_reasons) == (2, 1, {"malformed_json": 1})
    (dead,) = _dead(tmp_path / "archive")
    assert "starts with 4,096 NUL byte(s)" in dead["reason"] and "tr -d '\\000'" in dead["reason"]
    assert "UTF-16" not in dead["reason"]
    assert dead["raw"] == hole + line(event(2)).rstrip(b"\n")  # as it came: replayable once repaired


def test_a_linked_event_file_is_judged_by_its_own_name_and_read_once(tmp_path: Path) -> None:
    src, other = tmp_path / "in", tmp_path / "other"
    write_jsonl(other / "export.txt", [event(1)])
    write_jsonl(other / "_staging.jsonl", [event(2)])
    src.mkdir()
    (src / "a.jsonl").symlink_to(other / "export.txt")  # named like an event file: read
    (src / "b.jsonl").symlink_to(other / "_staging.jsonl")  # the target's "_" is not the input's
    (src / "again.jsonl").symlink_to(other / "export.txt")  # the same file under another name
    (src / "notes.txt").symlink_to(other / "_staging.jsonl")  # another name of a file read: not unread
    (src / "readme.txt").symlink_to(other / "export.txt.bak")  # a file no event name leads to: unread
    (other / "export.txt.bak").write_text("notes")
    summary = ingest(src, tmp_path / "archive")
    assert (summary.sources, summary.archived, summary.unread_files) == (2, 2, ["readme.txt"])
    assert sorted(Path(n).name for n in load_state(tmp_path / "archive").consumed_sources()) == [
        "_staging.jsonl",
        "export.txt",
    ]


def _run_json(src: Path, archive: Path) -> dict:
    import json

    result = subprocess.run(
        [
            *as_another_user(),
            *VIGIL,
            "run",
            "--input",
            str(src),
            "--archive",
            str(archive),
            "--quiet",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(result.stdout)
    # exit 1 while something named like an event file could not be read, 0 once all of it was
    assert result.returncode == (1 if summary["unreadable_files"] else 0), result.stderr
    assert "Traceback" not in result.stderr and summary["input_incomplete"] == bool(
        summary["unreadable_files"]
    )
    return summary


def test_a_file_or_folder_the_user_may_not_read_is_named_and_read_once_it_may(tmp_path: Path) -> None:
    import shutil

    base = shared_tmp()
    try:
        src = base / "in"
        write_jsonl(src / "good.jsonl", [event(1), event(2)])
        write_jsonl(src / "secret.jsonl", [event(3)])
        write_jsonl(src / "locked" / "c.jsonl", [event(4)])
        if os.geteuid() == 0:
            for path in (
                src,
                src / "good.jsonl",
                src / "secret.jsonl",
                src / "locked",
                src / "locked" / "c.jsonl",
            ):
                os.chown(path, NOBODY, NOBODY)
        (src / "secret.jsonl").chmod(0)
        (src / "locked").chmod(0)
        first = _run_json(src, base / "archive")
        assert (first["read"], first["archived"], first["balanced"]) == (2, 2, True)
        assert sorted(first["unreadable_files"]) == [
            "locked/ (a folder the user running Vigil cannot list (Permission denied): nothing in it "
            "was read; fix its permissions and run again)",
            "secret.jsonl (the user running Vigil may not read it: fix its permissions and run again)",
        ]
        (src / "secret.jsonl").chmod(0o644)
        (src / "locked").chmod(0o755)
        second = _run_json(src, base / "archive")
        assert (second["read"], second["archived"], second["duplicates"]) == (2, 2, 0)
        assert second["unreadable_files"] == []
    finally:
        for folder, _, _ in os.walk(base):
            os.chmod(folder, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_a_file_that_cannot_be_read_when_its_turn_comes_is_one_dead_letter(tmp_path: Path) -> None:
    from pipelines.ingest.transforms import _ReadLines

    folder = tmp_path / "looks-like.jsonl"  # opening it fails with an OSError, as root too
    folder.mkdir()
    (out,) = list(_ReadLines(1 << 20).process((str(folder), 0, False)))
    assert out.problem[0] == "unreadable_file"
    assert "cannot read the file after 0 bytes" in out.problem[1] and "run again" in out.problem[1]


def test_links_to_folders_are_followed_each_real_folder_once(tmp_path: Path) -> None:
    src, exports = tmp_path / "in", tmp_path / "exports"
    write_jsonl(src / "a.jsonl", [event(1)])
    write_jsonl(exports / "2026" / "day.jsonl", [event(2), event(3)])
    write_jsonl(exports / "2026" / "deeper" / "more.jsonl", [event(4)])
    (src / "2026").symlink_to(exports / "2026")
    (src / "again").symlink_to(exports / "2026")  # a second name for the same folder
    (exports / "2026" / "loop").symlink_to(src)  # a loop back to the input
    write_jsonl(exports / "2026" / "_labels" / "l.jsonl", [event(5)])  # bookkeeping, as anywhere
    summary = ingest(src, tmp_path / "archive")
    assert (summary.sources, summary.read, summary.archived, summary.duplicates) == (3, 4, 4, 0)
    assert summary.unreadable_files == [] and summary.balanced


def test_a_last_line_without_its_line_end_is_read_once_when_the_file_grows(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    src.mkdir()
    path = src / "f.jsonl"
    path.write_bytes(line(event(1)) + line(event(2)).rstrip(b"\n"))
    assert ingest(src, archive).archived == 2
    with path.open("ab") as f:
        f.write(b"\n" + line(event(3)))
    again = ingest(src, archive)
    assert (again.read, again.archived, again.duplicates) == (1, 1, 0)
    # a last line cut short is read again once finished, not lost
    with path.open("ab") as f:
        f.write(line(event(4))[:20])
    third = ingest(src, archive)
    assert third.dead_letter_reasons == {"malformed_json": 1}
    with path.open("ab") as f:
        f.write(line(event(4))[20:])
    fourth = ingest(src, archive)
    assert (fourth.read, fourth.archived) == (1, 1)


def _altered_gzip(items: list, old: bytes, new: bytes, *, members: int = 1) -> bytes:
    """A gzip file of ``members`` members (stored, not compressed, so the text can be found) in
    which ``old`` was changed into ``new`` after compression, in its last member (the earlier ones
    intact): it decompresses, but fails the checksum."""
    parts = [items[i::members] for i in range(members)]
    data = [gzip.compress(b"".join(line(i) for i in part), compresslevel=0) for part in parts]
    assert data[-1].count(old) == 1
    data[-1] = data[-1].replace(old, new)
    return b"".join(data)


@pytest.mark.parametrize("members", [1, 2])
def test_a_gzip_file_altered_after_compression_is_refused_whole(tmp_path: Path, members: int) -> None:
    """Before, its lines were archived as they streamed, and the checksum failure at the member's
    end came too late: "900 USD" became the record, and the intact file sent again a conflict."""
    src, archive = tmp_path / "in", tmp_path / "archive"
    items = [event(1, body="thanks"), event(2, body="please transfer 100 USD today")]
    (src).mkdir()
    (src / "day.jsonl.gz").write_bytes(_altered_gzip(items, b"100 USD", b"900 USD", members=members))
    summary = ingest(src, archive)
    assert summary.balanced and summary.archived == 0
    assert summary.dead_letter_reasons == {"unreadable_file": 1}
    (dead,) = _dead(archive)
    assert "fails its gzip check (CRC check failed" in dead["reason"]
    assert "none was archived" in dead["reason"]
    assert dead["source_offset"] == 0
    # the intact copy put in its place is archived whole, with no conflict
    _gz(src / "day.jsonl.gz", items)
    again = ingest(src, archive)
    assert (again.archived, again.dead_lettered, again.duplicates) == (2, 0, 0)
    bodies = sorted(r["body"] for r in reader.read_table(archive, layout.RECORDS).to_pylist())
    assert bodies == ["please transfer 100 USD today", "thanks"]


@pytest.mark.parametrize("name", ["export.jsonl", "export.ndjson"])
def test_a_gzip_file_named_as_text_is_one_dead_letter_that_says_rename_it(tmp_path: Path, name: str) -> None:
    """Before, its compressed bytes were read as text: one dead letter per stretch between 0x0A
    bytes, as invalid UTF-8 or with a NUL hint whose advice would have ruined the file."""
    src, archive = tmp_path / "in", tmp_path / "archive"
    items = [event(i, body=f"message {i}") for i in range(40)]
    src.mkdir()
    (src / name).write_bytes(gzip.compress(b"".join(line(i) for i in items)))
    summary = ingest(src, archive)
    assert summary.balanced and (summary.read, summary.archived) == (1, 0)
    assert summary.dead_letter_reasons == {"unreadable_file": 1}
    (dead,) = _dead(archive)
    assert f"rename it to {name}.gz" in dead["reason"] and dead["source_offset"] == 0
    # renamed as told, it is archived whole, once
    (src / name).rename(src / f"{name}.gz")
    again = ingest(src, archive)
    assert (again.archived, again.dead_lettered, again.duplicates) == (40, 0, 0)
