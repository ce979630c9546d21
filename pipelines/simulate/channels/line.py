"""LINE Official Accounts: contact-initiated chats, validated phone numbers, leaving.

Rules:

* Only the contact can start a chat (adding the account as a friend or writing to it:
  ``conversation_started``); both sides get a welcome notice.
* For regulated users the contact's phone number has been validated; the employee sees it
  (``validated_phone_shown``) and every event of the conversation carries it in
  ``attributes.validated_phone``.
* An employee can leave (``left_conversation``, notices to both parties) so a colleague can take
  over; once nobody from the firm is left, only the contact can restart the chat.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pipelines.record import Audience, Channel, EventType, Party
from pipelines.simulate import text as texts
from pipelines.simulate.channels.base import Script
from pipelines.simulate.clock import reply_gap
from pipelines.simulate.factory import Emitted
from pipelines.simulate.rules import Effect, Happen, Notify, delivered, require


class Phase(StrEnum):
    IDLE = "idle"
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class State:
    phase: Phase = Phase.IDLE
    members: tuple[str, ...] = ()


Step = tuple[State, tuple[Effect, ...]]


def follow(state: State, now: dt.datetime, *, members: tuple[str, ...], validated_phone: str | None) -> Step:
    require(state.phase == Phase.IDLE, "the chat is already open")
    require(bool(members), "someone from the firm must be assigned")
    effects: list[Effect] = [
        Happen(EventType.CONVERSATION_STARTED, "customer"),
        Notify(EventType.WELCOME, Audience.CUSTOMER),
        Notify(EventType.WELCOME, Audience.EMPLOYEE),
    ]
    if validated_phone:
        effects.append(
            Happen(EventType.VALIDATED_PHONE_SHOWN, "system", {"validated_phone": validated_phone})
        )
    return State(Phase.OPEN, members), tuple(effects)


def employee_message(state: State, now: dt.datetime, employee: Party) -> Step:
    require(state.phase == Phase.OPEN, "LINE chats are started by the contact")
    require(employee.id in state.members, f"{employee.id} is not in the chat")
    return state, (delivered(),)


def customer_message(state: State, now: dt.datetime) -> Step:
    require(state.phase == Phase.OPEN, "a contact starts a chat with follow()")
    return state, (delivered(),)


def leave(state: State, now: dt.datetime, who: Party) -> Step:
    require(who.id in state.members, f"{who.id} is not in the chat")
    members = tuple(m for m in state.members if m != who.id)
    effects = (
        Happen(EventType.LEFT_CONVERSATION, who.id),
        Notify(EventType.LEFT_CONVERSATION, Audience.EMPLOYEE, {"name": who.name}),
        # the last one out leaves nobody to follow up: the contact's notice must not promise it
        Notify(
            EventType.LEFT_CONVERSATION, Audience.CUSTOMER, {"name": who.name, "nobody_left": not members}
        ),
    )
    return dataclasses.replace(state, members=members, phase=Phase.OPEN if members else Phase.IDLE), effects


class LineScript(Script):
    def __init__(self, spec, sim):  # type: ignore[no-untyped-def]
        super().__init__(spec, sim)
        assert self.contact is not None
        self.state = State()
        self.customer = self.contact.party(Channel.LINE)
        self.out.members = []
        self.validated = self.contact.phone if self.contact.line_regulated else None
        self.parties = {e.id: e.party for e in spec.employees}

    def _apply(self, at: dt.datetime, step: Step, *, attempt=None, actor=None) -> Iterator[Emitted]:  # type: ignore[no-untyped-def]
        before = self.state.members
        self.state, effects = step
        self.out.members = [self.parties[m] for m in dict.fromkeys((*before, *self.state.members))]
        yield from self.out.apply(at, effects, attempt=attempt, actor=actor)
        self.out.members = [self.parties[m] for m in self.state.members]

    def session(self, at: dt.datetime) -> Iterator[Emitted]:
        rng = self.rng
        if self.state.phase == Phase.IDLE:
            if rng.random() < 0.6:
                yield from self.start(at)
            return
        if rng.random() < 0.03:
            who = self.speaker()
            yield from self._apply(at, leave(self.state, at, who), actor=who)
            return
        first = "customer" if rng.random() < 0.55 else "employee"
        self.exchange(at, first, self.steps(), self.topic())

    def start(self, at: dt.datetime) -> Iterator[Emitted]:
        members = tuple(e.id for e in self.spec.employees)
        if self.validated:
            self.out.attributes["validated_phone"] = self.validated
        yield from self._apply(
            at, follow(self.state, at, members=members, validated_phone=self.validated), actor=self.customer
        )
        self.exchange(self.out.last + reply_gap(self.rng), "customer", self.steps(), self.topic())

    def say(self, at: dt.datetime, who: str, topic: str, opener: bool) -> Iterator[Emitted]:
        rng = self.rng
        if who == "customer":
            if self.state.phase == Phase.IDLE:
                yield from self.start(at)
                return
            body = self.customer_text(topic, opener)
            pictures = [texts.picture(rng)] if rng.random() < 0.08 else []
            if pictures and rng.random() < 0.5:
                body = texts.caption(rng, self.lang)

            def inbound(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
                return self.out.message(
                    when, self.customer, body, attachments=pictures, attributes=attributes
                )

            yield from self._apply(at, customer_message(self.state, at), attempt=inbound)
            return
        if self.state.phase != Phase.OPEN:
            return
        sender = self.speaker()
        body = self.employee_text(sender, topic, opener)

        def outbound(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
            return self.out.message(when, sender, body, attributes=attributes)

        yield from self._apply(at, employee_message(self.state, at, sender), attempt=outbound, actor=sender)
