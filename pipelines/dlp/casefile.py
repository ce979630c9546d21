"""A policy's own test cases: ``dlp_rules/<name>.tests.yaml`` next to ``dlp_rules/<name>.yaml``.

Each case is a text with what the policy must do with it: the action, the findings it must
report (entity plus the exact span, given as the value or as offsets) and, optionally, the exact
redacted text (``redacted:``), which pins the operator's output. Hash operators use a fixed test
key in case runs (:data:`TEST_HASH_KEY`) unless the named variable is set. A case that expects no
findings is a must-not-match case: realistic negatives (order numbers, dates) belong here. A case
the policy is known to get wrong is kept and marked ``known_miss: true`` with a ``note``; it is
reported but does not fail, and is reported as fixed once the policy gets it right.

``vigil dlp test`` runs every case file; pytest collects them too (``dlp_rules/conftest.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictInt, model_validator

from pipelines.dlp.engine import Engine, Scope, Verdict
from pipelines.dlp.policy import PolicySet, _compose, _Model, _node_at, _read, _validate, load_policy_set
from pipelines.errors import PolicyError
from pipelines.record import Channel, Direction, Kind


class ExpectedFinding(_Model):
    EXAMPLE: ClassVar[str] = """\
        findings:
          - {entity: CREDIT_CARD, value: "4012 8888 8888 1881"}
          - {entity: EMAIL_ADDRESS, span: [10, 27]}"""

    entity: str = Field(description="Entity name the finding must have.")
    value: str | None = Field(
        default=None,
        description="The exact text of the finding; it must occur once in the text (else give span).",
    )
    span: tuple[StrictInt, StrictInt] | None = Field(
        default=None, description="Offsets [start, end) in the text (whole numbers, as written)."
    )
    rule: str | None = Field(default=None, description="Rule id that must report it (optional).")

    @model_validator(mode="after")
    def _one_way(self) -> ExpectedFinding:
        if (self.value is None) == (self.span is None):
            raise ValueError("give the finding's position either as value: or as span: [start, end]")
        if self.value == "":
            raise ValueError(
                "value is empty, and a finding is never empty: copy the text it covers, e.g. "
                'value: "4012 8888 8888 1881"'
            )
        if self.span is not None and not 0 <= self.span[0] < self.span[1]:
            raise ValueError(
                f"span {list(self.span)} is not [start, end) with 0 <= start < end; offsets count "
                "characters from 0, e.g. span: [5, 24]"
            )
        return self


class Expectation(_Model):
    EXAMPLE: ClassVar[str] = """\
        expect:
          action: redact            # none, flag, redact or block
          findings:
            - {entity: CREDIT_CARD, value: "4012 8888 8888 1881"}
          redacted: "Card ***************1881"   # optional: the exact redacted text"""

    action: Literal["none", "flag", "redact", "block"] = Field(description="The verdict's action.")
    findings: list[ExpectedFinding] = Field(
        default_factory=list, description="Findings that must be reported."
    )
    only: bool = Field(default=True, strict=True, description="Fail on findings not listed (default true).")
    redacted: str | None = Field(
        default=None,
        description="The exact redacted text (optional): checks the operator (mask keep_last, replace "
        "label, hash with the test key).",
    )

    @model_validator(mode="after")
    def _can_pass(self) -> Expectation:
        # every action but none comes from a finding, and every finding brings one
        if self.action != "none" and self.only and not self.findings:
            raise ValueError(
                f"action: {self.action} needs a finding, but findings: is empty and only: is true "
                "(the default), which says the text has none: this case could never pass. List what "
                'must be found (findings: [{entity: CREDIT_CARD, value: "..."}]) or write only: false '
                "to check the action alone"
            )
        if self.action == "none" and self.findings:
            raise ValueError(
                "action: none means nothing is found, but findings: lists some: this case could never "
                "pass. Write the action those findings bring (flag, redact or block), or leave findings out"
            )
        return self


class CaseScope(_Model):
    EXAMPLE: ClassVar[str] = """\
        scope: {channel: sms, direction: outbound, kind: message, employee_groups: [traders]}"""

    channel: Channel | None = None
    direction: Direction | None = None
    kind: Kind | None = None
    org: str | None = None
    sub_org: str | None = None
    employee_groups: list[str] | None = Field(
        default=None, description="Groups of the employees taking part; left out: unknown (any group)."
    )

    def to_scope(self) -> Scope:
        return Scope(
            channel=self.channel.value if self.channel else None,
            direction=self.direction.value if self.direction else None,
            kind=self.kind.value if self.kind else None,
            org=self.org,
            sub_org=self.sub_org,
            employee_groups=None if self.employee_groups is None else frozenset(self.employee_groups),
        )


