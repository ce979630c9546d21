"""``vigil dlp dry-run``: what a policy change would change, replayed on archived traffic.

Every archived message body is inspected with the NEW policy set and compared with the CURRENT
verdict: either the one stored in the archive (what the pipeline decided when it archived the
message) or, with ``--against``, a fresh verdict from another policy set. Changes are attributed
to rules. For a message whose action changes, whichever way:

* newly blocked / redacted / flagged: counted for each rule of the new verdict whose action is the
  message's new action (the rules that decide it; nothing when the new action is ``none``);
* released: counted for each rule of the current verdict that no longer applies as it did: it no
  longer hits, or it hits with a weaker action than before. A message whose action got weaker is
  always released by at least one rule; one whose action got stronger may be too (a flag rule
  dropped while a new block rule hits).

A message that keeps its action is no change; if other rules match it, that is counted apart
("now matches" / "no longer matches").

Samples show the body with every finding replaced by its entity label: the new policy's, the
current verdict's, and the findings stored with the archived record (whatever policy archived it,
also with ``--against``), so a report never shows a secret in clear, whichever policy found it.

Vigil's own ``dlp_blocked_notice`` auto-messages (the notices telling an employee why a message was
blocked; source ``vigil:dlp-notice``) are not replayed: they are the pipeline's output, not
traffic, and their text quotes rule descriptions. A source's record with that event type (ingest
refuses one, ``reserved_event_type``; an archive written before that may hold some) is traffic and
is replayed. The report says how many were skipped. A path without an archive manifest is an error
(exit 2), so a mistyped ``--archive`` never reads as "no changes".
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.dlp.casefile import REPLAY_KEYS
from pipelines.dlp.engine import Engine, Scope, Verdict
from pipelines.dlp.policy import OperatorSpec, PolicySet
from pipelines.dlp.redact import Span, rewrite
from pipelines.progress import report
from pipelines.record import DlpAction, EventType

COLUMNS = [
    "record_id",
    "event_type",
    "body",
    "channel",
    "direction",
    "kind",
    "org",
    "sub_org",
    "sender",
    "recipients",
    "dlp_action",
    "dlp_rule_ids",
    "dlp_findings",
    "dlp_policy",
    "source_name",
]
CHANGES = ("blocked", "redacted", "flagged", "released")
#: the change a message is credited with, by its new action (``none`` is only ever a release)
_GAINED = {DlpAction.BLOCK: "blocked", DlpAction.REDACT: "redacted", DlpAction.FLAG: "flagged"}
SAMPLE_CHARS = 200
MAX_FAILURES_SHOWN = 5
_LABEL = OperatorSpec(type="replace")


def archive_rows(archive: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of the archive's live, committed record files; an error when ``archive`` is not one."""
    from pipelines.archive.reader import iter_rows, require_archive

    return iter_rows(require_archive(archive), columns)


_NOTICE = EventType.DLP_BLOCKED_NOTICE.value


def _vigils_notice(row: dict[str, Any]) -> bool:
    """A notice Vigil made itself (not a record a source sent with that event type, which is
    traffic like any other and is replayed)."""
    from pipelines.ingest.notices import SOURCE

    return row.get("event_type") == _NOTICE and row.get("source_name") == SOURCE


@dataclass
class RuleChanges:
    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class DryRunReport:
    new_policy: str
    current_policy: str
    messages: int = 0
    skipped: int = 0  # records without a body (events)
    notices: int = 0  # Vigil's own dlp_blocked_notice auto-messages, not replayed
    changed: int = 0  # messages whose action would change
    #: messages that keep their action but would be matched by other rules (a rule renamed, a
    #: second rule finding what one already found), and per rule how many it newly or no longer matches
    rematched: int = 0
    rule_matches: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    #: messages a policy's engine failed on (e.g. a regex over its time budget): not compared
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)  # the first few, with the reason
    #: messages archived without a verdict (``--no-dlp``, or before Vigil had DLP): with nothing
    #: stored to compare, they are counted apart, by what the new policy would do to them
    unverdicted: Counter[str] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    rules: dict[str, RuleChanges] = field(default_factory=lambda: defaultdict(RuleChanges))
    #: the records whose (masked) text the samples show, for the access log
    sampled: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "new_policy": self.new_policy,
            "current_policy": self.current_policy,
            "messages": self.messages,
            "skipped_without_body": self.skipped,
            "skipped_blocked_notices": self.notices,
            "changed": self.changed,
            "same_action_other_rules": self.rematched,
            "rule_matches": {rule_id: dict(c) for rule_id, c in sorted(self.rule_matches.items())},
            "failed": self.failed,
            "failures": self.failures,
            "archived_without_verdict": dict(sorted(self.unverdicted.items())),
            "transitions": [
                {"from": old, "to": new, "messages": n} for (old, new), n in sorted(self.transitions.items())
            ],
            "rules": {
                rule_id: {"counts": dict(rc.counts), "samples": dict(rc.samples)}
                for rule_id, rc in sorted(self.rules.items())
            },
        }


