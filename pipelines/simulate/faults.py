"""``--inject-faults``: deliberately bad lines, so ingest's dead-letter and dedup paths get exercised.

Real connectors deliver broken JSON, bytes that are not UTF-8, events without a timezone, the same
event twice (a re-delivery), or a different event under an id already used (a conflict). Every
fault line written is listed in ``_faults.jsonl`` with its file and 1-based line number, so a test
can check that ingest dead-letters (or de-duplicates) exactly these lines and nothing else.

Kinds (``fault`` in ``_faults.jsonl``):

======================= =========================================================================
malformed_json          a line cut off mid-object
invalid_utf8            a JSON line whose body contains bytes that are not UTF-8
missing_field           a required field (org, channel, event_time, sender or conversation_id) missing
unknown_channel         ``channel`` is not one Vigil knows
oversized_body          body longer than ``pipelines.record.MAX_BODY_CHARS`` (line still under 1 MiB)
future_event_time       event_time years ahead of the simulated span
naive_timestamp         event_time without a timezone
empty_message           a message with neither body text nor attachments
exact_duplicate         an earlier good line delivered again (same content, later received_time),
                        sometimes into a later day's file; ingest keeps one copy, no dead letter
conflicting_duplicate   same org, channel and event_id as an earlier good line, different body
huge_line               a line over 1 MiB
duplicate_key           a message line naming ``body`` twice, with different texts (a JSON object
                        with a repeated key reads differently in different parsers)
======================= =========================================================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from collections import deque
from typing import Any

from pipelines.record import MAX_BODY_CHARS, Event

FAULT_KINDS = (
    "malformed_json",
    "invalid_utf8",
    "missing_field",
    "unknown_channel",
    "oversized_body",
    "future_event_time",
    "naive_timestamp",
    "empty_message",
    "exact_duplicate",
    "conflicting_duplicate",
    "huge_line",
    "duplicate_key",
)
#: faults ingest should de-duplicate rather than dead-letter
DUPLICATE_KINDS = frozenset({"exact_duplicate"})
ONE_MIB = 1024 * 1024
_FILLER = "Quarterly review notes, continued. "


@dataclasses.dataclass(frozen=True, slots=True)
class Written:
    """A good line already written: where it is, so a duplicate can point back at it."""

    event: Event
    file: str
    line: int
    #: its body holds spans listed in ``_labels.jsonl`` (which names them by this event's id)
    labelled: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    payload: bytes  # the line, newline included
    event_id: str | None
    duplicate_of: Written | None = None


#: the latest time a shifted timestamp may take: a span near the calendar's end (``--start`` can be
#: as late as 9997-12-31) still gets a future time, never an overflow
_LAST_TIME = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def _later(when: dt.datetime, shift: dt.timedelta) -> dt.datetime:
    """``when + shift``, or the calendar's last second where that would pass it."""
    return when + shift if _LAST_TIME - when > shift else _LAST_TIME


def dump(event: Event) -> bytes:
    """The JSON line for a good event (shared with the writer so duplicates are byte-compatible)."""
    return event.model_dump_json(exclude_none=True).encode() + b"\n"


