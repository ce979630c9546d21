"""Archives that outlive a schema version: files an older Vigil wrote (schema 1, before the DLP
columns) and files a newer one wrote (a higher version, a column this Vigil does not know).

Each archive here is built as the other Vigil would have left it: its files committed through the
manifest (so ``vigil verify`` finds it intact), their Parquet metadata naming their version.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import event, write_jsonl
from fakes.es_server import FakeElasticsearch
from helpers import ingest
from search_support import vigil

from pipelines.archive import layout, reader, writer
from pipelines.archive.compact import compact
from pipelines.archive.verify import verify
from pipelines.errors import ArchiveError
from pipelines.record import ARROW_SCHEMA, SCHEMA_VERSION, parties_of

#: what schema 2 added; a schema 1 file has every other column
DLP_COLUMNS = ["dlp_action", "dlp_rule_ids", "dlp_findings", "dlp_policy", "blocked", "body_redacted"]
CARD = "card 4012 8888 8888 1881 exp 12/29"


def written_by(version: int, table: pa.Table) -> pa.Table:
    """``table`` (current schema) as a Vigil of schema ``version`` writes it: version 1 without the
    DLP columns, a newer one with a column added (a review state)."""
    if version == 1:
        table = table.drop_columns(DLP_COLUMNS)
    elif version > SCHEMA_VERSION:
        table = table.append_column("review_state", pa.array(["open"] * table.num_rows))
    position = table.schema.get_field_index("schema_version")
    table = table.set_column(
        position, table.schema.field(position), pa.array([version] * table.num_rows, pa.int16())
    )
    return table.replace_schema_metadata({"vigil.schema_version": str(version), "vigil.record": "Record"})


def commit_as(root: Path, table: pa.Table, rel: str) -> None:
    """Commit ``table`` at ``rel`` (a path with ``{commit}`` in it) as that Vigil's writer would."""
    commit = layout.new_commit_id()
    rel = rel.format(commit=commit)
    staged = writer.stage_table(root, commit, rel, layout.RECORDS, table)
    writer.commit(root, commit, [staged], action="ingest")


def archive_begun_by(version: int, tmp_path: Path) -> Path:
    """An archive whose first run was made by the Vigil of schema ``version``: three WhatsApp
    messages of January 2026 (one with a card number) in one file of that version."""
    made = tmp_path / "made-now"
    events: list[dict[str, Any] | bytes] = [event(0), event(1, body=CARD), event(2)]
    ingest(write_jsonl(tmp_path / "in-old" / "a.jsonl", events).parent, made)
    (only,) = reader.live_files(made)
    root = tmp_path / f"archive-v{version}"
    root.mkdir()
    table = written_by(version, pq.read_table(made / only.path))
    commit_as(root, table, only.path.replace(only.commit, "{commit}"))
    return root


def append_now(root: Path, tmp_path: Path) -> None:
    """A run of this Vigil into the same partition (WhatsApp, January 2026)."""
    new: list[dict[str, Any] | bytes] = [
        event(10, body="settlement confirmed"),
        event(11, body=f"again: {CARD}"),
    ]
    assert ingest(write_jsonl(tmp_path / "in-new" / "b.jsonl", new).parent, root).committed


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = vigil(*argv)
    out, err = capsys.readouterr()
    return code, out, err


def verdicts(root: Path) -> list[tuple[str, int, str | None]]:
    table = reader.read_table(root, columns=["record_id", "schema_version", "dlp_action"])
    return sorted((r["record_id"], r["schema_version"], r["dlp_action"]) for r in table.to_pylist())


# ------------------------------------------------------------------------------------------------
# an archive begun by schema 1


