"""When things happen: working hours, reply delays, connector latency, and a per-conversation agenda.

People message during their working day (a morning peak, a lunch dip, a second wind in the
afternoon), much less at weekends. Each conversation is simulated as a small discrete-event
process: an :class:`Agenda` of future steps in time order, so timers (a 24-hour window closing, a
48-hour inactivity mark) interleave correctly with messages. The agenda only ever holds the next
few steps of one conversation, which is what keeps memory flat however many events a run writes.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

UTC = dt.UTC

# Relative chance that a conversation gets going in each local hour of a working day.
HOUR_WEIGHTS = (
    0.1,
    0.05,
    0.05,
    0.05,
    0.05,
    0.1,
    0.3,
    1.2,
    4.0,
    8.0,
    9.0,
    8.5,
    5.0,
    6.5,
    8.0,
    7.5,
    6.0,
    4.0,
    2.2,
    1.4,
    1.0,
    0.7,
    0.4,
    0.2,
)
_CUM_HOURS = tuple(itertools.accumulate(HOUR_WEIGHTS))
WEEKDAY_FACTOR = (1.0, 1.05, 1.05, 1.0, 0.9, 0.18, 0.1)  # Monday .. Sunday


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal above 30)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def working_time(rng: random.Random, day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """A moment on local ``day`` drawn from the working-hours profile, in UTC."""
    hour = rng.choices(range(24), cum_weights=_CUM_HOURS)[0]
    local = dt.datetime(day.year, day.month, day.day, hour, tzinfo=tz) + dt.timedelta(
        seconds=rng.randrange(3600), microseconds=rng.randrange(1_000_000)
    )
    return local.astimezone(UTC)


def day_times(rng: random.Random, day: dt.date, tz: ZoneInfo, rate: float) -> list[dt.datetime]:
    """Start times of the sessions a conversation has on ``day`` (``rate`` = mean on a Monday)."""
    count = poisson(rng, rate * WEEKDAY_FACTOR[day.weekday()])
    return sorted(working_time(rng, day, tz) for _ in range(count))


def lognormal_seconds(rng: random.Random, median: float, sigma: float, cap: float) -> dt.timedelta:
    return dt.timedelta(seconds=min(cap, median * math.exp(rng.gauss(0, sigma))))


def typing_gap(rng: random.Random) -> dt.timedelta:
    """Between two messages from the same person."""
    return lognormal_seconds(rng, 25, 0.8, 600)


def reply_gap(rng: random.Random) -> dt.timedelta:
    """Until the other side answers within a live exchange; now and then much later."""
    if rng.random() < 0.06:
        return lognormal_seconds(rng, 3 * 3600, 0.8, 30 * 3600)
    return lognormal_seconds(rng, 120, 1.1, 3 * 3600)


def connector_delay(rng: random.Random, *, phone_clock: bool = True) -> dt.timedelta:
    """received_time - event_time: usually a fraction of a second to a minute, sometimes negative
    by a few seconds because phones' clocks drift and the event time is the phone's. What the
    platform stamps itself (``phone_clock`` false: auto-messages, events) is never early; it draws
    the same numbers, so the rest of a seed's traffic does not shift."""
    if rng.random() < 0.02:
        skew = dt.timedelta(milliseconds=rng.randrange(200, 5000))
        return -skew if phone_clock else skew
    return lognormal_seconds(rng, 0.8, 1.3, 300)


class Agenda:
    """Future steps of one conversation, popped in time order (ties in insertion order)."""

    __slots__ = ("_heap", "_seq", "end")

    def __init__(self, end: dt.datetime):
        self._heap: list[tuple[dt.datetime, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.end = end

    def at(self, when: dt.datetime, step: Callable[..., Any], *args: Any) -> None:
        if when < self.end:
            heapq.heappush(self._heap, (when, next(self._seq), step, args))

    def __len__(self) -> int:
        return len(self._heap)

    def drain(self) -> Iterator[tuple[dt.datetime, Callable[..., Any], tuple[Any, ...]]]:
        while self._heap:
            when, _, step, args = heapq.heappop(self._heap)
            yield when, step, args
