"""Compiling a :class:`Query` to DuckDB SQL over the archive's committed Parquet files.

* Only the manifest's live files are read, and only those whose ``event_month``/``channel``
  partition can hold a match (the partition folders are pruned here, before DuckDB sees them).
* User input never enters the SQL text: every value, pattern and file list is a bound parameter.
* Text leaves become ``regexp_matches`` with the RE2 patterns of :mod:`pipelines.search.text`,
  behind cheaper prefilters that every match passes (the longest word as a bare case-insensitive
  literal, and ``contains`` of a CJK run); a pure CJK run is just ``contains`` (no case to fold),
  with half-width katakana and full-width ASCII folded on both sides as Elasticsearch's ``cjk``
  analyzer does.
* A missing text counts as empty, so ``NOT x`` holds for records without a body, as it does in
  Elasticsearch (``must_not`` on a missing field).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.archive.manifest import DataFile
from pipelines.archive.reader import require_recorded_sizes
from pipelines.record import EventType, party_key
from pipelines.search import text as textmod
from pipelines.search.access import POINTED_DELIVERIES, pointers_by_attribute
from pipelines.search.query import And, Node, Not, Or, Prefix, Query, participant_keys

#: The files, read as they are: fast, and right whenever the files agree on the columns a
#: statement uses (DuckDB refuses the statement otherwise; it never guesses). Folder names are
#: not read as columns (``hive_partitioning = false``): every column a query uses is in the
#: files, and an archive written before the folders were renamed (``channel=`` beside ``ch=``)
#: has two folder schemes DuckDB would refuse to mix.
SOURCE = "read_parquet($files, hive_partitioning = false)"
#: The files unioned by column name, for archives mixing schema versions. Only used when
#: :data:`SOURCE` is refused: DuckDB re-reads every file's footer to bind it, ~0.3 ms per file
#: per statement, which is most of the budget of an interactive search over a large archive.
SOURCE_UNION = "read_parquet($files, hive_partitioning = false, union_by_name = true)"


#: The SQL function (registered by :func:`pipelines.search.embedded.connection`) that applies
#: :func:`pipelines.search.text.width_fold`.
WIDTH_FOLD = "vigil_width_fold"
#: The SQL function (registered likewise) that applies :func:`pipelines.record.parties_of` to a JSON
#: object of a row's sender, recipients and participants.
PARTIES_OF = "vigil_parties_of"
#: ``parties`` as the union sources read it: a file written before records carried them (it reads
#: as null when unioned with later ones) gets them derived as ingest derives them, so participant
#: search finds its records.
PARTIES = (
    f"coalesce(parties, {PARTIES_OF}(to_json({{'sender': sender, 'recipients': recipients, "
    "'participants': participants}))) AS parties"
)


@dataclass
class Params:
    """Bound parameters, named ``$p1``, ``$p2``, ... in the SQL."""

    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any) -> str:
        name = f"p{len(self.values) + 1}"
        self.values[name] = value
        return f"${name}"


@dataclass(frozen=True)
class Compiled:
    where: str
    params: dict[str, Any]


def prune(files: Iterable[DataFile], query: Query) -> list[DataFile]:
    """The files whose partitions can hold a match of ``query`` (dates and channels)."""
    first, last = query.date_bounds()
    channels = set(query.channels)
    kept = []
    for f in files:
        part = f.partition
        month = part.get("event_month")
        if month is not None:
            if first is not None and month < first.isoformat()[:7]:
                continue
            if last is not None and month > last.isoformat()[:7]:
                continue
        if channels and part.get("channel") not in channels:
            continue
        kept.append(f)
    return kept


def compile_query(
    query: Query,
    *,
    text_field: str = "body",
    exclude_blocked: bool = False,
    decided: Decided | None = None,
    params: Params | None = None,
    held_out: frozenset[tuple[str, str, str]] = frozenset(),
) -> Compiled:
    """The WHERE clause (and its parameters) for ``query``.

    ``text_field`` is the body column the role searches; ``exclude_blocked`` leaves blocked
    records and DLP's notices about them out (the CRM role: :data:`BLOCKED_OUT`); for the records
    in ``decided`` the text was matched elsewhere (against the CRM view), so its answer replaces
    the text test, both ways."""
    p = params or Params()
    clauses: list[str] = []
    start, before = query.time_bounds()
    if start is not None:
        clauses.append(f"event_time >= {p.add(start)}")
    if before is not None:
        clauses.append(f"event_time < {p.add(before)}")
    for column, values in query.keyword_filters():
        clauses.append(_in(column, values, p))
    if query.orgs:
        ors = []
        for ref in query.orgs:
            # the values are lower case (Query); the columns are compared ignoring case, as the
            # DSL's case-insensitive term queries do
            if ref.sub_org is None:
                ors.append(f"lower(org) = {p.add(ref.org)}")
            else:
                ors.append(f"(lower(org) = {p.add(ref.org)} AND lower(sub_org) = {p.add(ref.sub_org)})")
        clauses.append(_or(ors))
    for value in query.participants:
        clauses.append(_participant(value, p))
    if query.rules:
        # Every rule acts (flag, redact or block), so a record with findings never has the verdict
        # "none": that cheap test on a dictionary-encoded column runs first and spares decoding
        # the findings of most records.
        ors = [f"starts_with(f.rule_id, {p.add(rule)})" for rule in query.rules]
        clauses.append(
            f"dlp_action <> 'none' AND len(list_filter(dlp_findings, lambda f: {' OR '.join(ors)})) > 0"
        )
    if exclude_blocked:
        clauses.append(BLOCKED_OUT)
    if held_out:
        clauses.append(_releases_out(held_out, p))
    if query.text is not None:
        text = _text(query.text, text_field, p)
        if decided is not None and decided.ids:
            text = (
                f"(CASE WHEN list_contains({p.add(sorted(decided.ids))}, record_id) "
                f"THEN list_contains({p.add(sorted(decided.matching))}, record_id) ELSE {text} END)"
            )
        clauses.append(text)
    return Compiled(" AND ".join(clauses) if clauses else "true", p.values)


#: Leaves out blocked records (a record blocked by DLP carries both marks; either one counts) and
#: DLP's notices about them (``dlp_blocked_notice``: rule, reason and, by its time, the message),
#: as :func:`pipelines.search.access.hidden_from` does.
BLOCKED_OUT = (
    "NOT coalesce(blocked, false) AND coalesce(dlp_action, 'none') <> 'block'"
    f" AND coalesce(event_type, 'none') <> '{EventType.DLP_BLOCKED_NOTICE.value}'"
)


#: A blocked message that was held or refused (``attributes.delivery`` queued or refused), which a
#: release or a notice names: either blocked mark counts, as in :data:`BLOCKED_OUT`.
BLOCKED_HELD = (
    "(coalesce(blocked, false) OR coalesce(dlp_action, 'none') = 'block')"
    " AND coalesce(attributes['delivery'] IN ("
    + ", ".join(f"'{d}'" for d in POINTED_DELIVERIES)
    + "), false)"
)


def _releases_out(held: frozenset[tuple[str, str, str]], p: Params) -> str:
    """Leaves out the records that name one of the ``held`` messages (org, channel, event id):
    its release, its hold notice, the notice that it was not sent
    (``pipelines.search.access.POINTERS``), as ``pipelines.search.access.HeldOut`` says."""

    # the parameters of each organisation and channel, and of its ids, once for every attribute
    places = [(p.add(org), p.add(channel), p.add(ids)) for (org, channel), ids in by_place(held).items()]
    clauses = []
    for attribute, pointers in pointers_by_attribute().items():
        names = " OR ".join(
            f"(org = {org} AND channel = {channel} AND list_contains({ids}, attributes['{attribute}']))"
            for org, channel, ids in places
        )
        kinds = " OR ".join(f"(kind = {p.add(kind)} AND event_type = {p.add(e)})" for kind, e in pointers)
        clauses.append(f"(({kinds}) AND ({names}))")
    return f"NOT coalesce({' OR '.join(clauses)}, false)"


def by_place(held: frozenset[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    """The event ids of ``held`` per organisation and channel (an id is unique within those only)."""
    by_place: dict[tuple[str, str], list[str]] = {}
    for org, channel, event_id in sorted(held):
        by_place.setdefault((org, channel), []).append(event_id)
    return by_place


@dataclass(frozen=True)
class Decided:
    """Records whose text match was decided outside the engine, and those of them that match."""

    ids: frozenset[str] = frozenset()
    matching: frozenset[str] = frozenset()


def _in(column: str, values: Iterable[str], p: Params) -> str:
    names = [p.add(v) for v in values]
    return f"{column} = {names[0]}" if len(names) == 1 else f"{column} IN ({', '.join(names)})"


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "(" + " OR ".join(items) + ")"


def _participant(value: str, p: Params) -> str:
    # Any side: the sender, the recipients or whoever was present. The record's ``parties`` column
    # holds every id, handle and name as a search key (pipelines.record.party_key), so one flat
    # list is read instead of three nested ones.
    keys = participant_keys(party_key(value))
    if len(keys) == 1:
        return f"list_contains(parties, {p.add(keys[0])})"
    return f"list_has_any(parties, {p.add(list(keys))})"


def _text(node: Node, column: str, p: Params) -> str:
    if isinstance(node, And):
        return "(" + " AND ".join(_text(i, column, p) for i in node.items) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_text(i, column, p) for i in node.items) + ")"
    if isinstance(node, Not):
        return f"(NOT coalesce({_text(node.item, column, p)}, false))"
    return _leaf(node, column, p)


def _leaf(node: Node, column: str, p: Params) -> str:
    # Cheapest test first: DuckDB evaluates AND left to right on the rows still selected, so the
    # regular expression only sees rows that already contain the words in order.
    segs, folds = textmod.search_segments(node.text)  # type: ignore[union-attr]
    prefix = isinstance(node, Prefix)
    if len(segs) == 1 and segs[0].cjk:
        # a pure CJK run holds no case to fold: a substring test
        run = p.add(segs[0].text)
        test = f"contains({column}, {run})"
        folded = f"contains({WIDTH_FOLD}({column}), {run})"
    else:
        tests = [(kind, p.add(value)) for kind, value in _tests(segs, prefix)]
        test = _all([_test(kind, column, name) for kind, name in tests])
        folded = _all([_test(kind, f"{WIDTH_FOLD}({column})", name) for kind, name in tests])
    body_forms = textmod.fold_forms(segs) if folds else None
    if body_forms is None:
        return test
    # Text with CJK is matched as Elasticsearch's cjk analyzer sees it: width forms folded on both
    # sides (ｶｰﾄﾞ = カード, ＡＢＣ = ABC), an iteration mark after a Han character read as that
    # character (佐々木 = 佐佐木). A body is folded only when it holds a character that folding may
    # change in a way that matters to this text; the query's text is folded already
    # (textmod.search_segments).
    forms = f"regexp_matches({column}, {p.add(body_forms)})"
    for raw in reversed(textmod.raw_hints(segs)):  # cheaper than folding; most bodies fail them
        forms = f"contains({column}, {p.add(raw)}) AND {forms}"
    if any(textmod.has_iteration_mark(s.text) for s in segs):
        # a mark that stays in the query (after no Han character) may match a body's mark that
        # folding replaces (々木 in 佐々木): only the folded body can tell, and it holds a mark too
        return f"({forms} AND {folded})"
    return f"({test} OR ({forms} AND {folded}))"


def _tests(segs: list[textmod.Segment], prefix: bool) -> list[tuple[str, str]]:
    """The tests of a text leaf as ``(kind, value)``, cheapest first: every match passes them all."""
    tests = []
    hint = textmod.cjk_hint(segs)
    if hint is not None:
        tests.append(("contains", hint))
    literal = textmod.literal_hint(segs)
    if literal is not None:
        tests.append(("regexp", literal))
    tests.append(("regexp", textmod.re2_pattern(segs, prefix=prefix)))
    return tests


def _test(kind: str, value: str, name: str) -> str:
    return f"contains({value}, {name})" if kind == "contains" else f"regexp_matches({value}, {name})"


def _all(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "(" + " AND ".join(items) + ")"


def files_param(root: Path, files: Iterable[DataFile]) -> list[str]:
    """Absolute paths of ``files``, the value bound to ``$files`` in :data:`SOURCE`; refused
    (:func:`pipelines.archive.reader.require_recorded_sizes`) when one is not the size the manifest
    recorded, so a file swapped or rewritten behind the manifest's back is not shown as committed."""
    files = list(files)
    require_recorded_sizes(root, files)
    return [str(Path(root) / f.path) for f in files]