def test_an_archive_begun_by_schema_1_is_read_searched_and_appended_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = archive_begun_by(1, tmp_path)
    append_now(root, tmp_path)
    assert verify(root).ok
    rows = sorted(reader.iter_rows(root), key=lambda r: r["event_id"])
    assert [(r["schema_version"], r["dlp_action"]) for r in rows] == [
        (1, None), (1, None), (1, None), (2, "none"), (2, "redact"),
    ]  # fmt: skip
    search = ["search", "--archive", str(root), "--role", "officer"]
    code, out, _ = run_cli(capsys, *search, "quarterly OR settlement")
    assert code == 0 and "3 hits" in out
    code, out, _ = run_cli(capsys, *search, "dlp:none")
    assert code == 0 and "1 hit " in out  # a schema 1 record has no verdict, not the verdict "none"
    code, out, _ = run_cli(capsys, "conversation", "conv-1", "--archive", str(root), "--role", "officer")
    assert code == 0 and "5 records" in out
    code, out, _ = run_cli(
        capsys, "dlp", "dry-run", "--role", "officer", "--archive", str(root), "--policy", "dlp_rules"
    )
    assert code == 0 and "5 message(s) replayed" in out


#: An archive the Vigil of commit fa0d3e6 (schema 2, before records carried ``parties``) wrote
#: from two WhatsApp messages: its files as that code left them, not rebuilt from today's tables.
WRITTEN_BY_FA0D3E6 = Path(__file__).parent / "fixtures" / "archive_written_by_fa0d3e6"