@dataclass(frozen=True)
class _Current:
    action: DlpAction
    rule_ids: tuple[str, ...]
    findings: tuple[tuple[int, int, str], ...]  # (start, end, entity)
    #: each rule's action, from its findings; a rule without one is taken to act as the verdict does
    rule_actions: Mapping[str, DlpAction] = field(default_factory=dict)

    def action_of(self, rule_id: str) -> DlpAction:
        return self.rule_actions.get(rule_id, self.action)


def _rule_actions(pairs: Iterable[tuple[Any, Any]]) -> dict[str, DlpAction]:
    """The strongest action each rule's findings carry (``(rule_id, action)`` pairs)."""
    actions: dict[str, DlpAction] = {}
    for rule_id, value in pairs:
        try:
            action = DlpAction(value)
        except ValueError:
            continue
        if rule_id is not None and action.strength > actions.get(str(rule_id), DlpAction.NONE).strength:
            actions[str(rule_id)] = action
    return actions


def _stored(row: Mapping[str, Any]) -> _Current:
    stored = row.get("dlp_findings") or []
    findings = tuple((f["start"], f["end"], f["entity"]) for f in stored)
    return _Current(
        DlpAction(row.get("dlp_action") or "none"),
        tuple(row.get("dlp_rule_ids") or ()),
        findings,
        _rule_actions((f.get("rule_id"), f.get("action")) for f in stored),
    )