class Case(_Model):
    EXAMPLE: ClassVar[str] = """\
        - name: visa number with spaces
          text: "Card 4012 8888 8888 1881, expiry 12/27"
          scope: {direction: outbound}
          expect:
            action: redact
            findings:
              - {entity: CREDIT_CARD, value: "4012 8888 8888 1881"}"""

    name: str | None = Field(default=None, description="Short name shown in the report.")
    text: str = Field(description="The message text.")
    scope: CaseScope = Field(default_factory=CaseScope)
    expect: Expectation
    known_miss: bool = Field(
        default=False, strict=True, description="The policy is known to get this wrong; do not fail."
    )
    note: str | None = Field(
        default=None, description="Why a known miss is missed (required with known_miss)."
    )

    @model_validator(mode="after")
    def _spans_inside_the_text(self) -> Case:
        for f in self.expect.findings or ():
            if f.span is not None and f.span[1] > len(self.text):
                raise ValueError(
                    f"span {list(f.span)} ends after the text, which has {len(self.text)} characters"
                )
        return self

    @model_validator(mode="after")
    def _note_for_miss(self) -> Case:
        if self.known_miss and not (self.note and self.note.strip()):
            raise ValueError("a known_miss needs a note saying why the policy misses it")
        return self


class CaseFileSpec(_Model):
    EXAMPLE: ClassVar[str] = """\
        policy: pii.yaml            # default: this file's name without .tests
        cases:
          - name: ...
            text: ...
            expect: {action: none}"""

    policy: str | None = Field(default=None, description="Policy file (or set file) these cases test.")
    cases: list[Case] = Field(min_length=1)


#: what became of a case: a known miss that now passes is "fixed" (remove its marker)
Status = Literal["passed", "failed", "known_miss", "fixed"]


@dataclass(frozen=True)
class CaseResult:
    file: Path
    line: int
    name: str
    status: Status
    problems: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class CaseFile:
    path: Path
    policy_path: Path
    spec: CaseFileSpec
    lines: tuple[int, ...]


def policy_for_cases(path: Path) -> Path:
    return path.with_name(path.name.replace(".tests.yaml", ".yaml").replace(".tests.yml", ".yml"))


def load_cases(path: str | Path) -> CaseFile:
    path = Path(path)
    _, text = _read(path)
    data, node = _compose(path, text)
    spec = _validate(path, CaseFileSpec, data, node)
    policy_path = path.parent / spec.policy if spec.policy else policy_for_cases(path)
    if not policy_path.is_file():
        named, _ = _node_at(node, ("policy",))
        at = f":{named.start_mark.line + 1}" if spec.policy and named is not None else ""
        nearby = sorted(p.name for p in path.parent.glob("*.y*ml") if ".tests." not in p.name)
        fix = (
            f"`policy:` names a file beside this one ({', '.join(nearby[:6])}): correct it"
            if spec.policy
            else "name this file <policy>.tests.yaml after the policy it tests, or add `policy: FILE`"
        )
        raise PolicyError(f"{path}{at}: the policy {policy_path.name} these cases test does not exist; {fix}")
    cases_node, _ = _node_at(node, ("cases",))
    lines = tuple(n.start_mark.line + 1 for n in getattr(cases_node, "value", []))
    return CaseFile(path=path, policy_path=policy_path, spec=spec, lines=lines)


def _span(text: str, expected: ExpectedFinding) -> tuple[int, int] | None:
    if expected.span is not None:
        return expected.span
    assert expected.value is not None
    start = text.find(expected.value)
    return None if start < 0 else (start, start + len(expected.value))


