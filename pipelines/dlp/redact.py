"""Redaction operators and destination views, from offsets alone.

The archive keeps the original body and the findings (entity, offsets, rule, score; never the
matched value). Every other destination gets a *view* of the body built from those findings and
the policy's ``views:`` configuration, without running detection again: the offsets and the
operator are enough. That is what :func:`view_text` does for an archived row.

Operators are Presidio's anonymizer operators (``mask``, ``replace``) plus a keyed hash built on its
``custom`` operator: HMAC-SHA256 with a key from an environment variable the policy names, so equal
values hash equally inside one firm (useful for joining exports) but cannot be brute-forced by
someone without the key. They are found by name in :data:`OPERATORS`.

The hash is taken over the value's canonical form (:func:`pipelines.dlp.checksums.canonical`:
normalised as for detection, separators removed, case-folded), so ``4012 8888 8888 1881``,
``4012 | 8888 | 8888 | 1881`` and the full-width form hash alike and the digest does not reveal how
the value was written. The key must be at least :data:`MIN_KEY_BYTES` bytes:
card numbers and national ids are a small space, and a short key is a guessable one. Rotating the
key changes every digest: exports hashed with the old key no longer join with new ones (keep the old
key where old exports must still be joined; archived bodies are never hashed in place, so views are
simply rebuilt with the new key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from presidio_anonymizer.operators import Custom, Mask, Replace

from pipelines.dlp import checksums
from pipelines.errors import ConfigError
from pipelines.record import DlpAction

if TYPE_CHECKING:
    from pipelines.dlp.policy import OperatorSpec, PolicySet

#: Operator name -> function(value, entity, spec, env) -> replacement text.
OperatorFn = Callable[[str, str, "OperatorSpec", Mapping[str, str]], str]
OPERATORS: dict[str, OperatorFn] = {}


def operator(name: str) -> Callable[[OperatorFn], OperatorFn]:
    def register(func: OperatorFn) -> OperatorFn:
        OPERATORS[name] = func
        return func

    return register


def _shown_tail(value: str, keep_last: int) -> int:
    """How many characters at the end of ``value`` stay visible: the shortest end holding its last
    ``keep_last`` letters or digits (``"4 0 1 2 … 1 8 8 1"`` shows ``1 8 8 1``, spaces between them
    included). A value with no more letters and digits than that is masked whole: keeping the last
    four of a four-digit PIN would show all of it."""
    seen = 0
    for i in range(len(value) - 1, -1, -1):
        weight = _alnum_weight(value[i])
        if seen + weight > keep_last:  # one character standing for several digits (``⑱``, ``㉞``)
            return len(value) - i - 1 if seen else 0
        seen += weight
        if seen == keep_last and weight:
            return len(value) - i if any(ch.isalnum() for ch in value[:i]) else 0
    return 0


def _alnum_weight(ch: str) -> int:
    """How many letters or digits ``ch`` stands for as detection reads it (after NFKC): one for
    ``4`` or ``四``, two for ``⑱`` or ``㉞``, none for a space or a dash."""
    if ch.isascii():
        return 1 if ch.isalnum() else 0
    return sum(c.isalnum() for c in unicodedata.normalize("NFKC", ch))


@operator("mask")
def _mask(value: str, entity: str, spec: OperatorSpec, env: Mapping[str, str]) -> str:
    params = {
        "masking_char": spec.masking_char,
        "chars_to_mask": len(value) - _shown_tail(value, spec.keep_last),
    }
    params["from_end"] = False
    return Mask().operate(value, params)


@operator("replace")
def _replace(value: str, entity: str, spec: OperatorSpec, env: Mapping[str, str]) -> str:
    params: dict[str, Any] = {"entity_type": entity}
    if spec.label is not None:
        params["new_value"] = spec.label
    return Replace().operate(value, params)


#: Decimals of a finding's score as archived (and as :func:`finding_rank` compares them).
SCORE_DIGITS = 4

#: Shortest HMAC key accepted, in bytes (``openssl rand -hex 32`` gives 64).
MIN_KEY_BYTES = 32


def hash_key(key_env: str | None, env: Mapping[str, str]) -> bytes:
    """The HMAC key from the named environment variable, or a clear error."""
    if not key_env:
        raise ConfigError("the hash operator needs key_env: the environment variable holding the HMAC key")
    key = env.get(key_env)
    if not key:
        raise ConfigError(
            f"the DLP policy hashes findings with the key in ${key_env}, which is not set; "
            f"set it to a long random secret, e.g. export {key_env}=$(openssl rand -hex 32)"
        )
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigError(
            f"the HMAC key in ${key_env} is only {len(raw)} byte(s) long; use at least {MIN_KEY_BYTES} "
            f"random bytes, e.g. export {key_env}=$(openssl rand -hex 32)"
        )
    return raw


def key_problems(policy_set: PolicySet, env: Mapping[str, str]) -> list[str]:
    """Every hash key the policies need (rule operators of redact/block rules, ``views:``
    operators) that ``env`` lacks or holds too short, each naming its policy file and place."""
    from pipelines.dlp.policy import DESTINATIONS

    found: list[str] = []

    def check(key_env: str | None, where: str) -> None:
        try:
            hash_key(key_env, env)
        except ConfigError as exc:
            found.append(f"{where}: {exc}")

    for policy in policy_set.policies:
        for rule in policy.rules:
            op = rule.operator or policy.spec.operator
            if DlpAction(rule.action).strength >= DlpAction.REDACT.strength and op.type == "hash":
                line = policy.lines.get(rule.id)
                check(op.key_env, f"{policy.path}{f':{line}' if line else ''}: rule {rule.id}")
        for destination in DESTINATIONS:
            view_op = getattr(policy.spec.views, destination).operator
            if view_op is not None and view_op.type == "hash":
                check(view_op.key_env, f"{policy.path}: views.{destination}")
    return found


@operator("hash")
def _hash(value: str, entity: str, spec: OperatorSpec, env: Mapping[str, str]) -> str:
    key = hash_key(spec.key_env, env)

    def digest(text: str) -> str:
        canonical = checksums.canonical(text)
        return hmac.new(key, canonical.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[
            : spec.length
        ]

    return Custom().operate(value, {"lambda": digest})


def apply_operator(value: str, entity: str, spec: OperatorSpec, env: Mapping[str, str] | None = None) -> str:
    return OPERATORS[spec.type](value, entity, spec, os.environ if env is None else env)


@dataclass(frozen=True, slots=True)
class Span:
    """A region of the original text to rewrite, and how."""

    start: int
    end: int
    entity: str
    operator: OperatorSpec
    rank: tuple[Any, ...]  # higher wins when spans overlap


def rewrite(text: str, spans: Iterable[Span], env: Mapping[str, str] | None = None) -> str:
    """Apply operators to ``text``. Overlapping spans merge into one region, rewritten with the
    operator of the highest-ranked span in it (deterministic whatever the input order). A
    ``keep_last`` tail is shown only when it is the winner's own: a region that runs on past the
    winning span is masked whole."""
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    if not ordered:
        return text
    groups: list[list[Span]] = []
    end = -1
    for span in ordered:
        if groups and span.start < end:
            groups[-1].append(span)
            end = max(end, span.end)
        else:
            groups.append([span])
            end = span.end
    out: list[str] = []
    pos = 0
    for group in groups:
        start = group[0].start
        stop = max(s.end for s in group)
        winner = max(group, key=lambda s: s.rank)
        spec = winner.operator
        if spec.keep_last and not _tail_may_show(text, winner, stop):
            spec = spec.model_copy(update={"keep_last": 0})
        out.append(text[pos:start])
        out.append(apply_operator(text[start:stop], winner.entity, spec, env))
        pos = stop
    out.append(text[pos:])
    return "".join(out)


def _tail_may_show(text: str, winner: Span, stop: int) -> bool:
    """Whether the ``keep_last`` tail of a merged region ending at ``stop`` may stay visible: only
    when it is the winning finding's own (a region that runs on past the winner would show another
    finding's characters), and only when the winner's mask would show it on its own. A short finding
    at the end of a longer one (a four-digit PIN a block rule found ending a card number) is masked
    whole by its own rule, so it is never shown as the region's last four."""
    own = text[winner.start : winner.end]
    return winner.end >= stop and _shown_tail(own, winner.operator.keep_last) > 0


