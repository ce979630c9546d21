"""A conversation as it happened: every record in order, who was there, what DLP did.

:func:`load_conversation` reads a conversation's records from the archive (embedded engine, date
partitions pruned when a range is given) in event-time order; for records stamped with the same
instant messages and the events that bring someone in or take someone out first (an auto-message
or other event never precedes the message that caused it), then source order (file, offset),
with an arrival moved before the newcomer's own message at that instant and a departure after the
leaver's (:func:`_in_turn`). With ``time_from`` the records before the window are read too, for
who was present when it opens (:data:`BEFORE_WINDOW`), and not shown. :func:`build_timeline`
turns them into :class:`Entry` objects for one viewer:

* messages, auto-messages (with their audience: "to employee", "to customer", "to both"), and
  events (joins, leaves, transfers, opt-ins, window expiries, ...);
* delivery outcomes carried in attributes (``delivery=queued`` / ``refused`` and why; roles that
  do not see original text get only the reasons the channels write, and attachments without
  their names: DLP does not scan either);
* held messages tied to what became of them (:func:`_link_queue`): a ``queued_delivered`` event
  names the held message it releases (``queued_event_id``), so the release says which message it
  was and the held message when it went out; a held message that an event drops (consent refused,
  the contact or the last employee leaving: ``dropped_queued``) before any release says it was not
  delivered. Only what the timeline (or window) shows is claimed;
* who was present at each point: the participants at the first record, then each change (who
  joined, who left) on the record where it shows;
* DLP markers (flagged, redacted, blocked; rule ids), with the text the viewer's role may see:
  officers the original and the redacted view, reviewers the redacted view only, the CRM role its
  CRM view.

Rendering: :func:`render_text` for the terminal (rich), :func:`render_html` for a self-contained
HTML page (``pipelines/templates/conversation.html.j2``, autoescaped: bodies are untrusted; control
characters and bidirectional overrides shown as visible escapes, as in the terminal).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from pipelines.archive import layout
from pipelines.archive.manifest import DataFile
from pipelines.archive.reader import read_consistently
from pipelines.errors import ArchiveError, QueryError
from pipelines.record import ARROW_SCHEMA, DlpAction, EventType, record_id_for
from pipelines.search import sql
from pipelines.search.access import (
    DLP_NOTICE,
    POINTER_ATTRIBUTES,
    POINTERS,
    Identity,
    export_text,
    hidden_from,
    shown_text,
)
from pipelines.search.embedded import _execute as execute
from pipelines.search.query import OrgRef, Query, show_time
from pipelines.search.render import safe
from pipelines.search.results import _attributes, _time, kind_label
from pipelines.search.wordbreak import simple_fold

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
HTML_TEMPLATE = "conversation.html.j2"


@dataclass(frozen=True)
class Person:
    id: str
    label: str
    role: str


@dataclass
class DlpMark:
    action: str  # flag, redact, block
    rules: list[str]
    blocked: bool

    @property
    def label(self) -> str:
        if self.blocked:
            what = "BLOCKED by DLP (not delivered)"
        elif self.action == "redact":
            what = "redacted by DLP"
        else:
            what = "flagged by DLP"
        return f"{what}: {', '.join(self.rules)}" if self.rules else what


@dataclass(frozen=True)
class QueueNote:
    """What became of a held message, or which held message a release delivered: ``text`` for
    every renderer, ``target`` the record id of the entry it refers to (an in-page link)."""

    text: str
    target: str | None = None


@dataclass
class Entry:
    record_id: str
    time: dt.datetime
    kind: str
    event_type: str | None
    audience: str | None
    direction: str
    sender: Person
    recipients: list[Person]
    text: str | None
    withheld: bool
    redacted: str | None
    delivery: str | None
    delivery_note: str | None
    dlp: DlpMark | None
    attachments: list[str]
    joined: list[Person] = field(default_factory=list)
    left: list[Person] = field(default_factory=list)
    present: list[Person] = field(default_factory=list)
    #: the record's thread, as :func:`thread_label` shows it; ``None`` when the view holds one thread
    thread: str | None = None
    #: which held message a release delivered, or what became of a held message (:func:`_link_queue`)
    queue: QueueNote | None = None
    #: for :func:`_link_queue`: the record id of the held message a ``queued_delivered`` event
    #: releases, and the position it held (shown as the viewer's role may see it)
    releases: str | None = field(default=None, repr=False)
    release_position: str | None = field(default=None, repr=False)
    #: for :func:`_link_queue`: how many held messages this event drops (``-1``: all still waiting;
    #: ``None``: it drops none, or its record does not say how many in a way to go by)
    drops: int | None = field(default=None, repr=False)

    @property
    def kind_heading(self) -> str:
        """What the entry is, in a few words ("auto-message to customer · opted in")."""
        head = kind_label(self.kind, self.audience, self.event_type, self.delivery)
        if self.delivery in ("queued", "refused") and self.delivery_note:
            head += f" ({self.delivery_note})"
        return head

    @property
    def heading(self) -> str:
        """:attr:`kind_heading`, then what became of a held message or which one a release
        delivered ("event · queued delivered · releases the message of 04:40:41 (held at
        position 1)")."""
        head = self.kind_heading
        return f"{head} · {self.queue.text}" if self.queue is not None else head


