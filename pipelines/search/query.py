"""The search query, independent of any engine.

A :class:`Query` is free text (an AST of words, phrases, prefixes and AND/OR/NOT) plus filters
that all must hold (channel, participants, dates, DLP verdict, ...). It is built by
:func:`pipelines.search.parse.parse_query` from what a user types, and compiled by
``pipelines.search.sql`` (DuckDB over the archive) and ``pipelines.search.dsl`` (Elasticsearch);
both give it the same meaning, defined by :mod:`pipelines.search.text` for the words.

Filters, as typed (repeat a key, or separate values with commas, to accept any of them):

=================  ===========================================================================
``channel:``       sms, mms, voicemail, whatsapp, wechat, line, teams
``participant:``   party id, handle (phone, WeChat/LINE id) or display name, on any side
                   (sender, recipients, participants); case-insensitive, runs of spaces count as
                   one, a phone number may omit its ``+``. Repeated: *all* of them
``conversation:``  a conversation id
``direction:``     inbound, outbound, internal, system
``kind:``          message, auto_message, event
``type:``          an event type (opted_in, window_expired, transferred, ...)
``from:`` ``to:``  a date (whole UTC days, both ends included; 2026-01-31 or 20260131) or an
                   ISO date-time
``dlp:``           the record's DLP verdict: none, flag, redact, block
``rule:``          a DLP rule id, or the start of one (``rule:pii`` = every ``pii.*`` rule);
                   any case, as rule ids are lower case
``org:``           an organisation, or ``org/sub-organisation``; case-insensitive
=================  ===========================================================================
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pipelines.errors import QueryError
from pipelines.record import Channel, Direction, DlpAction, EventType, Kind, party_key
from pipelines.search import text as textmod
from pipelines.search.wordbreak import simple_fold

UTC = dt.UTC

# ---------------------------------------------------------------------------------------------
# free text


@dataclass(frozen=True)
class Word:
    """A bare word. Punctuation inside splits it into tokens that must be consecutive."""

    text: str

    @property
    def segments(self) -> list[textmod.Segment]:
        return textmod.segments(self.text)

    def render(self) -> str:
        return self.text


@dataclass(frozen=True)
class Phrase:
    """Consecutive tokens (``"settlement date"``); CJK text in it matches as a substring."""

    text: str

    @property
    def segments(self) -> list[textmod.Segment]:
        return textmod.segments(self.text)

    def render(self) -> str:
        return f'"{self.text}"'


@dataclass(frozen=True)
class Prefix:
    """The start of a Latin token (``settl*``)."""

    text: str

    @property
    def segments(self) -> list[textmod.Segment]:
        return textmod.segments(self.text)

    def render(self) -> str:
        return f"{self.text}*"


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]

    def render(self) -> str:
        return "(" + " AND ".join(i.render() for i in self.items) + ")"


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]

    def render(self) -> str:
        return "(" + " OR ".join(i.render() for i in self.items) + ")"


@dataclass(frozen=True)
class Not:
    item: Node

    def render(self) -> str:
        return f"NOT {self.item.render()}"


Leaf = Word | Phrase | Prefix
Node = Word | Phrase | Prefix | And | Or | Not


def leaves(node: Node | None, *, positive: bool = True) -> list[Leaf]:
    """Words, phrases and prefixes of the tree; with ``positive``, only those not under a NOT
    (what highlighting emphasises)."""
    if node is None:
        return []
    if isinstance(node, And | Or):
        return [leaf for item in node.items for leaf in leaves(item, positive=positive)]
    if isinstance(node, Not):
        return [] if positive else leaves(node.item, positive=positive)
    return [node]


def node_to_dict(node: Node | None) -> Any:
    """JSON form of the tree (what the audit log keeps)."""
    if node is None:
        return None
    if isinstance(node, And):
        return {"and": [node_to_dict(i) for i in node.items]}
    if isinstance(node, Or):
        return {"or": [node_to_dict(i) for i in node.items]}
    if isinstance(node, Not):
        return {"not": node_to_dict(node.item)}
    kind = {Word: "word", Phrase: "phrase", Prefix: "prefix"}[type(node)]
    return {kind: node.text}


# ---------------------------------------------------------------------------------------------
# filters


@dataclass(frozen=True)
class OrgRef:
    org: str
    sub_org: str | None = None

    def render(self) -> str:
        return self.org if self.sub_org is None else f"{self.org}/{self.sub_org}"


@dataclass(frozen=True)
class FilterSpec:
    key: str
    attribute: str  # Query field it fills
    help: str
    example: str
    choices: tuple[str, ...] = ()
    repeat: str = "any"  # any: OR of the values; all: AND; once: a single value


def _choices(enum: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(e.value) for e in enum)


FILTERS: dict[str, FilterSpec] = {
    spec.key: spec
    for spec in (
        FilterSpec("channel", "channels", "channel", "channel:wechat", _choices(Channel)),
        FilterSpec(
            "participant",
            "participants",
            "party id, handle or name",
            "participant:+85291234567",
            repeat="all",
        ),
        FilterSpec("conversation", "conversations", "conversation id", "conversation:conv-1"),
        FilterSpec("direction", "directions", "direction", "direction:outbound", _choices(Direction)),
        FilterSpec("kind", "kinds", "kind", "kind:auto_message", _choices(Kind)),
        FilterSpec("type", "event_types", "event type", "type:opted_in", _choices(EventType)),
        FilterSpec("from", "time_from", "first day (UTC) or date-time", "from:2026-01-05", repeat="once"),
        FilterSpec("to", "time_to", "last day (UTC) or date-time", "to:2026-01-31", repeat="once"),
        FilterSpec("dlp", "dlp_actions", "DLP verdict", "dlp:block", _choices(DlpAction)),
        FilterSpec("rule", "rules", "DLP rule id or its start", "rule:pii.card"),
        FilterSpec("org", "orgs", "organisation or org/sub-organisation", "org:acme/wealth-hk"),
    )
}
ALIASES = {"event_type": "type", "participants": "participant", "channels": "channel", "action": "dlp"}


def filter_spec(key: str) -> FilterSpec:
    name = ALIASES.get(key.lower(), key.lower())
    spec = FILTERS.get(name)
    if spec is None:
        known = ", ".join(f"{k}:" for k in FILTERS)
        raise QueryError(
            f"unknown filter {key}: — known filters are {known}. "
            f'To search for the text itself, put it in quotes: "{key}:…"'
        )
    return spec


@dataclass(frozen=True)
class Query:
    """Free text plus filters, all of which must hold. Build with ``parse_query`` or
    :meth:`with_filter`; immutable."""

    text: Node | None = None
    channels: tuple[str, ...] = ()
    participants: tuple[str, ...] = ()
    conversations: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    dlp_actions: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    orgs: tuple[OrgRef, ...] = ()
    time_from: dt.datetime | None = None  # inclusive, UTC
    time_to: dt.datetime | None = None  # exclusive, UTC
    raw: str = field(default="", compare=False)

    def with_filter(self, key: str, value: str, *, quoted: bool = False, flag: bool = False) -> Query:
        """A copy with one more ``key:value`` filter (validated; the error says how to fix it).
        ``quoted``: the value was written in quotes and is taken whole (no list at commas; an
        organisation id with its ``/``). ``flag``: it came as a command-line flag (``--org
        VALUE``), one value per flag, and errors name the flag."""
        spec = filter_spec(key)
        values = [v.strip() for v in _split_values(value, spec, whole=quoted or flag)]
        shown = f"--{spec.key} " if flag else f"{spec.key}:"
        if not values or not all(values):
            example = spec.example.replace(f"{spec.key}:", shown)
            raise QueryError(
                f"{'--' + spec.key if flag else 'filter ' + spec.key + ':'} needs a value, e.g. {example}"
            )
        query = self
        for item in values:
            query = _add(query, spec, item, literal=quoted, shown=shown)
        return query

    @property
    def has_text(self) -> bool:
        return self.text is not None

    def caveats(self) -> list[str]:
        """Where the two engines may answer this query differently (shown with the results)."""
        found = leaves(self.text, positive=False)
        single = sorted({leaf.render() for leaf in found if _single_cjk_char(leaf)})
        if not single:
            return []
        return [
            f"{', '.join(single)}: the embedded engine finds a single CJK character anywhere, "
            "Elasticsearch (bigram index) only where it stands alone; search two or more characters "
            "for the same answer from both"
        ]

    def keyword_filters(self) -> list[tuple[str, tuple[str, ...]]]:
        """The "any of these values" filters on plain keyword fields, as ``(record field, values)``:
        both engines compile exactly this list (``IN`` in SQL, ``terms`` in the DSL)."""
        pairs = [
            ("channel", self.channels),
            ("conversation_id", self.conversations),
            ("direction", self.directions),
            ("kind", self.kinds),
            ("event_type", self.event_types),
            ("dlp_action", self.dlp_actions),
        ]
        return [(name, values) for name, values in pairs if values]

    def time_bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The bounds both engines apply on ``event_time``: from (inclusive) and before (exclusive);
        an end at :data:`LATEST` is "no end", so that a record stamped at the last microsecond of
        year 9999 is not left out by its own day."""
        before = None if self.time_to is None or self.time_to >= LATEST else self.time_to
        return self.time_from, before

    def date_bounds(self) -> tuple[dt.date | None, dt.date | None]:
        """First and last UTC day that can hold a match (for partition pruning)."""
        first = self.time_from.date() if self.time_from else None
        last = (self.time_to - dt.timedelta(microseconds=1)).date() if self.time_to else None
        return first, last

    def to_dict(self) -> dict[str, Any]:
        """Structured form for the audit log and ``--json`` output: only what is set."""
        out: dict[str, Any] = {}
        if self.text is not None:
            out["text"] = self.text.render()
            out["text_tree"] = node_to_dict(self.text)
        for f in fields(self):
            if f.name in ("text", "raw"):
                continue
            value = getattr(self, f.name)
            if not value:
                continue
            if isinstance(value, dt.datetime):
                out[f.name] = show_time(value, end=f.name == "time_to")
            elif f.name == "orgs":
                out[f.name] = [_shown_org(o) for o in value]
            else:
                out[f.name] = list(value)
        return out

    def render(self) -> str:
        """A canonical query string that parses back to this query."""
        parts = [self.text.render()] if self.text is not None else []
        for key, spec in FILTERS.items():
            value = getattr(self, spec.attribute)
            if not value:
                continue
            if isinstance(value, dt.datetime):
                parts.append(f"{key}:{show_time(value, end=key == 'to')}")
                continue
            for item in value:
                parts.append(f"{key}:{_shown_org(item) if isinstance(item, OrgRef) else _shown(item)}")
        return " ".join(parts)


