"""The DLP engine: a compiled policy set applied to message texts, one verdict per text.

:class:`Engine` compiles a :class:`~pipelines.dlp.policy.PolicySet` once (regexes, Presidio
recognizers, the spaCy model when a rule needs NER) and is then applied to many texts. The fast path
is :meth:`Engine.inspect_many`: texts are normalised, every distinct regex runs once over the whole
batch (:mod:`pipelines.dlp.batch_regex`), spaCy runs over the batch with ``nlp.pipe`` and only its
NER component, and only texts with a match go through the per-text Python work. Identical texts in a
batch (templated auto-messages) are inspected once.

A :class:`Verdict` holds the strongest action of all rules that hit (block > redact > flag > none),
the findings with offsets into the ORIGINAL text, the sorted rule ids, the text with redact/block
findings rewritten, and for non-``none`` verdicts a short human reason built from the rules'
descriptions. Overlapping findings are resolved deterministically: within a rule the best candidate
wins (score, then length, then position); across rules all are kept, and redaction merges
overlapping regions using the operator of the strongest finding (ties go to the smaller rule id).
"""

from __future__ import annotations

import bisect
import os
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pipelines.dlp import presidio_entities
from pipelines.dlp.batch_regex import BatchRegex, RegexKey, RegexTimeout, run_all
from pipelines.dlp.detectors import Allow, Candidate, Detector, Item, blank_cjk, compile_detector
from pipelines.dlp.normalize import Normalized, normalize, strip_invisible
from pipelines.dlp.policy import OperatorSpec, Policy, PolicySet, RuleSpec
from pipelines.dlp.redact import SCORE_DIGITS, Span, finding_rank, key_problems, rewrite
from pipelines.errors import ConfigError
from pipelines.record import DlpAction, Finding, Role

DEFAULT_BATCH_SIZE = 512
_UPPER = re.compile(r"[A-Z]")


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a text was said; rules apply only within their scope.

    A field left ``None`` is unknown and satisfies any restriction (``vigil dlp scan`` without scope
    keys); the pipeline always fills them from the record. That includes ``employee_groups``:
    ``None`` (not given) satisfies a rule scoped to groups, while a given set, even an empty one,
    must share a group with the rule.
    """

    channel: str | None = None
    direction: str | None = None
    kind: str | None = None
    org: str | None = None
    sub_org: str | None = None
    employee_groups: frozenset[str] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Scope:
        """The scope of an archived record dict (``pipelines.record`` field names).

        Employee groups are those of every employee taking part: the sender and the recipients.
        Everything is known of a record: a record with no sub-organisation has none (``""``, which
        no ``sub_orgs:`` list names), not an unknown one that every list would take.
        """
        groups: set[str] = set()
        parties = [row.get("sender"), *(row.get("recipients") or [])]
        for party in parties:
            if isinstance(party, Mapping) and party.get("role") == Role.EMPLOYEE.value:
                groups.update(party.get("groups") or ())
        return cls(
            channel=_str(row.get("channel")),
            direction=_str(row.get("direction")),
            kind=_str(row.get("kind")),
            org=_str(row.get("org")),
            sub_org=_str(row.get("sub_org")) or "",
            employee_groups=frozenset(groups),
        )


def _str(value: Any) -> str | None:
    return None if value is None else str(value.value if hasattr(value, "value") else value)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the policy set says about one text."""

    action: DlpAction
    findings: list[Finding] = field(default_factory=list)
    rule_ids: list[str] = field(default_factory=list)
    redacted_text: str = ""
    reason: str | None = None

    @property
    def blocked(self) -> bool:
        return self.action is DlpAction.BLOCK


