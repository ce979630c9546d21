"""Every count of a run adds up and agrees with what is on disk: the summary, `--json`,
`_runs/<commit>.json`, the manifest, the Parquet rows read back independently (pyarrow and DuckDB,
file by file through the manifest), the dead letters by reason, the DLP counts and notices, and
`vigil verify`; and each non-blank input line is archived, dead-lettered or a duplicate."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from factories import event, line, write_jsonl
from helpers import VIGIL, ingest
from test_ingest_dlp import CARD, POLICY

from pipelines.archive import layout
from pipelines.archive.manifest import load_state
from pipelines.archive.verify import verify
from pipelines.record import record_id_for
from pipelines.simulate import SimulationConfig, simulate

SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


def _vigil_run_json(src: Path, archive: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*VIGIL, "run", "--input", str(src), "--archive", str(archive), "--json", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    # a file that could not be read to its end makes the run exit 1, so a scheduler notices
    assert done.returncode == (1 if summary["input_incomplete"] else 0), done.stderr[-2000:]
    return summary


def _input_lines(src: Path) -> list[tuple[str, int]]:
    """(real path, offset) of every non-blank line of the event files, read without Vigil."""
    found, seen = [], set()
    for path in sorted(src.rglob("*")):
        if not path.name.endswith(SUFFIXES) or path.name.startswith(("_", ".")):
            continue
        if (path.stat().st_dev, path.stat().st_ino) in seen:
            continue  # a second name of a file (hard link): one file, read once
        seen.add((path.stat().st_dev, path.stat().st_ino))
        data = path.read_bytes()
        if path.name.endswith(".gz"):  # as far as it goes: a cut stream up to its last whole line
            data = zlib.decompressobj(wbits=31).decompress(data)
            data = data[: data.rfind(b"\n") + 1]
        offset = 0
        for raw in data.split(b"\n"):
            if raw.strip(b" \t\r"):
                found.append((os.path.realpath(path), offset))
            offset += len(raw) + 1
    return found


def _sql(paths: list[str], query: str) -> list[tuple]:
    if not paths:
        return []
    con = duckdb.connect()
    return con.execute(query.format(files="read_parquet(?, hive_partitioning = false)"), [paths]).fetchall()


def _check_commit(archive: Path, s: dict[str, Any]) -> None:
    """The numbers of one committed run against each other and against the files it committed."""
    assert s["balanced"] and s["read"] == s["archived"] + s["dead_lettered"] + s["duplicates"]
    report = json.loads((archive / layout.RUNS / f"{s['commit']}.json").read_text())["summary"]
    assert {k: v for k, v in report.items() if k != "seconds"} == {
        k: v for k, v in s.items() if k != "seconds"
    }
    state = load_state(archive, fresh=True)
    entry = state.commits[s["commit"]]
    mine = [f for f in state.live.values() if f.commit == s["commit"]]
    records = [str(archive / f.path) for f in mine if f.kind == layout.RECORDS]
    dead = [str(archive / f.path) for f in mine if f.kind == layout.DEAD_LETTERS]
    assert entry["files_added"] == s["files_written"] == len(mine)
    rows = sum(pq.read_table(p).num_rows for p in records)
    assert rows == entry["rows_added"]["records"] == s["archived"] + s["notices"]
    assert _sql(records, "SELECT count(*) FROM {files}") == ([(rows,)] if records else [])
    reasons = Counter(r for p in dead for r in pq.read_table(p).column("reason_code").to_pylist())
    assert sum(reasons.values()) == entry["rows_added"]["deadletters"]
    assert sum(reasons.values()) == s["dead_lettered"] - s["dead_letters_already_stored"]
    if not s["dead_letters_already_stored"]:
        assert reasons == Counter(s["dead_letter_reasons"])
    # DLP: archived records by action (notices not included), one notice per blocked employee message
    by_action = dict(
        _sql(
            records,
            "SELECT dlp_action, count(*) FROM {files} WHERE source_name <> 'vigil:dlp-notice' GROUP BY 1",
        )
    )
    assert {a: n for a, n in by_action.items() if a in ("block", "redact", "flag")} == s["dlp"]
    told = _sql(
        records,
        "SELECT count(*) FROM {files} WHERE dlp_action = 'block' AND kind = 'message' AND "
        "direction IN ('outbound', 'internal') AND sender.role = 'employee'",
    )
    noticed = _sql(records, "SELECT count(*) FROM {files} WHERE source_name = 'vigil:dlp-notice'")
    assert (told or [(0,)]) == (noticed or [(0,)]) == [(s["notices"],)]
    checked = verify(archive)
    assert checked.ok, checked.problems
    assert checked.rows_checked == sum(f.rows for f in state.live.values())


def _fates(src: Path, archive: Path) -> Counter[str]:
    """Where each non-blank input line ended up, looked up by (source, offset) in the archive."""
    state = load_state(archive, fresh=True)
    paths = {kind: [str(archive / f.path) for f in state.files(kind)] for kind in layout.KINDS}
    kept = set(_sql(paths[layout.RECORDS], "SELECT source_name, source_offset FROM {files}"))
    refused = set(_sql(paths[layout.DEAD_LETTERS], "SELECT source_name, source_offset FROM {files}"))
    return Counter(
        "archived" if at in kept else "dead-lettered" if at in refused else "neither"
        for at in _input_lines(src)
    )


@pytest.mark.parametrize("seed", [11, 12])
def test_every_number_of_a_faulty_run_agrees_with_the_archive_read_back(tmp_path: Path, seed: int) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    simulate(
        SimulationConfig(days=2, seed=seed, employees=4, contacts=24, inject_pii=True, inject_faults=0.05),
        src,
    )
    day = sorted(src.glob("events-*.jsonl"))[-1]
    first = [x for x in day.read_bytes().splitlines(keepends=True) if x.strip()][:40]
    # the same file under a second (hard-linked) name, and a gzip copy cut short
    os.link(day, src / "again.jsonl")
    gz = gzip.compress(b"".join(first))
    (src / "cut.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    s = _vigil_run_json(src, archive)
    _check_commit(archive, s)
    assert s["dead_letter_reasons"].get("truncated_gzip") == 1 and s["input_incomplete"] is True
    fates = _fates(src, archive)
    # each line read once (the hard link is the same file), the cut file up to its last whole line
    assert s["read"] == len(_input_lines(src)) + 1  # + the cut file's one dead letter
    assert fates["archived"] == s["archived"]
    assert fates["dead-lettered"] == s["dead_lettered"] - 1
    assert fates["neither"] == s["duplicates"]


def test_runs_over_appended_rewritten_and_repaired_files_each_add_up(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    plain = write_jsonl(src / "a.jsonl", [event(1), b"{bad\n", b"\n", event(2)])
    with plain.open("ab") as f:
        f.write(line(event(3))[:-1])  # a last line that is whole JSON, without its line end yet
    whole = b"".join(line(event(10 + i)) for i in range(30)) + b"[1]\n" + line(event(1))
    gz = gzip.compress(whole)
    (src / "b.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    runs = [ingest(src, archive).as_dict()]
    with plain.open("ab") as f:  # its line end arrives, then more lines, a blank one among them
        f.write(b"\r\n" + line(event(4)) + b"\n" + line(event(2, body="reused id")))
    (src / "b.jsonl.gz").write_bytes(gz)  # the whole stream this time: read again from its start
    runs.append(ingest(src, archive).as_dict())
    write_jsonl(plain, [event(1), event(5)])  # rewritten shorter: read from its start
    runs.append(ingest(src, archive).as_dict())
    for s in runs:
        _check_commit(archive, s)
    first, second, third = runs
    assert first["blank_lines"] == 1 and first["dead_letter_reasons"]["truncated_gzip"] == 1
    # the line end of event 3, read by the first run, is not a blank line of the second
    assert second["blank_lines"] == 1 and second["resumed_sources"] == 1
    assert second["dead_letter_reasons"] == {"conflicting_duplicate": 1, "not_an_object": 1}
    assert (third["read"], third["archived"], third["duplicates"]) == (2, 1, 1)
    fates = _fates(src, archive)
    # what the input holds now: a.jsonl's two lines, b.jsonl.gz's thirty, its "[1]" and a re-delivery
    assert fates == {"archived": 32, "dead-lettered": 1, "neither": 1}
    rows = {
        r[0]
        for r in _sql([str(p) for p in archive.glob("records/**/*.parquet")], "SELECT event_id FROM {files}")
    }
    assert rows == {f"evt-{n:06d}" for n in [1, 2, 3, 4, 5, *range(10, 40)]}


def test_a_blank_line_where_a_run_resumes_is_still_counted(tmp_path: Path) -> None:
    src, archive = tmp_path / "in", tmp_path / "archive"
    plain = write_jsonl(src / "a.jsonl", [event(1)])
    ingest(src, archive)
    with plain.open("ab") as f:
        f.write(b"\n" + line(event(2)))
    s = ingest(src, archive)
    assert (s.read, s.archived, s.blank_lines, s.resumed_sources) == (1, 1, 1, 1)


def test_a_blocked_message_whose_id_leaves_no_room_for_the_notice_suffix_is_archived(tmp_path: Path) -> None:
    policy = tmp_path / "itest.yaml"
    policy.write_text(POLICY)
    src, archive = tmp_path / "in", tmp_path / "archive"
    long_ids = ["x" * 256, "x" * 255 + "y", "y" * 250]
    write_jsonl(
        src / "a.jsonl", [event(i, event_id=eid, body=f"card {CARD}") for i, eid in enumerate(long_ids)]
    )
    s = ingest(src, archive, policy=str(policy))
    _check_commit(archive, s.as_dict())
    assert (s.read, s.archived, s.notices, s.dlp) == (3, 3, 3, {"block": 3})
    rows = _sql(
        [str(p) for p in archive.glob("records/**/*.parquet")],
        "SELECT event_id, record_id, attributes FROM {files}",
    )
    told = {dict(attrs)["blocked_record_id"]: eid for eid, _, attrs in rows if eid.endswith(":dlp-notice")}
    assert set(told) == {record_id_for("acme", "whatsapp", eid) for eid in long_ids}
    assert all(len(eid) <= 256 for eid in told.values()) and len(set(told.values())) == 3
    assert len({record_id for _, record_id, _ in rows}) == 6
    again = ingest(src, archive, policy=str(policy), only_new_sources=False)  # the same notices again
    assert (again.archived, again.notices, again.duplicates) == (0, 0, 3)
