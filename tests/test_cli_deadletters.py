"""``vigil deadletters``: listing the lines the archive refused, and putting them back corrected.

The archive is a real one: simulated traffic with planted faults, archived by the ingest pipeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from factories import event, write_jsonl
from helpers import NOW, ingest

from pipelines.archive import deadletters, layout, reader
from pipelines.archive.verify import verify
from pipelines.cli import main
from pipelines.record import record_id_for
from pipelines.simulate import SimulationConfig, simulate

WORLD = SimulationConfig(days=2, seed=7, employees=4, contacts=20, inject_pii=True, inject_faults=0.03)
#: what the archive keeps of a payload (``pipelines.ingest.lines.RAW_KEEP_BYTES``)
KEPT = 64 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """(input folder, archive, the run's report as `_runs/<commit>.json` keeps it)."""
    base = tmp_path_factory.mktemp("deadletters")
    simulate(WORLD, base / "events")
    summary = ingest(base / "events", base / "archive")
    report = json.loads((base / "archive" / layout.RUNS / f"{summary.commit}.json").read_text())
    return base / "events", base / "archive", report["summary"]


@pytest.fixture
def own(world, tmp_path) -> Path:
    """A copy of the archive that a test may add to."""
    _, archive, _ = world
    shutil.copytree(archive, tmp_path / "archive")
    return tmp_path / "archive"


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    """``vigil ARGV``: (exit code, stdout, stderr)."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _officer(archive: Path, *more: str) -> list[str]:
    return ["deadletters", "--archive", str(archive), "--role", "officer", "--user", "c.officer", *more]


def _audit(archive: Path) -> list[dict[str, Any]]:
    path = archive / layout.AUDIT
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _stored(archive: Path) -> list[dict[str, Any]]:
    """Every stored dead letter, straight from the archive reader, in source file and offset order."""
    rows = list(reader.iter_rows(archive, kind=layout.DEAD_LETTERS))
    return sorted(rows, key=lambda r: (r["source_name"], r["source_offset"]))


def _reason_table(out: str) -> dict[str, tuple[int, int]]:
    """The closing table of a listing: reason code -> (listed, in archive), ``total`` included."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:4] == ["reason", "code", "listed", "in"])
    table = {}
    for line in lines[start + 1 :]:
        code, listed, stored = line.split()
        table[code] = (int(listed.replace(",", "")), int(stored.replace(",", "")))
    return table


def _json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


# ---------------------------------------------------------------------------------------------
# listing


def test_the_listing_counts_what_the_run_report_dead_lettered_per_reason(world, capsys) -> None:
    _, archive, report = world
    assert report["dead_lettered"] > 20 and len(report["dead_letter_reasons"]) >= 8  # a real mix
    code, out, err = _run(capsys, *_officer(archive))
    assert (code, err) == (0, "")
    table = _reason_table(out)
    total = table.pop("total")
    assert {c: listed for c, (listed, _) in table.items()} == report["dead_letter_reasons"]
    assert {c: stored for c, (_, stored) in table.items()} == report["dead_letter_reasons"]
    assert total == (report["dead_lettered"], report["dead_lettered"])
    assert out.startswith(f"{report['dead_lettered']} dead letter(s) of {report['dead_lettered']} in ")
    # one row per letter under its source file, ordered by offset
    stored = _stored(archive)
    for letter in stored:
        assert f"  {letter['source_offset']}  {letter['reason_code']} " in out
    for name in {Path(r["source_name"]).name for r in stored}:
        assert sum(1 for line in out.splitlines() if line.endswith(name)) == 1
    offsets = [
        int(line.split()[0])
        for line in out.splitlines()
        if line.startswith("  ") and line.split()[0].isdigit()
    ]
    assert offsets == [r["source_offset"] for r in stored]


def test_reason_filter_lists_only_those_codes(world, capsys) -> None:
    _, archive, report = world
    wanted = {"invalid_utf8", "malformed_json", "unknown_channel"}
    code, out, _ = _run(
        capsys,
        *_officer(
            archive, "--reason", "invalid_utf8,malformed_json", "--reason", "unknown_channel", "--json"
        ),
    )
    assert code == 0
    letters = _json_lines(out)
    assert Counter(x["reason_code"] for x in letters) == {c: report["dead_letter_reasons"][c] for c in wanted}
    # the table's columns: listed adds up to what was listed, in archive to everything stored
    code, out, _ = _run(capsys, *_officer(archive, "--reason", "invalid_utf8,malformed_json,unknown_channel"))
    table = _reason_table(out)
    assert table.pop("total") == (len(letters), report["dead_lettered"])
    assert {c for c, (listed, _) in table.items() if listed} == wanted
    assert set(table) == set(report["dead_letter_reasons"])
    # a code the archive does not have: a clear line naming the codes it has, exit 0
    code, out, _ = _run(capsys, *_officer(archive, "--reason", "no_such_code"))
    assert code == 0 and out.startswith("No dead letter matches the filters")
    assert "malformed_json" in out.splitlines()[0]


def test_stage_source_date_and_limit_filters(world, capsys) -> None:
    events, archive, report = world
    code, out, _ = _run(capsys, *_officer(archive, "--stage", "dedup", "--json"))
    assert code == 0
    assert {x["reason_code"] for x in _json_lines(out)} == {"conflicting_duplicate"}
    assert len(_json_lines(out)) == report["dead_letter_reasons"]["conflicting_duplicate"]
    first = sorted(p.name for p in events.glob("events-*.jsonl"))[0]
    _, out, _ = _run(capsys, *_officer(archive, "--source", first, "--json"))
    by_source = _json_lines(out)
    assert by_source and all(Path(x["source_name"]).name == first for x in by_source)
    assert len(by_source) == sum(1 for r in _stored(archive) if Path(r["source_name"]).name == first)
    # stored at NOW (the tests' clock): a window that holds it lists all, one after it none
    day = NOW.date()
    _, out, _ = _run(capsys, *_officer(archive, "--from", day.isoformat(), "--to", day.isoformat(), "--json"))
    assert len(_json_lines(out)) == report["dead_lettered"]
    _, out, _ = _run(capsys, *_officer(archive, "--from", (day + dt.timedelta(days=1)).isoformat()))
    assert out.startswith("No dead letter matches the filters")
    # --limit: the first N by source file and offset, and the listing says what it left out
    _, out, _ = _run(capsys, *_officer(archive, "--limit", "5", "--json"))
    ids = [x["dead_letter_id"] for x in _json_lines(out)]
    assert ids == [r["dead_letter_id"] for r in _stored(archive)[:5]]
    _, out, _ = _run(capsys, *_officer(archive, "--limit", "5"))
    assert f"--limit 5 left out the other {report['dead_lettered'] - 5}" in out.splitlines()[0]
    assert _reason_table(out)["total"] == (5, report["dead_lettered"])


def test_json_has_every_stored_field_and_the_raw_line_as_text(world, capsys) -> None:
    _, archive, report = world
    code, out, err = _run(capsys, *_officer(archive, "--json"))
    assert code == 0
    assert (
        f"{report['dead_lettered']} dead letter(s) of {report['dead_lettered']}" in err
    )  # stdout: JSON only
    letters = _json_lines(out)
    stored = _stored(archive)
    assert [x["dead_letter_id"] for x in letters] == [r["dead_letter_id"] for r in stored]
    fields = set(stored[0]) - {"raw"}
    for shown, row in zip(letters, stored, strict=True):
        assert "raw" not in shown
        assert fields | {"raw_text", "raw_complete", "commit"} == set(shown)
        assert {k: shown[k] for k in fields - {"dead_letter_time"}} == {
            k: row[k] for k in fields - {"dead_letter_time"}
        }
        assert dt.datetime.fromisoformat(shown["dead_letter_time"]) == row["dead_letter_time"]
        assert shown["raw_text"] == row["raw"].decode("utf-8", "backslashreplace")
        assert shown["raw_complete"] == (len(row["raw"]) == row["raw_size"] > 0)
        assert shown["commit"] == report["commit"]
    bad_utf8 = next(x for x in letters if x["reason_code"] == "invalid_utf8")
    assert "\\xff" in bad_utf8["raw_text"]
    too_long = next(x for x in letters if x["reason_code"] == "line_too_long")
    assert too_long["raw_complete"] is False and too_long["raw_size"] > KEPT


def test_an_archive_without_dead_letters_says_so(tmp_path, capsys) -> None:
    write_jsonl(tmp_path / "in" / "events.jsonl", [event(i) for i in range(3)])
    ingest(tmp_path / "in", tmp_path / "archive")
    code, out, err = _run(capsys, *_officer(tmp_path / "archive"))
    assert (code, err) == (0, "")
    assert out.strip() == f"No dead letters in {tmp_path / 'archive'}: it has refused nothing it was given."
    (entry,) = _audit(tmp_path / "archive")
    assert (entry["action"], entry["results"], entry["details"]["in_archive"]) == ("deadletters", 0, 0)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--json", "--export-raw", "x.jsonl"], "--json and --export-raw: pick one"),
        (["--reason", "a,,b"], "--reason 'a,,b' holds an empty code"),
        (["--from", "yesterday"], "--from yesterday is not a date"),
        (["--from", "2026-02-02", "--to", "2026-02-01"], "--from"),
        (["--overwrite"], "--overwrite is for --export-raw"),
    ],
)
def test_bad_options_are_one_line_errors(world, capsys, argv, said) -> None:
    _, archive, _ = world
    before = len(_audit(archive))
    code, out, err = _run(capsys, *_officer(archive, *argv))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and said in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert len(_audit(archive)) == before