def test_participant_search_finds_records_written_before_they_carried_parties(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "archive"
    shutil.copytree(WRITTEN_BY_FA0D3E6, root)
    (old_file,) = reader.live_files(root)
    assert "parties" not in pq.read_schema(root / old_file.path).names
    assert verify(root).ok
    search = ["search", "--archive", str(root), "--role", "officer", "--json"]
    for who in ("participant:emp-1", 'participant:"Wei Zhang"', "participant:+1-212-555-0101"):
        code, out, _ = run_cli(capsys, *search, who)
        assert code == 0 and len(out.splitlines()) == 2, who
    # beside files of today's Vigil (the sources are unioned by name)
    append_now(root, tmp_path)
    code, out, _ = run_cli(capsys, *search, "participant:emp-1")
    assert code == 0 and len(out.splitlines()) == 4
    code, out, _ = run_cli(capsys, *search, "participant:nobody-here")
    assert code == 0 and out == ""
    # the reader (what `vigil es index` sends) derives them as ingest does today
    rows = list(reader.iter_rows(root))
    assert len(rows) == 4
    for row in rows:
        assert row["parties"] == parties_of(row) and "emp-1" in row["parties"]
    (only,) = reader.read_file(root / old_file.path, columns=["parties"]).column_names
    assert only == "parties"


def test_compacting_schema_1_and_schema_2_files_gives_one_current_file(tmp_path: Path) -> None:
    """Before: the merged table claimed the current schema's required DLP columns while holding
    the old rows' nulls, and writing it failed (``unexpected ArrowInvalid``)."""
    root = archive_begun_by(1, tmp_path)
    append_now(root, tmp_path)
    before = verdicts(root)
    report = compact(root)
    assert (report.files_before, report.files_after) == (2, 1)
    assert verify(root).ok
    assert verdicts(root) == before  # old rows keep "no verdict"; new ones keep theirs
    (merged,) = reader.live_paths(root)
    schema = pq.read_schema(merged)
    assert schema.metadata == ARROW_SCHEMA.metadata  # says which version it holds
    assert schema.names == ARROW_SCHEMA.names
    assert pq.read_table(merged).num_rows == 5


def test_a_compacted_file_keeps_the_schema_version_in_its_metadata(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    for n in range(2):
        ingest(write_jsonl(tmp_path / f"in-{n}" / "a.jsonl", [event(n)]).parent, root)
    compact(root)
    (merged,) = reader.live_paths(root)
    assert pq.read_schema(merged).metadata[b"vigil.schema_version"] == str(SCHEMA_VERSION).encode()


def test_duckdb_and_pyarrow_read_a_mixed_archive_whole_as_the_readme_says(tmp_path: Path) -> None:
    root = archive_begun_by(1, tmp_path)
    append_now(root, tmp_path)
    files = f"read_parquet('{root}/records/**/*.parquet', union_by_name = true)"
    counted = duckdb.connect().execute(f"SELECT dlp_action, count(*) FROM {files} GROUP BY ALL ORDER BY ALL")
    assert counted.fetchall() == [("none", 1), ("redact", 1), (None, 3)]
    table = pq.read_table(root / "records", schema=ARROW_SCHEMA)
    assert Counter(table.column("dlp_action").to_pylist()) == {None: 3, "none": 1, "redact": 1}


# ------------------------------------------------------------------------------------------------
# an archive a newer Vigil wrote into

NEWER = SCHEMA_VERSION + 1


def newer_archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    ingest(write_jsonl(tmp_path / "in-now" / "a.jsonl", [event(0)]).parent, root)
    made = archive_begun_by(NEWER, tmp_path)  # a later run, by the newer Vigil
    (theirs,) = reader.live_files(made)
    commit_as(root, pq.read_table(made / theirs.path), theirs.path.replace(theirs.commit, "{commit}"))
    assert len(reader.live_files(root)) == 2
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and layout.LOCK not in p.parts and p.suffix != ".lock"
    }


def test_compact_refuses_files_a_newer_vigil_wrote_instead_of_dropping_their_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: compaction conformed them to this Vigil's schema, so the merged file lacked
    ``review_state`` and the originals were deleted; `vigil verify` then found nothing wrong."""
    root = newer_archive(tmp_path)
    before = snapshot(root)
    code, _, err = run_cli(capsys, "compact", "--archive", str(root))
    assert code == 3
    (line,) = err.strip().splitlines()
    assert f"written by a newer Vigil (record schema {NEWER} and column(s) review_state" in line
    assert "upgrade Vigil" in line and "Traceback" not in err
    assert snapshot(root) == before
    assert not any((root / layout.STAGING).glob("*/**/*.parquet"))


def test_vigil_run_refuses_to_write_into_an_archive_a_newer_vigil_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = newer_archive(tmp_path)
    before = snapshot(root)
    src = write_jsonl(tmp_path / "in-later" / "c.jsonl", [event(20)]).parent
    code, _, err = run_cli(capsys, "run", "--input", str(src), "--archive", str(root))
    assert code == 3
    (line,) = err.strip().splitlines()
    assert line.startswith("error: records/event_month=2026-01/ch=whatsapp/part-")
    assert f"newer Vigil (record schema {NEWER}" in line and "nothing was changed" in line
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "--archive", "ARCHIVE", "--role", "officer", "quarterly"],
        ["search", "--archive", "ARCHIVE", "--role", "reviewer", "channel:whatsapp"],
        ["conversation", "conv-1", "--archive", "ARCHIVE", "--role", "officer"],
        ["dlp", "dry-run", "--role", "officer", "--archive", "ARCHIVE", "--policy", "dlp_rules"],
    ],
    ids=["search", "search-reviewer", "conversation", "dlp-dry-run"],
)
def test_readers_refuse_files_a_newer_vigil_wrote_and_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Before: they read the files as this Vigil's schema, silently leaving out what it does not
    know (a newer schema may also have changed what a column holds)."""
    root = newer_archive(tmp_path)
    code, out, err = run_cli(capsys, *(str(root) if a == "ARCHIVE" else a for a in argv))
    assert code == 3, out
    (line,) = err.strip().splitlines()
    assert f"written by a newer Vigil (record schema {NEWER}" in line and "upgrade Vigil" in line


def test_the_reader_api_refuses_them_too(tmp_path: Path) -> None:
    root = newer_archive(tmp_path)
    newer = f"newer Vigil \\(record schema {NEWER} and column\\(s\\) review_state"
    with pytest.raises(ArchiveError, match=newer):
        reader.read_table(root)
    with pytest.raises(ArchiveError, match="newer Vigil"):
        list(reader.iter_rows(root, columns=["record_id"]))  # even for columns both know


def test_es_index_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], es_server: FakeElasticsearch
) -> None:
    root = newer_archive(tmp_path)
    url = es_server.url
    assert run_cli(capsys, "es", "setup", "--es-url", url, "--replicas", "0")[0] == 0
    code, _, err = run_cli(
        capsys, "es", "index", "--role", "officer", "--archive", str(root), "--es-url", url, "--quiet"
    )
    assert code == 3 and "newer Vigil" in err
    assert es_server.docs() == {}


