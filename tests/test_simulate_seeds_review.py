"""The channel rules of the product documentation, checked on generated event streams.

Each test names the documented fact it pins and reads only the events a run writes (kinds, event
types, audiences, senders, participants, times), never the state machines that produce them.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter

from _simulate_support import WEEK, by_conversation

from pipelines.record import Audience, Event, EventType, Kind, Role
from pipelines.simulate import SimulationConfig
from pipelines.simulate.channels.wechat import Policy as WeChatPolicy

DAY = dt.timedelta(hours=24)


def _employee_message(event: Event) -> bool:
    return event.kind == Kind.MESSAGE and event.sender.role == Role.EMPLOYEE


def _customer_message(event: Event) -> bool:
    return event.kind == Kind.MESSAGE and event.sender.role == Role.CUSTOMER


def _auto(event: Event, event_type: EventType, audience: Audience | None = None) -> bool:
    return (
        event.kind == Kind.AUTO_MESSAGE
        and event.event_type == event_type
        and (audience is None or event.audience == audience)
    )


def _delivered_to_customer(event: Event) -> bool:
    """An employee message that reached the contact now (sent, or released from a queue)."""
    return (_employee_message(event) and event.attributes.get("delivery") == "delivered") or (
        event.event_type == EventType.QUEUED_DELIVERED
    )


def _reaches_contact(event: Event) -> bool:
    """Any message the contact receives: an employee's, the bot's, or a notice to them (WeChat
    counts them all towards its four in a row)."""
    if event.kind == Kind.AUTO_MESSAGE:
        return event.audience in (Audience.CUSTOMER, Audience.BOTH)
    return _delivered_to_customer(event) or (event.kind == Kind.MESSAGE and event.sender.role == Role.BOT)


# ---------------------------------------------------------------------------------------------
# WhatsApp


def test_whatsapp_pending_queue_defaults_to_five_and_the_request_notice_says_so() -> None:
    # the documentation: after the opt-in request the employee may write up to 5 messages, which are
    # delivered once the contact accepts
    assert SimulationConfig().whatsapp_queue_limit == 5 == WEEK.whatsapp_queue_limit
    notices = 0
    for conversation in by_conversation(WEEK, "whatsapp").values():
        for index, event in enumerate(conversation):
            if event.kind == Kind.EVENT and event.event_type == EventType.OPT_IN_REQUESTED:
                following = conversation[index + 1 : index + 3]
                assert {(e.event_type, e.audience) for e in following} == {
                    (EventType.OPT_IN_REQUESTED, Audience.CUSTOMER),
                    (EventType.OPT_IN_REQUESTED, Audience.EMPLOYEE),
                }
                (employee,) = [e for e in following if e.audience == Audience.EMPLOYEE]
                assert "up to 5 " in (employee.body or ""), employee.event_id
                notices += 1
    assert notices > 20


def test_whatsapp_an_attempt_past_the_limit_is_not_queued_and_the_employee_is_told() -> None:
    # the documentation: "your last message was not queued" once the pending limit is reached
    refused = 0
    for conversation in by_conversation(WEEK, "whatsapp").values():
        for index, event in enumerate(conversation):
            if _employee_message(event) and event.attributes.get("refusal") == "queue_full":
                notice = conversation[index + 1]
                assert _auto(notice, EventType.QUEUE_FULL, Audience.EMPLOYEE), notice.event_id
                assert {p.role for p in notice.recipients} == {Role.EMPLOYEE}
                refused += 1
    assert refused > 0


def test_whatsapp_consent_is_announced_to_the_employee() -> None:
    # the documentation: once the contact accepts, the employee sees that messaging can start
    consents = 0
    for conversation in by_conversation(WEEK, "whatsapp").values():
        for index, event in enumerate(conversation):
            if event.kind == Kind.EVENT and event.event_type == EventType.OPTED_IN:
                assert event.sender.role == Role.CUSTOMER
                assert conversation[index - 1].attributes.get("consent") == "yes"
                following = conversation[index + 1 : index + 3]
                assert any(_auto(e, EventType.OPTED_IN, Audience.EMPLOYEE) for e in following)
                consents += 1
    assert consents > 20


def test_whatsapp_one_reminder_at_most_per_request_and_only_to_the_contact() -> None:
    # the documentation: the contact has 24 hours to answer before a reminder may be sent
    reminders = 0
    for conversation in by_conversation(WEEK, "whatsapp").values():
        sent = 0
        for index, event in enumerate(conversation):
            if event.kind == Kind.EVENT and event.event_type == EventType.OPT_IN_REQUESTED:
                sent = 0
            elif event.kind == Kind.EVENT and event.event_type == EventType.OPT_IN_REMINDER:
                sent += 1
                assert sent == 1, event.event_id
                assert _auto(conversation[index + 1], EventType.OPT_IN_REMINDER, Audience.CUSTOMER)
                reminders += 1
        assert not any(_auto(e, EventType.OPT_IN_REMINDER, Audience.EMPLOYEE) for e in conversation)
    assert reminders > 0


def test_whatsapp_the_contact_is_asked_in_the_name_of_the_employee_who_asked() -> None:
    # in a group conversation any member may send the opt-in request or its reminder: the contact's
    # notice named the conversation's owner instead, so the archive said one employee asked and
    # the contact was told another one did
    checked = 0
    for conversation in by_conversation(WEEK, "whatsapp").values():
        for index, event in enumerate(conversation):
            if event.kind == Kind.EVENT and event.event_type in (
                EventType.OPT_IN_REQUESTED,
                EventType.OPT_IN_REMINDER,
            ):
                (notice,) = [
                    e
                    for e in conversation[index + 1 : index + 3]
                    if _auto(e, event.event_type, Audience.CUSTOMER)
                ]
                assert event.sender.name and event.sender.name in (notice.body or ""), event.event_id
                checked += 1
    assert checked > 20


def test_whatsapp_window_closing_is_shown_24_hours_after_the_last_message() -> None:
    # the documentation: 24 hours without a message from the contact the employee sees that a
    # template is needed; a template starts a new window; the contact can always write
    timed = 0
    for conversation in by_conversation(WEEK, "whatsapp").values():
        last = None
        for index, event in enumerate(conversation):
            if event.kind == Kind.EVENT and event.event_type == EventType.OPTED_IN:
                last = conversation[index - 1].event_time  # the contact's consent opens it
            elif last is not None and event.kind == Kind.MESSAGE:
                if event.attributes.get("delivery") == "delivered" and (
                    event.sender.role == Role.CUSTOMER or event.template_id is not None
                ):
                    last = event.event_time  # the employees' free text does not extend it
            elif _auto(event, EventType.WINDOW_EXPIRED):
                assert event.audience == Audience.EMPLOYEE and last is not None
                before = conversation[index - 1]
                if before.attributes.get("refusal") == "window_expired":
                    assert before.event_time - last >= DAY, before.event_id  # free text refused
                else:
                    assert event.event_time - last == DAY, event.event_id  # the timer
                    timed += 1
            if event.event_type == EventType.TEMPLATE_SENT:
                assert conversation[index - 1].template_id is not None
    assert timed > 0


def test_whatsapp_group_roster_changes_are_announced() -> None:
    # the documentation: in group conversations an employee can transfer the contact, leave,
    # remove a participant or restart the conversation (here: one everybody has left)
    expected = {
        EventType.TRANSFERRED: {Audience.CUSTOMER, Audience.EMPLOYEE},
        EventType.LEFT_CONVERSATION: {Audience.CUSTOMER, Audience.EMPLOYEE},
        EventType.PARTICIPANT_REMOVED: {Audience.BOTH},
        EventType.PARTICIPANT_ADDED: {Audience.BOTH},
        EventType.CONVERSATION_RESTARTED: {Audience.BOTH},
    }
    seen: Counter[EventType] = Counter()
    for conversation in by_conversation(WEEK, "whatsapp").values():
        members = {p.id for p in conversation[0].participants if p.role == Role.EMPLOYEE}
        last = None  # the 24-hour window: free-form notices reach the contact only inside it
        for index, event in enumerate(conversation):
            if event.event_type == EventType.OPTED_IN and event.kind == Kind.EVENT:
                last = event.event_time
            elif (
                event.kind == Kind.MESSAGE
                and event.attributes.get("delivery") == "delivered"
                and (event.sender.role == Role.CUSTOMER or event.template_id is not None)
            ):
                last = event.event_time if last is not None else None
            if event.kind == Kind.MESSAGE and event.sender.role == Role.EMPLOYEE:
                assert event.sender.id in members, event.event_id
            if event.kind != Kind.EVENT or event.event_type not in expected:
                continue
            window_open = last is not None and event.event_time - last < DAY
            notices = {
                e.audience
                for e in conversation[index + 1 : index + 3]
                if e.kind == Kind.AUTO_MESSAGE and e.event_type == event.event_type
            }
            assert event.is_group and event.sender.role == Role.EMPLOYEE, event.event_id
            # outside the window the employees alone are told (the change still happens)
            assert notices == (expected[event.event_type] if window_open else {Audience.EMPLOYEE}), (
                event.event_id
            )
            seen[event.event_type] += 1
            if event.event_type == EventType.LEFT_CONVERSATION:
                members.remove(event.sender.id)
            elif event.event_type == EventType.TRANSFERRED:
                members = (members - {event.attributes["from"]}) | {event.attributes["to"]}
            elif event.event_type == EventType.PARTICIPANT_ADDED:
                members.add(event.attributes["participant"])
            elif event.event_type == EventType.PARTICIPANT_REMOVED:
                members.remove(event.attributes["participant"])
            else:
                assert not members, f"{event.event_id}: restarted while employees were still in it"
                members = {event.sender.id}
    for event_type in expected:
        assert seen[event_type] > 0, event_type


def test_whatsapp_window_closing_while_nobody_is_in_the_conversation_is_not_shown_later() -> None:
    # the notice belongs to the moment the window closes; nobody was there to see it then, and an
    # employee restarting the conversation learns it when free text is refused
    for conversation in by_conversation(WEEK, "whatsapp").values():
        for index, event in enumerate(conversation[1:], start=1):
            if _auto(event, EventType.WINDOW_EXPIRED):
                assert conversation[index - 1].event_type != EventType.PARTICIPANT_ADDED, event.event_id
                assert conversation[index - 1].event_type != EventType.CONVERSATION_RESTARTED


# ---------------------------------------------------------------------------------------------
# WeChat


def test_wechat_limit_notice_follows_the_third_message_and_the_contact_hears_nothing() -> None:
    # the documentation: after three messages without a response the employee is told the limit is
    # reached; no auto-message goes to the contact at that point
    reached = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        run = 0
        for index, event in enumerate(conversation):
            if event.sender.role == Role.CUSTOMER and event.kind == Kind.MESSAGE:
                run = 0
            elif _delivered_to_customer(event):
                run += 1
                if run == 3:
                    # right after it (after the rest of a released batch)
                    rest = conversation[index + 1 :]
                    notice = next(e for e in rest if e.event_type != EventType.QUEUED_DELIVERED)
                    assert _auto(notice, EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE), (
                        event.event_id
                    )
                    assert {p.role for p in notice.recipients} == {Role.EMPLOYEE}
                    assert "Not sent" not in (notice.body or "")
                    # and nothing for the contact until an employee tries again or time passes
                    for later in rest[rest.index(notice) + 1 :]:
                        if later.kind == Kind.MESSAGE or later.kind == Kind.EVENT:
                            break
                        assert not _auto(later, EventType.ON_HOLD_NOTICE), later.event_id
                    reached += 1
    assert reached > 20


def test_wechat_trying_again_after_the_limit_puts_the_chat_on_hold_for_the_contact_once() -> None:
    # the documentation: when the limit was reached before, the contact is told the conversation is
    # on hold and asked to reply (three messages and that notice: four in a row, notices included)
    holds = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        prompted, run = False, 0
        for index, event in enumerate(conversation):
            run += _reaches_contact(event)
            if event.sender.role == Role.CUSTOMER:
                prompted, run = False, 0
            elif event.attributes.get("refusal") == "consecutive_limit":
                after = conversation[index + 1 : index + 3]
                assert _auto(after[0], EventType.CONSECUTIVE_LIMIT_REACHED, Audience.EMPLOYEE)
                assert "Not sent" in (after[0].body or "")
                told = len(after) > 1 and _auto(after[1], EventType.ON_HOLD_NOTICE, Audience.CUSTOMER)
                # not when notices already made the four in a row WeChat allows
                assert told == (not prompted and run < 4), event.event_id
                if told:
                    holds += 1
                prompted = True
            elif _auto(event, EventType.ON_HOLD_NOTICE):
                prompted = True  # once per hold, whatever prompted it
    assert holds > 0


def test_wechat_warning_leaves_the_full_24_hours_before_the_chat_goes_inactive() -> None:
    # the documentation: "has not responded for 24 hours; if no response in the next 24 hours the
    # chat becomes inactive": the inactivity notice comes exactly a day after the warning
    checked = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        warned_at = None
        for event in conversation:
            if event.sender.role == Role.CUSTOMER:
                warned_at = None
            elif _auto(event, EventType.NO_REPLY_WARNING):
                warned_at = event.event_time
                assert "another 24" in (event.body or "")
            elif _auto(event, EventType.CHAT_INACTIVE):
                # never inactive without the warning a day before
                assert warned_at is not None and event.event_time - warned_at == DAY, event.event_id
                checked += 1
    assert checked > 0


def test_wechat_an_inactive_chat_queues_and_prompts_the_contact_once() -> None:
    # the documentation: while inactive, employees can queue messages (a company limit) and the
    # contact is prompted to bring the chat back
    # (once per hold: a contact already told the chat is on hold is not told again when it goes
    # inactive, and not at all when four messages already reached them since they last wrote)
    prompts = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        inactive, prompted, run = False, False, 0
        for index, event in enumerate(conversation):
            if event.sender.role == Role.CUSTOMER:
                inactive, prompted, run = False, False, 0
            elif _auto(event, EventType.CHAT_INACTIVE, Audience.EMPLOYEE):
                inactive = True
            elif _auto(event, EventType.ON_HOLD_NOTICE):
                prompted = True
            elif inactive and _employee_message(event):
                assert event.attributes["delivery"] in ("queued", "refused"), event.event_id
                if event.attributes["delivery"] == "queued":
                    after = conversation[index + 1 : index + 3]
                    assert _auto(after[0], EventType.MESSAGE_QUEUED, Audience.EMPLOYEE)
                    told = len(after) > 1 and _auto(after[1], EventType.ON_HOLD_NOTICE, Audience.CUSTOMER)
                    assert told == (not prompted and run < 4), event.event_id
                    prompts += told
            run += _reaches_contact(event)
    assert prompts > 0


def test_wechat_leave_keyword_ends_the_chat_for_everyone_until_the_contact_writes_again() -> None:
    # the documentation: the contact can leave at any time by replying #LEAVE
    left = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        closed = False
        for index, event in enumerate(conversation):
            if _customer_message(event) and event.body == "#LEAVE":
                happened = conversation[index + 1]
                assert happened.kind == Kind.EVENT and happened.event_type == EventType.CUSTOMER_LEAVE
                notices = {e.audience for e in conversation[index + 2 : index + 4]}
                assert notices == {Audience.CUSTOMER, Audience.EMPLOYEE}
                closed, left = True, left + 1
            elif event.event_type == EventType.CONVERSATION_STARTED:
                closed = False
            elif _employee_message(event):
                assert not closed, f"{event.event_id}: employee wrote after #LEAVE"
    assert left > 0


def test_wechat_roster_changes_while_paused_are_announced_to_the_contact() -> None:
    # the documentation: if users were added or removed while the chat is paused, the contact is
    # told, with a request to reply to keep the chat going
    # (unless four messages already reached them since they last wrote: the change is then
    # announced when they reply, see test_simulate_contact_rules)
    announced = quiet = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        paused, run = False, 0
        for index, event in enumerate(conversation):
            run += _reaches_contact(event)
            if event.sender.role == Role.CUSTOMER:
                paused, run = False, 0
            elif event.kind == Kind.AUTO_MESSAGE and event.event_type in (
                EventType.CONSECUTIVE_LIMIT_REACHED,
                EventType.NO_REPLY_WARNING,
                EventType.CHAT_INACTIVE,
            ):
                paused = True
            elif event.kind == Kind.EVENT and event.event_type in (
                EventType.PARTICIPANT_ADDED,
                EventType.PARTICIPANT_REMOVED,
                EventType.LEFT_CONVERSATION,
            ):
                following = list(
                    itertools.takewhile(lambda e: e.kind == Kind.AUTO_MESSAGE, conversation[index + 1 :])
                )
                notices = [e for e in following if _auto(e, EventType.PARTICIPANTS_CHANGED_NOTICE)]
                last_one_left = event.event_type == EventType.LEFT_CONVERSATION and "dropped_queued" in (
                    event.attributes
                )
                expected = paused and not last_one_left and run < 4
                assert bool(notices) == expected, event.event_id
                if notices:
                    assert notices[0].audience == Audience.CUSTOMER
                    announced += 1
                else:
                    quiet += 1
    assert announced > 0 and quiet > 0


def test_wechat_group_members_share_the_advisors_desk() -> None:
    # the documentation: WeChat group messaging is for members of the same sub-organization
    groups = 0
    for conversation_id, conversation in by_conversation(WEEK, "wechat").items():
        if ":group:" not in conversation_id:
            continue
        groups += 1
        for event in conversation:
            desks = {p.id: event.sub_org for p in event.participants if p.role == Role.EMPLOYEE}
            assert all(desk == conversation[0].sub_org for desk in desks.values())
    assert groups > 0


def _connections(conversation: list[Event]) -> list[tuple[int, int]]:
    """(start, connected) indexes: conversation_started to the first welcome after it."""
    spans, start = [], None
    for index, event in enumerate(conversation):
        if event.event_type == EventType.CONVERSATION_STARTED:
            start = index
        elif start is not None and event.event_type == EventType.WELCOME:
            spans.append((start, index))
            start = None
    return spans


def test_wechat_employees_join_only_once_validation_or_routing_has_connected_the_contact() -> None:
    # the documentation: the phone number is validated before the contact is connected with their
    # point of contact; the bot finds out whom the contact wants, then leaves once they are connected
    checked = bots = clarified = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        for start, connected in _connections(conversation):
            before = conversation[start:connected]
            if not any(
                e.event_type in (EventType.PHONE_VALIDATION_REQUESTED, EventType.BOT_ROUTING_STARTED)
                for e in before
            ):
                continue
            for event in before:
                if event.event_type in (EventType.BOT_HANDED_OFF, EventType.PHONE_VALIDATED) and (
                    event.kind == Kind.AUTO_MESSAGE and event.audience == Audience.EMPLOYEE
                ):
                    continue  # the notice that connects them
                if event.event_type == EventType.BOT_HANDED_OFF:
                    continue
                roles = {p.role for p in (*event.participants, *event.recipients)}
                assert Role.EMPLOYEE not in roles, event.event_id
            checked += 1
            if any(e.event_type == EventType.BOT_ROUTING_STARTED for e in before):
                bots += 1
                clarified += any(e.attributes.get("bot_step") == "clarify" for e in before)
                after = conversation[connected + 2 :]
                later = [e.event_type for e in after]
                end = (
                    later.index(EventType.CONVERSATION_STARTED)
                    if EventType.CONVERSATION_STARTED in later
                    else None
                )
                assert all(p.role != Role.BOT for e in after[:end] for p in e.participants)
    assert checked > 10 and bots > 0 and clarified > 0


def test_wechat_help_options_come_unasked_when_no_code_arrives_in_time() -> None:
    # the documentation: a contact who types Help, or sends no code for a while, gets the options
    # (update the number, the code by call, the code again)
    wait = WeChatPolicy().otp_help_after
    unasked = typed = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        asked_at = None
        for index, event in enumerate(conversation):
            if _auto(event, EventType.OTP_SENT) or _auto(event, EventType.OTP_FAILED):
                asked_at = event.event_time  # the notice that asks for the code: the clock starts
            elif _auto(event, EventType.VALIDATION_HELP, Audience.CUSTOMER):
                before = conversation[index - 1]
                if _customer_message(before) and before.body == "Help":
                    typed += 1
                else:
                    assert asked_at is not None and event.event_time - asked_at == wait, event.event_id
                    assert _auto(before, EventType.OTP_SENT) or _auto(before, EventType.OTP_FAILED)
                    assert "haven't received your code" in (event.body or "") or "验证码" in (
                        event.body or ""
                    )
                    unasked += 1
                asked_at = None
            elif _customer_message(event):
                asked_at = None
    assert unasked > 0 and typed > 0


# ---------------------------------------------------------------------------------------------
# LINE


def test_line_leave_is_shown_to_both_sides() -> None:
    # the documentation: after an employee leaves, both sides see an auto-message about it
    leaves = 0
    for conversation in by_conversation(WEEK, "line").values():
        for index, event in enumerate(conversation):
            if event.kind == Kind.EVENT and event.event_type == EventType.LEFT_CONVERSATION:
                assert event.sender.role == Role.EMPLOYEE
                notices = {e.audience for e in conversation[index + 1 : index + 3]}
                assert notices == {Audience.EMPLOYEE, Audience.CUSTOMER}, event.event_id
                leaves += 1
    assert leaves > 0


def test_line_validated_phone_is_shown_when_a_regulated_contact_starts() -> None:
    shown = 0
    for conversation in by_conversation(WEEK, "line").values():
        phone = conversation[0].attributes.get("validated_phone")
        for index, event in enumerate(conversation):
            if event.event_type == EventType.CONVERSATION_STARTED and phone:
                following = conversation[index + 1 : index + 4]
                (notice,) = [e for e in following if e.event_type == EventType.VALIDATED_PHONE_SHOWN]
                assert notice.attributes["validated_phone"] == phone
                shown += 1
    assert shown > 0
