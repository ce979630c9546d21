"""What reaches the contact, over every conversation of a generated week, from the events alone:
WeChat's four messages in a row (system messages included), WhatsApp's 24-hour window for
free-form notices, and a WhatsApp group everyone on the firm's side has left."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from _simulate_support import WEEK, by_conversation
from _simulate_support import from_contact as _from_contact
from _simulate_support import reaches_contact as _reaches_contact

from pipelines.record import Audience, Event, EventType, Kind, Role

DAY = dt.timedelta(hours=24)
ROSTER = (EventType.PARTICIPANT_ADDED, EventType.PARTICIPANT_REMOVED, EventType.LEFT_CONVERSATION)
#: the seeds: "WeChat allows you to send four consecutive messages, including system messages,
#: before requiring a response from your contact"
WECHAT_RUN = 4


def _contact_reset(event: Event) -> bool:
    """The contact wrote (or followed the account): a new run starts."""
    return _from_contact(event) or (
        event.kind == Kind.EVENT and event.event_type == EventType.CONVERSATION_STARTED
    )


def test_wechat_at_most_four_messages_reach_the_contact_without_a_reply() -> None:
    longest: Counter[int] = Counter()
    for conversation in by_conversation(WEEK, "wechat").values():
        run: list[str] = []
        for event in conversation:
            if _contact_reset(event):
                run = []
            elif _reaches_contact(event):
                run.append(f"{event.event_id}:{event.event_type or event.sender.role}")
                assert len(run) <= WECHAT_RUN, run
                longest[len(run)] += 1
    assert longest[WECHAT_RUN] > 0  # the limit is reached in practice, and held


def test_wechat_the_contact_is_told_of_a_hold_once_and_can_always_write() -> None:
    holds = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        told = 0
        for event in conversation:
            if _contact_reset(event):
                told = 0
                if _from_contact(event):
                    assert event.attributes.get("delivery") == "delivered", event.event_id
            elif event.kind == Kind.AUTO_MESSAGE and event.event_type == EventType.ON_HOLD_NOTICE:
                told += 1
                holds += 1
                assert told == 1, f"{event.event_id}: a second on-hold notice in one hold"
    assert holds > 0


def test_wechat_a_roster_change_reaches_the_contact_once_or_waits_for_their_reply() -> None:
    """One notice per change, never two; a change made while the run was full is announced when
    the contact writes, in one summary, before anything else reaches them (unless it was undone
    meanwhile: someone added and removed again)."""
    announced = held = summaries = 0
    for conversation in by_conversation(WEEK, "wechat").values():
        pending: dict[str, str] = {}  # employee -> "added" / "removed", not yet told to the contact
        for index, event in enumerate(conversation):
            if _contact_reset(event):
                if pending and _from_contact(event):
                    following = [e for e in conversation[index + 1 :] if _reaches_contact(e)]
                    assert following and following[0].event_type == EventType.PARTICIPANTS_CHANGED_NOTICE, (
                        f"{event.event_id}: held roster change not announced on the reply"
                    )
                    summaries += 1
                pending.clear()
                continue
            if event.kind != Kind.EVENT or event.event_type not in ROSTER:
                continue
            notices = []
            for later in conversation[index + 1 :]:
                if later.kind != Kind.AUTO_MESSAGE:
                    break
                if later.audience in (Audience.CUSTOMER, Audience.BOTH):
                    notices.append(later)
            assert len(notices) <= 1, [n.event_id for n in notices]
            last_one = "dropped_queued" in event.attributes  # the chat ends with the last employee
            if notices:
                announced += 1
            elif not last_one:
                held += 1
                who = event.attributes.get("participant", event.sender.id)
                change = "added" if event.event_type == EventType.PARTICIPANT_ADDED else "removed"
                if pending.get(who, change) != change:
                    del pending[who]  # undone before the contact heard of it
                else:
                    pending[who] = change
    assert announced > 0 and held > 0 and summaries > 0


def _whatsapp_window(conversation: list[Event]) -> list[tuple[Event, bool]]:
    """Each event with whether the 24-hour window was open at it (free-form messages allowed)."""
    out = []
    last: dt.datetime | None = None
    opted_in = False
    for event in conversation:
        if event.kind == Kind.EVENT and event.event_type == EventType.OPTED_IN:
            opted_in, last = True, event.event_time
        open_ = opted_in and last is not None and event.event_time - last < DAY
        out.append((event, open_))
        if (
            opted_in
            and event.kind == Kind.MESSAGE
            and event.attributes.get("delivery") == "delivered"
            and (event.sender.role == Role.CUSTOMER or event.template_id is not None)
        ):
            last = event.event_time  # the contact's messages and templates; not free text of ours
    return out


def test_whatsapp_no_free_form_notice_reaches_the_contact_outside_the_window() -> None:
    """The seeds: after the 24 hours, only approved templates re-initiate the conversation. Roster
    notices are free-form: outside the window the employees alone are told, and the change still
    happens."""
    consent = {EventType.OPT_IN_REQUESTED, EventType.OPT_IN_REMINDER, EventType.OPTED_IN}
    employees_only = Counter()
    for conversation in by_conversation(WEEK, "whatsapp").values():
        timeline = _whatsapp_window(conversation)
        for index, (event, open_) in enumerate(timeline):
            if (
                event.kind == Kind.AUTO_MESSAGE
                and event.event_type not in consent
                and event.audience in (Audience.CUSTOMER, Audience.BOTH)
            ):
                assert open_, f"{event.event_id}: {event.event_type} to the contact outside the window"
            if (
                event.kind == Kind.EVENT
                and not open_
                and event.event_type
                in (
                    *ROSTER,
                    EventType.TRANSFERRED,
                    EventType.CONVERSATION_RESTARTED,
                )
            ):
                notices = [e for e, _ in timeline[index + 1 : index + 3] if e.kind == Kind.AUTO_MESSAGE]
                assert notices and {n.audience for n in notices} == {Audience.EMPLOYEE}, event.event_id
                employees_only[event.event_type] += 1
    assert sum(employees_only.values()) > 0


def test_whatsapp_last_to_leave_tells_the_contact_nobody_is_left_and_their_messages_are_kept() -> None:
    nobody_markers = ("nobody from our side", "无人", "誰もいません")
    last_leaves = 0
    for conversation in by_conversation(WEEK, "whatsapp").values():
        members = {p.id for p in conversation[0].participants if p.role == Role.EMPLOYEE}
        empty = False
        for index, event in enumerate(conversation):
            if event.kind == Kind.EVENT:
                if event.event_type == EventType.LEFT_CONVERSATION:
                    members.discard(event.sender.id)
                    notices = [
                        e
                        for e in conversation[index + 1 : index + 3]
                        if e.kind == Kind.AUTO_MESSAGE and e.audience == Audience.CUSTOMER
                    ]
                    for notice in notices:
                        says_nobody = any(m in (notice.body or "") for m in nobody_markers)
                        assert says_nobody == (not members), notice.event_id
                        assert members or "Others from the team" not in (notice.body or "")
                        last_leaves += not members
                    empty = not members
                elif event.event_type == EventType.TRANSFERRED:
                    members = (members - {event.attributes["from"]}) | {event.attributes["to"]}
                elif event.event_type == EventType.PARTICIPANT_ADDED:
                    members.add(event.attributes["participant"])
                elif event.event_type == EventType.PARTICIPANT_REMOVED:
                    members.discard(event.attributes["participant"])
                elif event.event_type == EventType.CONVERSATION_RESTARTED:
                    members, empty = {event.sender.id}, False
            elif empty and _from_contact(event):
                # still archived, with nobody on the firm's side to receive it
                assert event.recipients == [] and event.attributes.get("delivery") == "delivered"
    assert last_leaves > 0


def test_line_last_to_leave_tells_the_contact_nobody_is_left() -> None:
    """LINE's notice to the contact promised "a colleague will follow up" also when the one
    leaving was the last employee in the chat (every LINE leave of a seed-9 run)."""
    from pipelines import automessages
    from pipelines.record import Party
    from pipelines.simulate.channels import line

    now = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    mai = Party(id="e1", name="Mai Ito", role=Role.EMPLOYEE, handle="+818000000001")
    for members, nobody in ((("e1",), True), (("e1", "e2"), False)):
        state, _ = line.follow(line.State(), now, members=members, validated_phone="+818010743075")
        _, effects = line.leave(state, now, mai)
        (notice,) = [e for e in effects if getattr(e, "audience", None) == Audience.CUSTOMER]
        for lang, marker in (("en", "nobody from our side"), ("ja", "誰もいません"), ("zh", "无人")):
            text = automessages.render(
                notice.event_type, notice.audience, channel="line", lang=lang, **notice.context
            )
            assert (marker in text) == nobody, text
            assert ("follow up" in text or "跟进" in text or "対応します" in text) == (not nobody), text


def test_only_a_persons_phone_stamps_an_event_late_the_platform_never_does() -> None:
    """Clock skew (received before it happened) comes from phones: auto-messages and events the
    platform stamps itself were received before their time too (23 of them in a 3-day seed-9 run)."""
    from _simulate_support import events

    skewed: Counter[str] = Counter()
    for event in events(WEEK):
        if event.received_time < event.event_time:
            phone = event.kind == Kind.MESSAGE and event.sender.role in (Role.EMPLOYEE, Role.CUSTOMER)
            skewed["phone" if phone else "platform"] += 1
    assert skewed["platform"] == 0 and skewed["phone"] > 0