def _shown(value: str) -> str:
    """A filter value as written in a query: quoted when the grammar would end it early (at a
    space or a bracket) or read it as more than one (a list at commas)."""
    return f'"{value}"' if any(c.isspace() or c in "()," for c in value) else value


def _shown_org(ref: OrgRef) -> str:
    """An ``org:`` value as written in a query (and in the access log): ``acme/wealth-hk`` for a
    sub-organisation, ``"acme/asia"`` in quotes for one organisation id holding a ``/``."""
    if ref.sub_org is None and "/" in ref.org:
        return f'"{ref.org}"'
    return _shown(ref.render())


def _single_cjk_char(leaf: Leaf) -> bool:
    """Does the word or phrase hold a CJK character that stands alone (``价``, the ``算`` of
    ``"算 日期"`` or of ``iPhone算``)? Elasticsearch searches it as a unigram, which the bigram
    index holds only where the character stands alone in the text too."""
    segs, _ = textmod.search_segments(leaf.text)  # as searched: ``ｶﾞ`` is one character, ``ガ``
    return any(s.cjk and len(s.text) == 1 for s in segs)


def _split_values(value: str, spec: FilterSpec, *, whole: bool = False) -> list[str]:
    """A filter's values: a list at commas for the filters that take several (a value of fixed
    choices and a rule id never hold a comma, so those are split even when ``whole``)."""
    if spec.choices or spec.key == "rule" or (spec.key in ("conversation", "org") and not whole):
        return value.split(",")
    return [value]


