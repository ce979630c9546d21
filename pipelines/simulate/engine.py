"""The event stream of a whole simulated world, lazily, in time order.

:func:`plan` lists the conversations (one per contact and channel, plus group and internal chats);
:func:`generate` runs one script per conversation and merges their streams by event time with
:func:`heapq.merge`. Each script holds only its own state and its next few steps, and the merge
holds one pending event per conversation, so memory depends on the size of the world, never on how
many events are produced.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterator
from itertools import takewhile
from operator import attrgetter

from pipelines.errors import ConfigError
from pipelines.record import Channel
from pipelines.simulate.channels import ConversationSpec, Simulation, script_for
from pipelines.simulate.config import MAX_ACTIVITY, SimulationConfig
from pipelines.simulate.factory import Emitted
from pipelines.simulate.world import World, build_world

#: sessions per conversation on a Monday at activity 1.0 (weekends are much quieter)
RATES: dict[tuple[Channel, str], float] = {
    (Channel.SMS, "direct"): 2.2,
    (Channel.MMS, "direct"): 0.6,
    (Channel.VOICEMAIL, "direct"): 0.6,
    (Channel.WHATSAPP, "direct"): 2.5,
    (Channel.WHATSAPP, "group"): 1.5,
    (Channel.WECHAT, "direct"): 2.5,
    (Channel.WECHAT, "group"): 1.2,
    (Channel.LINE, "direct"): 2.5,
    (Channel.TEAMS, "app"): 1.2,
    (Channel.TEAMS, "internal"): 5.0,
}


def plan(world: World) -> Iterator[ConversationSpec]:
    """Every conversation of the world, numbered; the numbers make event ids unique."""
    number = 0

    def spec(channel: Channel, employees: tuple, contact, kind: str) -> ConversationSpec:  # type: ignore[no-untyped-def]
        nonlocal number
        number += 1
        return ConversationSpec(number, channel, employees, contact, kind, RATES[(channel, kind)])

    for contact in world.contacts:
        for channel in Channel:  # enum order, never set order: the plan must not depend on hashing
            if channel in contact.channels:
                yield spec(
                    channel, (contact.advisor,), contact, "app" if channel == Channel.TEAMS else "direct"
                )
        if Channel.WHATSAPP in contact.channels and contact.whatsapp_group:
            yield spec(Channel.WHATSAPP, contact.whatsapp_group, contact, "group")
        if Channel.WECHAT in contact.channels and contact.wechat_group:
            yield spec(Channel.WECHAT, contact.wechat_group, contact, "group")
    for chat in world.internal_chats:
        yield spec(Channel.TEAMS, chat, None, "internal")


def span(config: SimulationConfig) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(config.start.year, config.start.month, config.start.day, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=config.days)


def generate(
    config: SimulationConfig, *, world: World | None = None, activity: float | None = None
) -> Iterator[Emitted]:
    """All events of the run in event-time order (ties broken by conversation, then sequence).

    Only steps before the end of the span are planned, but a step's notices follow it by up to a
    few seconds, so one planned just before midnight of the last day can yield events after it:
    those belong to a day the run does not cover and are left out (the span is ``[start, end)``).
    """
    world = world if world is not None else build_world(config.seed, config.employees, config.contacts)
    start, end = span(config)
    sim = Simulation(config, world, start, end, activity if activity is not None else config.activity)
    streams = [script_for(spec, sim).run() for spec in plan(world)]
    merged = heapq.merge(*streams, key=attrgetter("order"))
    return takewhile(lambda emitted: emitted.event.event_time < end, merged)


def calibrate(config: SimulationConfig, world: World) -> float:
    """The activity at which the run yields about ``config.target_events`` events.

    Pilot runs count events (nothing is written). The count is not quite proportional to activity:
    part of it happens once per conversation however busy it gets (opt-ins, welcomes), the rest
    grows with the number of sessions. So the span is counted at activity 1 and at a quarter of it,
    the count modelled as ``fixed + per_unit * activity``, and that line solved for the target.
    A target the world can only reach above ``--activity``'s limit is a :class:`ConfigError`.
    """
    if config.target_events is None:
        return config.activity
    activity = _calibrate(config, world)
    if activity > MAX_ACTIVITY:
        raise ConfigError(
            f"--target-events {config.target_events} needs --activity of about {activity:,.0f}, above its "
            f"limit of {MAX_ACTIVITY}, for {config.employees} employees, {config.contacts} contacts and "
            f"{config.days} days; ask for fewer events or a bigger world (--days, --employees, --contacts)"
        )
    return activity


def _calibrate(config: SimulationConfig, world: World) -> float:
    assert config.target_events is not None
    pilot = config.replace(inject_pii=False, inject_faults=0.0, target_events=None)
    full = _count(pilot, world, 1.0)
    ratio = config.target_events / max(full, 1)
    if 0.8 <= ratio <= 1.25:
        return max(0.01, ratio)
    quarter = _count(pilot, world, 0.25)
    per_unit = (full - quarter) / 0.75
    if full <= 0 or per_unit <= 0:
        return max(0.01, ratio)
    return max(0.01, (config.target_events - (full - per_unit)) / per_unit)


def _count(config: SimulationConfig, world: World, activity: float) -> int:
    return sum(1 for _ in generate(config, world=world, activity=activity))