class FaultInjector:
    """Chooses where faults go (about ``rate`` of lines) and builds them from recent good events."""

    def __init__(self, rng: random.Random, rate: float):
        self.rng = rng
        self.rate = rate
        # every kind at least once: the first ones are placed early, a few lines apart
        self._owed = list(FAULT_KINDS)
        rng.shuffle(self._owed)
        # (a rate under 1/40 spaces them 40 apart: 1 / rate itself may not even be a finite number)
        self._spacing = 0 if rate <= 0 else 40 if rate < 1 / 40 else max(2, round(1 / rate))
        self._recent: deque[Written] = deque(maxlen=64)
        self._earlier_days: deque[Written] = deque(maxlen=32)
        self._seen = 0
        self._serial = 0
        self._crossed_day = False
        self._day_index = 0

    def new_day(self) -> None:
        self._day_index += 1
        self._earlier_days.extend(list(self._recent)[-16:])

    def after(self, written: Written) -> list[Fault]:
        """Faults to write right after the good line ``written`` (usually none)."""
        if self.rate <= 0:
            return []
        self._seen += 1
        self._recent.append(written)
        faults: list[Fault] = []
        if self._earlier_days and not self._crossed_day:
            # a re-delivery that lands in a later day's file than the original
            faults.append(self._exact_duplicate(self.rng.choice(list(self._earlier_days))))
            self._crossed_day = True
        if self._owed and self._seen % self._spacing == 0:
            faults.append(self._make(self._owed.pop(), written))
        elif self.rng.random() < self.rate:
            faults.append(self._make(self.rng.choice(FAULT_KINDS), written))
        return faults

    # -- builders -----------------------------------------------------------------------------

    def _fresh_id(self, event: Event) -> str:
        # '~' never appears in a good id, so a fault never collides with one
        self._serial += 1
        return f"{event.event_id}~fault{self._serial}"

    def _base(self, written: Written) -> tuple[dict[str, Any], str]:
        data = written.event.model_dump(mode="json", exclude_none=True)
        data["event_id"] = self._fresh_id(written.event)
        return data, data["event_id"]

    def _make(self, kind: str, written: Written) -> Fault:
        rng = self.rng
        if kind == "exact_duplicate":
            pool = (
                list(self._earlier_days) if self._earlier_days and rng.random() < 0.3 else list(self._recent)
            )
            return self._exact_duplicate(rng.choice(pool))
        if kind == "conflicting_duplicate":
            return self._conflicting_duplicate(rng.choice(list(self._recent)))
        data, event_id = self._base(written)
        if kind == "malformed_json":
            text = json.dumps(data, ensure_ascii=False)
            cut = rng.randrange(10, max(11, len(text) - 2))
            return Fault(kind, text[:cut].encode() + b"\n", event_id)
        if written.labelled and "body" in data:
            # a copy that still reads as an event gets a fresh id, which no label names: it must
            # not repeat the labelled personal data, or a scorer reading the lines would count
            # every finding in it as a false positive (a cut-off line is not read as an event)
            data["body"] = _FILLER.strip()
        if kind == "invalid_utf8":
            data["body"] = "price list attached @@BAD@@ see page 2"
            raw = json.dumps(data, ensure_ascii=False).encode().replace(b"@@BAD@@", b"\xff\xfe\xc3\x28")
            return Fault(kind, raw + b"\n", event_id)
        if kind == "missing_field":
            data.pop(rng.choice(("org", "channel", "event_time", "sender", "conversation_id")))
        elif kind == "unknown_channel":
            data["channel"] = rng.choice(("telegram", "signal", "fax"))
        elif kind in ("oversized_body", "huge_line"):
            size = (
                MAX_BODY_CHARS + rng.randrange(1, 5000)
                if kind == "oversized_body"
                else ONE_MIB + rng.randrange(1, 65536)
            )
            _as_message(data)
            data["body"] = (_FILLER * (size // len(_FILLER) + 1))[:size]
        elif kind == "future_event_time":
            shift = dt.timedelta(days=365 * rng.randrange(5, 10))
            for name in ("event_time", "received_time"):
                data[name] = _later(dt.datetime.fromisoformat(data[name]), shift).isoformat()
        elif kind == "naive_timestamp":
            data["event_time"] = (
                dt.datetime.fromisoformat(data["event_time"]).replace(tzinfo=None).isoformat()
            )
        elif kind == "empty_message":
            _as_message(data)
            data["attachments"] = []
            data["body"] = rng.choice(("", "   "))
        elif kind == "duplicate_key":
            _as_message(data)
            data["body"] = "Confirming the order as discussed."
            payload = json.dumps(data, ensure_ascii=False).encode()
            # the first "body" says one thing, the second another
            payload = b'{"body": "Cancel the order, do not proceed.", ' + payload[1:]
            return Fault(kind, payload + b"\n", event_id)
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        payload = json.dumps(data, ensure_ascii=False).encode() + b"\n"
        return Fault(kind, payload, event_id)

    def _exact_duplicate(self, original: Written) -> Fault:
        later = original.event.received_time + dt.timedelta(seconds=self.rng.randrange(30, 6 * 3600))
        copy = original.event.model_copy(update={"received_time": later})
        return Fault("exact_duplicate", dump(copy), original.event.event_id, original)

    def _conflicting_duplicate(self, original: Written) -> Fault:
        event = original.event
        body = (event.body or "") + " [edited: amount corrected]"
        copy = event.model_copy(
            update={"body": body, "received_time": event.received_time + dt.timedelta(minutes=5)}
        )
        return Fault("conflicting_duplicate", dump(copy), event.event_id, original)


def _as_message(data: dict[str, Any]) -> None:
    data["kind"] = "message"
    data.pop("event_type", None)
    data.pop("audience", None)