def _add(query: Query, spec: FilterSpec, value: str, *, literal: bool = False, shown: str = "") -> Query:
    shown = shown or f"{spec.key}:"
    if spec.choices:
        value = value.lower()
        if value not in spec.choices:
            raise QueryError(
                f"{shown}{value} is not a known {spec.help}; use one of: {', '.join(spec.choices)}"
            )
    if spec.key == "from":
        if query.time_from is not None:
            raise QueryError("from: is given twice; keep one (the first day to include)")
        return replace(query, time_from=parse_time(value, end=False, key=shown.rstrip(":").strip()))
    if spec.key == "to":
        if query.time_to is not None:
            raise QueryError("to: is given twice; keep one (the last day to include)")
        return replace(query, time_to=parse_time(value, end=True, key=shown.rstrip(":").strip()))
    if spec.key == "org":
        item: Any = OrgRef(simple_fold(value)) if literal else org_ref(value, shown)
    elif spec.key == "participant":
        item = normalise_party(value)
    elif spec.key == "rule":
        item = value.rstrip("*").lower()  # rule ids are lower case (the policy schema says so)
        if not item:
            raise QueryError("rule: needs a rule id or its start, e.g. rule:pii.card")
    else:
        item = value
    current = getattr(query, spec.attribute)
    if item in current:
        return query
    changes: dict[str, Any] = {spec.attribute: (*current, item)}
    return replace(query, **changes)


