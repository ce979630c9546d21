"""WhatsApp Business: consent first, a 24-hour window, approved templates, group conversations.

Rules (the platform's anti-spam policy as the connector enforces it):

* Before the first free message an employee sends an opt-in request and the contact must consent.
  While the request is pending, up to ``queue_limit`` employee messages are held (archived with
  ``delivery=queued`` and their ``queue_position``) and go out when the contact consents
  (``queued_delivered``); further attempts are refused (``delivery=refused``, ``queue_full``
  notice). A contact may refuse (``consent_refused``); held messages are then dropped. If the
  request is not answered within 24 hours the employee may send one reminder.
* After consent, free messaging is possible for 24 hours counted from the contact's last message
  (their consent reply is the first one); the employees' own messages, held ones released on
  consent included, do not move that mark. An approved template (``template_id`` set,
  ``template_sent`` event) starts a fresh 24-hour window as well. When the window lapses the
  employee is told (``window_expired``) and free text is refused until a template goes out or the
  contact writes again, which they can always do.
* Several employees can share a conversation with one contact (``is_group``): participants are
  added, removed, transferred, leave, and a conversation everyone left can be restarted. The
  contact hears of these changes only while the window is open (free-form notices, not templates):
  outside it only the employees are told, and the change itself still happens. When the last
  employee leaves, the contact is told that nobody is left; what they write is still archived
  (with no recipients) until the conversation is restarted.
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
from pipelines.simulate.clock import lognormal_seconds, reply_gap, typing_gap
from pipelines.simulate.factory import Emitted
from pipelines.simulate.phrases import CONSENT_NO, CONSENT_YES
from pipelines.simulate.rules import Deliver, Effect, Happen, Notify, delivered, require

OPT_IN_TEMPLATE = "vigil_opt_in_v1"
HOUR = dt.timedelta(hours=1)


class Phase(StrEnum):
    NEW = "new"  # never asked
    PENDING = "pending"  # opt-in requested, no answer yet
    OPEN = "open"  # consented
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Policy:
    queue_limit: int = 5
    window: dt.timedelta = dt.timedelta(hours=24)
    reminder_after: dt.timedelta = dt.timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class State:
    phase: Phase = Phase.NEW
    members: tuple[str, ...] = ()  # employee ids in the conversation
    requested_at: dt.datetime | None = None
    reminded: bool = False
    queued: tuple[str, ...] = ()  # event ids of held messages, in order
    #: start of the current 24-hour window: the contact's last message (the consent reply counts)
    #: or a later template; never an employee's free-text message
    window_from: dt.datetime | None = None
    expiry_noticed: bool = False


Step = tuple[State, tuple[Effect, ...]]


def window_open(state: State, now: dt.datetime, policy: Policy) -> bool:
    return (
        state.phase == Phase.OPEN
        and state.window_from is not None
        and now - state.window_from < policy.window
    )


def due(state: State, until: dt.datetime, policy: Policy) -> Step:
    """Timer effects up to ``until``: the window closing is shown to the employee once (to nobody
    when every employee has left: whoever restarts the conversation finds it closed)."""
    if state.phase == Phase.OPEN and not state.expiry_noticed and state.window_from is not None:
        closes = state.window_from + policy.window
        if closes <= until and not state.members:
            return dataclasses.replace(state, expiry_noticed=True), ()
        if closes <= until:
            notice = Notify(EventType.WINDOW_EXPIRED, Audience.EMPLOYEE, at=closes)
            return dataclasses.replace(state, expiry_noticed=True), (notice,)
    return state, ()


def request_opt_in(state: State, now: dt.datetime, policy: Policy, employee: Party) -> Step:
    require(state.phase == Phase.NEW, f"opt-in already {state.phase}")
    require(employee.id in state.members, f"{employee.id} is not in the conversation")
    effects = (
        Happen(EventType.OPT_IN_REQUESTED, employee.id, {"template_id": OPT_IN_TEMPLATE}),
        # the contact is asked on behalf of whoever sent the request (in a group, not always the owner)
        Notify(EventType.OPT_IN_REQUESTED, Audience.CUSTOMER, {"employee_name": employee.name}),
        Notify(EventType.OPT_IN_REQUESTED, Audience.EMPLOYEE, {"queue_limit": policy.queue_limit}),
    )
    return dataclasses.replace(state, phase=Phase.PENDING, requested_at=now), effects


def remind(state: State, now: dt.datetime, policy: Policy, employee: Party) -> Step:
    require(state.phase == Phase.PENDING, "a reminder needs a pending opt-in request")
    require(not state.reminded, "the reminder was already sent")
    assert state.requested_at is not None
    require(
        now - state.requested_at >= policy.reminder_after, "a reminder is allowed 24 hours after the request"
    )
    effects = (
        Happen(EventType.OPT_IN_REMINDER, employee.id, {"template_id": OPT_IN_TEMPLATE}),
        Notify(EventType.OPT_IN_REMINDER, Audience.CUSTOMER, {"employee_name": employee.name}),
    )
    return dataclasses.replace(state, reminded=True), effects


def employee_message(state: State, now: dt.datetime, policy: Policy, employee: Party, ref: str) -> Step:
    """A free-text message; ``ref`` is the event id it will be archived under."""
    require(employee.id in state.members, f"{employee.id} is not in the conversation")
    require(state.phase in (Phase.PENDING, Phase.OPEN), f"no free messages while the opt-in is {state.phase}")
    if state.phase == Phase.PENDING:
        if len(state.queued) < policy.queue_limit:
            position = len(state.queued) + 1
            effects = (
                Deliver({"delivery": "queued", "queue_position": str(position)}),
                Notify(
                    EventType.MESSAGE_QUEUED,
                    Audience.EMPLOYEE,
                    {"position": position, "limit": policy.queue_limit, "reason": "opt_in"},
                    attributes={"queued_event_id": ref},
                ),
            )
            return dataclasses.replace(state, queued=(*state.queued, ref)), effects
        refused = (
            Deliver({"delivery": "refused", "refusal": "queue_full"}),
            Notify(
                EventType.QUEUE_FULL,
                Audience.EMPLOYEE,
                {"limit": policy.queue_limit},
                attributes={"refused_event_id": ref},
            ),
        )
        return state, refused
    if not window_open(state, now, policy):
        refused = (
            Deliver({"delivery": "refused", "refusal": "window_expired"}),
            Notify(EventType.WINDOW_EXPIRED, Audience.EMPLOYEE, attributes={"refused_event_id": ref}),
        )
        return dataclasses.replace(state, expiry_noticed=True), refused
    # the employee's own message does not extend the window: only the contact (or a template) does
    return state, (delivered(),)


def employee_template(
    state: State, now: dt.datetime, policy: Policy, employee: Party, template_id: str
) -> Step:
    """An approved template: allowed whenever the contact has consented; it starts a new 24-hour
    window, as the contact's messages do."""
    require(employee.id in state.members, f"{employee.id} is not in the conversation")
    require(state.phase == Phase.OPEN, "templates need the contact's consent")
    effects = (delivered(), Happen(EventType.TEMPLATE_SENT, employee.id, {"template_id": template_id}))
    return dataclasses.replace(state, window_from=now, expiry_noticed=False), effects