@dataclass
class Timeline:
    conversation_id: str
    entries: list[Entry]
    viewer: Identity
    channels: list[str]
    orgs: list[str]
    generated: dt.datetime
    window: tuple[dt.datetime | None, dt.datetime | None] = (None, None)
    #: who the first record lists as present (before it happens: it may be someone leaving)
    present_at_start: list[Person] = field(default_factory=list)
    #: the threads the view holds, in order of first record, as :func:`thread_label` shows them,
    #: when there are several (each entry then names its own); empty for one
    threads: list[str] = field(default_factory=list)

    @property
    def first(self) -> dt.datetime | None:
        return self.entries[0].time if self.entries else None

    @property
    def last(self) -> dt.datetime | None:
        return self.entries[-1].time if self.entries else None

    @property
    def everyone(self) -> list[Person]:
        seen: dict[str, Person] = {}
        for entry in self.entries:
            for person in [entry.sender, *entry.recipients, *entry.present]:
                seen.setdefault(person.id, person)
        return list(seen.values())


# ---------------------------------------------------------------------------------------------
# loading


_COLUMNS = [name for name in ARROW_SCHEMA.names if name not in ("content_sha256",)]
#: what :func:`build_timeline` needs of a record before the window to know who is present
_ROSTER_COLUMNS = [
    *("record_id", "event_time", "kind", "event_type", "sender", "recipients", "participants"),
    *("attributes", "blocked", "dlp_action", "source_name", "source_offset", "org", "channel"),
]
#: what :func:`_blocked_ids` reads of a record after the window
_BLOCKED_COLUMNS = ["record_id", "blocked", "dlp_action"]
#: marks a row :func:`iter_conversation` read that releases, or tells of, a blocked held message
NAMES_BLOCKED = "_vigil_names_blocked"
#: marks a row :func:`iter_conversation` read from before ``time_from``: it tells who was present
#: when the window opens, and is not shown
BEFORE_WINDOW = "_before_window"


def load_conversation(
    archive: Path,
    conversation_id: str,
    *,
    time_from: dt.datetime | None = None,
    time_to: dt.datetime | None = None,
    orgs: tuple[OrgRef, ...] = (),
) -> list[dict[str, Any]]:
    """The conversation's records, in order. Date bounds prune partitions (and cut the view)."""
    return list(iter_conversation(archive, conversation_id, time_from=time_from, time_to=time_to, orgs=orgs))


def iter_conversation(
    archive: Path,
    conversation_id: str,
    *,
    time_from: dt.datetime | None = None,
    time_to: dt.datetime | None = None,
    orgs: tuple[OrgRef, ...] = (),
    batch_rows: int = 1024,
    without_blocked: bool = False,
) -> Iterator[dict[str, Any]]:
    """:func:`load_conversation` one row at a time: the records are read as one Arrow table
    (columnar, a fraction of the size of Python objects) and made into dicts a batch at a time,
    so a conversation of a hundred thousand records with a long participant list on each is not
    held as millions of Python objects at once.

    Sources make conversation ids, and two organisations' sources may make the same one: an id
    that more than one organisation uses is refused (a :class:`QueryError` naming them) unless
    ``orgs`` picks the organisation, so two firms' conversations are never shown as one.
    ``without_blocked`` (a role that does not see blocked records) leaves blocked records out of
    that count: the refusal would tell of an organisation whose records there are all blocked."""
    root = Path(archive)
    if not root.is_dir():
        raise ArchiveError(f"{root} is not an archive folder; pass --archive DIR")
    query = Query(conversations=(conversation_id,), orgs=orgs, time_from=time_from, time_to=time_to)
    # who is present when the window opens: the records before it, read for that alone (the
    # columns presence needs, marked :data:`BEFORE_WINDOW`; never shown, never an entry)
    earlier = replace(query, time_from=None, time_to=time_from) if time_from is not None else None
    # the blocked records after it: a notice in the window may name a held message blocked later
    # (the notice that it was queued, then the message the DLP stage blocked), and is withheld
    # with it from the roles that do not see blocked records, as in the whole conversation
    later = replace(query, time_from=time_to, time_to=None) if time_to is not None else None

    # all read from one committed state before a row is returned: a compaction that retires a
    # listed file makes the read start over (read_consistently), never a timeline of two states
    def read(live: list[DataFile]) -> tuple[pa.Table | None, pa.Table | None, pa.Table | None]:
        table = _table(root, live, query, _COLUMNS)
        if table is None:  # no file the window can hold: nothing around it matters
            return None, None, None
        before = _table(root, live, earlier, _ROSTER_COLUMNS) if earlier is not None else None
        after = _table(root, live, later, _BLOCKED_COLUMNS, only_blocked=True) if later is not None else None
        return before, table, after

    before, table, after = read_consistently(root, layout.RECORDS, read)
    if table is None:
        return
    tables = [t for t in (before, table) if t is not None]
    blocked = _blocked_ids([*tables, *([after] if after is not None else [])])
    _one_org(conversation_id, tables, _withheld_ids(tables, blocked) if without_blocked else set())
    for row in _in_turn(_rows(before, batch_rows)):
        row[BEFORE_WINDOW] = True
        yield _mark_pointer(row, blocked)
    for row in _in_turn(_rows(table, batch_rows)):
        yield _mark_pointer(row, blocked)