def _archived_findings(row: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    """The findings stored with an archived record, whatever policy found them: a sample masks them
    even when neither compared policy finds them any more."""
    spans = []
    for f in row.get("dlp_findings") or []:
        if not isinstance(f, Mapping):
            continue
        start, end = f.get("start"), f.get("end")
        if isinstance(start, int) and isinstance(end, int):
            spans.append((start, end, str(f.get("entity") or "REDACTED")))
    return spans


def _unverdicted(row: Mapping[str, Any]) -> bool:
    """A record no policy looked at when it was archived: ``none`` is then no verdict, not the
    verdict that nothing matched, and a policy finding something in it is not a change."""
    return row.get("dlp_policy") is None and not row.get("dlp_findings")


def _fresh(verdict: Verdict) -> _Current:
    findings = tuple((f.start, f.end, f.entity) for f in verdict.findings)
    actions = _rule_actions((f.rule_id, f.action) for f in verdict.findings)
    return _Current(verdict.action, tuple(verdict.rule_ids), findings, actions)


def safe_sample(body: str, *finding_sets: Iterable[tuple[int, int, str]]) -> str:
    """The body with every finding replaced by its label, shortened for a report."""
    spans = [
        Span(s, e, entity, _LABEL, (e - s, entity))
        for findings in finding_sets
        for s, e, entity in findings
        if e > s
    ]
    text = rewrite(body, spans)
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def dry_run(
    new: PolicySet,
    archive: Path,
    *,
    against: PolicySet | None = None,
    samples: int = 3,
    rows: Iterable[dict[str, Any]] | None = None,
    batch_size: int = 1024,
) -> DryRunReport:
    """Replay the archive (or ``rows``) through ``new`` and report the differences per rule."""
    # samples replace every finding by its label, so a hash operator's key is never used: the
    # test key stands in for one that is not set, as for `vigil dlp test`
    engine = Engine(new, hash_key_env=REPLAY_KEYS)
    current_engine = Engine(against, hash_key_env=REPLAY_KEYS) if against is not None else None
    report_ = DryRunReport(
        new_policy=new.label, current_policy=against.label if against else "stored verdicts"
    )
    source = rows if rows is not None else archive_rows(archive, COLUMNS)
    for batch in _batches(source, batch_size):
        traffic = [r for r in batch if not _vigils_notice(r)]
        report_.notices += len(batch) - len(traffic)
        with_body = [r for r in traffic if isinstance(r.get("body"), str) and r["body"]]
        report_.skipped += len(traffic) - len(with_body)
        items = [(r["body"], Scope.from_row(r)) for r in with_body]
        verdicts = engine.inspect_each(items)
        currents: list[_Current | Exception]
        if current_engine is not None:
            currents = [
                v if isinstance(v, Exception) else _fresh(v) for v in current_engine.inspect_each(items)
            ]
        else:
            currents = [_stored(r) for r in with_body]
        for row, verdict, current in zip(with_body, verdicts, currents, strict=True):
            report_.messages += 1
            if isinstance(verdict, Exception) or isinstance(current, Exception):
                _failed(report_, row, verdict if isinstance(verdict, Exception) else current)
                continue
            if current_engine is None and _unverdicted(row):
                report_.unverdicted[verdict.action.value] += 1
                continue
            _compare(report_, row, _fresh(verdict), current, samples)
        report(f"dry-run: {new.id}", len(batch))
    return report_


def _failed(report_: DryRunReport, row: Mapping[str, Any], exc: Any) -> None:
    report_.failed += 1
    if len(report_.failures) < MAX_FAILURES_SHOWN:
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        report_.failures.append({"record_id": str(row.get("record_id")), "reason": reason})


def _compare(
    report_: DryRunReport,
    row: Mapping[str, Any],
    after: _Current,
    before: _Current,
    samples: int,
) -> None:
    old, new = before.action, after.action
    report_.transitions[(old.value, new.value)] += 1
    if old == new:
        was, now = set(before.rule_ids), set(after.rule_ids)
        if was != now:
            report_.rematched += 1
            for rule_id in now - was:
                report_.rule_matches[rule_id]["now matches"] += 1
            for rule_id in was - now:
                report_.rule_matches[rule_id]["no longer matches"] += 1
        return
    report_.changed += 1
    changes: list[tuple[str, str]] = []
    if new in _GAINED:  # the rules that decide the new action
        changes += [(rule_id, _GAINED[new]) for rule_id in after.rule_ids if after.action_of(rule_id) == new]
    # the rules of the current verdict that no longer apply as they did: gone, or acting more weakly
    changes += [
        (rule_id, "released")
        for rule_id in before.rule_ids
        if rule_id not in after.rule_ids
        or after.action_of(rule_id).strength < before.action_of(rule_id).strength
    ]
    sample = None
    for rule_id, change in changes:
        entry = report_.rules[rule_id]
        entry.counts[change] += 1
        if len(entry.samples[change]) < samples:
            if sample is None:
                sample = safe_sample(row["body"], before.findings, after.findings, _archived_findings(row))
                report_.sampled.append(str(row.get("record_id")))
            entry.samples[change].append(sample)


def to_json_text(report_: DryRunReport) -> str:
    """The report as indented JSON: text as written, but the characters that break a line or steer
    a terminal (DEL, C1 controls, U+2028/U+2029, bidirectional controls; :mod:`pipelines.json_lines`)
    written as ``\\uXXXX``, which a JSON reader reads back as the same character."""
    from pipelines.json_lines import _ESCAPED

    text = json.dumps(report_.to_json(), indent=2, ensure_ascii=False, allow_nan=False)
    return _ESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _one_line(text: str) -> str:
    """A sample as one line of the text report: control characters and bidirectional controls as
    visible escapes (as ``vigil search`` shows them), line breaks as ``\\n``, so a message can
    neither drive the terminal nor add lines that read as part of the report."""
    from pipelines.search.render import safe

    return _LINE_BREAK.sub(lambda m: "\\n" if m.group() == "\n" else f"\\u{ord(m.group()):04x}", safe(text))


_LINE_BREAK = re.compile("[\n\u2028\u2029]")


def format_report(report_: DryRunReport) -> str:
    lines = [
        f"dry run: {report_.new_policy} against {report_.current_policy}",
        f"{report_.messages:,} message(s) replayed ({report_.skipped:,} record(s) without a body and "
        f"{report_.notices:,} of Vigil's own blocked-message notices skipped), "
        f"{report_.changed:,} would change action",
    ]
    if report_.rematched:
        shifts = "; ".join(
            f"{rule_id} " + ", ".join(f"{kind} {n:,}" for kind, n in sorted(c.items()))
            for rule_id, c in sorted(report_.rule_matches.items())
        )
        lines.append(
            f"{report_.rematched:,} would keep their action but be matched by other rules ({shifts})"
        )
    if report_.failed:
        lines.append(
            f"{report_.failed:,} message(s) could not be inspected and are not compared "
            "(fix the policy, e.g. a slow regex, and run again):"
        )
        lines.extend(f"  {_one_line(f['record_id'])}: {_one_line(f['reason'])}" for f in report_.failures)
    if report_.unverdicted:
        total = sum(report_.unverdicted.values())
        would = ", ".join(f"{action} {n:,}" for action, n in sorted(report_.unverdicted.items()))
        lines.append(
            f"{total:,} message(s) were archived without a DLP verdict (--no-dlp, or before Vigil had "
            f"DLP) and are not compared; the new policy would give them: {would}"
        )
    moved = [(k, n) for k, n in sorted(report_.transitions.items()) if k[0] != k[1]]
    if moved:
        lines.append("actions: " + ", ".join(f"{old} -> {new}: {n:,}" for (old, new), n in moved))
    if not report_.rules:
        lines.append("no rule changes what happens to any message")
        return "\n".join(lines)
    lines.append("")
    lines.append(f"{'rule':<36}" + "".join(f"{c:>10}" for c in CHANGES))
    for rule_id, entry in sorted(report_.rules.items()):
        lines.append(f"{rule_id:<36}" + "".join(f"{entry.counts.get(c, 0):>10,}" for c in CHANGES))
    for rule_id, entry in sorted(report_.rules.items()):
        for change in CHANGES:
            for sample in entry.samples.get(change, []):
                lines.append(f"  {rule_id} {change}: {_one_line(sample)}")
    return "\n".join(lines)