def customer_message(state: State, now: dt.datetime, policy: Policy) -> Step:
    """The contact can always write; in an open conversation that reopens the window."""
    if state.phase == Phase.OPEN:
        return dataclasses.replace(state, window_from=now, expiry_noticed=False), (delivered(),)
    return state, (delivered(),)


def answer_opt_in(state: State, now: dt.datetime, policy: Policy, accepted: bool) -> Step:
    require(state.phase == Phase.PENDING, "no opt-in request is pending")
    reply = Deliver({"delivery": "delivered", "consent": "yes" if accepted else "no"})
    if not accepted:
        effects: tuple[Effect, ...] = (
            reply,
            Happen(EventType.CONSENT_REFUSED, "customer", {"dropped_queued": str(len(state.queued))}),
            Notify(EventType.CONSENT_REFUSED, Audience.EMPLOYEE, {"dropped": len(state.queued)}),
        )
        return dataclasses.replace(state, phase=Phase.REFUSED, queued=()), effects
    released = tuple(
        Happen(EventType.QUEUED_DELIVERED, "system", {"queued_event_id": ref, "queue_position": str(i)})
        for i, ref in enumerate(state.queued, start=1)
    )
    effects = (
        reply,
        Happen(EventType.OPTED_IN, "customer"),
        Notify(EventType.OPTED_IN, Audience.EMPLOYEE),
        Notify(EventType.OPTED_IN, Audience.CUSTOMER),
        *released,
    )
    return dataclasses.replace(
        state, phase=Phase.OPEN, queued=(), window_from=now, expiry_noticed=False
    ), effects