def test_a_folder_that_is_no_archive_is_an_error(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = _run(capsys, *_officer(tmp_path / "empty"))
    assert code == 2 and out == "" and err.startswith("error: no Vigil archive at")


# ---------------------------------------------------------------------------------------------
# who may look, and the access log


@pytest.mark.parametrize("role", ["reviewer", "crm"])
def test_only_officers_and_a_refusal_is_logged(world, capsys, role) -> None:
    _, archive, _ = world
    before = len(_audit(archive))
    code, out, err = _run(
        capsys,
        "deadletters",
        "--archive",
        str(archive),
        "--role",
        role,
        "--user",
        "r.view",
        "--reason",
        "invalid_utf8",
        "--json",
    )
    assert code == 2 and out == ""
    assert (
        err.startswith("error: vigil deadletters shows the lines Vigil refused") and "--role officer" in err
    )
    (entry,) = _audit(archive)[before:]
    assert (entry["action"], entry["role"], entry["user"], entry["results"]) == (
        "deadletters",
        role,
        "r.view",
        0,
    )
    assert "only officers see" in entry["details"]["refused"]
    assert entry["query"] == {"reason_codes": ["invalid_utf8"]}
    assert "returned" not in entry["details"]  # nothing was read for it


def test_every_listing_is_logged_before_it_is_shown(world, capsys) -> None:
    _, archive, report = world
    before = len(_audit(archive))
    _, out, _ = _run(
        capsys,
        *_officer(
            archive, "--reason", "malformed_json", "--source", "events-", "--from", "2026-01-01", "--json"
        ),
    )
    (entry,) = _audit(archive)[before:]
    assert (entry["action"], entry["role"], entry["user"], entry["engine"]) == (
        "deadletters",
        "officer",
        "c.officer",
        "embedded",
    )
    assert entry["results"] == report["dead_letter_reasons"]["malformed_json"]
    assert entry["query"] == {
        "reason_codes": ["malformed_json"],
        "source": "events-",
        "time_from": "2026-01-01",
    }
    assert entry["details"]["returned"] == [x["dead_letter_id"] for x in _json_lines(out)]
    assert (entry["details"]["output"], entry["details"]["in_archive"]) == ("json", report["dead_lettered"])


def test_verify_passes_after_listings_and_exports(world, capsys, tmp_path) -> None:
    _, archive, _ = world
    _run(capsys, *_officer(archive, "--limit", "1"))
    _run(capsys, *_officer(archive, "--export-raw", str(tmp_path / "all.jsonl")))
    _run(capsys, "deadletters", "--archive", str(archive), "--role", "reviewer")
    assert _audit(archive)[-1]["action"] == "deadletters"
    code, out, _ = _run(capsys, "verify", "--archive", str(archive))
    assert code == 0 and "archive intact" in out
    assert f"{len(_audit(archive))} audit entries" in out
    assert verify(archive).ok


# ---------------------------------------------------------------------------------------------
# --export-raw


def test_export_writes_the_stored_bytes_in_source_order(world, capsys, tmp_path) -> None:
    _, archive, _ = world
    target = tmp_path / "out" / "fixes.jsonl"
    target.parent.mkdir()
    before = len(_audit(archive))
    code, out, err = _run(capsys, *_officer(archive, "--export-raw", str(target)))
    assert code == 0
    stored = _stored(archive)
    whole = [r for r in stored if r["raw"] and len(r["raw"]) == r["raw_size"]]
    cut = [r for r in stored if len(r["raw"]) < r["raw_size"]]
    assert cut and {r["reason_code"] for r in cut} <= {"line_too_long", "oversized_body"}
    assert target.read_bytes() == b"".join(r["raw"] + b"\n" for r in whole)
    for r in whole:  # exactly as received: the bytes the run hashed
        assert hashlib.sha256(r["raw"]).hexdigest() == r["raw_sha256"]
    assert f"wrote {target}: {len(whole)} line(s)" in out
    assert f"note: {len(cut)} letter(s) not written" in err and "first 64 KiB" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # personal data: the owner's only
    assert [p.name for p in target.parent.iterdir()] == ["fixes.jsonl"]  # no temporary file left
    (entry,) = _audit(archive)[before:]
    assert entry["action"] == "deadletters" and entry["details"]["file"] == str(target)
    assert entry["details"]["exported"] == len(whole)
    assert entry["details"]["output"] == "raw" and entry["results"] == len(stored)
    assert entry["details"]["left_out"] == {"cut": len(cut)}


def test_a_corrected_line_put_back_is_archived_by_the_next_run(world, own, capsys, tmp_path) -> None:
    _, _, report = world
    exported = tmp_path / "fixes.jsonl"
    code, _, _ = _run(capsys, *_officer(own, "--reason", "unknown_channel", "--export-raw", str(exported)))
    assert code == 0
    lines = exported.read_bytes().splitlines()
    assert len(lines) == report["dead_letter_reasons"]["unknown_channel"] >= 2
    fixed = json.loads(lines[0])
    fixed["channel"] = fixed["conversation_id"].split(":")[1]  # the channel its conversation is on
    lines[0] = json.dumps(fixed).encode()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "fixes.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    summary = ingest(inbox, own)
    assert (summary.archived, summary.dead_lettered) == (1, len(lines) - 1)
    assert summary.dead_letter_reasons == {"unknown_channel": len(lines) - 1}
    record_id = record_id_for(fixed["org"], fixed["channel"], fixed["event_id"])
    assert record_id in reader.record_index(own)
    (row,) = [
        r for r in reader.iter_rows(own, ["record_id", "body", "source_name"]) if r["record_id"] == record_id
    ]
    assert (row["body"], row["source_name"]) == (fixed["body"], str((inbox / "fixes.jsonl").resolve()))
    assert verify(own).ok


def test_export_refuses_to_overwrite_or_to_write_inside_the_archive(world, capsys, tmp_path) -> None:
    _, archive, _ = world
    target = tmp_path / "fixes.jsonl"
    target.write_bytes(b"my corrections\n")
    before = len(_audit(archive))
    code, out, err = _run(capsys, *_officer(archive, "--export-raw", str(target)))
    assert code == 2 and out == "" and "the file exists; pass --overwrite" in err
    assert target.read_bytes() == b"my corrections\n"
    for inside in (
        archive / "fixes.jsonl",
        archive / layout.AUDIT,
        archive / layout.DEAD_LETTERS / "x.jsonl",
    ):
        code, _, err = _run(capsys, *_officer(archive, "--export-raw", str(inside), "--overwrite"))
        assert code == 2 and "inside the archive folder" in err
    link = tmp_path / "link.jsonl"
    link.symlink_to(archive / layout.MANIFEST)
    code, _, err = _run(capsys, *_officer(archive, "--export-raw", str(link), "--overwrite"))
    assert code == 2 and "inside the archive folder" in err
    assert len(_audit(archive)) == before  # refused before anything was read or logged
    assert verify(archive).ok
    # --overwrite replaces it, keeping its mode
    target.chmod(0o640)
    code, _, _ = _run(
        capsys, *_officer(archive, "--reason", "malformed_json", "--export-raw", str(target), "--overwrite")
    )
    assert code == 0
    assert target.read_bytes() == b"".join(
        r["raw"] + b"\n" for r in _stored(archive) if r["reason_code"] == "malformed_json"
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_export_leaves_out_what_is_no_input_line(own, capsys, tmp_path) -> None:
    """Elasticsearch's letters hold a document of an archived record, not a line of the input."""
    (record_id, source) = next(
        (r["record_id"], r["source_name"])
        for r in reader.iter_rows(own, ["record_id", "source_name"])
        if not r["source_name"].startswith("vigil:")
    )
    document = json.dumps({"record_id": record_id}).encode()
    letter = {
        "dead_letter_id": "e" * 32,
        "stage": "index",
        "reason_code": "es_rejected",
        "reason": "mapping refused the document",
        "source_name": source,
        "source_offset": 0,
        "record_id": record_id,
        "raw": document,
        "raw_size": len(document),
        "raw_sha256": hashlib.sha256(document).hexdigest(),
        "dead_letter_time": int(NOW.timestamp() * 1_000_000),
    }
    assert deadletters.append(own, [letter], action="es-index") == 1
    code, out, _ = _run(capsys, *_officer(own, "--stage", "index", "--json"))
    assert code == 0 and [x["dead_letter_id"] for x in _json_lines(out)] == ["e" * 32]
    target = tmp_path / "index.jsonl"
    code, out, err = _run(capsys, *_officer(own, "--stage", "index", "--export-raw", str(target)))
    assert code == 0 and not target.exists()
    assert "no file written" in out and "Elasticsearch documents" in err
    assert _audit(own)[-1]["details"]["left_out"] == {"index": 1}


def test_an_export_name_as_long_as_a_file_name_may_be_is_written(world, capsys, tmp_path) -> None:
    # the file is staged under a hidden temporary name first: that name must fit too
    _, archive, _ = world
    target = tmp_path / ("f" * 249 + ".jsonl")  # 255 bytes, the most a file name may have
    code, _, err = _run(
        capsys, *_officer(archive, "--reason", "unknown_channel", "--export-raw", str(target))
    )
    assert code == 0, err
    assert target.is_file() and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_odd_file_names_are_printed_with_their_control_characters_escaped(tmp_path, capsys) -> None:
    # a line break in a source name would split the table's row; an escape sequence would recolour it
    src, archive = tmp_path / "in", tmp_path / "archive"
    odd = src / "a\nb\x1b[31mc.jsonl"
    write_jsonl(odd, [event(1, channel="fax")])
    ingest(src, archive)
    code, out, _ = _run(capsys, *_officer(archive))
    assert code == 0
    assert f"{src}/a\\nb\\x1b[31mc.jsonl" in out.splitlines()
    target = tmp_path / "fix\nred.jsonl"
    code, out, _ = _run(capsys, *_officer(archive, "--export-raw", str(target)))
    assert code == 0 and target.is_file()
    assert out.startswith(f"wrote {tmp_path}/fix\\nred.jsonl: 1 line(s)")
