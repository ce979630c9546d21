"""Shared helpers for the simulator tests: runs are cached so each world is generated once."""

from __future__ import annotations

import functools
import json
import tempfile
from collections import defaultdict
from pathlib import Path

from pipelines.record import Audience, Event, EventType, Kind, Role
from pipelines.simulate import FAULTS_FILE, SimulationConfig, generate, simulate

#: small but complete: every channel and every rule path appears at least once in a week
WEEK = SimulationConfig(days=7, seed=11, inject_pii=True, inject_faults=0.01)
SMALL = SimulationConfig(days=2, seed=3, employees=4, contacts=30)


@functools.cache
def written(config: SimulationConfig) -> Path:
    """Directory holding the files of ``config``'s run (kept for the whole test session)."""
    out = Path(tempfile.mkdtemp(prefix="vigil-sim-")) / "events"
    simulate(config, out)
    return out


@functools.cache
def events(config: SimulationConfig) -> tuple[Event, ...]:
    """The run's events straight from the generator, in order."""
    return tuple(emitted.event for emitted in generate(config))


def by_conversation(config: SimulationConfig, channel: str) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events(config):
        if event.channel == channel:
            grouped[event.conversation_id].append(event)
    return grouped


def from_contact(event: Event) -> bool:
    """A message the contact wrote."""
    return event.kind == Kind.MESSAGE and event.sender.role == Role.CUSTOMER


def reaches_contact(event: Event) -> bool:
    """A message the contact receives: an employee's (delivered or released), the bot's, or a
    notice addressed to them."""
    if event.kind == Kind.MESSAGE:
        if event.sender.role == Role.EMPLOYEE:
            return event.attributes.get("delivery") == "delivered"
        return event.sender.role == Role.BOT
    if event.kind == Kind.EVENT:
        return event.event_type == EventType.QUEUED_DELIVERED
    return event.audience in (Audience.CUSTOMER, Audience.BOTH)


def fault_lines(out: Path) -> set[tuple[str, int]]:
    path = out / FAULTS_FILE
    if not path.exists():
        return set()
    return {(row["file"], row["line"]) for row in map(json.loads, path.read_text().splitlines())}


def good_lines(out: Path) -> list[tuple[str, int, bytes]]:
    """(file, line number, raw line) of every line not listed as a fault."""
    faults = fault_lines(out)
    rows = []
    for path in sorted(out.glob("events-*.jsonl")):
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if (path.name, number) not in faults:
                    rows.append((path.name, number, raw))
    return rows
