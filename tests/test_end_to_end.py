"""The spine end to end on simulated traffic: every broken line the simulator planted is accounted
for exactly as it should be, and the archive reads back with both pyarrow and DuckDB."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest
from helpers import ingest

from pipelines.archive import layout, reader
from pipelines.archive.verify import verify
from pipelines.simulate import SimulationConfig, simulate

# what each planted fault must become in the archive
EXPECTED = {
    "malformed_json": "malformed_json",
    "invalid_utf8": "invalid_utf8",
    "missing_field": "missing_field",
    "unknown_channel": "unknown_channel",
    "oversized_body": "oversized_body",
    "future_event_time": "future_timestamp",
    "naive_timestamp": "invalid_timestamp",
    "empty_message": "empty_message",
    "huge_line": "line_too_long",
    "duplicate_key": "duplicate_key",
    "conflicting_duplicate": "conflicting_duplicate",
    "exact_duplicate": None,  # not a dead letter: counted as a duplicate
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    base = tmp_path_factory.mktemp("e2e")
    events = base / "events"
    simulate(
        SimulationConfig(days=3, seed=5, employees=6, contacts=40, inject_pii=True, inject_faults=0.01),
        events,
    )
    summary = ingest(events, base / "archive")
    return events, base / "archive", summary


def _line_offsets(path: Path) -> list[int]:
    offsets, pos = [], 0
    with path.open("rb") as f:
        for line in f:
            offsets.append(pos)
            pos += len(line)
    return offsets


def test_every_planted_fault_is_accounted_for(world) -> None:
    events, archive, summary = world
    faults = [json.loads(x) for x in (events / "_faults.jsonl").read_text().splitlines()]
    assert set(EXPECTED) == {f["fault"] for f in faults}  # every kind was planted at least once
    dead = {
        (Path(d["source_name"]).name, d["source_offset"]): d
        for d in reader.iter_rows(archive, kind=layout.DEAD_LETTERS)
    }
    offsets = {p.name: _line_offsets(p) for p in events.glob("events-*.jsonl")}
    for fault in faults:
        key = (fault["file"], offsets[fault["file"]][fault["line"] - 1])
        expected = EXPECTED[fault["fault"]]
        if expected is None:
            assert key not in dead, fault
            continue
        assert key in dead, f"planted {fault} was not dead-lettered"
        allowed = expected if isinstance(expected, set) else {expected}
        assert dead[key]["reason_code"] in allowed, (fault, dead[key]["reason"])
    planted_dead = sum(1 for f in faults if EXPECTED[f["fault"]] is not None)
    assert summary.dead_lettered == planted_dead == len(dead)
    assert summary.duplicates == sum(1 for f in faults if f["fault"] == "exact_duplicate")


def test_counts_add_up_against_the_files(world) -> None:
    events, archive, summary = world
    lines = sum(1 for p in events.glob("events-*.jsonl") for x in p.read_bytes().split(b"\n") if x.strip())
    assert summary.read == lines
    assert summary.balanced
    simulated = json.loads((events / "_simulation.json").read_text())
    table = reader.read_table(archive, columns=["record_id", "source_name"])
    from_input = sum(1 for s in table.column("source_name").to_pylist() if not s.startswith("vigil:"))
    assert from_input == summary.archived == simulated["counts"]["events"]  # exactly the good lines
    assert len(set(table.column("record_id").to_pylist())) == table.num_rows
    assert verify(archive).ok


def test_archive_reads_back_with_pyarrow_and_duckdb(world) -> None:
    _, archive, summary = world
    dataset = ds.dataset(archive / layout.RECORDS, format="parquet", partitioning="hive")
    by_channel = Counter(dataset.to_table(columns=["channel"]).column("channel").to_pylist())
    glob = f"{archive}/{layout.RECORDS}/**/*.parquet"
    rows = (
        duckdb.connect()
        .execute(
            f"SELECT channel, count(*) FROM read_parquet('{glob}', hive_partitioning=true) GROUP BY channel"
        )
        .fetchall()
    )
    assert dict(rows) == dict(by_channel)
    assert sum(by_channel.values()) == summary.archived + summary.notices
    assert {"whatsapp", "wechat", "line", "sms", "teams"} <= set(by_channel)
    kinds = (
        duckdb.connect()
        .execute(f"SELECT DISTINCT kind FROM read_parquet('{glob}', hive_partitioning=true)")
        .fetchall()
    )
    assert {k for (k,) in kinds} == {"message", "auto_message", "event"}
