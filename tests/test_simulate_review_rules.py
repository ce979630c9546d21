"""Rules a review of the simulator found broken (seed 21), pinned on the state machines and on
generated output:

1. WhatsApp's 24-hour window runs from the contact's last message (their consent reply counts) or
   from a template; the employees' own messages, released ones included, do not extend it.
2. WeChat: a last employee leaving when four messages already reached the contact is announced to
   the contact when they next write, before anything else of the new chat.
3. WeChat: employees may send three messages of their own in a row, also right after a welcome
   (a system message, so part of WeChat's four); the fourth attempt is refused and they are told.
4. WeChat: a chat never goes inactive without the 24-hour warning a day earlier.

:func:`violations` reads events only, so it also serves as the invariant check for other seeds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

from _simulate_support import WEEK, by_conversation
from _simulate_support import from_contact as _from_contact
from _simulate_support import reaches_contact as _reaches_wechat_contact

from pipelines.automessages import render
from pipelines.record import Audience, Event, EventType, Kind, Party, Role
from pipelines.simulate.channels import wechat, whatsapp
from pipelines.simulate.rules import Deliver, Notify

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
DAY = dt.timedelta(hours=24)
ANN = Party(id="e1", name="Ann Lee", role=Role.EMPLOYEE)
BOB = Party(id="e2", name="Bob Ray", role=Role.EMPLOYEE)
CAT = Party(id="e3", name="Cat Ng", role=Role.EMPLOYEE)
WA = whatsapp.Policy(queue_limit=2)
WC = wechat.Policy(queue_limit=4)


def _shape(effects: Iterable[object]) -> list[tuple[str, str | None, str | None]]:
    rows: list[tuple[str, str | None, str | None]] = []
    for effect in effects:
        if isinstance(effect, Deliver):
            rows.append(("deliver", None, effect.attributes.get("delivery")))
        elif isinstance(effect, Notify):
            rows.append(("notify", effect.event_type, effect.audience))
        else:
            rows.append(("happen", getattr(effect, "event_type", None), None))
    return rows


DELIVERED = ("deliver", None, "delivered")
REFUSED = ("deliver", None, "refused")
LIMIT = ("notify", EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE)
ON_HOLD = ("notify", EventType.ON_HOLD_NOTICE, Audience.CUSTOMER)


# ---------------------------------------------------------------------------------------------
# the invariants, from events alone


def _delivered(event: Event) -> bool:
    return event.kind == Kind.MESSAGE and event.attributes.get("delivery") == "delivered"


def _employees_own(event: Event) -> bool:
    """An employee message that reached the contact now: sent, or released from the queue."""
    return (
        event.kind == Kind.MESSAGE
        and event.sender.role == Role.EMPLOYEE
        and event.attributes.get("delivery") == "delivered"
    ) or (event.kind == Kind.EVENT and event.event_type == EventType.QUEUED_DELIVERED)


def _whatsapp(conversation: list[Event]) -> Counter[str]:
    """Rule 1: free text only within 24 hours of the contact's last message or a template; the
    window_expired timer exactly 24 hours after that mark."""
    found: Counter[str] = Counter()
    opened = False
    last_contact: dt.datetime | None = None
    window_from: dt.datetime | None = None
    for index, event in enumerate(conversation):
        if _from_contact(event):
            last_contact = event.event_time
            if opened:
                window_from = event.event_time
        elif event.kind == Kind.EVENT and event.event_type == EventType.OPTED_IN:
            opened, window_from = True, last_contact  # the consent reply just before
        elif event.kind == Kind.MESSAGE and event.sender.role == Role.EMPLOYEE and _delivered(event):
            found["whatsapp free text checked"] += event.template_id is None
            if event.template_id is not None:
                window_from = event.event_time
            elif window_from is None or event.event_time - window_from >= DAY:
                found["rule 1: free text outside the contact's window"] += 1
        elif (
            event.kind == Kind.AUTO_MESSAGE
            and event.event_type == EventType.WINDOW_EXPIRED
            and conversation[index - 1].attributes.get("refusal") != "window_expired"
        ):
            found["whatsapp window timers checked"] += 1
            if window_from is None or event.event_time - window_from != DAY:
                found["rule 1: window_expired not 24 h after the contact's last message"] += 1
    return found


def _wechat(conversation: list[Event]) -> Counter[str]:
    """Rules 2 to 4 for one WeChat conversation."""
    found: Counter[str] = Counter()
    own = reached = 0
    unannounced = False  # a last leave the contact has not heard of yet
    restarted = False  # ... and the contact has since started a new chat
    warned_at: dt.datetime | None = None
    for index, event in enumerate(conversation):
        if _from_contact(event) or (
            event.kind == Kind.EVENT and event.event_type == EventType.CONVERSATION_STARTED
        ):
            own = reached = 0
            warned_at = None
            if event.event_type == EventType.CONVERSATION_STARTED and unannounced:
                restarted = True
            continue
        if event.kind == Kind.AUTO_MESSAGE and event.audience == Audience.CUSTOMER and unannounced:
            # rule 2: the first notice the contact gets after a last leave must be its announcement
            if event.event_type == EventType.LEFT_CONVERSATION and "nobody" in _kind_of_leave(event):
                found["rule 2: last leaves announced when the contact wrote again"] += restarted
            else:
                found["rule 2: contact never told the last employee left"] += 1
            unannounced = restarted = False
        # the last employee left (the chat ended: held messages were dropped)
        last_leave = event.kind == Kind.EVENT and event.event_type == EventType.LEFT_CONVERSATION
        if last_leave and "dropped_queued" in event.attributes:
            found["rule 2: last leaves"] += 1
            told = [
                e
                for e in conversation[index + 1 : index + 3]
                if e.kind == Kind.AUTO_MESSAGE and e.audience == Audience.CUSTOMER
            ]
            unannounced = not told
        if _reaches_wechat_contact(event):
            reached += 1
            own += _employees_own(event)
            if own > 3 or reached > 4:
                found["rule 3: more than the pacing limit reached the contact"] += 1
        if event.attributes.get("refusal") == "consecutive_limit":
            found["rule 3: refusals"] += 1
            if own < 3 and reached < 4:
                found["rule 3: refused before three of the employees' own"] += 1
        if event.kind == Kind.AUTO_MESSAGE and event.event_type == EventType.NO_REPLY_WARNING:
            warned_at = event.event_time
        if event.kind == Kind.AUTO_MESSAGE and event.event_type == EventType.CHAT_INACTIVE:
            found["rule 4: inactive"] += 1
            if warned_at is None or event.event_time - warned_at != DAY:
                found["rule 4: inactive without the warning 24 h earlier"] += 1
    return found


def _kind_of_leave(event: Event) -> str:
    body = event.body or ""
    return (
        "nobody"
        if any(m in body for m in ("nobody from our side", "无人", "誰もいなく", "誰もいません"))
        else ""
    )


def violations(events: Iterable[Event]) -> Counter[str]:
    """Counts per rule over a run: keys naming a rule and a failure are violations, the others
    say how much was checked."""
    conversations: dict[str, list[Event]] = {}
    for event in events:
        if event.channel in ("whatsapp", "wechat"):
            conversations.setdefault(event.conversation_id, []).append(event)
    found: Counter[str] = Counter()
    for conversation in conversations.values():
        found += _whatsapp(conversation) if conversation[0].channel == "whatsapp" else _wechat(conversation)
    return found


BROKEN = (
    "rule 1: free text outside the contact's window",
    "rule 1: window_expired not 24 h after the contact's last message",
    "rule 2: contact never told the last employee left",
    "rule 3: more than the pacing limit reached the contact",
    "rule 3: refused before three of the employees' own",
    "rule 4: inactive without the warning 24 h earlier",
)


def _week() -> list[Event]:
    return [
        e for channel in ("whatsapp", "wechat") for c in by_conversation(WEEK, channel).values() for e in c
    ]


# ---------------------------------------------------------------------------------------------
# 1. WhatsApp: the window is the contact's


def _wa_open(at: dt.datetime = T0) -> whatsapp.State:
    state, _ = whatsapp.request_opt_in(whatsapp.State(members=("e1",)), at - H, WA, ANN)
    state, _ = whatsapp.answer_opt_in(state, at, WA, True)
    return state


def test_whatsapp_employee_messages_do_not_extend_the_window() -> None:
    state = _wa_open()
    state, effects = whatsapp.employee_message(state, T0 + 20 * H, WA, ANN, "m1")
    assert _shape(effects) == [DELIVERED]
    # 25 hours after the consent, 5 after the employee's last message: closed all the same
    _, effects = whatsapp.employee_message(state, T0 + 25 * H, WA, ANN, "m2")
    assert _shape(effects) == [REFUSED, ("notify", EventType.WINDOW_EXPIRED, Audience.EMPLOYEE)]
    assert not whatsapp.window_open(state, T0 + 24 * H, WA)


def test_whatsapp_window_closes_24_hours_after_the_contacts_last_message() -> None:
    state = _wa_open()
    state, _ = whatsapp.customer_message(state, T0 + 2 * H, WA)
    for hours in (3, 10, 20):
        state, _ = whatsapp.employee_message(state, T0 + hours * H, WA, ANN, f"m{hours}")
    state, effects = whatsapp.due(state, T0 + 40 * H, WA)
    assert [(e.event_type, e.at) for e in effects] == [(EventType.WINDOW_EXPIRED, T0 + 26 * H)]


def test_whatsapp_messages_released_on_consent_do_not_move_the_window() -> None:
    state, _ = whatsapp.request_opt_in(whatsapp.State(members=("e1",)), T0, WA, ANN)
    state, _ = whatsapp.employee_message(state, T0 + H, WA, ANN, "held")
    state, _ = whatsapp.answer_opt_in(state, T0 + 2 * H, WA, True)
    _, effects = whatsapp.due(state, T0 + 30 * H, WA)
    assert [(e.event_type, e.at) for e in effects] == [(EventType.WINDOW_EXPIRED, T0 + 26 * H)]


def test_whatsapp_a_template_starts_a_fresh_window() -> None:
    state = _wa_open()
    state, _ = whatsapp.employee_template(state, T0 + 30 * H, WA, ANN, "check_in_v1")
    state, effects = whatsapp.employee_message(state, T0 + 50 * H, WA, ANN, "m")
    assert _shape(effects) == [DELIVERED]
    _, effects = whatsapp.due(state, T0 + 60 * H, WA)
    assert [(e.event_type, e.at) for e in effects] == [(EventType.WINDOW_EXPIRED, T0 + 54 * H)]


def test_whatsapp_output_keeps_free_text_inside_the_contacts_window() -> None:
    found = violations(_week())
    assert found["whatsapp free text checked"] > 300 and found["whatsapp window timers checked"] > 10
    assert found["rule 1: free text outside the contact's window"] == 0
    assert found["rule 1: window_expired not 24 h after the contact's last message"] == 0


# ---------------------------------------------------------------------------------------------
# 2. WeChat: the contact hears of the last departure


def _wc_follow(
    state: wechat.State | None = None,
    members: tuple[str, ...] = ("e1",),
    *,
    at: dt.datetime = T0,
    route_by_bot: bool = False,
) -> wechat.Step:
    return wechat.follow(
        state or wechat.State(),
        at,
        WC,
        members=members,
        validate=False,
        returning=False,
        route_by_bot=route_by_bot,
        masked_phone="1234",
    )


def _wc_full() -> wechat.State:
    state, _ = _wc_follow()
    state, _ = wechat.customer_message(state, T0, WC)
    for i in range(4):  # three messages and the on-hold notice: four in a row
        state, _ = wechat.employee_message(state, T0 + i * H, WC, ANN, f"m{i}")
    assert state.sent == WC.run_limit
    return state


def test_wechat_last_leave_in_a_full_run_is_announced_when_the_contact_writes_again() -> None:
    state, effects = wechat.leave(_wc_full(), T0 + 5 * H, WC, ANN)
    assert state.phase == wechat.Phase.IDLE
    assert [k[2] for k in _shape(effects) if k[0] == "notify"] == [Audience.EMPLOYEE]
    later = T0 + 30 * H
    state, effects = _wc_follow(state, at=later)
    assert _shape(effects) == [
        ("happen", EventType.CONVERSATION_STARTED, None),
        ("notify", EventType.LEFT_CONVERSATION, Audience.CUSTOMER),
        ("notify", EventType.WELCOME, Audience.CUSTOMER),
        ("notify", EventType.WELCOME, Audience.EMPLOYEE),
    ]
    notice = effects[1]
    assert notice.context == {"name": "Ann Lee", "nobody_left": True, "earlier": True}
    assert "Ann Lee left the previous chat" in render(
        EventType.LEFT_CONVERSATION, Audience.CUSTOMER, **notice.context
    )
    assert state.left_unannounced is None and state.sent == 2  # both notices count in the run
    # told once: a later restart says nothing about it
    state, _ = wechat.customer_leave(state, later + H, WC)
    _, effects = _wc_follow(state, at=later + 2 * H)
    assert ("notify", EventType.LEFT_CONVERSATION, Audience.CUSTOMER) not in _shape(effects)


def test_wechat_last_leave_with_room_in_the_run_is_announced_at_once() -> None:
    state, _ = _wc_follow()
    state, effects = wechat.leave(state, T0 + H, WC, ANN)
    assert ("notify", EventType.LEFT_CONVERSATION, Audience.CUSTOMER) in _shape(effects)
    assert state.left_unannounced is None


def test_wechat_output_tells_the_contact_of_every_last_leave() -> None:
    found = violations(_week())
    assert found["rule 2: last leaves"] > 0
    assert found["rule 2: contact never told the last employee left"] == 0


# ---------------------------------------------------------------------------------------------
# 3. WeChat: three of the employees' own, also after a welcome


def test_wechat_employees_send_three_after_the_welcome_and_the_fourth_is_refused() -> None:
    state, _ = _wc_follow()
    assert state.sent == 1  # the welcome reached the contact
    outcomes = []
    for i in range(4):
        state, effects = wechat.employee_message(state, T0 + i * H, WC, ANN, f"m{i}")
        outcomes.append(_shape(effects))
    # the welcome and three messages fill WeChat's four: no room for the on-hold notice
    assert outcomes == [[DELIVERED], [DELIVERED], [DELIVERED, LIMIT], [REFUSED, LIMIT]]
    assert state.unanswered == 3 and state.sent == WC.run_limit


def test_wechat_employees_send_three_after_a_bot_hand_off() -> None:
    state, _ = _wc_follow(route_by_bot=True)
    state, _ = wechat.routing_message(state, T0 + H, WC, from_customer=True)
    state, _ = wechat.hand_off(state, T0 + H, WC, employee=ANN, intent="fees")
    assert state.sent == 1
    results = [wechat.employee_message(state, T0 + 2 * H, WC, ANN, "m0")]
    for i in range(1, 4):
        results.append(wechat.employee_message(results[-1][0], T0 + (2 + i) * H, WC, ANN, f"m{i}"))
    assert [_shape(effects)[0] for _, effects in results] == [DELIVERED] * 3 + [REFUSED]


def test_wechat_notices_filling_the_run_leave_the_employees_less() -> None:
    # the welcome and two roster notices: one message of theirs completes the four
    state, _ = _wc_follow(members=("e1",))
    state, _ = wechat.add_participant(state, T0, WC, ANN, BOB)
    state, _ = wechat.add_participant(state, T0, WC, ANN, CAT)
    assert state.sent == 3
    state, effects = wechat.employee_message(state, T0 + H, WC, ANN, "m0")
    assert _shape(effects) == [DELIVERED, LIMIT]
    _, effects = wechat.employee_message(state, T0 + 2 * H, WC, ANN, "m1")
    assert _shape(effects) == [REFUSED, LIMIT]


def test_wechat_output_refuses_only_past_the_employees_three_or_a_full_run() -> None:
    found = violations(_week())
    assert found["rule 3: refusals"] > 0
    assert found["rule 3: more than the pacing limit reached the contact"] == 0
    assert found["rule 3: refused before three of the employees' own"] == 0


# ---------------------------------------------------------------------------------------------
# 4. WeChat: the warning always comes a day before inactivity


def _wc_open() -> wechat.State:
    state, _ = _wc_follow(members=("e1",))
    state, _ = wechat.customer_message(state, T0, WC)
    return state


def test_wechat_warned_a_day_before_going_inactive_after_only_a_notice() -> None:
    state, _ = wechat.add_participant(_wc_open(), T0 + H, WC, ANN, BOB)
    _, effects = wechat.due(state, T0 + 60 * H, WC)
    assert [(e.event_type, e.at) for e in effects] == [
        (EventType.NO_REPLY_WARNING, T0 + 24 * H),
        (EventType.CHAT_INACTIVE, T0 + 48 * H),
    ]


def test_wechat_warned_at_24_hours_even_when_the_employees_write_later() -> None:
    state, effects = wechat.due(_wc_open(), T0 + 30 * H, WC)
    assert [(e.event_type, e.at) for e in effects] == [(EventType.NO_REPLY_WARNING, T0 + 24 * H)]
    state, _ = wechat.employee_message(state, T0 + 41 * H, WC, ANN, "m")
    _, effects = wechat.due(state, T0 + 50 * H, WC)
    assert [(e.event_type, e.at) for e in effects] == [(EventType.CHAT_INACTIVE, T0 + 48 * H)]


def test_wechat_output_never_goes_inactive_without_the_warning() -> None:
    found = violations(_week())
    assert found["rule 4: inactive"] > 10
    assert found["rule 4: inactive without the warning 24 h earlier"] == 0
