"""Review of the --inject-pii ground truth against --inject-faults: a scorer that reads every line
with a body (as tests/benchmarks/bench_dlp.py does) must find no personal data the labels miss."""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache
from pathlib import Path

from _simulate_support import good_lines, written

from pipelines.record import Event
from pipelines.simulate import DUPLICATE_KINDS, FAULTS_FILE, LABELS_FILE, SimulationConfig

#: small and busy with both: many faults, many of them copied from a line with labelled data
FAULTY = SimulationConfig(
    days=1, seed=3, employees=4, contacts=30, inject_pii=True, pii_rate=0.3, inject_faults=0.05
)


@cache
def _labelled_values() -> dict[str, list[str]]:
    """event id of each good line -> the labelled values in its body, as written."""
    out = written(FAULTY)
    bodies = {}
    for _, _, raw in good_lines(out):
        event = Event.model_validate_json(raw)
        bodies[event.event_id] = event.body or ""
    values: dict[str, list[str]] = defaultdict(list)
    for row in map(json.loads, (out / LABELS_FILE).read_text().splitlines()):
        values[row["event_id"]].append(bodies[row["event_id"]][row["start"] : row["end"]])
    return values


def _fault_bodies(out: Path) -> list[tuple[dict, str]]:
    """(fault row, body) of every fault line that reads as JSON with a text body."""
    lines = {path.name: path.read_bytes().splitlines() for path in out.glob("events-*.jsonl")}
    found = []
    for fault in map(json.loads, (out / FAULTS_FILE).read_text().splitlines()):
        try:
            data = json.loads(lines[fault["file"]][fault["line"] - 1])
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("body"), str):
            found.append((fault, data["body"]))
    return found


def test_fault_lines_under_a_fresh_id_carry_no_personal_data_the_labels_miss() -> None:
    """A broken copy of a good line gets a fresh event id, so no label covers it: it must not
    repeat the labelled values (names, cards, ids) of the line it was made from. Before, copies of
    labelled bodies (unknown channel, future or naive times, a missing field) did, and a scorer
    reading the lines counted each finding in them as a false positive."""
    values = _labelled_values()
    copies_of_labelled = 0
    for fault, body in _fault_bodies(written(FAULTY)):
        if fault["fault"] in DUPLICATE_KINDS or fault["fault"] == "conflicting_duplicate":
            continue  # same event id as the original: its labels apply
        source = fault["event_id"].split("~", 1)[0]
        if values.get(source):
            copies_of_labelled += 1
        leaked = [value for value in values.get(source, ()) if value in body]
        assert not leaked, (fault, leaked)
    assert copies_of_labelled >= 3  # the run does build faults from labelled lines


def test_duplicates_keep_the_labelled_body_their_labels_point_into() -> None:
    """Re-deliveries and conflicting versions share the original's record id (and so its labels):
    the labelled spans must read the same in them as in the original."""
    out = written(FAULTY)
    events = (Event.model_validate_json(raw) for _, _, raw in good_lines(out))
    bodies = {event.event_id: event.body for event in events}
    rows = defaultdict(list)
    for row in map(json.loads, (out / LABELS_FILE).read_text().splitlines()):
        rows[row["event_id"]].append(row)
    checked = 0
    for fault, body in _fault_bodies(out):
        if fault["fault"] not in DUPLICATE_KINDS and fault["fault"] != "conflicting_duplicate":
            continue
        original = bodies[fault["event_id"]] or ""
        for row in rows.get(fault["event_id"], ()):
            assert body[row["start"] : row["end"]] == original[row["start"] : row["end"]]
            checked += 1
    assert checked


def test_faults_change_no_good_line_and_no_label() -> None:
    """The ground truth and the lines it describes are the same with and without --inject-faults."""
    faulty = written(FAULTY)
    clean = written(FAULTY.replace(inject_faults=0.0))
    assert (faulty / LABELS_FILE).read_bytes() == (clean / LABELS_FILE).read_bytes()
    assert [raw for _, _, raw in good_lines(faulty)] == [raw for _, _, raw in good_lines(clean)]
