"""Writing a simulation to disk: one JSON-lines file per day, plus metadata files.

Layout of ``DIR``::

    events-2026-01-05.jsonl    one pipelines.record.Event per line (UTC day of event_time)
    events-2026-01-06.jsonl    ...
    _simulation.json           arguments and counts
    _labels.jsonl              ground truth for DLP (with --inject-pii)
    _faults.jsonl              every deliberately broken line (with --inject-faults)

Every file is written under a hidden temporary name (``.name.tmp``) and renamed when complete, so
a process following the directory never reads half a file. Ingest skips names starting with ``_``
or ``.``. Events are streamed: nothing but counters and a few recent lines (for duplicates) is
held in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from pipelines.errors import ConfigError
from pipelines.progress import declare, report
from pipelines.record import SCHEMA_VERSION, record_id_for
from pipelines.simulate.config import SimulationConfig
from pipelines.simulate.engine import calibrate, generate
from pipelines.simulate.factory import Emitted
from pipelines.simulate.faults import Fault, FaultInjector, Written, dump
from pipelines.simulate.world import build_world

SIMULATION_FILE = "_simulation.json"
LABELS_FILE = "_labels.jsonl"
FAULTS_FILE = "_faults.jsonl"
_METADATA = frozenset({SIMULATION_FILE, LABELS_FILE, FAULTS_FILE})
_DAY_FILE = re.compile(r"events-\d{4}-\d{2}-\d{2}\.jsonl")
_BATCH = 1000


def events_file(day: dt.date) -> str:
    return f"events-{day.isoformat()}.jsonl"


class AtomicFile:
    """A file that appears under its name only once it is complete."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self._fh: IO[bytes] | None = open(self.tmp, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in commit/abort
        self.lines = 0
        self.bytes = 0
        self.committed = False

    def write(self, payload: bytes) -> int:
        """Write one line; returns its 1-based line number."""
        assert self._fh is not None
        self._fh.write(payload)
        self.lines += 1
        self.bytes += len(payload)
        return self.lines

    def commit(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            os.replace(self.tmp, self.path)
            self.committed = True

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.tmp.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove the file whether it was committed or not (a failed run leaves nothing)."""
        self.abort()
        if self.committed:
            self.path.unlink(missing_ok=True)


@dataclass
class Summary:
    """What a run wrote. ``lines`` = ``events`` (good lines) + ``sum(faults.values())``."""

    out_dir: Path
    config: SimulationConfig
    activity: float
    events: int = 0
    lines: int = 0
    bytes: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_event_type: Counter[str] = field(default_factory=Counter)
    by_direction: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    files: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, emitted: Emitted) -> None:
        event = emitted.event
        self.events += 1
        self.by_channel[event.channel] += 1
        self.by_kind[event.kind] += 1
        self.by_direction[event.direction] += 1
        if event.event_type is not None:
            self.by_event_type[event.event_type] += 1

    def to_json(self) -> dict[str, Any]:
        def ordered(counter: Counter[str]) -> dict[str, int]:
            return dict(sorted(counter.items()))

        return {
            "generator": "vigil simulate",
            "vigil_version": _version(),
            "schema_version": SCHEMA_VERSION,
            "arguments": self.config.to_json(),
            "activity": round(self.activity, 6),
            "counts": {
                "events": self.events,
                "lines": self.lines,
                "bytes": self.bytes,
                "by_channel": ordered(self.by_channel),
                "by_kind": ordered(self.by_kind),
                "by_event_type": ordered(self.by_event_type),
                "by_direction": ordered(self.by_direction),
                "faults": ordered(self.faults),
                "labels": ordered(self.labels),
            },
            "files": self.files,
        }


def _version() -> str:
    try:
        return metadata.version("vigil")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def _ours(name: str) -> bool:
    """A name the simulator writes: a day file, a metadata file, or one of those being written."""
    if name.startswith(".") and name.endswith(".tmp"):
        name = name[1:-4]
    return bool(_DAY_FILE.fullmatch(name)) or name in _METADATA


def prepare(out_dir: Path, *, overwrite: bool) -> list[Path]:
    """Create ``out_dir``, check it can be written and return the earlier simulation's files that
    the new run replaces. Without ``overwrite`` it must be empty (`vigil run` reads every
    ``*.jsonl`` there, so anything else would be archived with the simulation); with it, only the
    simulator's own files are replaced and nothing else is touched. Nothing is deleted here: the
    caller removes the old files once the new run's arguments have proved usable."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; give a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".vigil-write-probe-{os.getpid()}.tmp"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(
            f"cannot write to --out {out_dir}: {reason}; choose a directory this user can create and write"
        ) from exc
    names = sorted(p.name for p in out_dir.iterdir())
    existing = [out_dir / name for name in names if _ours(name)]
    if not overwrite and names:
        if existing:
            raise ConfigError(
                f"{out_dir} already holds simulation output ({existing[0].name}"
                + (f" and {len(existing) - 1} more" if len(existing) > 1 else "")
                + "); choose an empty directory or pass --overwrite to replace it"
            )
        raise ConfigError(
            f"--out {out_dir} is not empty ({names[0]}"
            + (f" and {len(names) - 1} more" if len(names) > 1 else "")
            + "); `vigil run` would read its files with the events: choose an empty directory, or "
            "pass --overwrite to write there anyway (only the simulator's own files are replaced)"
        )
    return existing