@dataclass(slots=True)
class _Rule:
    spec: RuleSpec
    policy: Policy
    action: DlpAction
    operator: OperatorSpec
    detectors: list[Detector]
    allow: Allow

    def applies(self, scope: Scope) -> bool:
        """Whether this rule applies in ``scope``. Channels, directions and kinds are names the
        policy loader checked; organisations, sub-organisations and employee groups are free ids,
        compared ignoring case (as search compares organisations): ``orgs: [ACME]`` applies to the
        org ``acme``, where an exact comparison would leave the rule silently never firing."""
        s = self.spec.scope
        checks = (
            (s.channels, scope.channel, False),
            (s.directions, scope.direction, False),
            (s.kinds, scope.kind, False),
            (s.orgs, scope.org, True),
            (s.sub_orgs, scope.sub_org, True),
        )
        for allowed, value, fold in checks:
            if allowed is None or value is None:
                continue
            if fold:
                if value.casefold() not in {str(a).casefold() for a in allowed}:
                    return False
            elif value not in {str(a) for a in allowed}:
                return False
        if s.employee_groups is None or scope.employee_groups is None:
            return True
        return not {g.casefold() for g in s.employee_groups}.isdisjoint(
            g.casefold() for g in scope.employee_groups
        )


class _Plan:
    """The rules that apply in one scope, indexed by what triggers their detectors."""

    __slots__ = ("always", "by_key", "ner", "pairs", "rule_index", "rules")

    def __init__(self, rules: tuple[_Rule, ...]):
        self.rules = rules
        self.pairs: list[tuple[_Rule, Detector]] = []
        self.rule_index: list[int] = []
        self.by_key: dict[RegexKey, list[int]] = {}
        self.ner: list[int] = []
        self.always: list[int] = []
        for r, rule in enumerate(rules):
            for det in rule.detectors:
                k = len(self.pairs)
                self.pairs.append((rule, det))
                self.rule_index.append(r)
                keys = [regex.key for regex in det.regexes()]
                for key in keys:
                    self.by_key.setdefault(key, []).append(k)
                if det.needs_ner:
                    self.ner.append(k)
                elif not keys:
                    self.always.append(k)


_ACTION_WORD = {DlpAction.BLOCK: "Blocked", DlpAction.REDACT: "Redacted", DlpAction.FLAG: "Flagged"}