# -- participants ---------------------------------------------------------------------------


def _notices(
    state: State, now: dt.datetime, policy: Policy, event_type: EventType, context: Mapping[str, object]
) -> tuple[Effect, ...]:
    """A roster change's notice: to both sides while the window is open (one shared notice);
    outside it (or before consent) the contact gets nothing, as only templates may reach them."""
    if window_open(state, now, policy):
        return (Notify(event_type, Audience.BOTH, context),)
    return (Notify(event_type, Audience.EMPLOYEE, context),)


def _to_contact(
    state: State, now: dt.datetime, policy: Policy, event_type: EventType, context: Mapping[str, object]
) -> tuple[Effect, ...]:
    """The contact's own notice of a change, only while the window is open."""
    return (Notify(event_type, Audience.CUSTOMER, context),) if window_open(state, now, policy) else ()


def add_participant(state: State, now: dt.datetime, policy: Policy, by: Party, who: Party) -> Step:
    require(by.id in state.members, f"{by.id} is not in the conversation")
    require(who.id not in state.members, f"{who.id} is already in the conversation")
    effects = (
        Happen(EventType.PARTICIPANT_ADDED, by.id, {"participant": who.id}),
        *_notices(state, now, policy, EventType.PARTICIPANT_ADDED, {"name": who.name, "by_name": by.name}),
    )
    return dataclasses.replace(state, members=(*state.members, who.id)), effects


def remove_participant(state: State, now: dt.datetime, policy: Policy, by: Party, who: Party) -> Step:
    require(by.id in state.members and who.id in state.members, "both must be in the conversation")
    require(by.id != who.id, "to remove yourself, leave the conversation")
    effects = (
        Happen(EventType.PARTICIPANT_REMOVED, by.id, {"participant": who.id}),
        *_notices(state, now, policy, EventType.PARTICIPANT_REMOVED, {"name": who.name, "by_name": by.name}),
    )
    return dataclasses.replace(state, members=tuple(m for m in state.members if m != who.id)), effects


def leave(state: State, now: dt.datetime, policy: Policy, who: Party) -> Step:
    """An employee leaves; the last one to leave leaves the contact with nobody to read them (the
    contact's notice says so), until the conversation is restarted."""
    require(who.id in state.members, f"{who.id} is not in the conversation")
    members = tuple(m for m in state.members if m != who.id)
    context = {"name": who.name, "nobody_left": not members}
    effects = (
        Happen(EventType.LEFT_CONVERSATION, who.id),
        Notify(EventType.LEFT_CONVERSATION, Audience.EMPLOYEE, {"name": who.name}),
        *_to_contact(state, now, policy, EventType.LEFT_CONVERSATION, context),
    )
    return dataclasses.replace(state, members=members), effects


def transfer(state: State, now: dt.datetime, policy: Policy, from_: Party, to: Party) -> Step:
    require(from_.id in state.members, f"{from_.id} is not in the conversation")
    require(to.id not in state.members, f"{to.id} is already in the conversation")
    names = {"from_name": from_.name, "to_name": to.name}
    effects = (
        Happen(EventType.TRANSFERRED, from_.id, {"from": from_.id, "to": to.id}),
        *_to_contact(state, now, policy, EventType.TRANSFERRED, names),
        Notify(EventType.TRANSFERRED, Audience.EMPLOYEE, names),
    )
    members = tuple(to.id if m == from_.id else m for m in state.members)
    return dataclasses.replace(state, members=members), effects


def restart(state: State, now: dt.datetime, policy: Policy, by: Party) -> Step:
    require(not state.members, "only a conversation everyone has left can be restarted")
    effects = (
        Happen(EventType.CONVERSATION_RESTARTED, by.id),
        *_notices(state, now, policy, EventType.CONVERSATION_RESTARTED, {"name": by.name}),
    )
    return dataclasses.replace(state, members=(by.id,)), effects


