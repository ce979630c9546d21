"""Turns what happens in one conversation into :class:`pipelines.record.Event` objects.

A :class:`ConversationWriter` knows the conversation's identity (org, channel, conversation and
thread ids), who is present right now, and the clock. It builds every event through the pydantic
model, so each line the simulator writes is valid by construction, and it keeps event ids unique
per (org, channel) by numbering them within a conversation key that is itself unique.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines import automessages
from pipelines.record import Attachment, Audience, Channel, Direction, Event, EventType, Kind, Party, Role
from pipelines.simulate.clock import connector_delay
from pipelines.simulate.rules import Deliver, Effect, Happen, Notify
from pipelines.simulate.text import Label, Text

ID_PREFIX = {
    Channel.SMS: "SM",
    Channel.MMS: "MM",
    Channel.VOICEMAIL: "VM",
    Channel.WHATSAPP: "wamid.",
    Channel.WECHAT: "wx",
    Channel.LINE: "ln",
    Channel.TEAMS: "tm",
}
SYSTEM_NAMES = {
    Channel.SMS: "SMS gateway",
    Channel.MMS: "MMS gateway",
    Channel.VOICEMAIL: "Voicemail",
    Channel.WHATSAPP: "WhatsApp Business",
    Channel.WECHAT: "WeChat Official Account",
    Channel.LINE: "LINE Official Account",
    Channel.TEAMS: "Teams messaging app",
}
#: auto-message context keys whose values are people's names (labelled PERSON in the notice)
NAME_KEYS = ("contact_name", "employee_name", "name", "by_name", "from_name", "to_name", "added", "removed")
_ONE_MS = dt.timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Emitted:
    """One generated event with the personal-data spans in its body."""

    event: Event
    labels: tuple[Label, ...]
    conversation: int  # conversation key number, for a stable order among simultaneous events
    seq: int

    @property
    def order(self) -> tuple[dt.datetime, int, int]:
        return (self.event.event_time, self.conversation, self.seq)


class ConversationWriter:
    """Builds the events of one conversation; ``members`` are the employees currently in it."""

    def __init__(
        self,
        *,
        number: int,
        org: str,
        sub_org: str,
        channel: Channel,
        conversation_id: str,
        rng: random.Random,
        members: Iterable[Party],
        customer: Party | None,
        context: Mapping[str, Any],
        is_group: bool = False,
        inject: Callable[[Text, str], Text] | None = None,
        lang: str = "en",
    ):
        self.number = number
        self.org = org
        self.sub_org = sub_org
        self.channel = channel
        self.conversation_id = conversation_id
        self.thread_id = f"{conversation_id}/t1"
        self.rng = rng
        self.members: list[Party] = list(members)
        self.customer = customer
        self.bot: Party | None = None  # a bot present in the conversation right now
        #: a bot that joins when it first acts (its ``Happen(..., "bot")``, e.g. routing started)
        self.assistant: Party | None = None
        self.is_group = is_group
        self.context = dict(context)
        self.inject = inject
        self.lang = lang
        self.attributes: dict[str, str] = {}  # added to every event (e.g. LINE validated_phone)
        self.system = Party(id=f"system:{channel}", name=SYSTEM_NAMES[channel], role=Role.SYSTEM, handle=None)
        self.seq = 0
        self.last = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        self._key = f"c{number:06d}"

    # -- identity and time --------------------------------------------------------------------

    def next_event_id(self) -> str:
        """The id the next event will get (rules reference queued messages by it)."""
        sep = "." if self.channel == Channel.WHATSAPP else "-"
        return f"{ID_PREFIX[self.channel]}{self._key}{sep}{self.seq + 1:07d}"

    def settle(self, at: dt.datetime) -> dt.datetime:
        """The time an action planned for ``at`` actually happens: after everything already written
        (so rules and events agree on it to the microsecond)."""
        return at if at > self.last else self.last + _ONE_MS

    def _stamp(self, at: dt.datetime) -> dt.datetime:
        # strictly increasing within a conversation, so the archive order is unambiguous
        when = at if at > self.last else self.last + _ONE_MS
        self.last = when
        return when

    def participants(self) -> list[Party]:
        people = list(self.members)
        if self.customer is not None:
            people.append(self.customer)
        if self.bot is not None:
            people.append(self.bot)
        return people

    def member(self, employee_id: str) -> Party:
        for party in self.members:
            if party.id == employee_id:
                return party
        raise KeyError(f"{employee_id} is not in conversation {self.conversation_id}")

    # -- events -------------------------------------------------------------------------------

    def _build(
        self,
        at: dt.datetime,
        *,
        kind: Kind,
        sender: Party,
        direction: Direction,
        recipients: list[Party],
        text: Text | None = None,
        event_type: EventType | None = None,
        audience: Audience | None = None,
        attachments: Iterable[Attachment] = (),
        attributes: Mapping[str, str] | None = None,
        template_id: str | None = None,
    ) -> Emitted:
        when = self._stamp(at)
        event_id = self.next_event_id()
        self.seq += 1
        attrs = {**self.attributes, **(attributes or {})}
        # a person's phone stamps a message; the platform stamps everything else
        phone_clock = kind == Kind.MESSAGE and sender.role in (Role.EMPLOYEE, Role.CUSTOMER)
        event = Event(
            event_id=event_id,
            org=self.org,
            sub_org=self.sub_org,
            channel=self.channel,
            kind=kind,
            event_type=event_type,
            audience=audience,
            direction=direction,
            event_time=when,
            received_time=when + connector_delay(self.rng, phone_clock=phone_clock),
            conversation_id=self.conversation_id,
            thread_id=self.thread_id,
            is_group=self.is_group,
            participants=self.participants(),
            sender=sender,
            recipients=recipients,
            body=text.body if text is not None and text.body else None,
            attachments=list(attachments),
            template_id=template_id,
            attributes=dict(sorted(attrs.items())),
        )
        labels = text.labels if text is not None and text.body else ()
        return Emitted(event, labels, self.number, self.seq)

    def message(
        self,
        at: dt.datetime,
        sender: Party,
        text: Text,
        *,
        attachments: Iterable[Attachment] = (),
        attributes: Mapping[str, str] | None = None,
        template_id: str | None = None,
        lang: str | None = None,
        chatter: bool = True,
    ) -> Emitted:
        """A message as the sender typed it. PII may be injected into ``chatter`` (people's own
        words), never into answers a system waits for (consent, phone numbers, codes, keywords)."""
        if (
            self.inject is not None
            and chatter
            and sender.role in (Role.EMPLOYEE, Role.CUSTOMER)
            and template_id is None
        ):
            text = self.inject(text, lang or self.lang)
        direction = _direction(sender, self.customer)
        recipients = [p for p in self.participants() if p.id != sender.id]
        return self._build(
            at,
            kind=Kind.MESSAGE,
            sender=sender,
            direction=direction,
            recipients=recipients,
            text=text,
            attachments=attachments,
            attributes=attributes,
            template_id=template_id,
        )

    def auto(
        self,
        at: dt.datetime,
        event_type: EventType,
        audience: Audience,
        context: Mapping[str, Any],
        attributes: Mapping[str, str] | None = None,
    ) -> Emitted:
        merged = {**self.context, **context}
        body = automessages.render(event_type, audience, channel=self.channel, **merged)
        return self._build(
            at,
            kind=Kind.AUTO_MESSAGE,
            sender=self.system,
            direction=Direction.SYSTEM,
            recipients=self._audience(audience),
            text=Text(body, _name_labels(body, merged)),
            event_type=event_type,
            audience=audience,
            attributes=attributes,
        )

    def event(
        self,
        at: dt.datetime,
        event_type: EventType,
        actor: Party | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> Emitted:
        sender = actor or self.system
        return self._build(
            at,
            kind=Kind.EVENT,
            sender=sender,
            direction=_direction(sender, self.customer) if actor is not None else Direction.SYSTEM,
            recipients=[],
            event_type=event_type,
            attributes=attributes,
        )

    def _audience(self, audience: Audience) -> list[Party]:
        if audience == Audience.EMPLOYEE:
            return list(self.members)
        if audience == Audience.CUSTOMER:
            return [self.customer] if self.customer is not None else []
        return [*self.members, *([self.customer] if self.customer is not None else [])]

    # -- effects of a channel rule ------------------------------------------------------------

    def apply(
        self,
        at: dt.datetime,
        effects: Iterable[Effect],
        *,
        attempt: Callable[[dt.datetime, Mapping[str, str]], Emitted] | None = None,
        actor: Party | None = None,
    ) -> Iterator[Emitted]:
        """Events for ``effects``: ``attempt`` archives the message a Deliver refers to; notices and
        events follow the action by a moment, timer effects carry their own time."""
        cursor = at
        for effect in effects:
            when = effect.at if not isinstance(effect, Deliver) and effect.at is not None else cursor
            if isinstance(effect, Deliver):
                if attempt is None:
                    raise ValueError("a Deliver effect needs the attempted message")
                yield attempt(when, effect.attributes)
            elif isinstance(effect, Notify):
                yield self.auto(when, effect.event_type, effect.audience, effect.context, effect.attributes)
            elif isinstance(effect, Happen):
                if effect.actor == "bot" and self.bot is None:
                    self.bot = self.assistant  # listed from its first event on, not before it
                yield self.event(when, effect.event_type, self._actor(effect.actor, actor), effect.attributes)
            cursor = max(cursor, self.last) + dt.timedelta(milliseconds=self.rng.randrange(150, 1500))

    def _actor(self, name: str, default: Party | None) -> Party | None:
        if name == "system":
            return None
        if name == "customer":
            return self.customer
        if name == "bot":
            return self.bot
        if default is not None and default.id == name:
            return default
        for party in self.members:
            if party.id == name:
                return party
        return default


def _direction(sender: Party, customer: Party | None) -> Direction:
    role = sender.role
    if role == Role.CUSTOMER:
        return Direction.INBOUND
    if role == Role.SYSTEM:
        return Direction.SYSTEM
    if customer is None:
        return Direction.INTERNAL
    return Direction.OUTBOUND


def _name_labels(body: str, context: Mapping[str, Any]) -> tuple[Label, ...]:
    found: set[tuple[int, int]] = set()
    for key in NAME_KEYS:
        value = context.get(key)
        for name in value if isinstance(value, list | tuple) else [value]:
            if not isinstance(name, str) or not name:
                continue
            start = body.find(name)
            while start >= 0:
                found.add((start, start + len(name)))
                start = body.find(name, start + len(name))
    # a name inside a longer one ("Ken" in "Ken Sato") is one person: keep the outer span
    spans = sorted(found, key=lambda s: (s[0], -s[1]))
    kept: list[tuple[int, int]] = []
    for span in spans:
        if kept and span[0] < kept[-1][1]:
            continue
        kept.append(span)
    return tuple(Label(s, e, "PERSON") for s, e in kept)