class Engine:
    """A policy set compiled for inspection. Build once, reuse; pickling keeps only the policy set
    (and an explicit key mapping) and recompiles on the other side."""

    def __init__(
        self,
        policy_set: PolicySet,
        *,
        hash_key_env: Mapping[str, str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        skip_ner_when_impossible: bool = True,
        ner_cache_size: int = 20_000,
        reuse_repeats: bool = True,
    ):
        """``ner_cache_size``: how many texts' NER results are kept across batches (0: none);
        ``reuse_repeats``: a text that comes twice in one batch is inspected once (benchmarks
        turn both off to measure Vigil with no reuse of repeated texts at all)."""
        self.policy_set = policy_set
        self._explicit_env = hash_key_env
        self.env: Mapping[str, str] = self._explicit_env if self._explicit_env is not None else os.environ
        self.batch_size = batch_size
        self.skip_ner_when_impossible = skip_ner_when_impossible
        self.ner_cache_size = ner_cache_size
        self.reuse_repeats = reuse_repeats
        self._compile()

    # -- compilation ---------------------------------------------------------------------------

    def _compile(self) -> None:
        self.rules: list[_Rule] = []
        self.regexes: dict[RegexKey, BatchRegex] = {}
        if problems := key_problems(self.policy_set, self.env):  # fail now, not on the first finding
            raise ConfigError("\n".join(problems))
        for policy in self.policy_set.policies:
            for spec in policy.rules:
                detectors = [compile_detector(d) for d in spec.detectors]
                rule = _Rule(
                    spec=spec,
                    policy=policy,
                    action=DlpAction(spec.action),
                    operator=spec.operator or policy.spec.operator,
                    detectors=detectors,
                    allow=Allow(policy.spec.allow, spec.allow),
                )
                self.rules.append(rule)
                for det in detectors:
                    for regex in det.regexes():
                        self.regexes.setdefault(regex.key, regex)
        self.rules.sort(key=lambda r: r.spec.id)
        self.needs_ner = any(d.needs_ner for r in self.rules for d in r.detectors)
        self._nlp = presidio_entities.load_ner_model() if self.needs_ner else None
        if self._nlp is not None:
            config = presidio_entities.ner_configuration()
            self._ner_map = dict(config.model_to_presidio_entity_mapping)
        self._scope_cache: dict[Scope, _Plan] = {}
        self._ner_cache: OrderedDict[str, list[tuple[int, int, str]]] | None = (
            OrderedDict() if self.ner_cache_size > 0 else None
        )
        self.ner_calls = 0  # texts spaCy actually read
        self.ner_cache_hits = 0

    def __getstate__(self) -> dict[str, Any]:
        return {
            "policy_set": self.policy_set,
            "env": self._explicit_env,
            "batch_size": self.batch_size,
            "skip": self.skip_ner_when_impossible,
            "ner_cache_size": self.ner_cache_size,
            "reuse_repeats": self.reuse_repeats,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["policy_set"],
            hash_key_env=state["env"],
            batch_size=state["batch_size"],
            skip_ner_when_impossible=state["skip"],
            ner_cache_size=state["ner_cache_size"],
            reuse_repeats=state.get("reuse_repeats", True),
        )

    def clear_caches(self) -> None:
        """Forget cached NER results (benchmarks use this to start cold)."""
        if self._ner_cache is not None:
            self._ner_cache.clear()
        self.ner_calls = self.ner_cache_hits = 0

    def _plan_for(self, scope: Scope) -> _Plan:
        plan = self._scope_cache.get(scope)
        if plan is None:
            rules = tuple(r for r in self.rules if r.applies(scope))
            plan = _Plan(rules)
            self._scope_cache[scope] = plan
        return plan

    # -- inspection ----------------------------------------------------------------------------

    def inspect(self, text: str, scope: Scope | None = None) -> Verdict:
        return self.inspect_many([(text, scope or Scope())])[0]

    def inspect_many(self, items: Sequence[tuple[str, Scope]]) -> list[Verdict]:
        """Verdicts for many texts, in order; batched internally."""
        out: list[Verdict] = []
        for i in range(0, len(items), self.batch_size):
            out.extend(self._inspect_batch(items[i : i + self.batch_size]))
        return out

    def inspect_each(self, items: Sequence[tuple[str, Scope]]) -> list[Verdict | Exception]:
        """:meth:`inspect_many`, except that a text the engine fails on gets its exception in its
        place instead of failing the batch: the batch is retried text by text, so one bad text
        (a regex over its time budget, a recognizer error) costs only itself."""
        try:
            return list(self.inspect_many(items))
        except Exception:
            out: list[Verdict | Exception] = []
            for text, scope in items:
                try:
                    out.append(self.inspect(text, scope))
                except RegexTimeout as exc:  # named with its rules, so an author knows which to fix
                    out.append(self._with_rules(exc))
                except Exception as exc:  # the caller turns it into an error for this text
                    out.append(exc)
            return out

    def _with_rules(self, exc: RegexTimeout) -> RegexTimeout:
        """``exc`` naming the rules whose detectors or allow-lists run its regex."""
        rules = sorted(
            {
                r.spec.id
                for r in self.rules
                for d in r.detectors
                for regex in d.regexes()
                if regex.budgeted and regex.pattern == exc.pattern
            }
            | {r.spec.id for r in self.rules if r.allow and exc.pattern in (p for p, _ in r.allow.regexes)}
        )
        return RegexTimeout(exc.pattern, exc.seconds, rules) if rules and not exc.rules else exc

    def _inspect_batch(self, items: Sequence[tuple[str, Scope]]) -> list[Verdict]:
        # identical (text, scope) pairs are inspected once
        if not self.reuse_repeats:
            return self._inspect_unique([(text, scope or Scope()) for text, scope in items])
        index: dict[tuple[str, Scope], int] = {}
        unique: list[tuple[str, Scope]] = []
        order: list[int] = []
        for text, scope in items:
            key = (text, scope or Scope())
            pos = index.get(key)
            if pos is None:
                pos = index[key] = len(unique)
                unique.append(key)
            order.append(pos)
        verdicts = self._inspect_unique(unique)
        return [verdicts[i] for i in order]

    def _inspect_unique(self, items: Sequence[tuple[str, Scope]]) -> list[Verdict]:
        norms = [normalize(text) for text, _ in items]
        plans = [self._plan_for(scope) for _, scope in items]
        texts = [n.text for n in norms]
        blanked = [blank_cjk(t) for t in texts]
        work = [Item(n.text, n.original, blanked=b, norm=n) for n, b in zip(norms, blanked, strict=True)]
        # a text with a copy in screen order is matched copy by copy: no match joins the two
        pieces: list[tuple[int, int]] = []  # (item, offset of the piece in its text)
        piece_texts: list[str] = []
        piece_blanked: list[str] = []
        for i, norm in enumerate(norms):
            for lo, hi in norm.copies():
                pieces.append((i, lo))
                whole = hi - lo == len(texts[i])
                piece = texts[i] if whole else texts[i][lo:hi]
                piece_texts.append(piece)
                # the same object when nothing was blanked: run_all then reads one copy
                piece_blanked.append(piece if blanked[i] is texts[i] else blanked[i][lo:hi])
        for key, found in run_all(list(self.regexes.values()), piece_texts, piece_blanked).items():
            for p, spans in sorted(found.items()):
                i, lo = pieces[p]
                shifted = spans if lo == 0 else [(s + lo, e + lo) for s, e in spans]
                work[i].matches.setdefault(key, []).extend(shifted)
        if self._nlp is not None:
            self._run_ner(work, plans)
        return [self._verdict(norms[i], plans[i], work[i]) for i in range(len(items))]

    def ner_may_find(self, text: str) -> bool:
        """False only for texts English NER cannot tag: plain ASCII without a capital letter (the
        small English model keys names and places on capitalisation). Non-ASCII text always runs."""
        return not self.skip_ner_when_impossible or not text.isascii() or _UPPER.search(text) is not None

    def _run_ner(self, work: list[Item], plans: list[_Plan]) -> None:
        """spaCy NER over the batch. The model reads the text as sent, less invisible characters:
        NFKC would turn CJK punctuation into ASCII and change how the English model tokenises it.
        Results are cached per text (chat repeats itself: "OK", "Thanks!", templated notices)."""
        todo: list[tuple[str, list[int]]] = []  # (text as spaCy reads it, the items that hold it)
        seen: dict[str, int] = {}  # text -> its place in todo
        for i, item in enumerate(work):
            if not plans[i].ner or not self.ner_may_find(item.text):
                continue
            stripped = strip_invisible(item.original)
            cached = self._ner_cache.get(stripped.text) if self._ner_cache is not None else None
            if cached is not None:
                self.ner_cache_hits += 1
                item.ner = _to_original(cached, stripped)
                continue
            if self.reuse_repeats and (pos := seen.get(stripped.text)) is not None:
                todo[pos][1].append(i)  # the same text again in this batch: read once
            else:
                seen[stripped.text] = len(todo)
                todo.append((stripped.text, [i]))
        if not todo:
            return
        assert self._nlp is not None
        # similar lengths batch better in spaCy; each doc is processed on its own, so order does not
        # change results
        todo.sort(key=lambda entry: len(entry[0]))
        self.ner_calls += len(todo)
        texts = [text for text, _ in todo]
        for (text, where), doc in zip(todo, self._nlp.pipe(texts, batch_size=256), strict=True):
            ents = [
                (ent.start_char, ent.end_char, self._ner_map[ent.label_])
                for ent in doc.ents
                if ent.label_ in self._ner_map
            ]
            if self._ner_cache is not None:
                self._ner_cache[text] = ents
                if len(self._ner_cache) > self.ner_cache_size:
                    self._ner_cache.popitem(last=False)
            for i in where:
                work[i].ner = _to_original(ents, strip_invisible(work[i].original))

    def _verdict(self, norm: Normalized, plan: _Plan, item: Item) -> Verdict:
        text = norm.original
        hit: set[int] = set()
        for key in item.matches:
            hit.update(plan.by_key.get(key, ()))
        if item.ner:
            hit.update(plan.ner)
        hit.update(k for k in plan.always if plan.pairs[k][1].triggered(item))
        if not hit:
            return Verdict(DlpAction.NONE, [], [], text, None)
        by_rule: dict[int, list[Candidate]] = {}
        for k in sorted(hit):
            rule, det = plan.pairs[k]
            for cand in det.find(item):
                if not cand.original:
                    start, end = norm.to_original(cand.start, cand.end)
                    cand = replace(cand, start=start, end=end, original=True)
                if rule.allow and rule.allow.allows(text[cand.start : cand.end]):
                    continue
                by_rule.setdefault(plan.rule_index[k], []).append(cand)
        findings: list[tuple[_Rule, Candidate, int, int]] = []
        for r, cands in sorted(by_rule.items()):
            rule = plan.rules[r]
            findings.extend((rule, cand, cand.start, cand.end) for cand in _resolve(cands))
        if not findings:
            return Verdict(DlpAction.NONE, [], [], text, None)
        findings.sort(key=lambda f: (f[2], f[3], f[0].spec.id, f[1].entity))
        action = max((f[0].action for f in findings), key=lambda a: a.strength)
        rule_ids = sorted({f[0].spec.id for f in findings})
        spans = [
            Span(s, e, c.entity, r.operator, finding_rank(r.action, c.score, s, e, r.spec.id))
            for r, c, s, e in findings
            if r.action.strength >= DlpAction.REDACT.strength
        ]
        redacted = rewrite(text, spans, self.env) if spans else text
        return Verdict(
            action=action,
            findings=[
                Finding(
                    rule_id=r.spec.id,
                    entity=c.entity,
                    detector=c.detector,
                    start=s,
                    end=e,
                    score=round(c.score, SCORE_DIGITS),
                    action=r.action,
                )
                for r, c, s, e in findings
            ],
            rule_ids=rule_ids,
            redacted_text=redacted,
            reason=_reason(action, [f[0] for f in findings]),
        )


def _to_original(ents: list[tuple[int, int, str]], stripped: Normalized) -> list[tuple[int, int, str]]:
    return [(*stripped.to_original(s, e), ent) for s, e, ent in ents if e > s]


def _resolve(cands: list[Candidate]) -> list[Candidate]:
    """Within one rule, overlapping candidates: keep the best (score, length, then earliest).

    Greedy in rank order; the kept spans never overlap, so they stay sorted by start in a list and
    a candidate only has to be compared with its two neighbours there (O(n log n) searches)."""
    if len(cands) < 2:
        return cands
    ranked = sorted(cands, key=lambda c: (-c.score, -(c.end - c.start), c.start, c.entity, c.detector))
    starts: list[int] = []
    kept: list[Candidate] = []
    for cand in ranked:
        i = bisect.bisect_right(starts, cand.start)
        if i > 0 and kept[i - 1].end > cand.start:
            continue  # overlaps the kept span starting at or before it
        if i < len(kept) and kept[i].start < cand.end:
            continue  # overlaps the kept span starting after it
        starts.insert(i, cand.start)
        kept.insert(i, cand)
    return kept


def _reason(action: DlpAction, rules: list[_Rule]) -> str | None:
    if action is DlpAction.NONE:
        return None
    hits = sorted({r.spec.id: r for r in rules if r.action is action}.values(), key=lambda r: r.spec.id)
    descriptions = list(dict.fromkeys(r.spec.description.rstrip(".") for r in hits))
    return f"{_ACTION_WORD[action]}: " + "; ".join(descriptions) + "."
