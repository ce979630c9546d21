"""--inject-faults: _faults.jsonl lists exactly the broken lines, and each is broken the way it says."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from functools import cache
from pathlib import Path

import pydantic
import pytest
from _simulate_support import WEEK, good_lines, written

from pipelines.record import MAX_BODY_CHARS, Channel, Event, content_sha256
from pipelines.simulate import (
    DUPLICATE_KINDS,
    FAULT_KINDS,
    FAULTS_FILE,
    SIMULATION_FILE,
    SimulationConfig,
    simulate,
)

ONE_MIB = 1024 * 1024


@cache
def _faults() -> list[dict]:
    return [json.loads(line) for line in (written(WEEK) / FAULTS_FILE).read_text().splitlines()]


@cache
def _lines(name: str) -> list[bytes]:
    with (written(WEEK) / name).open("rb") as fh:
        return fh.readlines()


def _raw(file: str, line: int) -> bytes:
    return _lines(file)[line - 1]


def _invalid(raw: bytes, needle: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=needle):
        Event.model_validate_json(raw)


def test_every_kind_appears_and_the_rate_is_roughly_as_asked() -> None:
    faults = _faults()
    kinds = Counter(f["fault"] for f in faults)
    assert set(kinds) == set(FAULT_KINDS)
    good = json.loads((written(WEEK) / SIMULATION_FILE).read_text())["counts"]["events"]
    assert 0.5 * WEEK.inject_faults <= len(faults) / good <= 2.5 * WEEK.inject_faults


def test_listed_lines_are_broken_as_described() -> None:
    end = dt.datetime.combine(WEEK.end, dt.time(), tzinfo=dt.UTC)
    for fault in _faults():
        raw = _raw(fault["file"], fault["line"])
        kind = fault["fault"]
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        if kind == "malformed_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(raw)
        elif kind == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
        elif kind == "missing_field":
            _invalid(raw, "Field required")
        elif kind == "unknown_channel":
            assert json.loads(raw)["channel"] not in {c.value for c in Channel}
            _invalid(raw, "channel")
        elif kind == "oversized_body":
            assert len(json.loads(raw)["body"]) > MAX_BODY_CHARS and len(raw) < ONE_MIB
            _invalid(raw, "limit is")
        elif kind == "huge_line":
            assert len(raw) > ONE_MIB
        elif kind == "future_event_time":
            event = Event.model_validate_json(raw)  # valid as a model: ingest must judge the time
            assert event.event_time > end + dt.timedelta(days=4 * 365)
        elif kind == "naive_timestamp":
            assert "+" not in json.loads(raw)["event_time"] and not json.loads(raw)["event_time"].endswith(
                "Z"
            )
            _invalid(raw, "timezone")
        elif kind == "empty_message":
            _invalid(raw, "empty message")
        elif kind == "duplicate_key":
            bodies = [v for k, v in json.loads(raw, object_pairs_hook=list) if k == "body"]
            assert len(bodies) == 2 and bodies[0] != bodies[1]
            Event.model_validate_json(raw)  # valid as a model (last value wins): ingest must judge it
        elif kind in ("exact_duplicate", "conflicting_duplicate"):
            copy = Event.model_validate_json(raw)
            original = Event.model_validate_json(
                _raw(fault["duplicate_of"]["file"], fault["duplicate_of"]["line"])
            )
            assert (copy.org, copy.channel, copy.event_id) == (
                original.org,
                original.channel,
                original.event_id,
            )
            assert copy.received_time != original.received_time
            same = content_sha256(copy) == content_sha256(original)
            assert same is (kind in DUPLICATE_KINDS)
        else:
            raise AssertionError(f"unexpected fault kind {kind}")


def test_duplicates_point_back_at_good_lines_and_one_crosses_into_a_later_day() -> None:
    faulty = {(f["file"], f["line"]) for f in _faults()}
    crossed = 0
    for fault in _faults():
        if "duplicate_of" in fault:
            origin = (fault["duplicate_of"]["file"], fault["duplicate_of"]["line"])
            assert origin not in faulty
            crossed += fault["duplicate_of"]["file"] < fault["file"]
    assert crossed >= 1


def test_fault_ids_never_collide_with_good_events() -> None:
    good = {Event.model_validate_json(raw).event_id for _, _, raw in good_lines(written(WEEK))}
    for fault in _faults():
        if fault["fault"] in ("exact_duplicate", "conflicting_duplicate"):
            assert fault["event_id"] in good
        else:
            assert fault["event_id"] not in good


def test_every_kind_is_written_even_at_a_tiny_rate(tmp_path: Path) -> None:
    config = SimulationConfig(days=2, seed=9, employees=3, contacts=12, inject_faults=0.001)
    summary = simulate(config, tmp_path)
    assert set(summary.faults) == set(FAULT_KINDS)
    assert summary.lines == summary.events + sum(summary.faults.values())


def test_no_faults_file_without_the_option(tmp_path: Path) -> None:
    simulate(SimulationConfig(days=1, seed=9, employees=2, contacts=6), tmp_path)
    assert not (tmp_path / FAULTS_FILE).exists()


def test_the_smallest_positive_rate_places_the_owed_kinds_40_lines_apart(tmp_path: Path) -> None:
    """1 / 5e-324 is not a finite number: the spacing must not be computed from it."""
    config = SimulationConfig(days=2, seed=9, employees=3, contacts=12, inject_faults=5e-324)
    summary = simulate(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / FAULTS_FILE).read_text().splitlines()]
    assert set(summary.faults) == set(FAULT_KINDS)  # only the owed ones: the rate itself is ~0
    assert len(rows) == len(FAULT_KINDS) + 1  # and the one duplicate into a later day


def test_a_span_at_the_calendars_end_still_gets_future_times(tmp_path: Path) -> None:
    """--start may be as late as 9997-12-31: years ahead of it is past 9999, so the time stops at
    the calendar's last second (still far in the future) rather than overflow."""
    config = SimulationConfig(
        days=2, seed=9, employees=3, contacts=12, start=dt.date(9997, 12, 31), inject_faults=0.05
    )
    simulate(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / FAULTS_FILE).read_text().splitlines()]
    future = [row for row in rows if row["fault"] == "future_event_time"]
    assert future
    for row in future:
        with (tmp_path / row["file"]).open("rb") as fh:
            raw = fh.readlines()[row["line"] - 1]
        event = Event.model_validate_json(raw)
        assert event.event_time == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