def _why_missing(engine: Engine | None, case: Case, expected: ExpectedFinding, value: str) -> str:
    """Why the policy cannot report an expected finding, where the reason is in the policy rather
    than in its detectors: every rule that reports the entity is out of the case's scope, or has the
    value on its allow-list."""
    rules = [
        r
        for r in (engine.rules if engine else [])
        if expected.rule in (None, r.spec.id) and any(d.entity == expected.entity for d in r.spec.detectors)
    ]
    scope = case.scope.to_scope()
    if rules and not any(r.applies(scope) for r in rules):
        names = ", ".join(r.spec.id for r in rules)
        return f": {names} does not apply in this case's scope (see the rule's scope: and the case's)"
    allowing = [r.spec.id for r in rules if r.allow and r.allow.allows(value)]
    if allowing:
        return (
            f": the value is on the allow-list of {', '.join(allowing)} (allow: in the policy or the "
            "rule), and allow-listed values are never reported"
        )
    return ""


def check_case(case: Case, verdict: Verdict, engine: Engine | None = None) -> list[str]:
    """What is wrong with a verdict for a case (empty when it passes); with the engine that gave
    the verdict, a missing finding says why where the policy's scope or allow-list explains it."""
    problems = []
    if verdict.action.value != case.expect.action:
        problems.append(f"action is {verdict.action.value}, expected {case.expect.action}")
    got = {(f.entity, f.start, f.end, f.rule_id) for f in verdict.findings}
    matched: set[tuple[str, int, int, str]] = set()
    for expected in case.expect.findings:
        span = _span(case.text, expected)
        if span is None:
            problems.append(f"expected value {expected.value!r} does not occur in the text")
            continue
        hits = {
            g for g in got if g[0] == expected.entity and g[1:3] == span and (expected.rule in (None, g[3]))
        }
        if not hits:
            value = case.text[span[0] : span[1]]
            why = _why_missing(engine, case, expected, value)
            problems.append(f"missing {expected.entity} at {list(span)} ({value!r}){why}")
        matched |= hits
    if case.expect.redacted is not None and verdict.redacted_text != case.expect.redacted:
        problems.append(f"redacted text is {verdict.redacted_text!r}, expected {case.expect.redacted!r}")
    if case.expect.only:
        for entity, start, end, rule_id in sorted(got - matched, key=lambda g: (g[1], g[2], g[0])):
            if any((entity, start, end) == (m[0], m[1], m[2]) for m in matched):
                continue  # the same finding reported by another rule
            problems.append(
                f"unexpected {entity} at [{start}, {end}] ({case.text[start:end]!r}) by {rule_id}"
            )
    return problems


def prepare(path: str | Path, engines: dict[Path, Engine] | None = None) -> tuple[CaseFile, Engine]:
    """A case file and the engine its cases run on, checked as `vigil dlp test` and pytest both
    check them: the policy loads, and every case could pass (see :func:`_check_references`).
    ``engines`` caches the engine of each policy, by its resolved path."""
    cases = load_cases(path)
    key = cases.policy_path.resolve()
    engine = engines.get(key) if engines is not None else None
    if engine is None:
        engine = Engine(load_policy_set(cases.policy_path), hash_key_env=TEST_KEYS)
        if engines is not None:
            engines[key] = engine
    _check_references(cases, engine.policy_set)
    return cases, engine


def judge(case: Case, verdict: Verdict | Exception, engine: Engine | None = None) -> tuple[Status, list[str]]:
    """A case's status and what is wrong, for a verdict or the exception the engine raised."""
    if isinstance(verdict, Exception):
        # not a known miss either: `vigil run` would dead-letter such a message
        return "failed", [f"the DLP engine failed on this text: {verdict}"]
    problems = check_case(case, verdict, engine)
    if case.known_miss:
        return ("known_miss" if problems else "fixed"), problems
    return ("failed" if problems else "passed"), problems


def run_casefile(path: str | Path, engine: Engine | None = None) -> list[CaseResult]:
    """Run one case file; the engine is built from the policy the file names unless given."""
    if engine is None:
        cases, engine = prepare(path)
    else:
        cases = load_cases(path)
        _check_references(cases, engine.policy_set)
    # a text the engine fails on (a policy regex out of its time budget) fails its own case only
    verdicts = engine.inspect_each([(c.text, c.scope.to_scope()) for c in cases.spec.cases])
    results = []
    for i, (case, verdict) in enumerate(zip(cases.spec.cases, verdicts, strict=True)):
        line = cases.lines[i] if i < len(cases.lines) else 1
        status, problems = judge(case, verdict, engine)
        results.append(CaseResult(cases.path, line, case.name or case.text[:40], status, tuple(problems)))
    return results


