"""Channel rules as pure state machines: each transition checked on its own."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from pipelines.automessages import render
from pipelines.record import Audience, EventType, Party, Role
from pipelines.simulate import SimulationConfig, simulate
from pipelines.simulate.channels import line, wechat, whatsapp
from pipelines.simulate.rules import Deliver, Happen, Notify, RuleError

T0 = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
ANN = Party(id="e1", name="Ann Lee", role=Role.EMPLOYEE)
BOB = Party(id="e2", name="Bob Ray", role=Role.EMPLOYEE)
CAT = Party(id="e3", name="Cat Ng", role=Role.EMPLOYEE)


def kinds(effects) -> list[tuple[str, str | None, str | None]]:  # type: ignore[no-untyped-def]
    """Effects as comparable tuples: (class, event type, audience or delivery)."""
    rows = []
    for effect in effects:
        if isinstance(effect, Deliver):
            rows.append(("deliver", None, effect.attributes.get("delivery")))
        elif isinstance(effect, Notify):
            rows.append(("notify", effect.event_type, effect.audience))
        elif isinstance(effect, Happen):
            rows.append(("happen", effect.event_type, None))
    return rows


# ---------------------------------------------------------------------------------------------
# WhatsApp

WA = whatsapp.Policy(queue_limit=2)


def wa_pending() -> whatsapp.State:
    state, _ = whatsapp.request_opt_in(whatsapp.State(members=("e1",)), T0, WA, ANN)
    return state


def wa_open(at: dt.datetime = T0) -> whatsapp.State:
    state, _ = whatsapp.answer_opt_in(wa_pending(), at, WA, True)
    return state


def test_whatsapp_opt_in_request_notifies_both_sides() -> None:
    state, effects = whatsapp.request_opt_in(whatsapp.State(members=("e1",)), T0, WA, ANN)
    assert state.phase == whatsapp.Phase.PENDING
    assert kinds(effects) == [
        ("happen", EventType.OPT_IN_REQUESTED, None),
        ("notify", EventType.OPT_IN_REQUESTED, Audience.CUSTOMER),
        ("notify", EventType.OPT_IN_REQUESTED, Audience.EMPLOYEE),
    ]


def test_whatsapp_free_message_before_opt_in_request_is_a_rule_error() -> None:
    with pytest.raises(RuleError):
        whatsapp.employee_message(whatsapp.State(members=("e1",)), T0, WA, ANN, "m1")


@pytest.mark.parametrize(
    ("already_queued", "delivery", "notice", "queue_after"),
    [
        (0, "queued", EventType.MESSAGE_QUEUED, 1),
        (1, "queued", EventType.MESSAGE_QUEUED, 2),
        (2, "refused", EventType.QUEUE_FULL, 2),  # limit 2 reached: not queued
    ],
)
def test_whatsapp_messages_are_held_up_to_the_limit_while_pending(
    already_queued: int, delivery: str, notice: EventType, queue_after: int
) -> None:
    state = wa_pending()
    for i in range(already_queued):
        state, _ = whatsapp.employee_message(state, T0, WA, ANN, f"m{i}")
    state, effects = whatsapp.employee_message(state, T0, WA, ANN, "new")
    assert kinds(effects) == [("deliver", None, delivery), ("notify", notice, Audience.EMPLOYEE)]
    assert len(state.queued) == queue_after
    if delivery == "queued":
        assert effects[0].attributes["queue_position"] == str(queue_after)


def test_whatsapp_consent_delivers_held_messages_in_order() -> None:
    state = wa_pending()
    for ref in ("m1", "m2"):
        state, _ = whatsapp.employee_message(state, T0, WA, ANN, ref)
    state, effects = whatsapp.answer_opt_in(state, T0 + H, WA, True)
    assert state.phase == whatsapp.Phase.OPEN and state.queued == ()
    released = [
        e.attributes["queued_event_id"]
        for e in effects
        if isinstance(e, Happen) and e.event_type == EventType.QUEUED_DELIVERED
    ]
    assert released == ["m1", "m2"]


def test_whatsapp_refusal_drops_held_messages() -> None:
    state = wa_pending()
    state, _ = whatsapp.employee_message(state, T0, WA, ANN, "m1")
    state, effects = whatsapp.answer_opt_in(state, T0 + H, WA, False)
    assert state.phase == whatsapp.Phase.REFUSED and state.queued == ()
    assert ("notify", EventType.CONSENT_REFUSED, Audience.EMPLOYEE) in kinds(effects)
    with pytest.raises(RuleError):
        whatsapp.employee_message(state, T0 + 2 * H, WA, ANN, "m2")


@pytest.mark.parametrize(
    ("after", "allowed"), [(1 * H, False), (23 * H, False), (24 * H, True), (30 * H, True)]
)
def test_whatsapp_reminder_only_after_24_hours(after: dt.timedelta, allowed: bool) -> None:
    state = wa_pending()
    if allowed:
        state, effects = whatsapp.remind(state, T0 + after, WA, ANN)
        assert ("notify", EventType.OPT_IN_REMINDER, Audience.CUSTOMER) in kinds(effects)
        with pytest.raises(RuleError):  # once
            whatsapp.remind(state, T0 + after + H, WA, ANN)
    else:
        with pytest.raises(RuleError):
            whatsapp.remind(state, T0 + after, WA, ANN)


@pytest.mark.parametrize(
    ("gap", "delivery"),
    [
        (1 * H, "delivered"),
        (23 * H + dt.timedelta(minutes=59), "delivered"),
        (24 * H, "refused"),
        (72 * H, "refused"),
    ],
)
def test_whatsapp_free_messages_only_inside_the_24_hour_window(gap: dt.timedelta, delivery: str) -> None:
    _, effects = whatsapp.employee_message(wa_open(), T0 + gap, WA, ANN, "m")
    assert kinds(effects)[0] == ("deliver", None, delivery)
    if delivery == "refused":
        assert ("notify", EventType.WINDOW_EXPIRED, Audience.EMPLOYEE) in kinds(effects)


def test_whatsapp_template_or_customer_message_reopens_the_window() -> None:
    late = T0 + 30 * H
    templated, effects = whatsapp.employee_template(wa_open(), late, WA, ANN, "check_in_v1")
    assert ("happen", EventType.TEMPLATE_SENT, None) in kinds(effects)
    _, effects = whatsapp.employee_message(templated, late + H, WA, ANN, "m")
    assert kinds(effects) == [("deliver", None, "delivered")]
    replied, _ = whatsapp.customer_message(wa_open(), late, WA)
    _, effects = whatsapp.employee_message(replied, late + H, WA, ANN, "m")
    assert kinds(effects) == [("deliver", None, "delivered")]


def test_whatsapp_window_expiry_is_shown_once_when_due() -> None:
    state = wa_open()
    assert whatsapp.due(state, T0 + 23 * H, WA)[1] == ()
    state, effects = whatsapp.due(state, T0 + 26 * H, WA)
    assert [(e.event_type, e.at) for e in effects] == [(EventType.WINDOW_EXPIRED, T0 + 24 * H)]
    assert whatsapp.due(state, T0 + 50 * H, WA)[1] == ()


def test_whatsapp_window_closing_is_not_announced_to_an_empty_conversation() -> None:
    # everyone left: an employee notice would reach nobody; a restart finds the window closed
    state = dataclasses.replace(wa_open(), members=())
    state, effects = whatsapp.due(state, T0 + 26 * H, WA)
    assert effects == () and state.expiry_noticed
    state, _ = whatsapp.restart(state, T0 + 27 * H, WA, ANN)
    assert whatsapp.due(state, T0 + 28 * H, WA)[1] == ()
    _, effects = whatsapp.employee_message(state, T0 + 28 * H, WA, ANN, "m")
    assert kinds(effects)[0] == ("deliver", None, "refused")


def test_whatsapp_window_notice_says_a_template_opens_a_new_window() -> None:
    # the documentation: a template message starts a new 24-hour window (employee_template)
    text = render(EventType.WINDOW_EXPIRED, Audience.EMPLOYEE, channel="whatsapp", contact_name="Wang Fang")
    assert "template" in text and "fresh 24-hour window" in text
    assert "once they answer" not in text


def test_whatsapp_group_roster_changes() -> None:
    state = whatsapp.State(phase=whatsapp.Phase.OPEN, members=("e1", "e2"), window_from=T0)
    state, effects = whatsapp.add_participant(state, T0, WA, ANN, CAT)
    assert state.members == ("e1", "e2", "e3")
    assert ("notify", EventType.PARTICIPANT_ADDED, Audience.BOTH) in kinds(effects)
    state, _ = whatsapp.remove_participant(state, T0, WA, ANN, CAT)
    state, effects = whatsapp.transfer(state, T0, WA, BOB, CAT)
    assert state.members == ("e1", "e3")
    assert {a for _, t, a in kinds(effects) if t == EventType.TRANSFERRED} == {
        None,
        Audience.CUSTOMER,
        Audience.EMPLOYEE,
    }
    state, _ = whatsapp.leave(state, T0, WA, CAT)
    state, _ = whatsapp.leave(state, T0, WA, ANN)
    assert state.members == ()
    with pytest.raises(RuleError):
        whatsapp.employee_message(state, T0, WA, ANN, "m")
    state, effects = whatsapp.restart(state, T0, WA, BOB)
    assert state.members == ("e2",) and kinds(effects)[0] == (
        "happen",
        EventType.CONVERSATION_RESTARTED,
        None,
    )


@pytest.mark.parametrize(
    ("action", "args"),
    [
        (whatsapp.add_participant, (ANN, ANN)),  # already in
        (whatsapp.remove_participant, (ANN, ANN)),  # removing yourself is leaving
        (whatsapp.transfer, (CAT, BOB)),  # Cat is not in the conversation
        (whatsapp.restart, (BOB,)),  # people are still in it
    ],
)
def test_whatsapp_impossible_roster_changes_are_rule_errors(action, args) -> None:  # type: ignore[no-untyped-def]
    state = whatsapp.State(phase=whatsapp.Phase.OPEN, members=("e1", "e2"))
    with pytest.raises(RuleError):
        action(state, T0, WA, *args)


# ---------------------------------------------------------------------------------------------
# WeChat

WC = wechat.Policy(queue_limit=4)


def wc_open(members: tuple[str, ...] = ("e1",)) -> wechat.State:
    state, _ = wechat.follow(
        wechat.State(),
        T0,
        WC,
        members=members,
        validate=False,
        returning=False,
        route_by_bot=False,
        masked_phone="1234",
    )
    assert state.sent == 1  # the welcome is one of the four messages WeChat lets reach them
    state, _ = wechat.customer_message(state, T0, WC)  # the contact writes first: a new run
    return state


def test_wechat_employee_cannot_start_a_conversation() -> None:
    with pytest.raises(RuleError):
        wechat.employee_message(wechat.State(members=("e1",)), T0, WC, ANN, "m")


def test_wechat_follow_starts_with_welcome_to_both() -> None:
    state, effects = wechat.follow(
        wechat.State(),
        T0,
        WC,
        members=("e1",),
        validate=False,
        returning=False,
        route_by_bot=False,
        masked_phone="",
    )
    assert state.phase == wechat.Phase.OPEN
    assert kinds(effects) == [
        ("happen", EventType.CONVERSATION_STARTED, None),
        ("notify", EventType.WELCOME, Audience.CUSTOMER),
        ("notify", EventType.WELCOME, Audience.EMPLOYEE),
    ]


def test_wechat_limit_is_announced_after_the_third_message_and_the_contact_told_on_the_next_try() -> None:
    # the documentation: the employee is told once three messages are out ("after 3 messages");
    # no auto-message to the customer then; the on-hold message goes to them when the limit was
    # reached before (an employee tries again): three messages and one notice, four in a row
    state = wc_open()
    for i in range(2):
        state, effects = wechat.employee_message(state, T0 + i * H, WC, ANN, f"m{i}")
        assert kinds(effects) == [("deliver", None, "delivered")]
    state, effects = wechat.employee_message(state, T0 + 2 * H, WC, ANN, "m2")
    assert kinds(effects) == [
        ("deliver", None, "delivered"),
        ("notify", EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE),
    ]
    assert effects[1].context["refused"] is False and state.on_hold
    state, effects = wechat.employee_message(state, T0 + 4 * H, WC, ANN, "m4")
    assert kinds(effects) == [
        ("deliver", None, "refused"),
        ("notify", EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE),
        ("notify", EventType.ON_HOLD_NOTICE, Audience.CUSTOMER),
    ]
    state, effects = wechat.employee_message(state, T0 + 5 * H, WC, ANN, "m5")
    assert kinds(effects) == [
        ("deliver", None, "refused"),
        ("notify", EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE),
    ]
    state, _ = wechat.customer_message(state, T0 + 6 * H, WC)
    _, effects = wechat.employee_message(state, T0 + 7 * H, WC, ANN, "m6")
    assert kinds(effects) == [("deliver", None, "delivered")]


def test_wechat_timers_warn_at_24_hours_and_go_inactive_at_48() -> None:
    # one clock, from the contact's last message: the warning leaves the full second 24 hours
    state = wc_open()
    state, _ = wechat.employee_message(state, T0 + H, WC, ANN, "m1")
    assert wechat.due(state, T0 + 23 * H, WC)[1] == ()
    state, effects = wechat.due(state, T0 + 60 * H, WC)
    assert [(e.event_type, e.at) for e in effects] == [
        (EventType.NO_REPLY_WARNING, T0 + 24 * H),
        (EventType.CHAT_INACTIVE, T0 + 48 * H),
    ]
    assert state.phase == wechat.Phase.INACTIVE


def test_wechat_warning_at_24_hours_also_for_a_message_sent_after_the_mark() -> None:
    # the contact's silence alone sets both marks: inactivity always follows the warning by a day
    state, _ = wechat.employee_message(wc_open(), T0 + 30 * H, WC, ANN, "m1")
    _, effects = wechat.due(state, T0 + 60 * H, WC)
    assert [(e.event_type, e.at) for e in effects] == [
        (EventType.NO_REPLY_WARNING, T0 + 24 * H),
        (EventType.CHAT_INACTIVE, T0 + 48 * H),
    ]


def test_wechat_warning_also_without_an_unanswered_message() -> None:
    _, effects = wechat.due(wc_open(), T0 + 60 * H, WC)
    assert [e.event_type for e in effects] == [EventType.NO_REPLY_WARNING, EventType.CHAT_INACTIVE]


def test_wechat_inactive_chat_queues_then_releases_in_paced_batches() -> None:
    state, _ = wechat.due(wc_open(), T0 + 49 * H, WC)
    outcomes = []
    for i in range(5):
        state, effects = wechat.employee_message(state, T0 + 50 * H, WC, ANN, f"m{i}")
        outcomes.append(kinds(effects)[0][2])
        if i == 0:
            assert ("notify", EventType.ON_HOLD_NOTICE, Audience.CUSTOMER) in kinds(
                effects
            )  # prompted to resume
    assert outcomes == ["queued"] * 4 + ["refused"]
    state, effects = wechat.customer_message(state, T0 + 51 * H, WC)
    released = [e.attributes["queued_event_id"] for e in effects if isinstance(e, Happen)]
    assert released == ["m0", "m1", "m2"]  # never more than the pacing limit at once
    assert state.phase == wechat.Phase.OPEN and state.queued == ("m3",) and state.unanswered == 3
    state, effects = wechat.employee_message(state, T0 + 52 * H, WC, ANN, "m5")
    assert kinds(effects)[0] == ("deliver", None, "queued")  # waits behind the held one
    state, effects = wechat.customer_message(state, T0 + 53 * H, WC)
    assert [e.attributes["queued_event_id"] for e in effects if isinstance(e, Happen)] == ["m3", "m5"]


def test_wechat_leave_keyword_ends_the_chat_until_the_contact_returns() -> None:
    state, effects = wechat.customer_leave(wc_open(), T0, WC)
    assert state.phase == wechat.Phase.IDLE
    assert {a for _, t, a in kinds(effects) if t == EventType.CUSTOMER_LEAVE} == {
        None,
        Audience.CUSTOMER,
        Audience.EMPLOYEE,
    }
    with pytest.raises(RuleError):
        wechat.employee_message(state, T0 + H, WC, ANN, "m")


@pytest.mark.parametrize(("paused", "announced"), [(True, True), (False, False)])
def test_wechat_roster_changes_during_a_pause_are_announced(paused: bool, announced: bool) -> None:
    state = wc_open(("e1", "e2"))
    if paused:
        for i in range(3):
            state, _ = wechat.employee_message(state, T0 + i * H, WC, ANN, f"m{i}")
        assert state.on_hold
    _, effects = wechat.add_participant(state, T0 + 5 * H, WC, ANN, CAT)
    notices = [
        e for e in effects if isinstance(e, Notify) and e.event_type == EventType.PARTICIPANTS_CHANGED_NOTICE
    ]
    assert bool(notices) == announced
    if announced:
        assert notices[0].context["added"] == ["Cat Ng"] and notices[0].context["hours"] == 43


def test_wechat_roster_changes_while_inactive_are_announced_with_a_prompt_to_reopen() -> None:
    # inactive (48 hours without the contact) is a pause too; there are no hours left to count
    state, _ = wechat.due(wc_open(("e1", "e2")), T0 + 49 * H, WC)
    assert state.phase == wechat.Phase.INACTIVE
    _, effects = wechat.add_participant(state, T0 + 50 * H, WC, ANN, CAT)
    (notice,) = [
        e for e in effects if isinstance(e, Notify) and e.event_type == EventType.PARTICIPANTS_CHANGED_NOTICE
    ]
    assert notice.context["added"] == ["Cat Ng"] and notice.context["hours"] is None
    from pipelines.automessages import render

    text = render(EventType.PARTICIPANTS_CHANGED_NOTICE, Audience.CUSTOMER, **notice.context)
    assert text.startswith("Please reply to reopen this chat.") and "Cat Ng joined" in text


def test_wechat_last_employee_can_leave_and_only_the_contact_restarts() -> None:
    # the documentation: an employee leaves a WeChat chat so others at the firm can take over
    state, _ = wechat.due(wc_open(), T0 + 49 * H, WC)
    state, _ = wechat.employee_message(state, T0 + 50 * H, WC, ANN, "m1")
    assert state.queued == ("m1",)
    state, effects = wechat.leave(state, T0 + 51 * H, WC, ANN)
    assert state.phase == wechat.Phase.IDLE and state.members == () and state.queued == ()
    assert {a for _, t, a in kinds(effects) if t == EventType.LEFT_CONVERSATION} == {
        None,
        Audience.EMPLOYEE,
        Audience.CUSTOMER,
    }
    assert effects[0].attributes["dropped_queued"] == "1"
    with pytest.raises(RuleError):
        wechat.employee_message(state, T0 + 52 * H, WC, ANN, "m2")
    state, _ = wechat.follow(
        state,
        T0 + 53 * H,
        WC,
        members=("e2",),
        validate=False,
        returning=False,
        route_by_bot=False,
        masked_phone="",
    )
    assert state.phase == wechat.Phase.OPEN and state.members == ("e2",)


def _validating(returning: bool = False, bot: bool = False) -> wechat.State:
    state, _ = wechat.follow(
        wechat.State(),
        T0,
        WC,
        members=("e1",),
        validate=True,
        returning=returning,
        route_by_bot=bot,
        masked_phone="1234",
    )
    return state


@pytest.mark.parametrize(
    ("inputs", "phase", "last_notice"),
    [
        ([("phone", True), ("otp", True)], wechat.Phase.VALIDATING, EventType.PHONE_VALIDATED),
        ([("phone", True), ("otp", True), ("contact", None)], wechat.Phase.OPEN, EventType.WELCOME),
        (
            [("phone", False), ("phone", True), ("otp", True), ("contact", None)],
            wechat.Phase.OPEN,
            EventType.WELCOME,
        ),
        ([("phone", False)] * 2, wechat.Phase.VALIDATING, EventType.PHONE_NUMBER_REJECTED),
        ([("phone", False)] * 3, wechat.Phase.IDLE, EventType.VALIDATION_FAILED),
        (
            [("phone", True), ("otp", False), ("otp", True), ("contact", None)],
            wechat.Phase.OPEN,
            EventType.WELCOME,
        ),
        ([("phone", True)] + [("otp", False)] * 3, wechat.Phase.IDLE, EventType.VALIDATION_FAILED),
        ([("phone", True), ("help", None), ("call", None)], wechat.Phase.VALIDATING, EventType.OTP_SENT),
        (
            [("phone", True), ("help", None), ("update", None)],
            wechat.Phase.VALIDATING,
            EventType.PHONE_VALIDATION_REQUESTED,
        ),
    ],
)
def test_wechat_phone_validation(inputs, phase, last_notice) -> None:  # type: ignore[no-untyped-def]
    state = _validating()
    effects: tuple = ()
    for action, ok in inputs:
        if action == "phone":
            state, effects = wechat.submit_phone(state, T0, WC, valid=ok, masked_phone="1234")
        elif action == "otp":
            state, effects = wechat.submit_otp(state, T0, WC, correct=ok, masked_phone="1234")
        elif action == "contact":
            state, effects = wechat.name_contact(state, T0, WC, masked_phone="1234")
        elif action == "help":
            state, effects = wechat.ask_help(state, T0, WC)
            assert ("notify", EventType.VALIDATION_HELP, Audience.CUSTOMER) in kinds(effects)
        else:
            state, effects = wechat.help_choice(state, T0, WC, choice=action, masked_phone="1234")
    assert state.phase == phase
    assert [e.event_type for e in effects if isinstance(e, Notify)][-1] == last_notice


def test_wechat_validated_contact_names_whom_to_reach_before_the_chat_opens() -> None:
    # the documentation: after the right PIN the contact is asked for the number of the person they
    # want to reach; only then can the two message each other
    state, _ = wechat.submit_phone(_validating(), T0, WC, valid=True, masked_phone="1234")
    state, effects = wechat.submit_otp(state, T0 + H, WC, correct=True, masked_phone="1234")
    assert state.awaiting == wechat.Awaiting.CONTACT
    assert kinds(effects)[1:] == [
        ("happen", EventType.PHONE_VALIDATED, None),
        ("notify", EventType.PHONE_VALIDATED, Audience.CUSTOMER),
    ]
    ask = render(EventType.PHONE_VALIDATED, Audience.CUSTOMER, **effects[-1].context)
    assert "phone number" in ask
    with pytest.raises(RuleError):
        wechat.employee_message(state, T0 + H, WC, ANN, "m")
    state, effects = wechat.name_contact(state, T0 + 2 * H, WC, masked_phone="1234")
    assert state.phase == wechat.Phase.OPEN and state.last_customer_at == T0 + 2 * H
    assert kinds(effects) == [
        ("deliver", None, "delivered"),
        ("notify", EventType.PHONE_VALIDATED, Audience.EMPLOYEE),
        ("notify", EventType.WELCOME, Audience.CUSTOMER),
        ("notify", EventType.WELCOME, Audience.EMPLOYEE),
    ]


def test_wechat_help_needs_a_number_to_send_the_code_to() -> None:
    # Help offers a code by call or a resend "to the provided number": none has been given yet
    with pytest.raises(RuleError):
        wechat.ask_help(_validating(), T0, WC)
    state, _ = wechat.ask_help(_validating(returning=True), T0, WC)
    assert state.awaiting == wechat.Awaiting.HELP


def test_wechat_contact_validated_earlier_is_asked_to_confirm_the_number_next_time() -> None:
    state, _ = wechat.submit_phone(_validating(), T0, WC, valid=True, masked_phone="1234")
    state, _ = wechat.submit_otp(state, T0, WC, correct=True, masked_phone="1234")
    state, _ = wechat.name_contact(state, T0, WC, masked_phone="1234")
    state, _ = wechat.customer_leave(state, T0 + H, WC)
    state, effects = wechat.follow(
        state,
        T0 + 30 * H,
        WC,
        members=("e1",),
        validate=True,
        returning=False,  # not from before the run, but validated in it
        route_by_bot=False,
        masked_phone="1234",
    )
    assert state.awaiting == wechat.Awaiting.CONFIRM
    (ask,) = [e for e in effects if isinstance(e, Notify)]
    assert ask.context == {"returning": True, "masked_phone": "1234"}


def test_wechat_returning_contact_confirms_number_then_bot_routes() -> None:
    state = _validating(returning=True, bot=True)
    assert state.awaiting == wechat.Awaiting.CONFIRM
    state, effects = wechat.confirm_number(state, T0, WC, masked_phone="1234")
    assert ("notify", EventType.OTP_SENT, Audience.CUSTOMER) in kinds(effects)
    state, effects = wechat.submit_otp(state, T0, WC, correct=True, masked_phone="1234")
    assert state.phase == wechat.Phase.ROUTING
    (thanks,) = [e for e in effects if isinstance(e, Notify)]
    assert "phone number" not in render(EventType.PHONE_VALIDATED, Audience.CUSTOMER, **thanks.context)
    with pytest.raises(RuleError):
        wechat.employee_message(state, T0, WC, ANN, "m")
    state, effects = wechat.hand_off(state, T0, WC, employee=ANN, intent="a transfer")
    assert state.phase == wechat.Phase.OPEN
    # the contact gets one notice, not two: the welcome, naming whom they now talk to
    to_contact = [e for e in effects if isinstance(e, Notify) and e.audience != Audience.EMPLOYEE]
    assert [e.event_type for e in to_contact] == [EventType.WELCOME]
    assert "Ann Lee" in render(EventType.WELCOME, Audience.CUSTOMER, firm="F", **to_contact[0].context)
    assert ("notify", EventType.BOT_HANDED_OFF, Audience.EMPLOYEE) in kinds(effects)


def test_wechat_help_options_are_sent_unasked_when_no_code_comes_in_time() -> None:
    # the documentation: no code after a certain time (or typing Help) brings the Help options
    state, _ = wechat.submit_phone(_validating(), T0, WC, valid=True, masked_phone="1234")
    wait = WC.otp_help_after
    assert wechat.due(state, T0 + wait - dt.timedelta(seconds=1), WC)[1] == ()
    state, effects = wechat.due(state, T0 + wait + H, WC)
    assert [(e.event_type, e.audience, e.at) for e in effects] == [
        (EventType.VALIDATION_HELP, Audience.CUSTOMER, T0 + wait)
    ]
    assert state.awaiting == wechat.Awaiting.HELP and wechat.due(state, T0 + 9 * H, WC)[1] == ()
    # the contact may pick an option, or simply send the code
    picked, effects = wechat.help_choice(state, T0 + 2 * H, WC, choice="resend", masked_phone="1234")
    assert ("notify", EventType.OTP_SENT, Audience.CUSTOMER) in kinds(effects)
    assert wechat.due(picked, T0 + 2 * H + wait, WC)[1] != ()  # a new code, a new wait
    _, effects = wechat.submit_otp(state, T0 + 2 * H, WC, correct=True, masked_phone="1234")
    assert ("happen", EventType.PHONE_VALIDATED, None) in kinds(effects)


def test_wechat_a_wrong_code_restarts_the_wait_for_the_help_options() -> None:
    state, _ = wechat.submit_phone(_validating(), T0, WC, valid=True, masked_phone="1234")
    state, _ = wechat.submit_otp(state, T0 + dt.timedelta(minutes=4), WC, correct=False, masked_phone="1")
    assert wechat.due(state, T0 + dt.timedelta(minutes=6), WC)[1] == ()
    _, effects = wechat.due(state, T0 + H, WC)
    assert [e.at for e in effects] == [T0 + dt.timedelta(minutes=4) + WC.otp_help_after]


@pytest.mark.parametrize(("validate", "bot"), [(True, False), (False, True), (True, True)])
def test_wechat_employees_join_when_the_contact_is_connected(validate: bool, bot: bool) -> None:
    # the documentation: validation comes before connecting the contact with their point of
    # contact; the bot finds out whom they want and leaves once they are connected
    state, _ = wechat.follow(
        wechat.State(),
        T0,
        WC,
        members=("e1", "e2"),
        validate=validate,
        returning=False,
        route_by_bot=bot,
        masked_phone="1234",
    )
    assert state.members == () and state.assigned == ("e1", "e2")
    if validate:
        state, _ = wechat.submit_phone(state, T0, WC, valid=True, masked_phone="1234")
        state, _ = wechat.submit_otp(state, T0, WC, correct=True, masked_phone="1234")
        assert state.members == ()
    if bot:
        state, _ = wechat.hand_off(state, T0 + H, WC, employee=ANN, intent="a transfer")
    else:
        state, _ = wechat.name_contact(state, T0 + H, WC, masked_phone="1234")
    assert state.phase == wechat.Phase.OPEN and state.members == ("e1", "e2") and state.assigned == ()


def test_wechat_failed_validation_connects_nobody() -> None:
    state = _validating()
    for _ in range(3):
        state, _ = wechat.submit_phone(state, T0, WC, valid=False, masked_phone="1234")
    assert state.phase == wechat.Phase.IDLE and state.members == () and state.assigned == ()


def test_wechat_released_messages_that_reach_the_limit_are_announced_to_the_employee() -> None:
    state, _ = wechat.due(wc_open(), T0 + 49 * H, WC)
    for i in range(3):
        state, _ = wechat.employee_message(state, T0 + 50 * H, WC, ANN, f"m{i}")
    state, effects = wechat.customer_message(state, T0 + 51 * H, WC)
    assert kinds(effects)[-1] == ("notify", EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE)
    assert state.on_hold and state.unanswered == 3
    _, effects = wechat.employee_message(state, T0 + 52 * H, WC, ANN, "m4")
    assert ("notify", EventType.ON_HOLD_NOTICE, Audience.CUSTOMER) in kinds(effects)


def test_wechat_leave_keyword_takes_the_employees_out_of_the_chat() -> None:
    state, _ = wechat.customer_leave(wc_open(("e1", "e2")), T0, WC)
    assert state.members == ()


# ---------------------------------------------------------------------------------------------
# LINE


def test_line_is_contact_initiated_and_shows_the_validated_phone() -> None:
    with pytest.raises(RuleError):
        line.employee_message(line.State(), T0, ANN)
    state, effects = line.follow(line.State(), T0, members=("e1",), validated_phone="+819012345678")
    assert ("happen", EventType.VALIDATED_PHONE_SHOWN, None) in kinds(effects)
    assert kinds(line.employee_message(state, T0, ANN)[1]) == [("deliver", None, "delivered")]


@pytest.mark.parametrize(
    ("members", "phase_after"), [(("e1", "e2"), line.Phase.OPEN), (("e1",), line.Phase.IDLE)]
)
def test_line_leave_tells_both_parties(members: tuple[str, ...], phase_after: line.Phase) -> None:
    state, _ = line.follow(line.State(), T0, members=members, validated_phone=None)
    state, effects = line.leave(state, T0, ANN)
    assert state.phase == phase_after
    assert {a for _, t, a in kinds(effects) if t == EventType.LEFT_CONVERSATION} == {
        None,
        Audience.EMPLOYEE,
        Audience.CUSTOMER,
    }


# ---------------------------------------------------------------------------------------------
# What reaches the contact (the seeds: four WeChat messages in a row, system messages included;
# WhatsApp free-form notices only inside the 24-hour window)

DELIVERED = ("deliver", None, "delivered")
REFUSED = ("deliver", None, "refused")
LIMIT = ("notify", EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE)
ON_HOLD = ("notify", EventType.ON_HOLD_NOTICE, Audience.CUSTOMER)


def _wc_full(members: tuple[str, ...] = ("e1", "e2")) -> wechat.State:
    """Three employee messages and the on-hold notice: four in a row, the run is full."""
    state = wc_open(members)
    for i in range(4):
        state, _ = wechat.employee_message(state, T0 + i * H, WC, ANN, f"m{i}")
    assert state.sent == WC.run_limit == 4 and state.prompted
    return state


def test_wechat_notices_to_the_contact_count_towards_the_four() -> None:
    # right after the welcome (one of the four) the employees still send their three, which fill
    # the four: the next try is refused and no on-hold notice fits any more
    state, _ = wechat.follow(
        wechat.State(),
        T0,
        WC,
        members=("e1",),
        validate=False,
        returning=False,
        route_by_bot=False,
        masked_phone="",
    )
    outcomes = []
    for i in range(4):
        state, effects = wechat.employee_message(state, T0 + i * H, WC, ANN, f"m{i}")
        outcomes.append(kinds(effects))
    assert outcomes == [[DELIVERED], [DELIVERED], [DELIVERED, LIMIT], [REFUSED, LIMIT]]
    assert state.sent == 4 and state.unanswered == 3
    state, _ = wechat.customer_message(state, T0 + 5 * H, WC)  # the contact writes: a new run
    assert state.sent == 0
    _, effects = wechat.employee_message(state, T0 + 6 * H, WC, ANN, "m5")
    assert kinds(effects) == [DELIVERED]


def test_wechat_a_hold_that_turns_inactive_tells_the_contact_once() -> None:
    state, _ = wechat.due(_wc_full(), T0 + 49 * H, WC)
    assert state.phase == wechat.Phase.INACTIVE
    _, effects = wechat.employee_message(state, T0 + 50 * H, WC, ANN, "q1")
    assert kinds(effects)[0] == ("deliver", None, "queued") and ON_HOLD not in kinds(effects)


def test_wechat_roster_changes_in_a_full_run_wait_for_the_contact_and_come_as_one_summary() -> None:
    state = _wc_full()
    state, effects = wechat.add_participant(state, T0 + 5 * H, WC, ANN, CAT)
    assert kinds(effects)[1:] == [("notify", EventType.PARTICIPANT_ADDED, Audience.EMPLOYEE)]
    state, effects = wechat.remove_participant(state, T0 + 6 * H, WC, ANN, BOB)
    assert kinds(effects)[1:] == [("notify", EventType.PARTICIPANT_REMOVED, Audience.EMPLOYEE)]
    assert state.members == ("e1", "e3") and state.sent == 4
    state, effects = wechat.customer_message(state, T0 + 7 * H, WC)
    (summary,) = [e for e in effects if isinstance(e, Notify)]
    assert summary.event_type == EventType.PARTICIPANTS_CHANGED_NOTICE
    assert summary.audience == Audience.CUSTOMER
    assert summary.context["added"] == ["Cat Ng"] and summary.context["removed"] == ["Bob Ray"]
    text = render(EventType.PARTICIPANTS_CHANGED_NOTICE, Audience.CUSTOMER, **summary.context)
    assert "Cat Ng joined" in text and "Bob Ray left" in text and "Please reply" not in text
    assert state.sent == 1 and not state.held_added and not state.held_removed


def test_wechat_a_change_undone_before_the_contact_heard_of_it_is_not_announced() -> None:
    state = _wc_full()
    state, _ = wechat.add_participant(state, T0 + 5 * H, WC, ANN, CAT)
    state, _ = wechat.remove_participant(state, T0 + 6 * H, WC, ANN, CAT)
    _, effects = wechat.customer_message(state, T0 + 7 * H, WC)
    assert kinds(effects) == [DELIVERED]


def test_wechat_a_change_during_a_pause_is_one_notice_to_the_contact() -> None:
    state = wc_open(("e1", "e2"))
    for i in range(3):
        state, _ = wechat.employee_message(state, T0 + i * H, WC, ANN, f"m{i}")
    state, effects = wechat.leave(state, T0 + 4 * H, WC, BOB)
    to_contact = [k for k in kinds(effects) if k[0] == "notify" and k[2] != Audience.EMPLOYEE]
    assert to_contact == [("notify", EventType.PARTICIPANTS_CHANGED_NOTICE, Audience.CUSTOMER)]
    assert state.sent == 4  # the run is full: the next try is refused without another notice
    _, effects = wechat.employee_message(state, T0 + 5 * H, WC, ANN, "m4")
    assert kinds(effects) == [REFUSED, LIMIT]


def test_wechat_last_employee_leaving_a_full_run_ends_the_chat_and_tells_the_contact_later() -> None:
    state = _wc_full(("e1",))
    state, effects = wechat.leave(state, T0 + 5 * H, WC, ANN)
    assert state.phase == wechat.Phase.IDLE
    assert [k[2] for k in kinds(effects) if k[0] == "notify"] == [Audience.EMPLOYEE]
    assert state.left_unannounced == "Ann Lee"  # told when the contact next writes


def test_whatsapp_roster_notices_reach_the_contact_only_inside_the_window() -> None:
    state = whatsapp.State(phase=whatsapp.Phase.OPEN, members=("e1", "e2"), window_from=T0)
    late = T0 + 25 * H
    state, effects = whatsapp.add_participant(state, late, WA, ANN, CAT)
    assert state.members == ("e1", "e2", "e3")
    assert kinds(effects)[1:] == [("notify", EventType.PARTICIPANT_ADDED, Audience.EMPLOYEE)]
    state, effects = whatsapp.remove_participant(state, late, WA, ANN, CAT)
    assert {k[2] for k in kinds(effects) if k[0] == "notify"} == {Audience.EMPLOYEE}
    state, effects = whatsapp.transfer(state, late, WA, BOB, CAT)
    assert {k[2] for k in kinds(effects) if k[0] == "notify"} == {Audience.EMPLOYEE}
    state, effects = whatsapp.leave(state, late, WA, CAT)
    assert {k[2] for k in kinds(effects) if k[0] == "notify"} == {Audience.EMPLOYEE}
    state, effects = whatsapp.add_participant(state, late, WA, ANN, BOB)
    state, effects = whatsapp.leave(state, late, WA, BOB)
    assert {k[2] for k in kinds(effects) if k[0] == "notify"} == {Audience.EMPLOYEE}
    state, effects = whatsapp.restart(dataclasses.replace(state, members=()), late, WA, ANN)
    assert {k[2] for k in kinds(effects) if k[0] == "notify"} == {Audience.EMPLOYEE}
    replied, _ = whatsapp.customer_message(state, late + H, WA)  # the contact reopens the window
    _, effects = whatsapp.add_participant(replied, late + H, WA, ANN, CAT)
    assert ("notify", EventType.PARTICIPANT_ADDED, Audience.BOTH) in kinds(effects)


def test_whatsapp_last_to_leave_tells_the_contact_that_nobody_is_left() -> None:
    state = whatsapp.State(phase=whatsapp.Phase.OPEN, members=("e1", "e2"), window_from=T0)
    state, effects = whatsapp.leave(state, T0 + H, WA, BOB)
    (notice,) = [e for e in effects if isinstance(e, Notify) and e.audience == Audience.CUSTOMER]
    assert "Others from the team" in render(
        EventType.LEFT_CONVERSATION, Audience.CUSTOMER, channel="whatsapp", **notice.context
    )
    state, effects = whatsapp.leave(state, T0 + H, WA, ANN)
    (notice,) = [e for e in effects if isinstance(e, Notify) and e.audience == Audience.CUSTOMER]
    text = render(EventType.LEFT_CONVERSATION, Audience.CUSTOMER, channel="whatsapp", **notice.context)
    assert "nobody from our side" in text and "Others" not in text
    # the contact can still write; it is archived until someone restarts the conversation
    _, effects = whatsapp.customer_message(state, T0 + 2 * H, WA)
    assert kinds(effects) == [DELIVERED]


def test_wechat_help_typed_after_the_options_came_unasked_shows_them_again() -> None:
    # the options are sent when no code comes in time; the contact, who planned to type Help
    # anyway, does so a minute later: the options again, and a choice then goes on as usual
    state, _ = wechat.submit_phone(_validating(), T0, WC, valid=True, masked_phone="1234")
    state, effects = wechat.due(state, T0 + WC.otp_help_after, WC)
    assert state.awaiting == wechat.Awaiting.HELP
    assert kinds(effects) == [("notify", EventType.VALIDATION_HELP, Audience.CUSTOMER)]
    state, effects = wechat.ask_help(state, T0 + WC.otp_help_after + dt.timedelta(minutes=1), WC)
    assert state.awaiting == wechat.Awaiting.HELP
    assert ("notify", EventType.VALIDATION_HELP, Audience.CUSTOMER) in kinds(effects)
    state, effects = wechat.help_choice(state, T0 + H, WC, choice="resend", masked_phone="1234")
    assert state.awaiting == wechat.Awaiting.OTP
    assert ("notify", EventType.OTP_SENT, Audience.CUSTOMER) in kinds(effects)


def test_a_fortnight_that_once_stopped_half_way_simulates_to_the_end(tmp_path: Path) -> None:
    # seed 99 stopped on day 3 at a Help typed after the timed Help options (a RuleError)
    summary = simulate(SimulationConfig(days=14, seed=99), tmp_path / "ev")
    assert summary.events > 0 and (tmp_path / "ev" / "_simulation.json").exists()
    assert len(list((tmp_path / "ev").glob("events-*.jsonl"))) == 14