def test_verify_checks_files_a_newer_vigil_wrote_and_notes_them(tmp_path: Path) -> None:
    root = newer_archive(tmp_path)
    report = verify(root)
    assert report.ok and report.files_checked == 2
    (note,) = [n for n in report.notes if "newer Vigil" in n]
    assert note.startswith(f"1 file(s) were written by a newer Vigil (record schema {NEWER}")


def test_a_file_without_version_metadata_is_read_as_this_vigils(tmp_path: Path) -> None:
    """Files compacted before compaction kept the metadata name no version: they are read."""
    root = tmp_path / "archive"
    ingest(write_jsonl(tmp_path / "in" / "a.jsonl", [event(0)]).parent, root)
    (only,) = reader.live_files(root)
    table = pq.read_table(root / only.path).replace_schema_metadata(None)
    shutil.rmtree(root)
    root.mkdir()
    commit_as(root, table, only.path.replace(only.commit, "{commit}"))
    assert reader.read_table(root).num_rows == 1
    assert verify(root).ok


@pytest.mark.parametrize(
    ("when", "month"),
    [
        ("2026-01-31T23:59:59.999999+00:00", "2026-01"),
        ("2026-02-01T00:00:00+00:00", "2026-02"),
        ("2026-02-01T07:30:00+08:00", "2026-01"),  # still 31 January in UTC
        ("1970-01-01T00:00:00+00:00", "1970-01"),
        ("1969-12-31T23:59:59.999999+00:00", "1969-12"),  # before the epoch: negative micros
        ("0001-01-01T00:00:00+00:00", "0001-01"),
        ("9999-12-31T23:59:59.999999+00:00", "9999-12"),
    ],
)
def test_a_row_is_partitioned_by_the_utc_month_of_its_event_time(when: str, month: str) -> None:
    import datetime as dt

    from pipelines.record import event_month, to_micros

    assert event_month({"event_time": to_micros(dt.datetime.fromisoformat(when))}) == month


def test_a_column_this_vigil_does_not_know_under_a_version_it_does_is_refused_and_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: search and conversation showed the rows without the column, and verify said
    nothing; compact and the reader API already refused."""
    root = tmp_path / "archive"
    ingest(write_jsonl(tmp_path / "in-now" / "a.jsonl", [event(0)]).parent, root)
    made = archive_begun_by(SCHEMA_VERSION, tmp_path)
    (theirs,) = reader.live_files(made)
    table = pq.read_table(made / theirs.path)
    table = table.append_column("review_state", pa.array(["open"] * table.num_rows))
    commit_as(root, table, theirs.path.replace(theirs.commit, "{commit}"))
    for argv in (
        ["search", "--archive", str(root), "--role", "officer", "quarterly"],
        ["conversation", "conv-1", "--archive", str(root), "--role", "officer"],
    ):
        code, out, err = run_cli(capsys, *argv)
        assert code == 3, out
        (line,) = err.strip().splitlines()
        assert "written by a newer Vigil (column(s) review_state" in line and "upgrade Vigil" in line
    report = verify(root)
    assert report.ok
    (note,) = [n for n in report.notes if "columns this Vigil does not know" in n]
    assert "(review_state)" in note