def _blocked_ids(tables: list[pa.Table]) -> set[str]:
    """The record ids of the blocked records (either mark) among ``tables``."""
    ids: set[str] = set()
    for table in tables:
        mask = pc.or_kleene(
            pc.equal(table["blocked"], True), pc.equal(table["dlp_action"], DlpAction.BLOCK.value)
        )
        ids.update(table.filter(pc.fill_null(mask, False)).column("record_id").to_pylist())
    return ids


def _withheld_ids(tables: list[pa.Table], blocked: set[str]) -> set[str]:
    """The record ids a role that does not see blocked records never gets (see
    :func:`pipelines.search.access.hidden_from`): the blocked records, DLP's notices about them, the
    release and hold notice of a blocked held message, and the notice that a blocked message was
    not sent."""
    withheld = set(blocked)
    pointer_types = [name for _, name in POINTERS]
    for table in tables:
        notices = table.filter(pc.fill_null(pc.equal(table["event_type"], DLP_NOTICE), False))
        withheld.update(notices.column("record_id").to_pylist())
        pointers = table.filter(pc.fill_null(pc.is_in(table["event_type"], pa.array(pointer_types)), False))
        for row in pointers.select(
            ["record_id", "kind", "event_type", "org", "channel", "attributes"]
        ).to_pylist():
            if _mark_pointer(row, blocked).get(NAMES_BLOCKED):
                withheld.add(str(row["record_id"]))
    return withheld


def _mark_pointer(row: dict[str, Any], blocked: set[str]) -> dict[str, Any]:
    """``row``, marked :data:`NAMES_BLOCKED` when it is one of the
    :data:`pipelines.search.access.POINTERS` and the held message it names is blocked: known
    before the timeline is built, so a notice timed before the message it names (a sender's clock
    behind) is left out with it as surely as one timed after."""
    if (
        blocked
        and (row.get("kind"), row.get("event_type")) in POINTERS
        and _names_held(row, _attributes(row.get("attributes"))) in blocked
    ):
        row[NAMES_BLOCKED] = True
    return row


def _one_org(conversation_id: str, tables: list[pa.Table], left_out: set[str]) -> None:
    """Refuse a conversation id that records of more than one organisation carry (the records
    ``left_out`` aside)."""
    found: dict[str, str] = {}
    for table in tables:
        if left_out:
            table = table.filter(pc.invert(pc.is_in(table["record_id"], pa.array(sorted(left_out)))))
        for org in table.column("org").unique().to_pylist():
            found.setdefault(simple_fold(str(org)), str(org))
    if len(found) > 1:
        names = sorted(found.values())
        raise QueryError(
            f"conversation {safe(conversation_id)} is an id that records of {len(names)} organisations "
            f"carry ({safe(', '.join(names))}); pick one with --org (e.g. --org {safe(names[0])}), "
            "so two firms' conversations are not shown as one"
        )


def _rows(table: pa.Table | None, batch_rows: int) -> Iterator[dict[str, Any]]:
    for batch in table.to_batches(max_chunksize=batch_rows) if table is not None else []:
        yield from batch.to_pylist()