# ---------------------------------------------------------------------------------------------
# behaviour


class WhatsAppScript(Script):
    """What employees and contacts try on WhatsApp; :func:`employee_message` & co. decide."""

    def __init__(self, spec, sim):  # type: ignore[no-untyped-def]
        super().__init__(spec, sim)
        self.policy = Policy(queue_limit=sim.config.whatsapp_queue_limit)
        self.state = State(members=tuple(e.id for e in spec.employees))
        assert self.contact is not None
        self.threads = self.contact.whatsapp_threads if spec.kind == "direct" else 1
        # everyone who could be pulled into a group conversation
        pool = [*spec.employees, *sim.world.colleagues(self.owner)]
        self.pool = {e.id: e.party for e in pool}

    def _apply(
        self, at: dt.datetime, step: tuple[State, tuple[Effect, ...]], *, attempt=None, actor=None
    ) -> Iterator[Emitted]:  # type: ignore[no-untyped-def]
        before = self.state.members
        self.state, effects = step
        after = self.state.members
        # everyone involved in a roster change sees its notices; then the roster is what it became
        self.out.members = [self.pool[m] for m in dict.fromkeys((*before, *after))]
        yield from self.out.apply(at, effects, attempt=attempt, actor=actor)
        self.out.members = [self.pool[m] for m in after]

    def timers(self, until: dt.datetime) -> Iterator[Emitted]:
        state, effects = due(self.state, until, self.policy)
        if effects:
            yield from self._apply(until, (state, effects))
        else:  # e.g. a window that closed while nobody was in the conversation: noted, not shown
            self.state = state

    def session(self, at: dt.datetime) -> Iterator[Emitted]:
        rng, state = self.rng, self.state
        if self.threads > 1:
            self.out.thread_id = f"{self.spec.conversation_id}/t{1 if rng.random() < 0.7 else 2}"
        if state.phase == Phase.REFUSED:
            return
        if not state.members:
            yield from self._apply(at, restart(state, at, self.policy, self.owner.party))
            at = self.out.last + typing_gap(rng)
        if state.phase == Phase.NEW:
            yield from self._opt_in(at)
            return
        if state.phase == Phase.PENDING:
            if rng.random() < 0.5:
                self.agenda.at(at, self.say, "employee", self.topic(), False)
            return
        if self.spec.kind == "group" and rng.random() < 0.35:
            yield from self._roster(at)
            at = self.out.last + typing_gap(rng)
        first = "customer" if rng.random() < 0.45 else "employee"
        self.exchange(at, first, self.steps(), self.topic())

    def _opt_in(self, at: dt.datetime) -> Iterator[Emitted]:
        rng = self.rng
        sender = self.speaker()
        yield from self._apply(at, request_opt_in(self.state, at, self.policy, sender), actor=sender)
        when = self.out.last
        # eager employees type while waiting; a few overshoot the queue limit
        for _ in range(rng.choices((0, 1, 2, 3, 6, 7), weights=(30, 30, 15, 10, 8, 7))[0]):
            when += typing_gap(rng)
            self.agenda.at(when, self.say, "employee", self.topic(), False)
        roll = rng.random()
        if roll < 0.1:
            self.agenda.at(at + lognormal_seconds(rng, 1800, 1.0, 20 * 3600), self.consent, False)
        elif roll < 0.82:
            late = rng.random() < 0.2
            delay = (
                dt.timedelta(hours=24) + lognormal_seconds(rng, 4 * 3600, 0.8, 40 * 3600)
                if late
                else lognormal_seconds(rng, 900, 1.3, 20 * 3600)
            )
            self.agenda.at(at + delay, self.consent, True)
        # unanswered (or answered late): the reminder goes out a little after the 24-hour mark
        self.agenda.at(
            at + self.policy.reminder_after + lognormal_seconds(rng, 2 * 3600, 0.7, 12 * 3600), self.reminder
        )

    def reminder(self, at: dt.datetime) -> Iterator[Emitted]:
        if self.state.phase == Phase.PENDING and not self.state.reminded:
            sender = self.speaker()
            yield from self._apply(at, remind(self.state, at, self.policy, sender), actor=sender)

    def consent(self, at: dt.datetime, accepted: bool) -> Iterator[Emitted]:
        if self.state.phase != Phase.PENDING:
            return
        assert self.contact is not None
        customer = self.contact.party(Channel.WHATSAPP)
        reply = texts.plain(self.rng.choice(CONSENT_YES if accepted else CONSENT_NO))

        def attempt(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
            return self.out.message(when, customer, reply, attributes=attributes, chatter=False)

        yield from self._apply(at, answer_opt_in(self.state, at, self.policy, accepted), attempt=attempt)
        if accepted and self.rng.random() < 0.6:
            self.exchange(self.out.last + reply_gap(self.rng), "employee", self.steps(), self.topic())

    def say(self, at: dt.datetime, who: str, topic: str, opener: bool) -> Iterator[Emitted]:
        rng, state = self.rng, self.state
        assert self.contact is not None
        if who == "customer":
            customer = self.contact.party(Channel.WHATSAPP)
            body = self.customer_text(topic, opener)
            pictures = [texts.picture(rng)] if rng.random() < 0.07 else []
            if pictures and rng.random() < 0.5:
                body = texts.caption(rng, "en")

            def inbound(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
                return self.out.message(when, customer, body, attachments=pictures, attributes=attributes)

            yield from self._apply(at, customer_message(state, at, self.policy), attempt=inbound)
            return
        if state.phase not in (Phase.PENDING, Phase.OPEN) or not state.members:
            return
        sender = self.speaker()
        if state.phase == Phase.OPEN and not window_open(state, at, self.policy):
            if rng.random() < 0.15:  # tries free text anyway and is refused
                yield from self._free_text(at, sender, topic, opener)
                at = self.out.last + typing_gap(rng)
            template_id, body = texts.template_message(rng, self.voices(sender))

            def templated(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
                return self.out.message(when, sender, body, attributes=attributes, template_id=template_id)

            yield from self._apply(
                at,
                employee_template(self.state, at, self.policy, sender, template_id),
                attempt=templated,
                actor=sender,
            )
            return
        yield from self._free_text(at, sender, topic, opener)

    def _free_text(self, at: dt.datetime, sender: Party, topic: str, opener: bool) -> Iterator[Emitted]:
        rng = self.rng
        body = self.employee_text(sender, topic, opener)
        pictures = [texts.picture(rng)] if rng.random() < 0.05 else []
        ref = self.out.next_event_id()

        def outbound(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
            return self.out.message(when, sender, body, attachments=pictures, attributes=attributes)

        yield from self._apply(
            at, employee_message(self.state, at, self.policy, sender, ref), attempt=outbound, actor=sender
        )

    def _roster(self, at: dt.datetime) -> Iterator[Emitted]:
        rng, state = self.rng, self.state
        members = [self.pool[m] for m in state.members]
        outside = [p for pid, p in self.pool.items() if pid not in state.members]
        options = []
        if outside:
            options += ["add", "transfer"]
        if len(members) >= 3:
            options.append("remove")
        if len(members) >= 2:
            options.append("leave")
        if not options:
            return
        choice = rng.choice(options)
        if choice == "add":
            by = rng.choice(members)
            yield from self._apply(
                at, add_participant(state, at, self.policy, by, rng.choice(outside)), actor=by
            )
        elif choice == "transfer":
            from_ = rng.choice(members)
            yield from self._apply(
                at, transfer(state, at, self.policy, from_, rng.choice(outside)), actor=from_
            )
        elif choice == "remove":
            by = members[0]
            yield from self._apply(
                at, remove_participant(state, at, self.policy, by, rng.choice(members[1:])), actor=by
            )
        else:
            who = rng.choice(members)
            yield from self._apply(at, leave(state, at, self.policy, who), actor=who)
            if len(members) == 1:
                return
        if rng.random() < 0.5 and len(self.state.members) == 1:
            # the last one leaves too; the next session restarts the conversation
            who = self.pool[self.state.members[0]]
            yield from self._apply(
                self.out.last + typing_gap(rng), leave(self.state, at, self.policy, who), actor=who
            )
