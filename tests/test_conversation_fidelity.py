"""`vigil conversation` against the simulator's traffic: order, who was present, audiences,
delivery marks, windows and the HTML page, over every conversation of a small run; and the
roster rules the run showed wrong, on rows written by hand."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from search_support import (
    ALEX,
    DANA,
    WEI,
    at,
    employee_notice,
    event_row,
    hold_notice,
    row,
    vigil,
    write_archive,
)

from pipelines.errors import QueryError
from pipelines.record import Event
from pipelines.search.access import AccessRole, Identity
from pipelines.search.conversation import build_timeline, load_conversation, render_html
from pipelines.search.query import org_ref
from pipelines.simulate import SimulationConfig, generate, simulate

OFFICER = Identity("olivia", AccessRole.OFFICER)
REVIEWER = Identity("ravi", AccessRole.REVIEWER)
#: two busy days: WeChat bots and validation, LINE restarts, WhatsApp group changes
RUN = SimulationConfig(days=2, seed=4, employees=6, contacts=40, activity=3.0)
DEPARTURES = {"left_conversation": "sender", "customer_leave": "sender", "participant_removed": "participant"}
DEPARTURES["transferred"] = "from"
ARRIVALS = {"participant_added": "participant", "transferred": "to", "bot_routing_started": "sender"}
STARTS = {"conversation_started", "conversation_restarted"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Event]]]:
    root = tmp_path_factory.mktemp("fidelity")
    simulate(RUN, root / "events")
    assert vigil("run", "--input", str(root / "events"), "--archive", str(root / "archive")) == 0
    truth: dict[str, list[Event]] = {}
    for emitted in sorted(generate(RUN), key=lambda e: e.order):
        truth.setdefault(emitted.event.conversation_id, []).append(emitted.event)
    return root / "archive", truth


def _ids(people) -> set[str]:  # type: ignore[no-untyped-def]
    return {p.id for p in people}


def test_the_view_replays_the_simulators_conversations(run) -> None:  # type: ignore[no-untyped-def]
    """Order, and who was present on every record: the roster the events imply (starts, joins,
    leaves, transfers, #LEAVE, the routing bot) agrees with each record's participants (a change's
    own records may still list the one leaving, and the notices of a customer's #LEAVE still list
    everyone it took out) and is what the view shows."""
    archive, truth = run
    seen: set[str] = set()
    for cid, events in truth.items():
        loaded = load_conversation(archive, cid)
        t = build_timeline(cid, loaded, OFFICER)
        rows = {r["record_id"]: r for r in loaded}
        assert [rows[e.record_id]["event_id"] for e in t.entries] == [e.event_id for e in events], cid
        roster: set[str] | None = None
        gone: set[str] = set()
        union: set[str] | None = None
        for event, entry in zip(events, t.entries, strict=True):
            listed = {p.id for p in event.participants}
            kind, event_type = str(event.kind), event.event_type and str(event.event_type)
            seen.add(f"{event.channel}:{event_type or kind}")
            roster = set(listed) if roster is None else roster
            before = set(roster)
            happened = event_type if kind == "event" else None
            if happened in STARTS:
                roster, gone = set(listed), set()
            if happened in ARRIVALS:
                where = ARRIVALS[happened]
                roster.add(event.sender.id if where == "sender" else event.attributes[where])
            if happened == "bot_handed_off":
                assert event.sender.role == "bot", (cid, event.event_id)
                gone |= {event.sender.id}
                roster.discard(event.sender.id)
            if happened == "bot_handed_off" or (
                kind == "auto_message" and event_type == "phone_validated" and event.audience == "employee"
            ):
                # WeChat: nobody from the firm is in the chat while the bot routes or the number is
                # validated; the employees join when the contact is connected to them
                roster |= {p.id for p in event.participants if p.role == "employee"}
            if happened in DEPARTURES:
                where = DEPARTURES[happened]
                who = event.sender.id if where == "sender" else event.attributes[where]
                roster.discard(who)
                gone.add(who)
            if happened == "customer_leave":  # the contact's #LEAVE ends the chat for everyone
                gone |= roster
                roster = set()
            if kind == "message" and event.sender.id not in roster:
                assert event.sender.role == "customer", (cid, event.event_id)  # back after #LEAVE
                roster.add(event.sender.id)
            if kind == "event":
                union = before | roster if before != roster else None
            elif kind == "message":
                union = None
            assert listed in (roster, union) or (listed - roster <= gone and roster <= listed), (
                cid,
                event.event_id,
                sorted(listed),
                sorted(roster),
            )
            assert _ids(entry.present) == roster, (cid, event.event_id)
            if kind == "auto_message":
                audience = str(event.audience)
                assert entry.audience == audience
                if audience != "both":
                    assert f"to {audience}" in entry.heading
                wanted = {"employee": {"employee"}, "customer": {"customer"}}.get(audience)
                assert wanted is None or {str(p.role) for p in event.recipients} <= wanted
            delivery = event.attributes.get("delivery")
            if delivery in ("queued", "refused"):
                assert entry.heading.startswith(f"message · {delivery}"), entry.heading
    for needed in ("wechat:bot_handed_off", "whatsapp:transferred", "whatsapp:left_conversation"):
        assert needed in seen
    assert {"whatsapp:participant_removed", "wechat:customer_leave", "wechat:queued_delivered"} & seen


def test_a_window_opens_with_whoever_was_present_then(run) -> None:  # type: ignore[no-untyped-def]
    archive, truth = run
    compared = 0
    for cid in truth:
        full = build_timeline(cid, load_conversation(archive, cid), OFFICER)
        present = {e.record_id: _ids(e.present) for e in full.entries}
        for day in (6,):
            start = dt.datetime(2026, 1, day, tzinfo=dt.UTC)
            earlier = [e for e in full.entries if e.time < start]
            if not earlier or earlier[-1] is full.entries[-1]:
                continue
            t = build_timeline(cid, load_conversation(archive, cid, time_from=start), OFFICER)
            assert t.present_at_start and _ids(t.present_at_start) == present[earlier[-1].record_id], cid
            assert all(_ids(e.present) == present[e.record_id] for e in t.entries), cid
            compared += 1
    assert compared > 10


def test_every_held_message_shows_what_became_of_it(run) -> None:  # type: ignore[no-untyped-def]
    """The simulator's own account: a held message released (``queued_delivered`` naming it) says
    when, and its release which message it was; one an event dropped (``dropped_queued``) says it
    was not delivered; and a window that cuts the release off claims nothing about it."""
    archive, truth = run
    fates: dict[str, int] = {"delivered": 0, "dropped": 0}
    for cid, events in truth.items():
        expected: dict[str, str] = {}
        releases: dict[str, tuple[str, str]] = {}  # release event id -> (held event id, position)
        waiting: list[str] = []
        for event in events:
            attributes = event.attributes
            if attributes.get("delivery") == "queued":
                waiting.append(event.event_id)
            elif str(event.event_type) == "queued_delivered":
                held = attributes["queued_event_id"]
                waiting.remove(held)
                releases[event.event_id] = (held, attributes["queue_position"])
                expected[held] = "delivered"
            elif int(attributes.get("dropped_queued") or 0):
                assert int(attributes["dropped_queued"]) == len(waiting), (cid, event.event_id)
                expected.update({held: f"dropped:{event.event_type}" for held in waiting})
                waiting = []
        if not expected:
            continue
        loaded = load_conversation(archive, cid)
        event_ids = {r["record_id"]: r["event_id"] for r in loaded}
        for who in (OFFICER, REVIEWER):
            t = build_timeline(cid, loaded, who)
            by_event = {event_ids[e.record_id]: e for e in t.entries}
            for held, fate in expected.items():
                entry = by_event[held]
                assert entry.queue is not None, (cid, held)
                target = by_event[event_ids[entry.queue.target or ""]]
                if fate == "delivered":
                    same_day = target.time.date() == entry.time.date()
                    stamp = f"{target.time:%H:%M:%S}" if same_day else f"{target.time:%Y-%m-%d %H:%M:%S}"
                    assert entry.queue.text == f"delivered at {stamp}", (cid, held)
                    fates["delivered"] += 1
                else:
                    assert entry.queue.text.startswith("not delivered: "), entry.queue.text
                    assert str(target.event_type) == fate.split(":")[1]
                    fates["dropped"] += 1
            for release, (held, position) in releases.items():
                note = by_event[release].queue
                assert note is not None and note.target == by_event[held].record_id
                assert note.text.endswith(f"(held at position {position})")
            for eid in set(by_event) - set(expected):
                if by_event[eid].delivery == "queued":  # still held when the run ended
                    assert by_event[eid].queue is None, (cid, eid)
        # a window ending before the releases: the held messages say nothing more
        first_release = min((by_event[r].time for r in releases), default=None)
        if first_release is not None:
            cut = build_timeline(cid, load_conversation(archive, cid, time_to=first_release), OFFICER)
            cut_ids = {event_ids[e.record_id]: e for e in cut.entries}
            for held, fate in expected.items():
                if fate == "delivered" and held in cut_ids:
                    assert cut_ids[held].queue is None, (cid, held)
    assert fates["delivered"] and fates["dropped"], fates


def test_the_page_shows_what_the_terminal_shows_and_nothing_external(run) -> None:  # type: ignore[no-untyped-def]
    archive, truth = run
    for cid in list(truth)[::4]:
        for who in (OFFICER, REVIEWER):
            t = build_timeline(cid, load_conversation(archive, cid), who, export=True)
            page = render_html(t)
            assert not re.search(r"https?://|<script|\bsrc=|<link|@import|url\(", page, re.I)
            assert page.count("<article") == len(t.entries)
            assert all(f'id="r-{e.record_id}"' in page for e in t.entries)


# ---------------------------------------------------------------------------------------------
# on rows written by hand

BOT = {"id": "bot:acme", "name": "Acme assistant", "role": "bot", "handle": None, "groups": []}


def _event(n: int, minute: int, event_type: str, sender: dict, participants: list, **kw) -> dict:  # type: ignore[type-arg]
    return event_row(f"fd-{n}", at(5, 9, minute), event_type, sender, participants, channel="line", **kw)


def _says(n: int, minute: int, sender: dict, participants: list, **kw) -> dict:  # type: ignore[type-arg]
    to = [p for p in participants if p["id"] != sender["id"]]
    direction = "inbound" if sender["role"] == "customer" else "outbound"
    return row(
        f"fd-{n}",
        at(5, 9, minute),
        body=f"line {n}",
        sender=sender,
        recipients=to,
        participants=participants,
        channel="line",
        direction=direction,
        **kw,
    )


def test_a_new_start_brings_back_whoever_it_lists(tmp_path: Path) -> None:
    # LINE: the only employee leaves, the contact starts the chat again and the employee is
    # assigned afresh: present from the start on, not only once they write
    rows = [
        _says(1, 0, WEI, [DANA, WEI]),
        _event(2, 1, "left_conversation", DANA, [DANA, WEI]),
        _event(3, 2, "conversation_started", WEI, [DANA, WEI]),
        _says(4, 3, WEI, [DANA, WEI]),
    ]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    assert [_ids(e.present) for e in t.entries] == [{DANA["id"], WEI["id"]}, {WEI["id"]}] + [
        {DANA["id"], WEI["id"]}
    ] * 2
    assert [_ids(e.joined) for e in t.entries][2] == {DANA["id"]}


def test_the_routing_bot_comes_and_goes_on_its_own_events(tmp_path: Path) -> None:
    routing = [DANA, WEI, BOT]
    rows = [
        _says(1, 0, WEI, [DANA, WEI]),
        _event(2, 1, "bot_routing_started", BOT, routing),
        _says(3, 2, BOT, routing),
        _event(4, 3, "bot_handed_off", BOT, routing, attributes={"to": DANA["id"]}),
        _says(5, 4, DANA, routing),  # a source that still lists the bot
        _says(6, 5, DANA, [DANA, WEI]),
    ]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    changes = [(n, _ids(e.joined), _ids(e.left)) for n, e in enumerate(t.entries, 1) if e.joined or e.left]
    assert changes == [(2, {BOT["id"]}, set()), (4, set(), {BOT["id"]})]


def test_a_window_starting_on_a_restart_shows_who_was_there_before_it(tmp_path: Path) -> None:
    # everyone from the firm left yesterday; today's window opens on Alex restarting the chat
    rows = [
        _says(1, 0, DANA, [DANA, ALEX, WEI]),
        _event(2, 1, "left_conversation", DANA, [DANA, ALEX, WEI]),
        _event(3, 2, "left_conversation", ALEX, [ALEX, WEI]),
        event_row("fd-4", at(6, 9), "conversation_restarted", ALEX, [ALEX, WEI], channel="line"),
    ]
    root = write_archive(tmp_path / "a", rows)
    rows_in = load_conversation(root, "conv-en", time_from=at(6, 0))
    t = build_timeline("conv-en", rows_in, OFFICER, window=(at(6, 0), None))
    assert [e.record_id for e in t.entries] == [rows[3]["record_id"]]
    assert _ids(t.present_at_start) == {WEI["id"]}
    assert _ids(t.entries[0].joined) == {ALEX["id"]} and not t.entries[0].left


def test_a_notice_stamped_with_its_cause_comes_after_it(tmp_path: Path) -> None:
    # same instant, and the notice's file sorts first: the refused message still comes first
    same = at(5, 9)
    refused = row(
        "fd-1",
        same,
        body="one more",
        attributes={"delivery": "refused", "refusal": "queue_full"},
        source_name="in/b.jsonl",
    )
    notice = employee_notice("fd-2", same, "queue_full", "The queue is full.", source_name="in/a.jsonl")
    t = build_timeline(
        "conv-en", load_conversation(write_archive(tmp_path / "a", [notice, refused]), "conv-en"), OFFICER
    )
    assert [e.heading for e in t.entries] == [
        "message · refused (queue_full)",
        "auto-message to employee · queue full",
    ]


def test_the_simulated_bot_is_listed_from_its_first_event_and_sends_its_hand_off() -> None:
    config = SimulationConfig(days=2, seed=4, employees=4, contacts=40)
    conversations: dict[str, list[Event]] = {}
    for emitted in generate(config):
        if emitted.event.channel == "wechat":
            conversations.setdefault(emitted.event.conversation_id, []).append(emitted.event)
    handed = 0
    for events in conversations.values():
        routing = handing_off = False
        for event in events:
            if event.event_type == "bot_routing_started":
                routing = True
            if event.kind == "event" and event.event_type == "bot_handed_off":
                assert event.sender.role == "bot", event.event_id
                routing, handing_off = False, True
                handed += 1
            elif event.kind != "auto_message":
                handing_off = False  # the hand-off's own notices still list it, nothing after them
            listed = any(p.role == "bot" for p in event.participants)
            assert listed == (routing or handing_off), (event.event_id, event.event_type)
    assert handed


def test_someone_added_at_the_instant_they_first_write_joins_before_their_message(tmp_path: Path) -> None:
    # the add event is written after the message (file order), at the same second: the view
    # still shows the join first, and the message is sent by someone already present
    says = _says(2, 1, ALEX, [DANA, ALEX, WEI], source_name="in/a.jsonl")
    added = _event(3, 1, "participant_added", DANA, [DANA, ALEX, WEI], source_name="in/b.jsonl")
    added["attributes"] = {**(added.get("attributes") or {}), "participant": ALEX["id"]}
    rows = [_says(1, 0, DANA, [DANA, WEI]), says, added]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    assert [e.record_id for e in t.entries] == [rows[0]["record_id"], added["record_id"], says["record_id"]]
    assert _ids(t.entries[1].joined) == {ALEX["id"]} and not t.entries[2].joined


def _presence(t) -> list[tuple[set[str], set[str]]]:  # type: ignore[no-untyped-def]
    return [(_ids(e.joined), _ids(e.left)) for e in t.entries]


def test_a_remove_and_re_add_in_one_second_keep_the_sources_order(tmp_path: Path) -> None:
    # a source with whole-second times: Dana takes Alex out and puts him back in the same second;
    # Alex is present again afterwards (he is listed and written to), not left out for good
    removed = _event(2, 1, "participant_removed", DANA, [DANA, WEI], source_offset=1)
    removed["attributes"] = {"participant": ALEX["id"]}
    added = _event(3, 1, "participant_added", DANA, [DANA, ALEX, WEI], source_offset=2)
    added["attributes"] = {"participant": ALEX["id"]}
    rows = [_says(1, 0, DANA, [DANA, ALEX, WEI]), removed, added, _says(4, 2, DANA, [DANA, ALEX, WEI])]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    assert [e.record_id for e in t.entries] == [r["record_id"] for r in rows]
    assert _presence(t) == [(set(), set()), (set(), {ALEX["id"]}), ({ALEX["id"]}, set()), (set(), set())]
    assert _ids(t.entries[-1].present) == {DANA["id"], ALEX["id"], WEI["id"]}


def test_a_transfer_in_the_second_of_the_last_words_follows_them(tmp_path: Path) -> None:
    # Dana says she is handing over and the transfer is stamped the same second; its file sorts
    # first: she leaves once, after her message, and is not shown leaving, coming back, leaving
    says = _says(2, 1, DANA, [DANA, WEI], source_name="in/b.jsonl")
    moved = _event(3, 1, "transferred", DANA, [ALEX, WEI], source_name="in/a.jsonl")
    moved["attributes"] = {"from": DANA["id"], "to": ALEX["id"]}
    rows = [_says(1, 0, WEI, [DANA, WEI]), says, moved, _says(4, 2, ALEX, [ALEX, WEI])]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    assert [e.record_id for e in t.entries] == [r["record_id"] for r in rows]
    assert _presence(t) == [(set(), set()), (set(), set()), ({ALEX["id"]}, {DANA["id"]}), (set(), set())]


def test_the_bot_hands_off_after_its_last_words_of_that_second(tmp_path: Path) -> None:
    routing = [WEI, BOT]
    says = _says(2, 1, BOT, routing, source_offset=2)
    handed = _event(3, 1, "bot_handed_off", BOT, routing, attributes={"to": DANA["id"]}, source_offset=1)
    rows = [_event(1, 0, "bot_routing_started", BOT, routing), says, handed, _says(4, 2, DANA, [DANA, WEI])]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    assert [e.record_id for e in t.entries] == [r["record_id"] for r in rows]
    assert _presence(t)[1:] == [(set(), set()), ({DANA["id"]}, {BOT["id"]}), (set(), set())]


def test_an_id_two_organisations_use_is_refused_until_one_is_picked(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # each firm's source numbers its conversations from one: the same id, two conversations
    ours = _says(1, 0, DANA, [DANA, WEI])
    theirs = _says(2, 1, DANA, [DANA, WEI], org="Globex", sub_org="desk")
    root = write_archive(tmp_path / "a", [ours, theirs])
    with pytest.raises(QueryError, match=r"2 organisations carry \(Globex, acme\); pick one with --org"):
        load_conversation(root, "conv-en")
    # ... also when the other firm's records lie before the window (they set who is present)
    with pytest.raises(QueryError, match="2 organisations"):
        load_conversation(root, "conv-en", time_from=at(5, 9, 1))
    picked = load_conversation(root, "conv-en", orgs=(org_ref("GLOBEX/desk"),))
    assert [r["record_id"] for r in picked] == [theirs["record_id"]]
    argv = ["conversation", "conv-en", "--archive", str(root), "--role", "officer"]
    assert vigil(*argv) == 2
    assert "pick one with --org (e.g. --org Globex)" in capsys.readouterr().err
    assert vigil(*argv, "--org", "acme") == 0
    out = capsys.readouterr().out
    assert "line 1" in out and "line 2" not in out and "1 record" in out
    assert vigil(*argv, "--org", "acme/") == 2
    assert (
        "--org acme/ is not an organisation; write --org acme or --org acme/wealth-hk"
        in capsys.readouterr().err
    )
    log = [
        json.loads(line)
        for line in (root / "_ledger" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    # the lookup that found two organisations is on record, refused; a --org that does not parse
    # looked nothing up
    assert [(e["query"].get("orgs"), e["results"]) for e in log] == [(None, 0), (["acme"], 1)]
    assert "2 organisations carry" in log[0]["details"]["refused"]
    assert log[0]["action"] == "conversation"


def test_an_organisation_whose_records_there_are_all_blocked_is_not_told_to_the_crm_role(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    ours = _says(1, 0, DANA, [DANA, WEI])
    blocked = {"dlp_action": "block", "blocked": True, "body_redacted": "key <AWS_ACCESS_KEY_ID>"}
    theirs = _says(2, 1, DANA, [DANA, WEI], org="Globex", dlp=blocked)
    root = write_archive(tmp_path / "a", [ours, theirs])
    argv = ["conversation", "conv-en", "--archive", str(root)]
    assert vigil(*argv, "--role", "crm", "--user", "c") == 0
    out, err = capsys.readouterr()
    assert "Globex" not in out + err and "1 record" in out
    # a role that sees blocked records is still asked to pick one
    assert vigil(*argv, "--role", "officer") == 2
    assert "2 organisations carry (Globex, acme)" in capsys.readouterr().err
    # ... also where the pipeline archived its DLP notice and the held message's notices beside
    # the blocked message (records the CRM role does not get either)
    notice = employee_notice(
        "fd-3", at(5, 9, 1), "dlp_blocked_notice", "Not sent: it held a secret.", org="Globex", channel="line"
    )
    held = _says(4, 2, DANA, [DANA, WEI], org="Globex", dlp=blocked, attributes={"delivery": "queued"})
    hold = hold_notice("fd-5", at(5, 9, 2), "fd-4", org="Globex", channel="line")
    write_archive(root, [notice, held, hold])
    assert vigil(*argv, "--role", "crm", "--user", "c") == 0
    out, err = capsys.readouterr()
    assert "Globex" not in out + err and "1 record" in out


def test_someone_the_first_record_adds_is_shown_joining_it(tmp_path: Path) -> None:
    # the view opens on Alex being added (the event's participants are those before it): he
    # joins there, writes, and is removed; before, he was never shown joining, only leaving
    rows = [
        _event(1, 0, "participant_added", DANA, [DANA, WEI], attributes={"participant": ALEX["id"]}),
        _says(2, 5, ALEX, [DANA, WEI, ALEX]),
        _event(3, 6, "participant_removed", DANA, [DANA, WEI, ALEX], attributes={"participant": ALEX["id"]}),
        _says(4, 7, DANA, [DANA, WEI]),
    ]
    root = write_archive(tmp_path / "a", rows)
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    assert _ids(t.present_at_start) == {DANA["id"], WEI["id"]}
    changes = [(n, _ids(e.joined), _ids(e.left)) for n, e in enumerate(t.entries, 1) if e.joined or e.left]
    assert changes == [(1, {ALEX["id"]}, set()), (3, set(), {ALEX["id"]})]
    # a window that opens with nothing before it reads the same
    t = build_timeline("conv-en", load_conversation(root, "conv-en", time_from=at(5, 8)), OFFICER)
    assert _ids(t.entries[0].joined) == {ALEX["id"]}


def test_someone_removed_who_writes_again_is_back(tmp_path: Path) -> None:
    # the source's participants on Alex's message do not list him yet: his writing brings him back
    rows = [
        _says(1, 0, ALEX, [DANA, WEI, ALEX]),
        _event(2, 1, "participant_removed", DANA, [DANA, WEI, ALEX], attributes={"participant": ALEX["id"]}),
        _says(3, 2, DANA, [DANA, WEI]),
        _says(4, 3, ALEX, [DANA, WEI]),
        _says(5, 4, WEI, [DANA, WEI, ALEX]),  # the source's list has caught up
    ]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    changes = [(n, _ids(e.joined), _ids(e.left)) for n, e in enumerate(t.entries, 1) if e.joined or e.left]
    assert changes == [(2, set(), {ALEX["id"]}), (4, {ALEX["id"]}, set())]
    assert ALEX["id"] in _ids(t.entries[4].present)


def test_each_record_names_its_thread_when_the_view_holds_several(tmp_path: Path) -> None:
    rows = [
        _says(1, 0, DANA, [DANA, WEI], thread_id="conv-en/t1"),
        _says(2, 1, WEI, [DANA, WEI], thread_id="conv-en/t2"),
        _says(3, 2, DANA, [DANA, WEI], thread_id="conv-en/t1"),
        _says(4, 3, DANA, [DANA, WEI], thread_id="other-thread"),
    ]
    root = write_archive(tmp_path / "a", rows)
    t = build_timeline("conv-en", load_conversation(root, "conv-en"), OFFICER)
    assert t.threads == ["t1", "t2", "other-thread"]
    assert [e.thread for e in t.entries] == ["t1", "t2", "t1", "other-thread"]
    html = render_html(t)
    assert "Threads: t1, t2, other-thread" in html
    assert re.findall(r'<span class="thread">thread ([^<]+)</span>', html) == [e.thread for e in t.entries]
    assert vigil("conversation", "conv-en", "--archive", str(root), "--role", "reviewer") == 0
    # a window that holds one thread names none: there is nothing to tell apart
    one = build_timeline("conv-en", load_conversation(root, "conv-en", time_from=at(5, 9, 3)), OFFICER)
    assert one.threads == [] and [e.thread for e in one.entries] == [None]
    assert 'class="thread"' not in render_html(one) and "Threads:" not in render_html(one)


def test_threads_whose_short_names_would_look_alike_are_named_in_full(tmp_path: Path) -> None:
    rows = [
        _says(1, 0, DANA, [DANA, WEI], thread_id="conv-en/1"),
        _says(2, 1, WEI, [DANA, WEI], thread_id="conv-en-1"),
    ]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    assert t.threads == ["conv-en/1", "conv-en-1"] and [e.thread for e in t.entries] == t.threads


def test_long_unbroken_text_wraps_on_the_page(tmp_path: Path) -> None:
    rows = [_says(1, 0, DANA, [DANA, WEI])]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    style = re.search(r"<style>(.*?)</style>", render_html(t), re.S)
    assert style and re.search(r"\bbody \{[^}]*overflow-wrap: anywhere", style.group(1))


def test_a_transfer_that_bounces_back_in_one_second_keeps_its_order(tmp_path: Path) -> None:
    # routing hands Wei to Alex and straight back to Dana, who writes, all in one second: Dana
    # stays the one present (the first transfer is not moved after her message)
    there = _event(2, 1, "transferred", DANA, [ALEX, WEI], source_offset=1)
    there["attributes"] = {"from": DANA["id"], "to": ALEX["id"]}
    back = _event(3, 1, "transferred", ALEX, [DANA, WEI], source_offset=2)
    back["attributes"] = {"from": ALEX["id"], "to": DANA["id"]}
    rows = [
        _says(1, 0, WEI, [DANA, WEI]),
        there,
        back,
        _says(4, 1, DANA, [DANA, WEI], source_offset=3),
        _says(5, 2, WEI, [DANA, WEI]),
    ]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    assert [e.record_id for e in t.entries] == [r["record_id"] for r in rows]
    assert [_ids(e.present) for e in t.entries][-2:] == [{DANA["id"], WEI["id"]}] * 2


def test_someone_who_writes_around_a_remove_and_re_add_in_one_second_stays(tmp_path: Path) -> None:
    removed = _event(3, 1, "participant_removed", DANA, [DANA, WEI], source_offset=2)
    removed["attributes"] = {"participant": ALEX["id"]}
    added = _event(4, 1, "participant_added", DANA, [DANA, ALEX, WEI], source_offset=3)
    added["attributes"] = {"participant": ALEX["id"]}
    rows = [
        _says(1, 0, DANA, [DANA, ALEX, WEI]),
        _says(2, 1, ALEX, [DANA, ALEX, WEI], source_offset=1),
        removed,
        added,
        _says(5, 1, ALEX, [DANA, ALEX, WEI], source_offset=4),
        _says(6, 2, DANA, [DANA, ALEX, WEI]),
    ]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    assert [e.record_id for e in t.entries] == [r["record_id"] for r in rows]
    assert _ids(t.entries[-1].present) == {DANA["id"], ALEX["id"], WEI["id"]}


def test_thousands_of_records_at_one_instant_are_put_in_turn() -> None:
    # a bulk import stamped with its export time: the arrivals each go before their newcomer's
    # message, the messages keep their order (n log n; one pass each, not a search per event)
    from pipelines.search.conversation import _in_turn

    same = at(5, 9)
    rows: list[dict] = []  # type: ignore[type-arg]
    for n in range(4000):
        who = {**ALEX, "id": f"emp-{n}"}
        rows.append(_says(2 * n, 0, who, [DANA, who, WEI], source_offset=2 * n))
        joined = _event(2 * n + 1, 0, "participant_added", DANA, [DANA, who, WEI], source_offset=2 * n + 1)
        joined["attributes"] = {"participant": who["id"]}
        rows.append(joined)
    for r in rows:
        r["event_time"] = same
    out = list(_in_turn(iter(rows)))
    assert [r["event_id"] for r in out[:4]] == ["fd-1", "fd-0", "fd-3", "fd-2"]
    assert len(out) == len(rows) and {id(r) for r in out} == {id(r) for r in rows}


def test_a_remove_then_the_persons_own_words_then_a_re_add_in_one_second(tmp_path: Path) -> None:
    # both moves would anchor on Alex's message and cross; the remove goes after it and the re-add
    # stays after the remove: Alex is present once the second is over
    removed = _event(2, 1, "participant_removed", DANA, [DANA, WEI], source_offset=1)
    removed["attributes"] = {"participant": ALEX["id"]}
    added = _event(4, 1, "participant_added", DANA, [DANA, ALEX, WEI], source_offset=3)
    added["attributes"] = {"participant": ALEX["id"]}
    says = _says(3, 1, ALEX, [DANA, ALEX, WEI], source_offset=2)
    rows = [_says(1, 0, DANA, [DANA, ALEX, WEI]), removed, says, added, _says(5, 2, DANA, [DANA, ALEX, WEI])]
    t = build_timeline("conv-en", load_conversation(write_archive(tmp_path / "a", rows), "conv-en"), OFFICER)
    order = [e.record_id for e in t.entries]
    assert order.index(removed["record_id"]) < order.index(added["record_id"])
    assert _ids(t.entries[-1].present) == {DANA["id"], ALEX["id"], WEI["id"]}
