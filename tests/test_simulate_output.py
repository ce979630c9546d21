"""The simulator's files: deterministic bytes, valid events, unique ids, one file per day."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from _simulate_support import SMALL, WEEK, good_lines, written

from pipelines.errors import ConfigError
from pipelines.record import Channel, Event, Kind, Role
from pipelines.simulate import SIMULATION_FILE, SimulationConfig, events_file, simulate


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    first = simulate(SMALL, tmp_path / "a")
    simulate(SMALL, tmp_path / "b")
    assert first.events > 500
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


@pytest.mark.parametrize(
    "change",
    [{"seed": 4}, {"start": dt.date(2026, 3, 2)}, {"employees": 5}, {"activity": 1.5}],
    ids=["seed", "start", "employees", "activity"],
)
def test_different_arguments_give_different_output(tmp_path: Path, change: dict) -> None:
    simulate(SMALL, tmp_path / "a")
    simulate(SMALL.replace(**change), tmp_path / "b")
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    day_files = [name for name in a if name.startswith("events-")]
    assert all(a.get(name) != b.get(name) for name in day_files)


def test_one_file_per_day_and_no_leftover_temporary_files() -> None:
    out = written(WEEK)
    expected = {events_file(WEEK.start + dt.timedelta(days=i)) for i in range(WEEK.days)}
    assert {p.name for p in out.glob("events-*.jsonl")} == expected
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_every_good_line_is_a_valid_event_in_its_days_file() -> None:
    out = written(WEEK)
    seen = 0
    for name, _, raw in good_lines(out):
        event = Event.model_validate_json(raw)
        assert events_file(event.event_time.date()) == name
        assert event.received_time - event.event_time < dt.timedelta(hours=1)
        seen += 1
    meta = json.loads((out / SIMULATION_FILE).read_text())
    assert seen == meta["counts"]["events"]


def test_event_ids_are_unique_per_org_and_channel() -> None:
    ids = Counter()
    for _, _, raw in good_lines(written(WEEK)):
        event = Event.model_validate_json(raw)
        ids[(event.org, event.channel, event.event_id)] += 1
    assert ids and max(ids.values()) == 1


def test_week_covers_every_channel_kind_and_direction() -> None:
    meta = json.loads((written(WEEK) / SIMULATION_FILE).read_text())["counts"]
    assert set(meta["by_channel"]) == {c.value for c in Channel}
    assert set(meta["by_kind"]) == {k.value for k in Kind}
    assert set(meta["by_direction"]) == {"inbound", "outbound", "internal", "system"}
    assert 10_000 <= meta["events"] <= 30_000  # the default week is realistic in size


def test_timestamps_are_utc_weighted_to_working_hours_with_some_clock_skew() -> None:
    from _simulate_support import events

    stream = events(WEEK)
    local_hours = Counter()
    skewed = 0
    for event in stream:
        assert event.event_time.tzinfo is not None and event.event_time.utcoffset() == dt.timedelta(0)
        skewed += event.received_time < event.event_time
        if event.kind == Kind.MESSAGE and event.sender.role == Role.EMPLOYEE and event.sub_org == "new-york":
            local_hours[(event.event_time - dt.timedelta(hours=5)).hour] += 1
    assert skewed > 0  # received a little before it happened: phones' clocks drift
    daytime = sum(n for h, n in local_hours.items() if 8 <= h < 19)
    assert daytime > 3 * (sum(local_hours.values()) - daytime)


def test_message_bodies_vary_in_length_and_language() -> None:
    from _simulate_support import events

    bodies = [e.body for e in events(WEEK) if e.kind == Kind.MESSAGE and e.body]
    assert max(map(len, bodies)) > 1000
    assert any("\u4e00" <= ch <= "\u9fff" for body in bodies for ch in body)  # Chinese
    assert any("\u3040" <= ch <= "\u30ff" for body in bodies for ch in body)  # Japanese kana


def test_refuses_to_mix_with_an_earlier_run_unless_overwrite(tmp_path: Path) -> None:
    config = SimulationConfig(days=1, seed=1, employees=2, contacts=5)
    simulate(config, tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        simulate(config, tmp_path)
    simulate(config.replace(seed=2), tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only our own files are replaced
    meta = json.loads((tmp_path / SIMULATION_FILE).read_text())
    assert meta["arguments"]["seed"] == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"days": 0}, "--days"),
        ({"employees": 10, "contacts": 3}, "--contacts"),
        ({"inject_faults": 0.9}, "--inject-faults"),
        ({"activity": 0}, "--activity"),
        ({"pii_rate": 1.5}, "--pii-rate"),
        ({"target_events": 5}, "--target-events"),
    ],
)
def test_bad_arguments_are_config_errors_naming_the_option(arguments: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SimulationConfig(**arguments)


def test_target_events_calibrates_activity(tmp_path: Path) -> None:
    config = SimulationConfig(days=2, seed=5, employees=3, contacts=12, target_events=4000)
    summary = simulate(config, tmp_path)
    assert summary.activity > 1
    assert 0.75 * 4000 <= summary.events <= 1.25 * 4000


def test_overwrite_replaces_only_the_simulators_own_names(tmp_path: Path) -> None:
    """Lookalikes (an export named events-*, a compressed file, an editor's swap file) are not ours."""
    config = SimulationConfig(days=1, seed=1, employees=2, contacts=5)
    simulate(config, tmp_path)
    theirs = {
        "events-export-from-crm.jsonl": '{"real": 1}\n',
        "events-2019-01-01.jsonl.gz": "x",
        ".editor-swap.tmp": "x",
        "notes.txt": "mine",
    }
    for name, text in theirs.items():
        (tmp_path / name).write_text(text)
    simulate(config.replace(seed=2), tmp_path, overwrite=True)
    for name, text in theirs.items():
        assert (tmp_path / name).read_text() == text
    assert json.loads((tmp_path / SIMULATION_FILE).read_text())["arguments"]["seed"] == 2


def test_overwrite_with_arguments_refused_later_keeps_the_earlier_run(tmp_path: Path) -> None:
    config = SimulationConfig(days=1, seed=1, employees=2, contacts=5)
    simulate(config, tmp_path)
    before = _digest(tmp_path)
    impossible = config.replace(target_events=1_000_000_000)  # refused only once the world is built
    with pytest.raises(ConfigError, match="--target-events"):
        simulate(impossible, tmp_path, overwrite=True)
    assert _digest(tmp_path) == before


def test_a_run_that_fails_part_way_leaves_nothing_of_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day files are committed as each day ends; a run that then fails removes them too, so a
    half-written simulation is never there for `vigil run` to archive as if it were whole."""
    import pipelines.simulate.output as output

    real = output.generate

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        first_day = None
        for emitted in real(*args, **kwargs):
            first_day = first_day or emitted.event.event_time.date()
            if emitted.event.event_time.date() > first_day + dt.timedelta(days=1):
                raise KeyboardInterrupt  # in the third day: two day files are already committed
            yield emitted

    monkeypatch.setattr(output, "generate", failing)
    (tmp_path / "notes.txt").write_text("mine")
    config = SimulationConfig(days=4, seed=1, employees=2, contacts=5, inject_pii=True, inject_faults=0.01)
    with pytest.raises(KeyboardInterrupt):
        simulate(config, tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_events_after_the_last_day_are_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step planned just before midnight of the last day has notices a moment later: they fall on
    a day the run does not cover and are left out, never a crash or a file for an extra day."""
    import dataclasses

    import pipelines.simulate.engine as engine

    config = SimulationConfig(days=2, seed=1, employees=2, contacts=5)
    _, end = engine.span(config)
    real = engine.script_for
    stretched: list[int] = []

    class Late:
        def __init__(self, script):  # type: ignore[no-untyped-def]
            self.script = script

        def run(self):  # type: ignore[no-untyped-def]
            last = None
            for last in self.script.run():
                yield last
            if last is not None and not stretched:
                stretched.append(last.conversation)
                late = last.event.model_copy(update={"event_time": end + dt.timedelta(milliseconds=50)})
                yield dataclasses.replace(last, event=late, seq=last.seq + 1)

    monkeypatch.setattr(engine, "script_for", lambda spec, sim: Late(real(spec, sim)))
    summary = simulate(config, tmp_path)
    assert stretched  # the late event was offered
    assert sorted(p.name for p in tmp_path.glob("events-*")) == [
        events_file(config.start),
        events_file(config.start + dt.timedelta(days=1)),
    ]
    times = [Event.model_validate_json(raw).event_time for _, _, raw in good_lines(tmp_path)]
    assert len(times) == summary.events and max(times) < end
