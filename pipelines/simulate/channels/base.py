"""What every simulated conversation shares: its spec, its agenda, and the people talking.

A conversation is a small discrete-event process. Each working day it draws a few *sessions*
(someone gets in touch); a session schedules the exchange that follows as individual steps on the
conversation's :class:`~pipelines.simulate.clock.Agenda`, so replies, consents arriving hours later
and timers (windows closing, inactivity marks) all come out in time order. Channel scripts
subclass :class:`Script` and decide what people *try*; the channel's state machine decides what the
platform *allows*.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass

from pipelines.record import Channel, Party
from pipelines.simulate import phrases
from pipelines.simulate.clock import Agenda, day_times, reply_gap, typing_gap
from pipelines.simulate.config import SimulationConfig
from pipelines.simulate.factory import ConversationWriter, Emitted
from pipelines.simulate.pii import Injector
from pipelines.simulate.text import Text, Voices, chat_line
from pipelines.simulate.world import Contact, Employee, World


@dataclass(frozen=True)
class ConversationSpec:
    """One conversation to simulate. ``employees[0]`` owns it; the rest start in it (groups)."""

    number: int  # unique across the run; part of every event id
    channel: Channel
    employees: tuple[Employee, ...]
    contact: Contact | None  # None for internal Teams chats
    kind: str  # direct, group, app (Teams app to a customer) or internal
    rate: float  # sessions on a Monday at activity 1.0

    @property
    def owner(self) -> Employee:
        return self.employees[0]

    @property
    def conversation_id(self) -> str:
        return f"{self.owner.org.id}:{self.channel}:{self.kind}:{self.number:06d}"


@dataclass(frozen=True)
class Simulation:
    """Run-wide inputs every script reads."""

    config: SimulationConfig
    world: World
    start: dt.datetime
    end: dt.datetime
    activity: float


class Script:
    """Base of the per-channel behaviour scripts."""

    def __init__(self, spec: ConversationSpec, sim: Simulation):
        self.spec = spec
        self.sim = sim
        seed = sim.config.seed
        self.rng = random.Random(f"vigil-conversation:{seed}:{spec.number}")
        self.owner = spec.owner
        self.contact = spec.contact
        self.tz = self.owner.sub_org.tz
        self.agenda = Agenda(sim.end)
        self.lang = self.language()
        colleagues = sim.world.colleagues(self.owner)
        self.colleague = colleagues[spec.number % len(colleagues)] if colleagues else self.owner
        inject = None
        if sim.config.inject_pii:
            inject = Injector(random.Random(f"vigil-pii:{seed}:{spec.number}"), sim.config.pii_rate)
        self.out = ConversationWriter(
            number=spec.number,
            org=self.owner.org.id,
            sub_org=self.owner.sub_org.id,
            channel=spec.channel,
            conversation_id=spec.conversation_id,
            rng=self.rng,
            members=[e.party for e in spec.employees],
            customer=self.contact.party(spec.channel) if self.contact is not None else None,
            context=self.base_context(),
            is_group=spec.kind == "group" or len(spec.employees) > (2 if spec.kind == "internal" else 1),
            inject=inject,
            lang=self.lang,
        )

    # -- setup --------------------------------------------------------------------------------

    def language(self) -> str:
        """Language of the conversation: the contact's own on WeChat and LINE, English elsewhere."""
        if self.contact is not None and self.spec.channel in (Channel.WECHAT, Channel.LINE):
            return self.contact.lang
        return "en"

    def base_context(self) -> dict[str, object]:
        context: dict[str, object] = {"employee_name": self.owner.name.display, "firm": self.owner.org.name}
        if self.contact is not None:
            context.update(contact_name=self.contact.name.display, lang=self.lang)
        return context

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> Iterator[Emitted]:
        first_day = self.sim.start.astimezone(self.tz).date()
        self.plan_day(self.sim.start, first_day)
        for when, step, args in self.agenda.drain():
            yield from self.timers(when)
            if when >= self.sim.start:
                yield from step(self.out.settle(when), *args)
        yield from self.timers(self.sim.end)

    def plan_day(self, _when: dt.datetime, day: dt.date) -> Iterator[Emitted]:
        rate = self.spec.rate * self.sim.activity
        for start in day_times(self.rng, day, self.tz, rate):
            self.agenda.at(start, self.session)
        following = day + dt.timedelta(days=1)
        midnight = dt.datetime(following.year, following.month, following.day, tzinfo=self.tz).astimezone(
            dt.UTC
        )
        self.agenda.at(midnight, self.plan_day, following)
        return iter(())

    def session(self, at: dt.datetime) -> Iterator[Emitted]:
        raise NotImplementedError

    def timers(self, until: dt.datetime) -> Iterator[Emitted]:
        return iter(())

    # -- helpers ------------------------------------------------------------------------------

    def topic(self) -> str:
        return self.rng.choice(phrases.TOPICS)

    def exchange(self, at: dt.datetime, first: str, steps: int, topic: str, *, switch: float = 0.65) -> None:
        """Schedule a back-and-forth of ``steps`` messages starting with ``first``."""
        who, when = first, at
        for index in range(steps):
            self.agenda.at(when, self.say, who, topic, index == 0)
            if self.rng.random() < switch:
                who = "customer" if who == "employee" else "employee"
                when = when + reply_gap(self.rng)
            else:
                when = when + typing_gap(self.rng)

    def steps(self) -> int:
        return min(14, 1 + int(self.rng.expovariate(1 / 3.2)))

    def say(self, at: dt.datetime, who: str, topic: str, opener: bool) -> Iterator[Emitted]:
        raise NotImplementedError

    def voices(self, sender: Party) -> Voices:
        """Names for phrase slots from ``sender``'s point of view."""
        contact, owner = self.contact, self.owner
        colleague = self.colleague.name.display
        if contact is not None and sender.id == contact.id:
            return Voices(
                first=owner.name.short,
                me=contact.name.short,
                colleague=owner.name.display,
                firm=owner.org.name,
            )
        first = contact.name.short if contact is not None else owner.name.short
        me = sender.name.split()[0] if sender.name else ""
        return Voices(first=first, me=me, colleague=colleague, firm=owner.org.name)

    def employee_text(self, sender: Party, topic: str, opener: bool) -> Text:
        return chat_line(self.rng, self.lang, "employee", topic, self.voices(sender), opener=opener)

    def customer_text(self, topic: str, opener: bool) -> Text:
        assert self.contact is not None
        return chat_line(
            self.rng,
            self.lang,
            "customer",
            topic,
            self.voices(self.contact.party(self.spec.channel)),
            opener=opener,
        )

    def speaker(self) -> Party:
        """Which employee in the conversation writes next (the owner most of the time)."""
        members = self.out.members
        if not members:
            return self.owner.party
        if len(members) == 1 or self.rng.random() < 0.6:
            return next((m for m in members if m.id == self.owner.id), members[0])
        return self.rng.choice(members)