def org_ref(value: str, key: str = "org:") -> OrgRef:
    """``acme`` or ``acme/wealth-hk`` as an :class:`OrgRef`; ``key`` is how the user gave it
    (``org:`` in a query, ``--org `` on a command line), for the error."""
    org, _, sub = value.partition("/")
    if not org or (_ and not sub):
        raise QueryError(f"{key}{value} is not an organisation; write {key}acme or {key}acme/wealth-hk")
    # compared case-insensitively, one character at a time as both engines fold the stored org
    return OrgRef(simple_fold(org), simple_fold(sub) or None)


def normalise_party(value: str) -> str:
    """The search key of a ``participant:`` value, as the archive stores it in ``parties``
    (runs of spaces inside a name count as one)."""
    return party_key(" ".join(value.split()))


def participant_keys(key: str) -> tuple[str, ...]:
    """The ``parties`` keys a ``participant:`` key matches: itself, for a phone number written
    without its ``+``, the E.164 form too (``85291234567`` = ``+85291234567``), and with it, the
    form without (a WhatsApp ``wa_id`` is kept so), and the keys of
    records archived before :func:`pipelines.record.party_key` read ``İ`` as ``i``
    (:func:`legacy_party_keys`)."""
    if len(key) >= 6 and key.isdigit():
        return (key, f"+{key}")
    if len(key) >= 7 and key[0] == "+" and key[1:].isdigit():
        return (key, key[1:])  # ...and the other way: a source may keep the number without it
    return (key, *legacy_party_keys(key))


#: Most keys :func:`legacy_party_keys` gives for one ``participant:`` value.
MAX_LEGACY_KEYS = 63
_DOTTED_I = "i\u0307"


def legacy_party_keys(key: str) -> list[str]:
    """The forms ``key`` had in the ``parties`` of records archived before ``İ`` was read as
    ``i``: Python's lower case made it ``i`` and a combining dot above, which stays in those
    records. Any ``i`` of the key may have been an ``İ`` in the name, so each combination of
    them dotted is a key (``ilker`` → ``i̇lker``; ``ismail`` → ``i̇smail``, ``ismai̇l``,
    ``i̇smai̇l``): fewer dotted first, and all of them, at most :data:`MAX_LEGACY_KEYS` in all (a
    name with more than six ``i`` gets its single ones, the pairs and so on up to the limit, and
    the one with every ``i`` dotted, as an all-capitals Turkish name is stored)."""
    where = [i for i, ch in enumerate(key) if ch == "i"]
    if not where:
        return []
    chosen: list[tuple[int, ...]] = []
    for size in range(1, len(where)):
        for subset in itertools.combinations(where, size):
            if len(chosen) == MAX_LEGACY_KEYS - 1:
                break
            chosen.append(subset)
    chosen.append(tuple(where))
    return ["".join(_DOTTED_I if i in dotted else ch for i, ch in enumerate(key)) for dotted in chosen]