def simulate(
    config: SimulationConfig, out_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> Summary:
    """Write the simulation described by ``config`` into ``out_dir``; returns the counts.

    With ``overwrite`` the earlier simulation's files are removed only once the world is built and
    the activity calibrated (a run refused for its arguments leaves them as they were). A run that
    fails or is interrupted removes what it wrote, so a half-written simulation is never left for
    `vigil run` to archive as if it were whole."""
    out = Path(out_dir)
    earlier = prepare(out, overwrite=overwrite)
    world = build_world(config.seed, config.employees, config.contacts)
    activity = calibrate(config, world)
    summary = Summary(out, config, activity)
    days = [config.start + dt.timedelta(days=i) for i in range(config.days)]
    injector = (
        FaultInjector(random.Random(f"vigil-faults:{config.seed}"), config.inject_faults)
        if config.inject_faults > 0
        else None
    )
    for path in earlier:
        path.unlink(missing_ok=True)
    labels = AtomicFile(out / LABELS_FILE) if config.inject_pii else None
    faults_out = AtomicFile(out / FAULTS_FILE) if injector is not None else None
    declare("simulate: days", len(days))
    declare("simulate: events", config.target_events)
    index = 0
    current = AtomicFile(out / events_file(days[0]))
    pending: list[AtomicFile] = [current]
    batch = 0
    try:
        for emitted in generate(config, world=world, activity=activity):
            day = emitted.event.event_time.date()
            while day != days[index]:
                _close_day(current, summary)
                index += 1
                current = AtomicFile(out / events_file(days[index]))
                pending.append(current)
                if injector is not None:
                    injector.new_day()
                report("simulate: days")
            line = current.write(dump(emitted.event))
            summary.count(emitted)
            if labels is not None:
                _write_labels(labels, emitted, summary)
            if injector is not None and faults_out is not None:
                written = Written(
                    emitted.event,
                    current.path.name,
                    line,
                    labelled=labels is not None and bool(emitted.labels),
                )
                for fault in injector.after(written):
                    _write_fault(current, faults_out, fault, summary)
            batch += 1
            if batch == _BATCH:
                report("simulate: events", batch)
                batch = 0
        report("simulate: events", batch)
        _close_day(current, summary)
        for day in days[index + 1 :]:
            empty = AtomicFile(out / events_file(day))
            pending.append(empty)
            _close_day(empty, summary)
        report("simulate: days", len(days) - index)
        for extra in (labels, faults_out):
            if extra is not None:
                extra.commit()
        meta = AtomicFile(out / SIMULATION_FILE)
        pending.append(meta)
        meta.write(json.dumps(summary.to_json(), indent=2, ensure_ascii=False).encode() + b"\n")
        meta.commit()
    except BaseException:
        for handle in (*pending, labels, faults_out):
            if handle is not None:
                handle.discard()
        raise
    return summary


def _close_day(handle: AtomicFile, summary: Summary) -> None:
    handle.commit()
    summary.lines += handle.lines
    summary.bytes += handle.bytes
    summary.files[handle.path.name] = {"lines": handle.lines, "bytes": handle.bytes}


def _write_labels(labels: AtomicFile, emitted: Emitted, summary: Summary) -> None:
    event = emitted.event
    if not emitted.labels:
        return
    record_id = record_id_for(event.org, event.channel, event.event_id)
    for label in emitted.labels:
        row = {
            "record_id": record_id,
            "event_id": event.event_id,
            "channel": event.channel,
            "start": label.start,
            "end": label.end,
            "entity": label.entity,
            "variant": label.variant,
        }
        labels.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        summary.labels[label.entity] += 1


def _write_fault(current: AtomicFile, faults_out: AtomicFile, fault: Fault, summary: Summary) -> None:
    line = current.write(fault.payload)
    summary.faults[fault.kind] += 1
    row: dict[str, Any] = {
        "file": current.path.name,
        "line": line,
        "fault": fault.kind,
        "event_id": fault.event_id,
    }
    if fault.duplicate_of is not None:
        row["duplicate_of"] = {"file": fault.duplicate_of.file, "line": fault.duplicate_of.line}
    faults_out.write(json.dumps(row).encode() + b"\n")