def _in_turn(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``rows`` (in :data:`ORDER`) with each instant's arrivals and departures put in turn: an
    event that brings someone in goes before that person's own message at the same instant (the
    newcomer may write at once, and a source may write the event later, or in another file), and
    one that takes someone out goes after the leaver's own last message at that instant. Anything
    else keeps its order, so a remove and a re-add, or a message and then a transfer, stay as the
    source wrote them."""
    for _, group in itertools.groupby(rows, key=lambda row: row["event_time"]):
        items = list(group)
        if len(items) > 1:
            _settle(items)
        yield from items


def _settle(items: list[dict[str, Any]]) -> None:
    """:func:`_in_turn` for one instant, in place. An arrival goes before the newcomer's first
    message since they last left (in this instant), a departure after the leaver's last message
    before they next arrive: a remove and re-add, or a transfer that bounces back, keep their
    order. Each move is worked out on the order as read, so the whole takes n log n."""
    says: dict[str, list[int]] = {}  # who -> positions of their messages
    comes: dict[str, list[int]] = {}  # who -> positions of the events that bring them in
    goes: dict[str, list[int]] = {}  # ... and of those that take them out
    moving: list[tuple[int, str | None, str | None]] = []
    for i, row in enumerate(items):
        if row.get("kind") == "message":
            says.setdefault(person(row.get("sender")).id, []).append(i)
        elif row.get("kind") == "event":
            event_type = str(row.get("event_type"))
            if event_type not in _ARRIVALS and event_type not in _LEAVES:
                continue
            attributes = _attributes(row.get("attributes"))
            arrived = _named(row, attributes, _ARRIVALS.get(event_type))
            departed = _named(row, attributes, _LEAVES.get(event_type))
            if arrived:
                comes.setdefault(arrived, []).append(i)
            if departed:
                goes.setdefault(departed, []).append(i)
            moving.append((i, arrived, departed))
    if not moving or not says:
        return
    keys = [(i, 1, i) for i in range(len(items))]  # (position it goes by, before/at/after, tie)
    after: dict[int, int] = {}  # a departure moved after a message: that message's position
    for i, _, departed in moving:
        if departed and (own := says.get(departed)):
            back = comes.get(departed, [])
            n = bisect.bisect_right(back, i)
            until = back[n] if n < len(back) else len(items)  # their next arrival
            k = bisect.bisect_left(own, until) - 1
            if k >= 0 and own[k] > i:
                keys[i] = (own[k], 2, i)
                after[i] = own[k]
    for i, arrived, _ in moving:
        if arrived and (own := says.get(arrived)):
            left = goes.get(arrived, [])
            # their last departure, where it ends up: an arrival never goes before it
            since = after.get(left[n - 1], left[n - 1]) if (n := bisect.bisect_left(left, i)) else -1
            k = bisect.bisect_right(own, since)
            if k < len(own) and own[k] < i:
                keys[i] = (own[k], 0, i)  # an event that both brings and takes: the arrival decides
    items[:] = [items[key[2]] for key in sorted(keys)]


def _named(row: Mapping[str, Any], attributes: Mapping[str, str], where: str | None) -> str | None:
    """Who an arrival or departure names (``where``: ``sender`` or an attribute). A system sender
    does not say who left or came: the participants do."""
    if where is None:
        return None
    if where == "sender":
        sender = person(row.get("sender"))
        return sender.id if sender.role in ("employee", "customer", "bot") else None
    return attributes.get(where)


def _table(
    root: Path, live: list[DataFile], query: Query, columns: list[str], *, only_blocked: bool = False
) -> pa.Table | None:
    """The records of ``live`` that ``query`` matches, in :data:`ORDER` (``None``: no file can hold
    one); ``only_blocked``: the blocked ones (either mark) alone."""
    files = sql.prune(live, query)
    if not files:
        return None
    compiled = sql.compile_query(query)
    where = compiled.where
    if only_blocked:
        where = f"({where}) AND (blocked IS TRUE OR dlp_action = '{DlpAction.BLOCK.value}')"
    statement = f"SELECT {', '.join(columns)} FROM {sql.SOURCE} WHERE {where} ORDER BY {ORDER}"
    table: pa.Table = execute(
        statement, {**compiled.params, "files": sql.files_param(root, files)}, arrow=True
    )
    return table


# ---------------------------------------------------------------------------------------------
# building


def person(party: Mapping[str, Any] | None) -> Person:
    party = party or {}
    return _person(party.get("id") or "?", party.get("name"), party.get("handle"), party.get("role"))


@lru_cache(maxsize=4096)
def _person(pid: Any, name: Any, handle: Any, role: Any) -> Person:
    """One :class:`Person` for each party however many records list them: a group's participant
    list is on every record, and a timeline keeps who was present at each one."""
    label = f"{name} ({handle})" if name and handle else str(name or handle or pid)
    return Person(id=str(pid), label=label, role=str(role or ""))


def build_timeline(
    conversation_id: str,
    rows: Iterable[Mapping[str, Any]],
    viewer: Identity,
    *,
    now: dt.datetime | None = None,
    window: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
    export: bool = False,
) -> Timeline:
    """The viewer's timeline. With ``export`` the text is what the viewer may write to a file
    (:func:`pipelines.search.access.export_text`); a role that may not see DLP verdicts (crm) gets
    no blocked records, no DLP blocked-message notices and no DLP markers."""
    entries: list[Entry] = []
    before: dict[str, Person] | None = None
    channels: list[str] = []
    orgs: list[str] = []
    view = export_text if export else shown_text
    gone: set[str] = set()  # left by an event, though a record's participants may still list them
    known: dict[str, Person] = {}  # everyone the records so far name, by id
    start: dict[str, Person] = {}
    hidden: set[str] = set()  # records left out for this viewer, also those before the window
    for row in rows:
        attributes = _attributes(row.get("attributes"))
        # crm: blocked records, DLP's notices about them, and the release and hold notice of a
        # blocked held message (their note, or their silence, would point at the one message the
        # view leaves out)
        releases = _releases(row, attributes)
        if (
            hidden_from(row, viewer)
            or (not viewer.sees_dlp and row.get(NAMES_BLOCKED))
            or _names_held(row, attributes) in hidden
        ):
            hidden.add(str(row.get("record_id")))
            continue
        present = _present_after(row, attributes, before or {}, gone, known, viewer)
        if row.get(BEFORE_WINDOW):  # before the window: only who is present when it opens
            before = start = present
            continue
        shown = view(row, viewer)
        entry = Entry(
            record_id=row["record_id"],
            time=_time(row["event_time"]),
            kind=row["kind"],
            event_type=row.get("event_type"),
            audience=row.get("audience"),
            direction=row["direction"],
            sender=person(row.get("sender")),
            recipients=[person(x) for x in row.get("recipients") or []],
            text=shown.text,
            withheld=shown.withheld,
            redacted=shown.redacted,
            delivery=attributes.get("delivery"),
            delivery_note=_delivery_note(attributes, viewer),
            dlp=_dlp(row) if viewer.sees_dlp else None,
            attachments=[_attachment(a, viewer) for a in row.get("attachments") or []],
            present=list(present.values()),
        )
        entry.thread = str(row["thread_id"]) if row.get("thread_id") else None  # labelled below
        _queue_refs(entry, attributes, viewer, releases)
        if before is None:
            # the first record's participants are shown as present at the start, not as joined
            start = {p.id: p for p in (person(x) for x in row.get("participants") or [])}
            entry.left = [p for pid, p in start.items() if pid not in present]
            entry.joined = [p for pid, p in present.items() if pid not in start]  # it adds someone
        else:
            entry.joined = [p for pid, p in present.items() if pid not in before]
            entry.left = [p for pid, p in before.items() if pid not in present]
        before = present  # nobody, once the last one left: whoever writes next has joined
        entries.append(entry)
        _add(channels, row.get("channel"))
        _add(orgs, "/".join(x for x in (row.get("org"), row.get("sub_org")) if x))
    _link_queue(entries)
    ids = list(dict.fromkeys(e.thread for e in entries if e.thread is not None))
    labels = {thread: thread_label(conversation_id, thread) or thread for thread in ids}
    if len(set(labels.values())) < len(ids):
        labels = {thread: thread for thread in ids}  # shortened, two would look alike: in full
    threads = [labels[thread] for thread in ids] if len(ids) > 1 else []
    for entry in entries:
        # one thread: nothing to tell apart
        entry.thread = labels[entry.thread] if threads and entry.thread is not None else None
    return Timeline(
        conversation_id=conversation_id,
        entries=entries,
        viewer=viewer,
        channels=channels,
        orgs=orgs,
        present_at_start=list(start.values()),
        threads=threads,
        generated=now or dt.datetime.now(dt.UTC),
        window=window,
    )


def thread_label(conversation_id: str, thread_id: Any) -> str | None:
    """A thread as a view names it: its id, without the conversation id it starts with
    (``conv-42/t2`` is ``t2`` in conversation ``conv-42``)."""
    if not thread_id:
        return None
    thread = str(thread_id)
    rest = thread.removeprefix(conversation_id)
    if rest != thread and rest[:1] in ("/", ":", "#", "-", "_", ".") and rest[1:]:
        return rest[1:]
    return thread


def _add(items: list[str], value: Any) -> None:
    if value and value not in items:
        items.append(str(value))


#: events that take someone out of the conversation, and where the record names them
_DEPARTURES = {
    EventType.LEFT_CONVERSATION.value: "sender",
    EventType.CUSTOMER_LEAVE.value: "sender",
    EventType.PARTICIPANT_REMOVED.value: "participant",
    EventType.TRANSFERRED.value: "from",
}
_ARRIVALS = {
    EventType.PARTICIPANT_ADDED.value: "participant",
    EventType.TRANSFERRED.value: "to",
    EventType.BOT_ROUTING_STARTED.value: "sender",  # the routing bot joins with its first event
    EventType.BOT_HANDED_OFF.value: "to",  # ... and hands the contact to this employee
}
#: who leaves on an event, for :func:`_settle`: the departures, and the routing bot on its hand-off
#: (when it sends it; a system sender leaves the bot to the participants)
_LEAVES = {**_DEPARTURES, EventType.BOT_HANDED_OFF.value: "sender"}
#: marks, in the set of those who left, the contact whose #LEAVE ended the chat (no id starts so)
_ENDED_BY = "\x00ended-by:"
#: a (re)start lists who is in the conversation afresh: whoever left before is back if listed
_STARTS = {EventType.CONVERSATION_STARTED.value, EventType.CONVERSATION_RESTARTED.value}

#: event time; at the same instant messages and the events that bring someone in or take someone
#: out, in source order, before the other auto-messages and events (a refusal or queued notice, a
#: release, a DLP notice: what a message caused, which a source may write in another file or file
#: order), then source order; :func:`_in_turn` then puts an arrival before the newcomer's own
#: message at that instant and a departure after the leaver's
ORDER = (
    "event_time, CASE WHEN kind = 'message' OR (kind = 'event' AND event_type IN ("
    + ", ".join(f"'{t}'" for t in sorted({*_ARRIVALS, *_DEPARTURES}))
    + ")) THEN 0 ELSE 1 END, source_name, source_offset, record_id"
)


#: who an event brings in when no record so far names them, for roles that do not see original
#: text: the id comes from the record's attributes, free text DLP never scans
UNLISTED = "someone the records do not list (id not shown)"


def _present_after(
    row: Mapping[str, Any],
    attributes: Mapping[str, str],
    before: Mapping[str, Person],
    gone: set[str],
    known: dict[str, Person],
    viewer: Identity,
) -> dict[str, Person]:
    """Who is present once ``row`` has happened. Sources differ on whether the participants of a
    leave (and of the notices about it) still list the one leaving: the event itself decides, so
    the change shows on the event, and later records that still list them do not bring them back.
    Someone who left returns when an event adds them or when they write or act again (an event
    they sent, such as a restart). ``gone`` is updated in place, and ``known`` (everyone the
    records so far name, by id) too: an arrival named only by an attribute is shown as the person
    an earlier record names, else by that id to officers and as :data:`UNLISTED` to the other
    roles."""
    for party in [row.get("sender"), *(row.get("recipients") or []), *(row.get("participants") or [])]:
        if party and party.get("id"):
            known.setdefault(str(party["id"]), person(party))
    listed = {p.id: p for p in (person(x) for x in row.get("participants") or [])}
    event_type = row.get("event_type") if row.get("kind") == "event" else None
    sender = person(row.get("sender"))
    # the contact who ended the chat with #LEAVE writes again: it resumes for everyone it lists
    resumed = row.get("kind") == "message" and _ENDED_BY + sender.id in gone
    if listed:
        # a record without them: the participants caught up (the #LEAVE mark stays)
        gone.intersection_update({*listed, *(g for g in gone if g.startswith(_ENDED_BY))})
        if event_type in _STARTS or resumed:
            gone.clear()  # a new start: those it lists are in it, whoever left before
    else:
        listed = dict(before)  # a record that lists nobody says nothing about who is present

    def named(where: str) -> str | None:
        return _named(row, attributes, where)

    if event_type in _ARRIVALS and (arrived := named(_ARRIVALS[event_type])):
        gone.discard(arrived)
        if arrived not in listed:
            listed[arrived] = (
                before.get(arrived)
                or known.get(arrived)
                or Person(id=arrived, label=arrived if viewer.sees_original else UNLISTED, role="")
            )
    if row.get("kind") == "message" or (event_type is not None and named("sender")):
        # writing again, or acting in the conversation (restarting it, consenting): back in it,
        # though the record's participants may not list them yet
        gone.discard(sender.id)
        if row.get("kind") == "message" and sender.id and sender.role not in ("system", ""):
            listed.setdefault(sender.id, before.get(sender.id) or sender)
    if event_type in _DEPARTURES and (departed := named(_DEPARTURES[event_type])):
        gone.add(departed)
        listed.pop(departed, None)
    if event_type == EventType.CUSTOMER_LEAVE.value and named("sender"):
        # the contact's #LEAVE ends the chat: the employees are out of it too until the contact
        # writes again or it restarts
        gone.update({**before, **listed})
        gone.add(_ENDED_BY + sender.id)
        listed.clear()
    if event_type == EventType.BOT_HANDED_OFF.value:
        # the routing bot leaves on its hand-off, whether the source sends it as the bot or the system
        for bot in [pid for pid, p in {**before, **listed}.items() if p.role == "bot"]:
            gone.add(bot)
            listed.pop(bot, None)
    return {pid: p for pid, p in listed.items() if pid not in gone}


def _dlp(row: Mapping[str, Any]) -> DlpMark | None:
    action = row.get("dlp_action") or "none"
    blocked = bool(row.get("blocked"))
    if action == "none" and not blocked:
        return None
    return DlpMark(action=action, rules=list(row.get("dlp_rule_ids") or []), blocked=blocked)


# What a role that does not see original text (reviewer, crm) is shown of the free text DLP never
# scans: attachment names and uris, and attribute values. A file name or a refusal reason can hold
# a card number as well as a body can, so those roles get only what the system itself writes:
# values from a closed set, and media types that have the shape of one.

#: Refusal reasons the channels write (``attributes.refusal``): event types, and the limits named
#: by the channel rules.
REFUSAL_REASONS = frozenset({*(e.value for e in EventType), "queue_full", "consecutive_limit"})
_QUEUE_POSITION = re.compile(r"[0-9]{1,6}")
#: type/subtype, with no run of digits long enough to carry a number worth hiding
_MEDIA_TYPE = re.compile(r"(?!.*[0-9]{3})[A-Za-z][A-Za-z0-9.+_-]{0,63}/[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}")


def _delivery_note(attributes: Mapping[str, str], viewer: Identity) -> str | None:
    """Why a message was refused, or where it was queued. Roles that do not see original text
    get only a reason from :data:`REFUSAL_REASONS` and a plain number for the position; a role
    that does not see blocked messages (CRM) gets no position (see :func:`_shown_position`)."""
    refusal = attributes.get("refusal")
    if not viewer.sees_original:
        refusal = refusal if refusal in REFUSAL_REASONS else ("reason not shown" if refusal else None)
    position = _shown_position(attributes, viewer)
    return refusal or (f"position {position}" if position else None)


def _shown_position(attributes: Mapping[str, str], viewer: Identity) -> str | None:
    """A held message's place in the queue as ``viewer`` may see it: as written for officers, a
    plain number for reviewers, and none for a role blocked messages are hidden from, since the
    gap a hidden held message leaves in the numbering (positions 1, 2, 4) would point at it."""
    position = attributes.get("queue_position")
    if not position or not viewer.sees_dlp:
        return None
    return position if viewer.sees_original or _QUEUE_POSITION.fullmatch(position) else None


#: events that end a hold without delivering what is held, when their record does not say how
#: many they dropped: a refused opt-in leaves nothing to deliver a held WhatsApp message to
_DROPS_ALL = {EventType.CONSENT_REFUSED.value}


def _releases(row: Mapping[str, Any], attributes: Mapping[str, str]) -> str | None:
    """The record id of the held message a ``queued_delivered`` event releases (made from its
    ``queued_event_id`` as the archive made the held message's), or None."""
    if row.get("kind") != "event" or row.get("event_type") != EventType.QUEUED_DELIVERED.value:
        return None
    return _names_held(row, attributes)


def _names_held(row: Mapping[str, Any], attributes: Mapping[str, str]) -> str | None:
    """The record id of the held or refused message a record names, if it is one of
    :data:`pipelines.search.access.POINTERS` (its release, its hold notice, the notice that it
    was not sent), or None."""
    attribute = POINTER_ATTRIBUTES.get((str(row.get("kind")), str(row.get("event_type"))))
    if attribute is None:
        return None
    held = attributes.get(attribute)
    if not (held and row.get("org") and row.get("channel")):
        return None
    return record_id_for(str(row["org"]), str(row["channel"]), held)


def _queue_refs(entry: Entry, attributes: Mapping[str, str], viewer: Identity, releases: str | None) -> None:
    """Note on ``entry`` which held message it releases (``queued_delivered``: ``releases``, from
    :func:`_releases`) or that it drops the held messages still waiting (``dropped_queued``, or an
    event of :data:`_DROPS_ALL`). The id itself is never shown: it only finds an entry of the same
    timeline."""
    if entry.kind != "event":
        return
    if entry.event_type == EventType.QUEUED_DELIVERED.value:
        entry.releases = releases
        if position := _shown_position(attributes, viewer):
            entry.release_position = position
        return
    dropped = (attributes.get("dropped_queued") or "").strip()
    if dropped.isascii() and dropped.isdigit():
        entry.drops = int(dropped)
    elif entry.event_type in _DROPS_ALL and not dropped:
        entry.drops = -1


def _link_queue(entries: list[Entry]) -> None:
    """Tie held messages to what became of them, from the timeline's own entries (records outside
    the view, or hidden from the viewer, are not looked for; what they would tell is not claimed).

    * A release whose held message is in view says which it is ("releases the message of
      04:40:41 (held at position 1)", linking to it), and the held message when it went out
      ("delivered at 07:13:37", linking to the release; "released at" when DLP blocked it); a
      second release of it says "again"; one that names a message the view shows, but not as held
      before the release, says so and links nothing; one whose held message is not in view says
      only that it releases a held message, and its position. (A release of a message hidden from
      the viewer is hidden with it, in :func:`build_timeline`.)
    * A held message with no release in view that an event then drops (its ``dropped_queued``
      at least the number still waiting in view, or a refused opt-in) says it was not delivered
      and why ("not delivered: consent refused at 05:12:00").
    * Otherwise a held message stays "queued": its fate lies outside the view."""
    by_id = {e.record_id: e for e in entries}

    def target(release: Entry) -> Entry | None:
        """The held message ``release`` names, if the view shows it as held before the release."""
        held = by_id.get(release.releases or "")
        if held is None or held is release or held.delivery != "queued" or held.time > release.time:
            return None
        return held

    released: dict[str, Entry] = {}  # held message -> its first release in view
    for entry in entries:
        if (held := target(entry)) is not None:
            released.setdefault(held.record_id, entry)
    waiting: dict[str, Entry] = {}
    for entry in entries:
        if entry.event_type == EventType.QUEUED_DELIVERED.value and entry.kind == "event":
            where = f" (held at position {entry.release_position})" if entry.release_position else ""
            if (held := target(entry)) is not None:
                again = "" if released[held.record_id] is entry else " again"
                text = f"releases the message of {_clock(held.time, entry.time)}{again}{where}"
                entry.queue = QueueNote(text, held.record_id)
            elif entry.releases in by_id:  # named, but the view does not show it held before this
                entry.queue = QueueNote(
                    f"releases a message the records in view do not show as held before it{where}"
                )
            else:  # the held message is outside the view
                position = f" (position {entry.release_position})" if entry.release_position else ""
                entry.queue = QueueNote(f"releases a held message{position}")
        if entry.delivery == "queued":
            if (release := released.get(entry.record_id)) is not None:
                # the channel let it go, but DLP blocked it: released, not delivered
                done = "released" if entry.dlp is not None and entry.dlp.blocked else "delivered"
                entry.queue = QueueNote(f"{done} at {_clock(release.time, entry.time)}", release.record_id)
            else:
                waiting[entry.record_id] = entry
        if entry.drops and waiting:
            # a count below what is waiting in view does not say which were dropped: none is named
            if entry.drops < 0 or entry.drops >= len(waiting):
                why = (entry.event_type or "an event").replace("_", " ")
                for held in waiting.values():
                    held.queue = QueueNote(
                        f"not delivered: {why} at {_clock(entry.time, held.time)}", entry.record_id
                    )
            waiting.clear()


def _clock(when: dt.datetime, beside: dt.datetime) -> str:
    """``when`` as a time of day, with its date when that is not the date of ``beside``."""
    return f"{when:%H:%M:%S}" if when.date() == beside.date() else f"{when:%Y-%m-%d %H:%M:%S}"


def _attachment(item: Mapping[str, Any], viewer: Identity) -> str:
    """An attachment line: for officers its name (or uri), media type and size; for the other
    roles only the media type (when it looks like one) and size: a file name is free text."""
    media_type = str(item.get("media_type") or "?")
    size = f"{item.get('size', 0):,} bytes"
    if viewer.sees_original:
        name = item.get("name") or item.get("uri") or "attachment"
        return f"{name} ({media_type}, {size})"
    shown = media_type if _MEDIA_TYPE.fullmatch(media_type) else "unknown type"
    return f"attachment ({shown}, {size}; name not shown)"


# ---------------------------------------------------------------------------------------------
# rendering


def _time_label(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def records(count: int) -> str:
    """``1 record``, ``2,000 records``."""
    return f"{count:,} record{'' if count == 1 else 's'}"


def window_label(timeline: Timeline) -> str | None:
    """The --from/--to window the view was cut to, as the user wrote it (both ends included),
    or ``None`` for the whole conversation: a page of one day must not pass for all of it."""
    start, end = timeline.window
    if start is None and end is None:
        return None
    first = show_time(start, end=False) if start else None
    last = show_time(end, end=True) if end else None
    span = f"{first} to {last}" if first and last else f"from {first} on" if first else f"up to {last}"
    return f"{span} (UTC, inclusive); records outside it are not shown"


def render_text(timeline: Timeline, console: Console) -> None:
    """The timeline in the terminal. Every string from the archive goes through
    :func:`pipelines.search.render.safe`: a message cannot drive the viewer's terminal."""
    head = Text(f"Conversation {safe(timeline.conversation_id)}", style="bold")
    facts = [", ".join(timeline.channels), ", ".join(timeline.orgs), records(len(timeline.entries))]
    head.append("  " + safe(" · ".join(f for f in facts if f)), style="dim")
    console.print(head)
    console.print(
        Text(
            f"{_time_label(timeline.first)} → {_time_label(timeline.last)}  ·  viewed by "
            f"{safe(timeline.viewer.user)} as {timeline.viewer.role.value}",
            style="dim",
        )
    )
    if window := window_label(timeline):
        console.print(Text(f"Window: {window}", style="bold"))
    if not timeline.entries:
        console.print("No records for this conversation (check the id and the --from/--to window).")
        return
    if timeline.threads:
        console.print(Text(f"Threads: {safe(', '.join(timeline.threads))} (each record names its own)"))
    console.print(
        Text("Present: " + safe(", ".join(p.label for p in timeline.present_at_start)), style="cyan")
    )
    for entry in timeline.entries:
        if entry.joined or entry.left:
            change = Text("  ── ", style="cyan")
            change.append(safe(_change(entry)), style="cyan")
            change.append(" ──", style="cyan")
            console.print(change)
        line = Text(f"{entry.time:%Y-%m-%d %H:%M:%S}  ", style="dim")
        line.append(safe(entry.sender.label), style="bold")
        if entry.recipients:
            line.append(" → " + safe(", ".join(p.label for p in entry.recipients)))
        line.append(f"  [{safe(entry.heading)}]", style="magenta" if entry.kind != "message" else "dim")
        if entry.thread is not None:
            line.append(f"  thread {safe(entry.thread)}", style="dim")
        console.print(line)
        if entry.dlp is not None:
            style = "bold red" if entry.dlp.blocked else "yellow"
            console.print(_under(Text(f"▲ {safe(entry.dlp.label)}", style=style)))
        if entry.text is not None:
            console.print(_under(Text(safe(entry.text))))
        elif entry.withheld:
            console.print(_under(Text("[text withheld for this role]", style="dim italic")))
        if entry.redacted is not None:
            console.print(_under(Text("redacted view: " + safe(entry.redacted), style="dim")))
        for item in entry.attachments:
            console.print(_under(Text(f"📎 {safe(item)}", style="dim")))


def _under(text: Text) -> Padding:
    """``text`` indented under its record's line, the lines a narrow terminal wraps as well."""
    return Padding(text, (0, 0, 0, 4), expand=False)


def _change(entry: Entry) -> str:
    parts = [f"+ {p.label} joined" for p in entry.joined] + [f"− {p.label} left" for p in entry.left]
    return " · ".join(parts)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # message bodies are untrusted input
        # ... and may hold bidirectional overrides or C1 controls, which would reorder or garble
        # the page: every string shown is first given the terminal's visible escapes (\u202e)
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _finalize(value: Any) -> Any:
    """Every string shown, with visible escapes; a template macro's output (markup, its own
    values already escaped) stays markup."""
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(safe(value))
    return safe(value) if isinstance(value, str) else value


def render_html(timeline: Timeline) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external assets)."""
    template = _environment().get_template(HTML_TEMPLATE)
    return template.render(t=timeline, time_label=_time_label, window=window_label(timeline), records=records)