#: The last instant Python's datetime holds: an end bound past it (``to:9999-12-31``, "no end")
#: is clamped to it rather than failing.
LATEST = dt.datetime.max.replace(tzinfo=UTC)


def parse_time(value: str, *, end: bool, key: str) -> dt.datetime:
    """A date (a whole UTC day: from its start, or to its end), in any ISO form Python reads
    (``2026-01-31``, ``20260131``), a year, month or ISO week (the whole of it: ``2026``,
    ``2026-01``, ``2026-W02``), or an ISO date-time. An end at or past the last day of year
    9999 means "no end" and is held as :data:`LATEST`; any other bound the calendar cannot hold
    (a time zone pushing it before year 1 or past 9999) is a one-line error."""
    shown = f"{key} {value}" if key.startswith("--") else f"{key}:{value}"
    example = f"{key} 2026-01-31" if key.startswith("--") else f"{key}:2026-01-31"
    try:
        try:
            period = _period(value)
            day = dt.date.fromisoformat(value) if period is None else period[end]
        except ValueError:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            moment = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + dt.timedelta(days=1) if end else moment
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment + dt.timedelta(microseconds=1) if end else moment
    except ValueError:
        raise QueryError(f"{shown} is not a date; write {example} or {example}T17:30:00Z") from None
    except OverflowError:
        if end and _late(value):
            return LATEST
        raise QueryError(
            f"{shown} is outside the calendar (years 1 to 9999 in UTC); write a date such as {example}"
        ) from None


#: A year, a month or an ISO week: ``2026``, ``2026-01``, ``2026-W02`` (or ``2026W02``).
_PERIOD = re.compile(r"(\d{4})(?:-(\d{2})|-?W(\d{2}))?")


def _period(value: str) -> tuple[dt.date, dt.date] | None:
    """The first and last day of the year, month or ISO week ``value`` names, or None when it names
    none. Python reads ``2026-W02`` as that week's Monday alone; as a bound it means the whole week
    (``from:`` its Monday, ``to:`` its Sunday), as ``2026-01`` means all of January."""
    found = _PERIOD.fullmatch(value)
    if found is None:
        return None
    year = int(found[1])
    if found[2]:
        month = int(found[2])
        return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])
    if found[3]:
        monday = dt.date.fromisocalendar(year, int(found[3]), 1)
        # the last week of 9999 ends in year 10000: OverflowError, "no end" for a to: bound
        return monday, monday + dt.timedelta(days=6)
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


def _late(value: str) -> bool:
    """Whether a bound that overflowed did so past the end of year 9999 (not before year 1)."""
    return value.lstrip().startswith("9999")


def show_time(value: dt.datetime, *, end: bool) -> str:
    """A bound as the user would write it (``to:`` is inclusive: its last day or instant)."""
    if end and value == LATEST:
        return LATEST.date().isoformat()  # clamped: through the last day there is
    if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
        return ((value - dt.timedelta(days=1)) if end else value).date().isoformat()
    shown = (value - dt.timedelta(microseconds=1)) if end else value
    return shown.isoformat().replace("+00:00", "Z")


def check_range(query: Query, *, keys: tuple[str, str] = ("from:", "to:")) -> Query:
    """Refuse a range that holds nothing; the message shows both bounds as the user wrote them
    (``to:`` inclusive)."""
    if query.time_from and query.time_to and query.time_from >= query.time_to:
        first = show_time(query.time_from, end=False)
        last = show_time(query.time_to, end=True)
        raise QueryError(f"{keys[0]} {first} is after {keys[1]} {last}; swap them or fix the dates")
    return query