def finding_rank(
    action: DlpAction | str, score: float, start: int, end: int, rule_id: str
) -> tuple[Any, ...]:
    """Strongest action, then score, then the longer span; ties go to the smaller rule id."""
    strength = DlpAction(action).strength
    # scores as archived (4 decimals), so a view rebuilt from stored findings picks the same winner
    return (strength, round(score, SCORE_DIGITS), end - start, _Reversed(rule_id))


@dataclass(frozen=True, slots=True, order=False)
class _Reversed:
    """Orders strings backwards so that ``max`` picks the alphabetically first rule id."""

    value: str

    def __lt__(self, other: _Reversed) -> bool:
        return self.value > other.value

    def __gt__(self, other: _Reversed) -> bool:
        return self.value < other.value


# ---------------------------------------------------------------------------------------------
# views of archived rows

_MODE_STRENGTH = {"original": 0, "redacted": 1, "withheld": 2}


def _finding_fields(finding: Any) -> dict[str, Any]:
    if isinstance(finding, Mapping):
        return dict(finding)
    return finding.model_dump() if hasattr(finding, "model_dump") else vars(finding)


def view_text(
    row: Mapping[str, Any],
    destination: str,
    policy_set: PolicySet,
    *,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The body ``destination`` gets for an archived row, or ``None`` when it is withheld.

    ``row`` is an archived record dict with ``body``, ``dlp_findings`` (list of Finding dicts) and
    ``dlp_action``/``blocked``. Destinations: delivery, export, crm. Blocked messages are
    never delivered. Otherwise the strictest ``views:`` setting among the policies whose rules
    produced findings decides between original, redacted and withheld. Redacted, each finding is
    rewritten with its own policy's operator for ``destination`` (``views.<destination>.operator``)
    or, without one, its rule's: never with another policy's.
    """
    from pipelines.dlp.policy import DESTINATIONS

    if destination not in DESTINATIONS:
        raise ConfigError(f"unknown destination {destination!r}; valid: {', '.join(DESTINATIONS)}")
    body = row.get("body")
    blocked = bool(row.get("blocked")) or row.get("dlp_action") == DlpAction.BLOCK.value
    if destination == "delivery" and blocked:
        return None
    findings = [_finding_fields(f) for f in (row.get("dlp_findings") or [])]
    if body is None:
        return None
    if not findings:
        return body
    mode = "original"
    for finding in findings:
        rule_id = finding["rule_id"]
        if rule_id not in policy_set.rules:
            # a rule removed since archiving: be strict rather than leak
            mode = max(mode, "redacted", key=_MODE_STRENGTH.__getitem__)
            continue
        spec = getattr(policy_set.policy_of(rule_id).spec.views, destination)
        mode = max(mode, spec.show.value, key=_MODE_STRENGTH.__getitem__)
    if mode == "withheld":
        return None
    if mode == "original":
        return body
    spans = []
    for finding in findings:
        action = finding.get("action", DlpAction.REDACT.value)
        if DlpAction(action).strength < DlpAction.REDACT.strength:
            continue  # flagged findings are alerts, not redactions
        rule_id = finding["rule_id"]
        if rule_id in policy_set.rules:
            # each finding with its own policy's operator for this destination, else its rule's:
            # another policy's view operator (a mask keeping the last four, say) must not decide
            # how this policy's findings (a password) are shown
            policy, rule = policy_set.rules[rule_id]
            view_operator = getattr(policy.spec.views, destination).operator
            op = view_operator or rule.operator or policy.spec.operator
        else:
            from pipelines.dlp.policy import OperatorSpec

            op = OperatorSpec(type="replace")
        rank = finding_rank(action, finding["score"], finding["start"], finding["end"], rule_id)
        spans.append(Span(finding["start"], finding["end"], finding["entity"], op, rank))
    return rewrite(body, spans, env)