def _check_references(cases: CaseFile, policy_set: PolicySet) -> None:
    """Mistakes in the cases themselves, named as such rather than as failing cases: a rule or
    entity the policy does not have (the case could never pass), a ``value`` that does not occur
    in the text (it could never be found) or occurs more than once (which one is meant is
    ambiguous)."""
    entities = {d.entity for _, rule in policy_set.rules.values() for d in rule.detectors}
    for i, case in enumerate(cases.spec.cases):
        where = f"{cases.path}:{cases.lines[i] if i < len(cases.lines) else 1}: cases[{i}]"
        for expected in case.expect.findings or ():
            if expected.rule is not None and expected.rule not in policy_set.rules:
                known = ", ".join(sorted(policy_set.rules))
                raise PolicyError(f"{where}: rule {expected.rule!r} is not in the policy; its rules: {known}")
            if expected.entity not in entities:
                raise PolicyError(
                    f"{where}: no detector of the policy reports {expected.entity!r}; it reports "
                    + ", ".join(sorted(entities))
                )
            if expected.rule is not None:
                own = {d.entity for d in policy_set.rules[expected.rule][1].detectors}
                if expected.entity not in own:
                    raise PolicyError(
                        f"{where}: rule {expected.rule!r} reports no {expected.entity!r}, only "
                        f"{', '.join(sorted(own))}; name the rule that does, or leave rule: out"
                    )
            value = expected.value
            if value is not None and value not in case.text:
                raise PolicyError(
                    f"{where}: value {value!r} does not occur in the text; copy it from the text as "
                    "written (full-width digits, invisible characters and all), or give span: [start, end]"
                )
            starts = _occurrences(case.text, value) if value is not None else []
            if value is not None and len(starts) > 1:
                # overlapping ones count: "aa" occurs twice in "aaa"
                spans = ", ".join(f"[{s}, {s + len(value)}]" for s in starts[:5])
                raise PolicyError(
                    f"{where}: value {value!r} occurs {len(starts)} times in the text (at {spans}"
                    f"{', ...' if len(starts) > 5 else ''}); say which with span: [start, end] (the "
                    f"first is span: [{starts[0]}, {starts[0] + len(value)}])"
                )


def _occurrences(text: str, value: str) -> list[int]:
    """Every start of ``value`` in ``text``, overlapping ones included (``str.count`` skips those)."""
    starts = []
    start = text.find(value)
    while start >= 0:
        starts.append(start)
        start = text.find(value, start + 1)
    return starts


class _TestKeys(dict[str, str]):
    """Environment for test runs and dry-runs: real variables, and a fixed key for any hash
    operator so that case files run, and dry-runs (whose samples show labels, never digests)
    replay, without the production secret on the author's machine."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        import os

        return os.environ.get(key) or TEST_HASH_KEY


class _ReplayKeys(dict[str, str]):
    """Environment for dry-runs: the fixed test key for every hash operator, whatever the real
    variable holds (a dry-run's samples show labels, never digests, so no key is ever used; a
    short or stale key where the author runs it must not stop the replay)."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return TEST_HASH_KEY


#: The HMAC key case files are run with (not a secret; long enough for the key length check).
TEST_HASH_KEY = "vigil-policy-test-key, not a secret: 0123456789"
TEST_KEYS = _TestKeys()
REPLAY_KEYS = _ReplayKeys()


def case_files(target: str | Path) -> list[Path]:
    """Case files for a policy file, a set file (its members) or a directory."""
    target = Path(target)
    if target.is_dir():
        # the set the folder stands for must load as `vigil run` would load it (missing members,
        # rule ids used twice, a policy without cases that does not compile), or passing cases
        # would vouch for a set the pipeline refuses
        load_policy_set(target)
        return sorted(p for p in target.iterdir() if p.name.endswith((".tests.yaml", ".tests.yml")))
    if target.name.endswith((".tests.yaml", ".tests.yml")):
        return [target]
    candidate = target.with_name(target.stem + ".tests" + target.suffix)
    if candidate.is_file():
        return [candidate]
    policy_set = load_policy_set(target)
    found = []
    for policy in policy_set.policies:
        tests = policy.path.with_name(policy.path.stem + ".tests" + policy.path.suffix)
        if tests.is_file():
            found.append(tests)
    return found
