"""WeChat Official Accounts: the contact starts, pacing limits, inactivity, validation and a bot.

Rules (WeChat's policy for business accounts as the connector enforces it):

* Only the contact can start a conversation (following the official account:
  ``conversation_started``); both sides then get a welcome notice explaining the rules.
* WeChat lets four messages in a row reach the contact without a reply, system messages
  included (``run_limit``): every employee or bot message and every notice whose audience is the
  contact (or both) counts, and the contact's next message starts a new run. Of those four the
  employees may send ``consecutive_limit`` (3) of their own, fewer only when notices have taken the
  rest of the run (see :func:`employee_share`): the message that uses their share up is followed by
  ``consecutive_limit_reached`` to the employee (the contact is not told). A further attempt is
  refused (the employee is told again), and if the run still has room that attempt tells the
  contact the chat is on hold and asks them to reply (``on_hold_notice``, once per hold: the
  fourth message; not sent when a notice such as the welcome already took that place).
* One clock, from the contact's last message, for both marks and with no other condition: 24
  hours on, the employee is warned (``no_reply_warning``: another 24 hours and the chat goes
  inactive); 48 hours on the chat goes inactive (``chat_inactive``), so every inactive chat was
  warned about a day earlier. While inactive, employee
  messages are held up to ``queue_limit`` (``message_queued``; the contact is prompted to resume
  with an ``on_hold_notice`` unless this hold already did, or the run is full), further ones are
  refused (``queue_full``). Each message from the
  contact releases held messages (``queued_delivered``) up to the employees' share of the new
  run, so the pacing rule holds for them too (a full batch reaches the limit, announced as
  above); new messages wait behind those still held.
* The contact leaves by sending ``#LEAVE`` (``customer_leave``) and can come back by writing again.
  An employee can leave too, so a colleague can take over; once nobody from the firm is left
  (held messages are dropped), only the contact can restart the chat. The contact is told of that
  last departure at once if the run has room, and otherwise when they next write, just before the
  new chat's first notice (``left_conversation`` with ``earlier``).
* Roster changes reach the contact as one notice each, counted in the run: the generic notice
  while the chat is active; while it is paused (on hold, past the warning, or inactive) a
  ``participants_changed_notice`` asking them to reply instead (the generic one goes to the
  employees only). When the run is full the change is held and announced once, summarised, when the
  contact next writes; a last employee leaving a full run ends the chat, and its notice waits for
  the contact's next message likewise.
* Some firms validate the contact's phone number first: the number (up to 3 tries), then a one-time
  code (up to 3 tries), with a ``Help`` menu once a number is known (update number, code by call,
  resend code), sent when the contact types ``Help`` or, unasked, when no code has come
  ``otp_help_after`` after one was asked for; then the contact names the employee to connect with
  by phone number. Contacts with a number on file (validated on an earlier visit, also earlier in
  this run) are asked whether it is unchanged.
* Some contacts talk to a routing bot first, which hands them to the right employee.
* Nobody from the firm is in the chat while the number is validated or the bot routes: the
  employees join when the contact is connected to them (``assigned`` until then).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ParamSpec

from pipelines.record import Audience, Channel, EventType, Party, Role
from pipelines.simulate import identifiers
from pipelines.simulate import text as texts
from pipelines.simulate.channels.base import Script
from pipelines.simulate.clock import lognormal_seconds, reply_gap, typing_gap
from pipelines.simulate.factory import Emitted
from pipelines.simulate.phrases import BOT_TOPICS
from pipelines.simulate.pii import one_time_code
from pipelines.simulate.rules import Deliver, Effect, Happen, Notify, delivered, require
from pipelines.simulate.text import Text

LEAVE_KEYWORD = "#LEAVE"


class Phase(StrEnum):
    IDLE = "idle"  # not started, left, or validation failed: only the contact can (re)start
    VALIDATING = "validating"
    ROUTING = "routing"  # talking to the bot
    OPEN = "open"
    INACTIVE = "inactive"  # 48 hours without a message from the contact


class Awaiting(StrEnum):
    PHONE = "phone"
    OTP = "otp"
    CONFIRM = "confirm"  # returning contact: same number?
    HELP = "help"  # choosing a help option
    CONTACT = "contact"  # validated: the number of the employee to reach


@dataclass(frozen=True, slots=True)
class Policy:
    #: the employees' own messages in a row at most: WeChat's four (:attr:`run_limit`) less the one
    #: kept for the on-hold notice; fewer only when notices have filled the rest of the run
    consecutive_limit: int = 3
    warn_after: dt.timedelta = dt.timedelta(hours=24)
    inactive_after: dt.timedelta = dt.timedelta(hours=48)
    queue_limit: int = 5
    max_tries: int = 3
    #: a contact asked for a one-time code who sends none this long gets the Help options unasked
    otp_help_after: dt.timedelta = dt.timedelta(minutes=5)

    @property
    def run_limit(self) -> int:
        """Messages that may reach the contact in a row, system messages included (WeChat's four)."""
        return self.consecutive_limit + 1


@dataclass(frozen=True, slots=True)
class State:
    phase: Phase = Phase.IDLE
    members: tuple[str, ...] = ()  # employees in the chat (none until the contact is connected)
    assigned: tuple[str, ...] = ()  # employees the contact is connected with after validation/routing
    route_by_bot: bool = False
    unanswered: int = 0  # employee messages delivered since the contact last wrote
    on_hold: bool = False  # the consecutive-message limit was reached (the employee told)
    last_customer_at: dt.datetime | None = None
    warned: bool = False
    queued: tuple[str, ...] = ()
    prompted: bool = False  # contact asked to resume during this hold or inactivity
    awaiting: Awaiting | None = None
    code_asked_at: dt.datetime | None = None  # when the contact was last asked for a code (timer)
    phone_tries: int = 0
    otp_tries: int = 0
    phone_on_file: bool = False  # validated before: a later visit only confirms the number
    sent: int = 0  # messages that reached the contact since they last wrote (notices included)
    held_added: tuple[str, ...] = ()  # roster changes not announced yet: the run was full
    held_removed: tuple[str, ...] = ()
    #: the last employee left while the run was full: the contact is told when they next write
    left_unannounced: str | None = None


Step = tuple[State, tuple[Effect, ...]]
P = ParamSpec("P")


def _counted(action: Callable[P, Step]) -> Callable[P, Step]:
    """Add the action's notices that reach the contact (audience customer or both) to the run
    (:attr:`State.sent`). Messages (employee, bot, released) are counted by the actions themselves,
    and the contact writing resets the run before its notices are counted."""

    @functools.wraps(action)
    def counted(*args: P.args, **kwargs: P.kwargs) -> Step:
        state, effects = action(*args, **kwargs)
        told = sum(1 for e in effects if isinstance(e, Notify) and e.audience != Audience.EMPLOYEE)
        return (dataclasses.replace(state, sent=state.sent + told) if told else state), effects

    return counted


def _welcome(policy: Policy, employee_name: str | None = None) -> tuple[Effect, ...]:
    context: dict[str, object] = {
        "consecutive_limit": policy.consecutive_limit,
        "inactive_hours": int(policy.inactive_after.total_seconds() // 3600),
        "leave_keyword": LEAVE_KEYWORD,
    }
    if employee_name:
        context["employee_name"] = employee_name
    return (
        Notify(EventType.WELCOME, Audience.CUSTOMER, context),
        Notify(EventType.WELCOME, Audience.EMPLOYEE, context),
    )


def _opened(state: State, now: dt.datetime, *, queued: tuple[str, ...] = (), unanswered: int = 0) -> State:
    """The chat is open for messages; the 48-hour clock runs from the contact's last message."""
    return dataclasses.replace(
        state,
        phase=Phase.OPEN,
        awaiting=None,
        unanswered=unanswered,
        on_hold=False,
        warned=False,
        queued=queued,
        prompted=False,
    )


@_counted
def follow(
    state: State,
    now: dt.datetime,
    policy: Policy,
    *,
    members: tuple[str, ...],
    validate: bool,
    returning: bool,
    route_by_bot: bool,
    masked_phone: str,
) -> Step:
    """The contact follows the account or writes to it: the conversation starts. If the last
    employee left the previous chat when no more messages could reach the contact, they hear of it
    now, first (the notice says it happened earlier and that this message starts a new chat)."""
    require(state.phase == Phase.IDLE, f"conversation already {state.phase}")
    returning = returning or state.phone_on_file
    started: tuple[Effect, ...] = (Happen(EventType.CONVERSATION_STARTED, "customer"),)
    if state.left_unannounced is not None:
        context = {"name": state.left_unannounced, "nobody_left": True, "earlier": True}
        started = (*started, Notify(EventType.LEFT_CONVERSATION, Audience.CUSTOMER, context))
    base = dataclasses.replace(
        state,
        members=members,
        route_by_bot=route_by_bot,
        last_customer_at=now,
        phone_tries=0,
        otp_tries=0,
        sent=0,
        held_added=(),
        held_removed=(),
        left_unannounced=None,
    )
    if validate or route_by_bot:  # the employees join once the contact is connected to them
        base = dataclasses.replace(base, members=(), assigned=members)
    if validate:
        awaiting = Awaiting.CONFIRM if returning else Awaiting.PHONE
        ask = Notify(
            EventType.PHONE_VALIDATION_REQUESTED,
            Audience.CUSTOMER,
            {"returning": returning, "masked_phone": masked_phone if returning else ""},
        )
        return dataclasses.replace(base, phase=Phase.VALIDATING, awaiting=awaiting), (*started, ask)
    if route_by_bot:
        return dataclasses.replace(base, phase=Phase.ROUTING), (
            *started,
            Happen(EventType.BOT_ROUTING_STARTED, "bot"),
        )
    return _opened(base, now), (*started, *_welcome(policy))


# -- phone validation ------------------------------------------------------------------------


def _input(state: State, now: dt.datetime, awaiting: tuple[Awaiting, ...]) -> State:
    """Check the contact's answer is expected; the contact has just written."""
    require(state.phase == Phase.VALIDATING, "no phone validation in progress")
    require(
        state.awaiting in awaiting, f"validation is waiting for {state.awaiting}, not {'/'.join(awaiting)}"
    )
    return dataclasses.replace(state, last_customer_at=now, sent=0)


def _failed(state: State) -> Step:
    effects = (
        Happen(EventType.VALIDATION_FAILED, "system"),
        Notify(EventType.VALIDATION_FAILED, Audience.CUSTOMER),
    )
    return dataclasses.replace(
        state, phase=Phase.IDLE, awaiting=None, assigned=(), code_asked_at=None
    ), effects


def _connect(state: State) -> State:
    """Validation or routing is over: the assigned employees join the chat."""
    return dataclasses.replace(state, members=state.assigned or state.members, assigned=())


def _otp_sent(state: State, now: dt.datetime, masked_phone: str, method: str) -> Step:
    notice = Notify(EventType.OTP_SENT, Audience.CUSTOMER, {"masked_phone": masked_phone, "method": method})
    return dataclasses.replace(state, awaiting=Awaiting.OTP, code_asked_at=now), (notice,)


@_counted
def submit_phone(state: State, now: dt.datetime, policy: Policy, *, valid: bool, masked_phone: str) -> Step:
    state = _input(state, now, (Awaiting.PHONE,))
    if valid:
        state, effects = _otp_sent(state, now, masked_phone, "sms")
        return state, (delivered(), *effects)
    tries = state.phone_tries + 1
    state = dataclasses.replace(state, phone_tries=tries)
    if tries >= policy.max_tries:
        state, effects = _failed(state)
        return state, (delivered(), *effects)
    notice = Notify(
        EventType.PHONE_NUMBER_REJECTED, Audience.CUSTOMER, {"tries_left": policy.max_tries - tries}
    )
    return state, (delivered(), notice)


@_counted
def confirm_number(state: State, now: dt.datetime, policy: Policy, *, masked_phone: str) -> Step:
    """A returning contact confirms their number is unchanged."""
    state = _input(state, now, (Awaiting.CONFIRM,))
    state, effects = _otp_sent(state, now, masked_phone, "sms")
    return state, (delivered(), *effects)


@_counted
def submit_otp(state: State, now: dt.datetime, policy: Policy, *, correct: bool, masked_phone: str) -> Step:
    # the code may also come after the Help options were shown (asked for or sent unasked)
    state = _input(state, now, (Awaiting.OTP, Awaiting.HELP))
    if not correct:
        tries = state.otp_tries + 1
        state = dataclasses.replace(state, otp_tries=tries)
        if tries >= policy.max_tries:
            state, failed = _failed(state)
            return state, (delivered(), *failed)
        notice = Notify(EventType.OTP_FAILED, Audience.CUSTOMER, {"tries_left": policy.max_tries - tries})
        return dataclasses.replace(state, awaiting=Awaiting.OTP, code_asked_at=now), (delivered(), notice)
    state = dataclasses.replace(state, phone_on_file=True, code_asked_at=None)
    validated = (delivered(), Happen(EventType.PHONE_VALIDATED, "customer", {"masked_phone": masked_phone}))
    if state.route_by_bot:  # the bot finds out whom the contact wants
        return dataclasses.replace(state, phase=Phase.ROUTING, awaiting=None), (
            *validated,
            Notify(EventType.PHONE_VALIDATED, Audience.CUSTOMER, {"ask_contact": False}),
            Happen(EventType.BOT_ROUTING_STARTED, "bot"),
        )
    # otherwise the contact is asked for the number of the person they want to reach
    ask = Notify(EventType.PHONE_VALIDATED, Audience.CUSTOMER, {"ask_contact": True})
    return dataclasses.replace(state, awaiting=Awaiting.CONTACT), (*validated, ask)


@_counted
def name_contact(state: State, now: dt.datetime, policy: Policy, *, masked_phone: str) -> Step:
    """The validated contact sends the number of the employee they want; they are connected."""
    state = _input(state, now, (Awaiting.CONTACT,))
    effects = (
        delivered(),
        Notify(EventType.PHONE_VALIDATED, Audience.EMPLOYEE, {"masked_phone": masked_phone}),
        *_welcome(policy),
    )
    return _opened(_connect(state), now), effects


@_counted
def ask_help(state: State, now: dt.datetime, policy: Policy) -> Step:
    """Help once there is a number to send a code to: the one just given or the one on file; also
    while the options are shown already (sent unasked when no code came in time): shown again."""
    state = _input(state, now, (Awaiting.OTP, Awaiting.CONFIRM, Awaiting.HELP))
    return dataclasses.replace(state, awaiting=Awaiting.HELP), (
        delivered(),
        Notify(EventType.VALIDATION_HELP, Audience.CUSTOMER),
    )


@_counted
def help_choice(state: State, now: dt.datetime, policy: Policy, *, choice: str, masked_phone: str) -> Step:
    state = _input(state, now, (Awaiting.HELP,))
    require(choice in ("update", "call", "resend"), f"unknown help option {choice!r}")
    if choice == "update":
        ask = Notify(
            EventType.PHONE_VALIDATION_REQUESTED, Audience.CUSTOMER, {"returning": False, "masked_phone": ""}
        )
        return dataclasses.replace(state, awaiting=Awaiting.PHONE, phone_tries=0), (delivered(), ask)
    state, effects = _otp_sent(state, now, masked_phone, "call" if choice == "call" else "sms")
    return state, (delivered(), *effects)


# -- bot routing -----------------------------------------------------------------------------


@_counted
def routing_message(state: State, now: dt.datetime, policy: Policy, *, from_customer: bool) -> Step:
    """A message between the bot and the contact while routing."""
    require(state.phase == Phase.ROUTING, "the bot only talks while routing")
    if from_customer:
        return dataclasses.replace(state, last_customer_at=now, sent=0), (delivered(),)
    return dataclasses.replace(state, sent=state.sent + 1), (delivered(),)


@_counted
def hand_off(state: State, now: dt.datetime, policy: Policy, *, employee: Party, intent: str) -> Step:
    require(state.phase == Phase.ROUTING, "nothing to hand off")
    effects = (
        Happen(EventType.BOT_HANDED_OFF, "bot", {"to": employee.id, "intent": intent}),
        Notify(EventType.BOT_HANDED_OFF, Audience.EMPLOYEE, {"intent": intent}),
        # one notice for the contact, not two: the welcome names whom they are now talking to
        # (every notice counts towards the four messages WeChat lets reach them in a row)
        *_welcome(policy, employee.name),
    )
    return _opened(_connect(state), now), effects


# -- the conversation proper -------------------------------------------------------------------


@_counted
def due(state: State, until: dt.datetime, policy: Policy) -> Step:
    """Timer effects up to ``until``: the Help options for a contact who sends no code, and in an
    open chat the 24-hour warning and the 48-hour inactivity mark, both counted from the contact's
    last message under the same condition (the chat is open), so a chat never goes inactive
    without the warning having gone out a full 24 hours earlier."""
    if state.phase == Phase.VALIDATING:
        if state.awaiting == Awaiting.OTP and state.code_asked_at is not None:
            help_at = state.code_asked_at + policy.otp_help_after
            if help_at <= until:
                notice = Notify(EventType.VALIDATION_HELP, Audience.CUSTOMER, {"timed_out": True}, at=help_at)
                return dataclasses.replace(state, awaiting=Awaiting.HELP, code_asked_at=None), (notice,)
        return state, ()
    if state.phase != Phase.OPEN or state.last_customer_at is None:
        return state, ()
    effects: list[Effect] = []
    warn_at = state.last_customer_at + policy.warn_after
    inactive_at = state.last_customer_at + policy.inactive_after
    assert warn_at < inactive_at, "the warning must come before the chat goes inactive"
    if not state.warned and warn_at <= until:
        hours = int(policy.warn_after.total_seconds() // 3600)
        inactive_hours = int(policy.inactive_after.total_seconds() // 3600)
        context = {"hours": hours, "inactive_after_hours": inactive_hours}
        effects.append(Notify(EventType.NO_REPLY_WARNING, Audience.EMPLOYEE, context, at=warn_at))
        state = dataclasses.replace(state, warned=True)
    if inactive_at <= until:
        hours = int(policy.inactive_after.total_seconds() // 3600)
        context = {"hours": hours, "queue_limit": policy.queue_limit}
        effects.append(Notify(EventType.CHAT_INACTIVE, Audience.EMPLOYEE, context, at=inactive_at))
        # still the same hold: a contact already told the chat is on hold is not told again
        state = dataclasses.replace(state, phase=Phase.INACTIVE)
    return state, tuple(effects)


@_counted
def employee_message(state: State, now: dt.datetime, policy: Policy, employee: Party, ref: str) -> Step:
    require(employee.id in state.members, f"{employee.id} is not in the conversation")
    require(
        state.phase in (Phase.OPEN, Phase.INACTIVE), f"employees cannot write while the chat is {state.phase}"
    )
    if state.phase == Phase.INACTIVE or state.queued:
        # inactive, or held messages still waiting their turn: new ones join the back of the queue
        if len(state.queued) >= policy.queue_limit:
            return state, (
                Deliver({"delivery": "refused", "refusal": "queue_full"}),
                Notify(
                    EventType.QUEUE_FULL,
                    Audience.EMPLOYEE,
                    {"limit": policy.queue_limit},
                    attributes={"refused_event_id": ref},
                ),
            )
        position = len(state.queued) + 1
        reason = "inactive" if state.phase == Phase.INACTIVE else "backlog"
        effects: list[Effect] = [
            Deliver({"delivery": "queued", "queue_position": str(position)}),
            Notify(
                EventType.MESSAGE_QUEUED,
                Audience.EMPLOYEE,
                {"position": position, "limit": policy.queue_limit, "reason": reason},
                attributes={"queued_event_id": ref},
            ),
        ]
        # the contact is asked to bring the chat back, once per hold and only if the run has room
        prompt = state.phase == Phase.INACTIVE and not state.prompted and state.sent < policy.run_limit
        if prompt:
            effects.append(Notify(EventType.ON_HOLD_NOTICE, Audience.CUSTOMER, {"reason": "inactive"}))
        return dataclasses.replace(
            state, queued=(*state.queued, ref), prompted=state.prompted or prompt
        ), tuple(effects)
    if employee_share(state, policy) <= 0:
        # three of their own already, or notices have filled the rest of the four
        effects = [
            Deliver({"delivery": "refused", "refusal": "consecutive_limit"}),
            _limit_reached(state, policy, refused=ref),
        ]
        if not state.prompted and state.sent < policy.run_limit:
            # the contact heard nothing when the limit was reached; an employee trying again after
            # that puts the chat on hold for them (once per hold), the last message the run allows
            effects.append(
                Notify(EventType.ON_HOLD_NOTICE, Audience.CUSTOMER, {"reason": "consecutive_limit"})
            )
            return dataclasses.replace(state, on_hold=True, prompted=True), tuple(effects)
        return dataclasses.replace(state, on_hold=True), tuple(effects)
    state = dataclasses.replace(state, unanswered=state.unanswered + 1, sent=state.sent + 1)
    if employee_share(state, policy) <= 0:
        # the limit is reached with this message: the employee is told at once, the contact not
        return dataclasses.replace(state, on_hold=True), (
            delivered(),
            _limit_reached(state, policy, refused=None),
        )
    return state, (delivered(),)


def employee_share(state: State, policy: Policy) -> int:
    """How many more of their own messages the employees may send before the contact writes:
    ``consecutive_limit`` of their own at most, and never past the four that may reach the contact
    in a row (notices count there, so only when notices took the rest does the share shrink)."""
    return min(policy.consecutive_limit - state.unanswered, policy.run_limit - state.sent)


def _limit_reached(state: State, policy: Policy, *, refused: str | None) -> Notify:
    """The notice that the limit is reached; ``refused``: the event id of the message it stopped
    (named in ``refused_event_id``), or None when the message that reached it went out."""
    context = {
        "limit": policy.run_limit,  # messages in a row WeChat lets reach the contact
        "sent": state.sent,  # of which already out, notices included
        "yours": state.unanswered,  # of which the employees' own
        "refused": refused is not None,
    }
    attributes = {"refused_event_id": refused} if refused is not None else {}
    return Notify(EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE, context, attributes=attributes)


@_counted
def customer_message(state: State, now: dt.datetime, policy: Policy) -> Step:
    """The contact writes: the chat is active again and a new run starts. Roster changes held
    while the run was full are announced first (one summary), then held messages go out, as many
    as the employees' share of the new run allows (:func:`employee_share`), so the pacing rule
    holds for them too."""
    require(state.phase in (Phase.OPEN, Phase.INACTIVE), "a contact starts a conversation with follow()")
    summary: tuple[Effect, ...] = ()
    if state.held_added or state.held_removed:
        context = {"added": list(state.held_added), "removed": list(state.held_removed), "hours": None}
        summary = (
            Notify(EventType.PARTICIPANTS_CHANGED_NOTICE, Audience.CUSTOMER, {**context, "held": True}),
        )
    room = min(policy.consecutive_limit, policy.run_limit - len(summary))
    batch, rest = state.queued[:room], state.queued[room:]
    released = tuple(
        Happen(EventType.QUEUED_DELIVERED, "system", {"queued_event_id": ref, "queue_position": str(i)})
        for i, ref in enumerate(batch, start=1)
    )
    state = dataclasses.replace(state, last_customer_at=now, sent=len(batch), held_added=(), held_removed=())
    state = _opened(state, now, queued=rest, unanswered=len(batch))
    reached = dataclasses.replace(state, sent=len(batch) + len(summary))
    if batch and employee_share(reached, policy) <= 0:  # the released reach the limit
        return dataclasses.replace(state, on_hold=True), (
            delivered(),
            *summary,
            *released,
            _limit_reached(reached, policy, refused=None),
        )
    return state, (delivered(), *summary, *released)


@_counted
def customer_leave(state: State, now: dt.datetime, policy: Policy) -> Step:
    require(state.phase in (Phase.OPEN, Phase.INACTIVE), "nothing to leave")
    effects = (
        delivered(),
        Happen(EventType.CUSTOMER_LEAVE, "customer", {"dropped_queued": str(len(state.queued))}),
        Notify(EventType.CUSTOMER_LEAVE, Audience.CUSTOMER),
        Notify(EventType.CUSTOMER_LEAVE, Audience.EMPLOYEE),
    )
    # the chat is over for everyone: employees are back when the contact writes again
    return dataclasses.replace(
        state, phase=Phase.IDLE, queued=(), members=(), sent=0, held_added=(), held_removed=()
    ), effects


def paused(state: State) -> bool:
    """Waiting for the contact: on hold, past the 24-hour warning, or inactive."""
    return state.phase == Phase.INACTIVE or (state.phase == Phase.OPEN and (state.on_hold or state.warned))


def _announce(
    state: State,
    now: dt.datetime,
    policy: Policy,
    event_type: EventType,
    context: Mapping[str, object],
    *,
    added: tuple[str, ...] = (),
    removed: tuple[str, ...] = (),
    shared: bool = True,
) -> Step:
    """The notices of one roster change: the employees always see it; the contact gets one notice
    (``shared``: the same one as the employees, audience both; else a customer one of the same
    type), or while the chat is paused a ``participants_changed_notice`` asking them to reply; and
    none while the run is full: the change is then held for the summary sent when they write."""
    team = Notify(event_type, Audience.EMPLOYEE, context)
    if state.sent >= policy.run_limit:
        # names that come back (or go again) before the contact hears of it cancel out
        held_added = tuple(n for n in state.held_added if n not in removed)
        held_removed = tuple(n for n in state.held_removed if n not in added)
        held_added += tuple(n for n in added if n not in state.held_removed)
        held_removed += tuple(n for n in removed if n not in state.held_added)
        return dataclasses.replace(state, held_added=held_added, held_removed=held_removed), (team,)
    if paused(state) and state.last_customer_at is not None:
        left = state.last_customer_at + policy.inactive_after - now
        hours = None if state.phase == Phase.INACTIVE else max(1, math.ceil(left.total_seconds() / 3600))
        notice = {"added": list(added), "removed": list(removed), "hours": hours}
        return state, (team, Notify(EventType.PARTICIPANTS_CHANGED_NOTICE, Audience.CUSTOMER, notice))
    if shared:
        return state, (Notify(event_type, Audience.BOTH, context),)
    return state, (team, Notify(event_type, Audience.CUSTOMER, context))


@_counted
def add_participant(state: State, now: dt.datetime, policy: Policy, by: Party, who: Party) -> Step:
    require(by.id in state.members, f"{by.id} is not in the conversation")
    require(who.id not in state.members, f"{who.id} is already in the conversation")
    context = {"name": who.name, "by_name": by.name}
    state, notices = _announce(
        state, now, policy, EventType.PARTICIPANT_ADDED, context, added=(who.name or who.id,)
    )
    happened = Happen(EventType.PARTICIPANT_ADDED, by.id, {"participant": who.id})
    return dataclasses.replace(state, members=(*state.members, who.id)), (happened, *notices)


@_counted
def remove_participant(state: State, now: dt.datetime, policy: Policy, by: Party, who: Party) -> Step:
    require(by.id in state.members and who.id in state.members and by.id != who.id, "cannot remove")
    context = {"name": who.name, "by_name": by.name}
    state, notices = _announce(
        state, now, policy, EventType.PARTICIPANT_REMOVED, context, removed=(who.name or who.id,)
    )
    happened = Happen(EventType.PARTICIPANT_REMOVED, by.id, {"participant": who.id})
    return dataclasses.replace(state, members=tuple(m for m in state.members if m != who.id)), (
        happened,
        *notices,
    )


@_counted
def leave(state: State, now: dt.datetime, policy: Policy, who: Party) -> Step:
    """An employee leaves so a colleague can take over; when the last one leaves, the chat ends
    (held messages are dropped) until the contact writes again: the contact is told so at once if
    the run has room (the wording says nobody is left), and otherwise by the notice :func:`follow`
    sends first when they next write (:attr:`State.left_unannounced`)."""
    require(who.id in state.members, f"{who.id} is not in the conversation")
    require(state.phase in (Phase.OPEN, Phase.INACTIVE), f"nothing to leave while the chat is {state.phase}")
    members = tuple(m for m in state.members if m != who.id)
    if not members:
        effects: tuple[Effect, ...] = (
            Happen(EventType.LEFT_CONVERSATION, who.id, {"dropped_queued": str(len(state.queued))}),
            Notify(EventType.LEFT_CONVERSATION, Audience.EMPLOYEE, {"name": who.name}),
        )
        unannounced = None
        if state.sent < policy.run_limit:
            context = {"name": who.name, "nobody_left": True}
            effects = (*effects, Notify(EventType.LEFT_CONVERSATION, Audience.CUSTOMER, context))
        else:  # the run is full: nothing more reaches the contact until they write
            unannounced = who.name or who.id
        return dataclasses.replace(
            state,
            members=members,
            phase=Phase.IDLE,
            queued=(),
            held_added=(),
            held_removed=(),
            left_unannounced=unannounced,
        ), effects
    state, notices = _announce(
        state,
        now,
        policy,
        EventType.LEFT_CONVERSATION,
        {"name": who.name},
        removed=(who.name or who.id,),
        shared=False,
    )
    return dataclasses.replace(state, members=members), (
        Happen(EventType.LEFT_CONVERSATION, who.id),
        *notices,
    )


# ---------------------------------------------------------------------------------------------
# behaviour


class WeChatScript(Script):
    def __init__(self, spec, sim):  # type: ignore[no-untyped-def]
        super().__init__(spec, sim)
        assert self.contact is not None
        self.policy = Policy(queue_limit=sim.config.wechat_queue_limit)
        self.state = State()
        self.customer = self.contact.party(Channel.WECHAT)
        self.out.members = []  # nobody is in the chat until the contact starts it
        pool = [*spec.employees, *sim.world.colleagues(self.owner, same_sub_org=True)]
        self.pool = {e.id: e.party for e in pool}
        self.masked = self.contact.phone[-4:]
        self.bot = Party(
            id=f"bot:{self.owner.org.id}", name=f"{self.owner.org.name} assistant", role=Role.BOT
        )
        self.out.assistant = self.bot

    def _apply(self, at: dt.datetime, step: Step, *, attempt=None, actor=None) -> Iterator[Emitted]:  # type: ignore[no-untyped-def]
        before = self.state.members
        routing = self.state.phase == Phase.ROUTING
        connecting = self.state.phase in (Phase.VALIDATING, Phase.ROUTING) and step[0].phase == Phase.OPEN
        self.state, effects = step
        after = self.state.members
        if connecting and effects and isinstance(effects[0], Deliver):
            # the contact's last answer (whom to reach) still goes to the validation flow alone;
            # the employees join with the notices that follow it
            self.out.members = [self.pool[m] for m in before]
            yield from self.out.apply(at, effects[:1], attempt=attempt, actor=actor)
            at, effects = (
                self.out.last + dt.timedelta(milliseconds=self.rng.randrange(150, 1500)),
                effects[1:],
            )
        self.out.members = [self.pool[m] for m in dict.fromkeys((*before, *after))]
        # like an employee leaving, the bot is listed on its own hand-off (and sends it); a bot
        # starting to route joins on its bot_routing_started event, not on the message before it
        self.out.bot = self.bot if routing else None
        yield from self.out.apply(at, effects, attempt=attempt, actor=actor)
        asked = self.state.code_asked_at
        if asked is not None and at <= asked < self.out.last:
            # the Help clock runs from the notice that asks for the code, sent after the input
            self.state = dataclasses.replace(self.state, code_asked_at=self.out.last)
        self.out.members = [self.pool[m] for m in after]
        self.out.bot = self.bot if self.state.phase == Phase.ROUTING else None

    def _from_customer(self, body: Text, attachments: list | None = None, *, chatter: bool = True):  # type: ignore[no-untyped-def]
        def attempt(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
            return self.out.message(
                when,
                self.customer,
                body,
                attachments=attachments or [],
                attributes=attributes,
                chatter=chatter,
            )

        return attempt

    def timers(self, until: dt.datetime) -> Iterator[Emitted]:
        validating = self.state.phase == Phase.VALIDATING
        state, effects = due(self.state, until, self.policy)
        self.state = state if not effects else self.state
        if effects:
            yield from self._apply(until, (state, effects))
            if not validating and self.spec.kind == "group" and self.rng.random() < 0.3:
                # the contact has gone quiet: someone brings in (or drops) a colleague
                self.agenda.at(self.out.last + typing_gap(self.rng), self.roster)

    # -- sessions -------------------------------------------------------------------------

    def session(self, at: dt.datetime) -> Iterator[Emitted]:
        rng, phase = self.rng, self.state.phase
        if phase == Phase.IDLE:
            if rng.random() < 0.6:
                yield from self.start(at)
            return
        if phase in (Phase.VALIDATING, Phase.ROUTING):
            return
        if self.spec.kind == "group" and rng.random() < (0.6 if paused(self.state) else 0.2):
            yield from self._roster(at)
            at = self.out.last + typing_gap(rng)
        if rng.random() < 0.5:
            roll = rng.random()
            if roll < 0.03:
                # the contact sends #LEAVE; now and then, in a one-to-one chat, the employee leaves
                employee = roll < 0.01 and self.spec.kind == "direct"
                self.agenda.at(at, self.employee_leave if employee else self.leave_chat)
                return
            self.exchange(at, "customer", self.steps(), self.topic())
        elif rng.random() < 0.3:
            # the employee chases a quiet contact: a burst that may hit the pacing limit
            self.exchange(at, "employee", rng.randrange(2, 6), self.topic(), switch=0.1)
        else:
            self.exchange(at, "employee", self.steps(), self.topic(), switch=0.55)

    def start(self, at: dt.datetime) -> Iterator[Emitted]:
        assert self.contact is not None
        contact = self.contact
        members = tuple(e.id for e in self.spec.employees)
        step = follow(
            self.state,
            at,
            self.policy,
            members=members,
            validate=contact.wechat_validation,
            returning=contact.wechat_returning,
            route_by_bot=contact.wechat_bot,
            masked_phone=self.masked,
        )
        yield from self._apply(at, step, actor=self.customer)
        after = self.out.last + reply_gap(self.rng)
        if self.state.phase == Phase.VALIDATING:
            self.agenda.at(after, self.validation, self._validation_plan(), 0)
        elif self.state.phase == Phase.ROUTING:
            self.agenda.at(self.out.last + typing_gap(self.rng), self.routing, self._routing_plan(), 0)
        else:
            self.exchange(after, "customer", self.steps(), self.topic())

    def leave_chat(self, at: dt.datetime) -> Iterator[Emitted]:
        if self.state.phase in (Phase.OPEN, Phase.INACTIVE):
            yield from self._apply(
                at,
                customer_leave(self.state, at, self.policy),
                attempt=self._from_customer(texts.plain(LEAVE_KEYWORD), chatter=False),
            )

    def employee_leave(self, at: dt.datetime) -> Iterator[Emitted]:
        if self.state.phase in (Phase.OPEN, Phase.INACTIVE) and self.state.members:
            who = self.pool[self.state.members[0]]
            yield from self._apply(at, leave(self.state, at, self.policy, who), actor=who)

    # -- validation dialogue --------------------------------------------------------------

    def _validation_plan(self) -> list[tuple[str, ...]]:
        rng = self.rng
        plan: list[tuple[str, ...]] = []
        if self.state.awaiting == Awaiting.CONFIRM:
            if rng.random() < 0.75:
                plan.append(("confirm",))
            else:
                plan += [("help",), ("choice", "update"), ("phone", "valid")]
        else:
            roll = rng.random()
            if roll < 0.05:
                return [("phone", "invalid")] * 3
            if roll < 0.2:
                plan.append(("phone", "invalid"))
            plan.append(("phone", "valid"))
        roll = rng.random()
        if roll < 0.1:
            plan += [("help",), ("choice", rng.choice(("call", "resend"))), ("otp", "correct")]
        elif roll < 0.18:
            # no code for a while: the Help options arrive unasked; some pick one, some just send it
            if rng.random() < 0.6:
                plan += [("choice", rng.choice(("call", "resend")), "late"), ("otp", "correct")]
            else:
                plan.append(("otp", "correct", "late"))
        elif roll < 0.23:
            plan += [("otp", "wrong")] * 3
        elif roll < 0.38:
            plan += [("otp", "wrong"), ("otp", "correct")]
        else:
            plan.append(("otp", "correct"))
        if plan[-1][:2] == ("otp", "correct") and not self.state.route_by_bot:
            plan.append(("contact",))  # whom they want to reach: that employee's number
        return plan

    def validation(self, at: dt.datetime, plan: list[tuple[str, ...]], index: int) -> Iterator[Emitted]:
        if self.state.phase != Phase.VALIDATING or index >= len(plan):
            return
        rng, state, policy, masked = self.rng, self.state, self.policy, self.masked
        action = plan[index]
        if action[0] == "phone":
            valid = action[1] == "valid"
            body = (
                self._phone_text() if valid else texts.plain(rng.choice(("138", "12345", "+86 1380", "0000")))
            )
            step = submit_phone(state, at, policy, valid=valid, masked_phone=masked)
        elif action[0] == "otp":
            body = texts.plain(one_time_code(rng))
            step = submit_otp(state, at, policy, correct=action[1] == "correct", masked_phone=masked)
        elif action[0] == "confirm":
            body = texts.plain(rng.choice(("YES", "Yes", "是的")))
            step = confirm_number(state, at, policy, masked_phone=masked)
        elif action[0] == "contact":
            body = self._phone_text(self.owner.phone)
            step = name_contact(state, at, policy, masked_phone=masked)
        elif action[0] == "help":
            body = texts.plain("Help")
            step = ask_help(state, at, policy)
        else:
            body = texts.plain(action[1].capitalize())
            step = help_choice(state, at, policy, choice=action[1], masked_phone=masked)
        yield from self._apply(
            at, step, attempt=self._from_customer(body, chatter=False), actor=self.customer
        )
        if self.state.phase == Phase.VALIDATING:
            if index + 1 < len(plan) and plan[index + 1][-1] == "late":
                # past the time after which the Help options are sent unasked
                gap = policy.otp_help_after + lognormal_seconds(rng, 300, 0.8, 3600)
            else:
                gap = lognormal_seconds(rng, 40, 0.7, 900)
            self.agenda.at(self.out.last + gap, self.validation, plan, index + 1)
        elif self.state.phase == Phase.ROUTING:
            self.agenda.at(self.out.last + typing_gap(rng), self.routing, self._routing_plan(), 0)
        elif self.state.phase == Phase.OPEN:
            self.exchange(self.out.last + reply_gap(rng), "customer", self.steps(), self.topic())

    def _phone_text(self, number: str | None = None) -> Text:
        """The contact types a number (their own unless given), as people write numbers."""
        assert self.contact is not None
        variant = self.rng.choice(("plain", "spaced", "dashed", "plain"))
        written = identifiers.render(self.rng, "PHONE_NUMBER", number or self.contact.phone, variant)
        return texts.labelled(written, "PHONE_NUMBER", variant)

    # -- bot dialogue ---------------------------------------------------------------------

    def _routing_plan(self) -> list[str]:
        plan = ["bot:greeting", "customer:who"]
        if self.rng.random() < 0.3:
            plan += ["bot:clarify", "customer:who"]
        # no "connecting" line from the bot: the welcome names the colleague, and every message to
        # the contact counts towards the four WeChat allows before they reply
        plan += ["bot:topic", "customer:topic", "handoff"]
        return plan

    def routing(self, at: dt.datetime, plan: list[str], index: int) -> Iterator[Emitted]:
        if self.state.phase != Phase.ROUTING or index >= len(plan):
            return
        rng, lang = self.rng, self.lang
        voices = dataclasses.replace(self.voices(self.bot), colleague=self.owner.name.display)
        action = plan[index]
        intent = BOT_TOPICS.get(lang, BOT_TOPICS["en"])[self.spec.number % 3]
        if action == "handoff":
            step = hand_off(self.state, at, self.policy, employee=self.owner.party, intent=intent)
            yield from self._apply(at, step)
            self.exchange(self.out.last + reply_gap(rng), "employee", self.steps(), self.topic())
            return
        speaker, key = action.split(":")
        if speaker == "bot":
            body = texts.bot_line(rng, lang, key, voices)
            bot = self.bot

            def attempt(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
                return self.out.message(when, bot, body, attributes={**attributes, "bot_step": key})

            step = routing_message(self.state, at, self.policy, from_customer=False)
            yield from self._apply(at, step, attempt=attempt)
            gap = reply_gap(rng)
        else:
            body = texts.to_bot(rng, lang, voices) if key == "who" else texts.plain(intent)
            yield from self._apply(
                at,
                routing_message(self.state, at, self.policy, from_customer=True),
                attempt=self._from_customer(body, chatter=False),
            )
            gap = dt.timedelta(seconds=rng.uniform(1, 4))  # the bot answers at once
        self.agenda.at(self.out.last + gap, self.routing, plan, index + 1)

    # -- messages -------------------------------------------------------------------------

    def say(self, at: dt.datetime, who: str, topic: str, opener: bool) -> Iterator[Emitted]:
        rng, state = self.rng, self.state
        if who == "customer":
            if state.phase == Phase.IDLE:
                yield from self.start(at)
                return
            if state.phase not in (Phase.OPEN, Phase.INACTIVE):
                return
            body = self.customer_text(topic, opener)
            pictures = [texts.picture(rng)] if rng.random() < 0.06 else []
            if pictures and rng.random() < 0.5:
                body = texts.caption(rng, self.lang)
            yield from self._apply(
                at, customer_message(state, at, self.policy), attempt=self._from_customer(body, pictures)
            )
            return
        if state.phase not in (Phase.OPEN, Phase.INACTIVE) or not state.members:
            return
        sender = self.speaker()
        body = self.employee_text(sender, topic, opener)
        pictures = [texts.picture(rng)] if rng.random() < 0.04 else []
        ref = self.out.next_event_id()

        def outbound(when: dt.datetime, attributes: Mapping[str, str]) -> Emitted:
            return self.out.message(when, sender, body, attachments=pictures, attributes=attributes)

        yield from self._apply(
            at, employee_message(state, at, self.policy, sender, ref), attempt=outbound, actor=sender
        )
        if self.spec.kind == "group" and paused(self.state) and rng.random() < 0.3:
            # stuck waiting for the contact, someone brings in (or drops) a colleague
            self.agenda.at(self.out.last + typing_gap(rng), self.roster)

    def roster(self, at: dt.datetime) -> Iterator[Emitted]:
        if self.state.phase in (Phase.OPEN, Phase.INACTIVE):
            yield from self._roster(at)

    def _roster(self, at: dt.datetime) -> Iterator[Emitted]:
        rng, state = self.rng, self.state
        members = [self.pool[m] for m in state.members]
        outside = [p for pid, p in self.pool.items() if pid not in state.members]
        options = (["add"] if outside else []) + (["remove", "leave"] if len(members) >= 2 else [])
        if not options:
            return
        choice = rng.choice(options)
        if choice == "add":
            by = rng.choice(members)
            yield from self._apply(
                at, add_participant(state, at, self.policy, by, rng.choice(outside)), actor=by
            )
        elif choice == "remove":
            yield from self._apply(
                at,
                remove_participant(state, at, self.policy, members[0], rng.choice(members[1:])),
                actor=members[0],
            )
        else:
            who = rng.choice(members[1:])
            yield from self._apply(at, leave(state, at, self.policy, who), actor=who)
