"""Red-team review of rule scoping, action resolution and views.

Scopes are checked where they matter, in `vigil run` on hand-written events (inbound, outbound,
internal, auto-messages, a group chat with employees of two groups, organisation ids in another
case), and at load (a scope value that names nothing real is an error at its line, never a rule
that silently never fires). Action resolution and redaction are checked for order independence and
for what a merged region may show; views for whose operator rewrites which finding.
"""

from __future__ import annotations

import itertools
import random
import textwrap
from pathlib import Path

import pytest
from dlp_helpers import engine_for, rule, write_policy
from factories import CUSTOMER, EMPLOYEE, event, write_jsonl
from helpers import ingest

from pipelines.archive import reader
from pipelines.dlp import Engine, Scope, load_policy, load_policy_set, view_text
from pipelines.dlp.redact import Span, finding_rank, rewrite
from pipelines.errors import PolicyError
from pipelines.record import DlpAction

HASH_ENV = {"VIGIL_DLP_HASH_KEY": "k" * 40}


def lexicon(entity: str, term: str = "zebra") -> list[dict]:
    return [{"type": "lexicon", "entity": entity, "terms": [term]}]


def fired(engine: Engine, scope: Scope, text: str = "zebra") -> set[str]:
    return set(engine.inspect(text, scope).rule_ids)


def archived(policy_set, body: str, env: dict[str, str] | None = None) -> dict:
    verdict = Engine(policy_set, hash_key_env=env).inspect(body)
    return {
        "body": body,
        "dlp_action": verdict.action.value,
        "blocked": verdict.blocked,
        "dlp_findings": [f.model_dump(mode="json") for f in verdict.findings],
        "body_redacted": verdict.redacted_text,
    }


# ---------------------------------------------------------------------------------------------
# scope: free ids compared ignoring case


def test_org_sub_org_and_group_scopes_ignore_case(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        [
            rule("s.org", lexicon("W_ORG"), action="flag", scope={"orgs": ["ACME"]}),
            rule("s.sub", lexicon("W_SUB"), action="flag", scope={"sub_orgs": ["Wealth-HK"]}),
            rule("s.group", lexicon("W_GROUP"), action="flag", scope={"employee_groups": ["Traders"]}),
        ],
    )
    everywhere = {"s.org", "s.sub", "s.group"}
    assert fired(engine, Scope(org="acme", sub_org="wealth-hk", employee_groups=frozenset({"traders"}))) == (
        everywhere
    )
    assert fired(engine, Scope(org="Acme", sub_org="WEALTH-HK", employee_groups=frozenset({"TRADERS"}))) == (
        everywhere
    )
    # and still nowhere else
    assert (
        fired(engine, Scope(org="acme-2", sub_org="wealth-sg", employee_groups=frozenset({"advisors"})))
        == set()
    )
    assert fired(engine, Scope(employee_groups=frozenset())) == {"s.org", "s.sub"}


def test_an_archived_record_without_a_sub_organisation_is_outside_a_sub_org_scope(tmp_path: Path) -> None:
    # a record's sub_org is optional; one without is in no sub-organisation, not an unknown one
    # that every sub_orgs: list takes (before: a rule for hong-kong blocked it)
    engine = engine_for(
        tmp_path,
        [
            rule("s.sub", lexicon("W_SUB"), action="flag", scope={"sub_orgs": ["hong-kong"]}),
            rule("s.any", lexicon("W_ANY"), action="flag"),
        ],
    )
    base = {"channel": "sms", "direction": "outbound", "kind": "message", "org": "acme"}
    for sub_org, expected in (
        ("hong-kong", {"s.sub", "s.any"}),
        ("london", {"s.any"}),
        (None, {"s.any"}),
        ("", {"s.any"}),
    ):
        assert fired(engine, Scope.from_row({**base, "sub_org": sub_org})) == expected, sub_org
    assert fired(engine, Scope.from_row(base)) == {"s.any"}  # the key missing altogether
    # a scanned text that does not say is still unknown, and takes the rule
    assert fired(engine, Scope(org="acme")) == {"s.sub", "s.any"}


# ---------------------------------------------------------------------------------------------
# scope: names that mean nothing are refused at their line


def _policy_with_scope(tmp_path: Path, scope_yaml: str) -> Path:
    path = tmp_path / "scoped.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            id: scoped
            description: Scope test.
            rules:
              - id: scoped.word
                description: A word.
                severity: low
                action: flag
                scope:
            {scope}
                detectors:
                  - type: lexicon
                    terms: [zebra]
            """
        ).format(scope=textwrap.indent(scope_yaml, " " * 6)),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("scope_yaml", "wanted"),
    [
        ("channels: [whatsap]", ["'whatsap'", "'whatsapp'", "'wechat'"]),
        ("channels: [WhatsApp]", ["'WhatsApp'", "'whatsapp'"]),
        ("directions: [outgoing]", ["'outgoing'", "'outbound'", "'internal'"]),
        ("kinds: [automessage]", ["'automessage'", "'auto_message'"]),
    ],
)
def test_a_scope_value_that_names_nothing_is_refused_with_the_valid_ones(
    tmp_path: Path, scope_yaml: str, wanted: list[str]
) -> None:
    path = _policy_with_scope(tmp_path, scope_yaml)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}:9: rules[0].scope.")
    for word in wanted:
        assert word in message


@pytest.mark.parametrize("key", ["channels", "directions", "kinds", "orgs", "sub_orgs", "employee_groups"])
def test_a_scope_key_without_a_list_is_refused_not_read_as_all(tmp_path: Path, key: str) -> None:
    # `directions:` with the values forgotten is YAML null; read as "all", a block rule meant for
    # outbound messages would block inbound ones too
    path = _policy_with_scope(tmp_path, f"{key}:")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}:9: rules[0].scope.{key}: ")
    assert "leave the key out to mean all" in message


# ---------------------------------------------------------------------------------------------
# scope in the pipeline: exactly where it should fire

TRADER = {
    "id": "emp-2",
    "name": "Tom Trader",
    "role": "employee",
    "handle": "+12125550102",
    "groups": ["Traders"],
}
SYSTEM = {"id": "sys", "role": "system", "groups": []}

SCOPED = """\
id: scoped
description: Scope probe.
rules:
  - id: s.outbound
    description: outbound
    severity: low
    action: flag
    scope: {directions: [outbound]}
    detectors: [{type: lexicon, entity: W_OUT, terms: [zebra]}]
  - id: s.inbound
    description: inbound
    severity: low
    action: flag
    scope: {directions: [inbound]}
    detectors: [{type: lexicon, entity: W_IN, terms: [zebra]}]
  - id: s.internal
    description: internal
    severity: low
    action: flag
    scope: {directions: [internal]}
    detectors: [{type: lexicon, entity: W_INT, terms: [zebra]}]
  - id: s.auto
    description: auto-messages
    severity: low
    action: flag
    scope: {kinds: [auto_message]}
    detectors: [{type: lexicon, entity: W_AUTO, terms: [zebra]}]
  - id: s.message
    description: messages
    severity: low
    action: flag
    scope: {kinds: [message], channels: [whatsapp]}
    detectors: [{type: lexicon, entity: W_MSG, terms: [zebra]}]
  - id: s.acme
    description: the ACME org
    severity: low
    action: flag
    scope: {orgs: [ACME], sub_orgs: [Wealth-HK]}
    detectors: [{type: lexicon, entity: W_ORG, terms: [zebra]}]
  - id: s.traders
    description: traders
    severity: low
    action: flag
    scope: {employee_groups: [traders]}
    detectors: [{type: lexicon, entity: W_TRD, terms: [zebra]}]
  - id: s.password
    description: Passwords must not be shared
    severity: high
    action: block
    detectors: [{type: pattern, entity: PASSWORD, regex: '(?<=password is )\\S+', score: 0.9}]
"""


def test_scopes_in_the_pipeline(tmp_path: Path) -> None:
    policy = tmp_path / "scoped.yaml"
    policy.write_text(SCOPED, encoding="utf-8")
    inbound = {"direction": "inbound", "sender": CUSTOMER, "recipients": [EMPLOYEE]}
    internal = {"direction": "internal", "recipients": [TRADER], "participants": [EMPLOYEE, TRADER]}
    auto = {
        "kind": "auto_message",
        "event_type": "welcome",
        "audience": "customer",
        "direction": "system",
        "sender": SYSTEM,
        "recipients": [CUSTOMER],
    }
    group = {"is_group": True, "participants": [EMPLOYEE, TRADER, CUSTOMER], "recipients": [TRADER, CUSTOMER]}
    items = [
        event(1, body="zebra"),  # outbound, advisor to customer, org acme / wealth-hk
        event(2, body="zebra", **inbound),
        event(3, body="zebra", **internal),  # advisor to a trader
        event(4, body="zebra", **auto),
        event(5, body="zebra", **group),  # a group chat with an advisor and a trader
        event(6, body="zebra", org="Acme", sub_org="WEALTH-HK", channel="sms"),
        event(7, body="zebra", org="other-org"),
        event(8, body="password is Hunter2Hunter2!x", **inbound),
        event(9, body="password is Hunter2Hunter2!x", **internal),
        event(10, body="password is Hunter2Hunter2!x"),
    ]
    write_jsonl(tmp_path / "in" / "day.jsonl", items)
    archive = tmp_path / "archive"
    ingest(tmp_path / "in", archive, policy=str(policy))
    rows = {r["event_id"]: r for r in reader.iter_rows(archive)}

    def rules(n: int) -> set[str]:
        return set(rows[f"evt-{n:06d}"]["dlp_rule_ids"] or [])

    assert rules(1) == {"s.outbound", "s.message", "s.acme"}
    assert rules(2) == {"s.inbound", "s.message", "s.acme"}
    assert rules(3) == {"s.internal", "s.message", "s.acme", "s.traders"}
    assert rules(4) == {"s.auto", "s.acme"}
    assert rules(5) == {"s.outbound", "s.message", "s.acme", "s.traders"}
    assert rules(6) == {"s.outbound", "s.acme"}  # sms: not s.message; the org in another case
    assert rules(7) == {"s.outbound", "s.message"}

    # a block holds the message back whatever its direction; only a message an employee wrote
    # (outbound or internal) gets a notice (the README's "Actions")
    for n in (8, 9, 10):
        row = rows[f"evt-{n:06d}"]
        assert row["blocked"] is True and row["dlp_action"] == "block"
        assert "Hunter2" not in row["body_redacted"]
    notices = [r for r in rows.values() if r["event_type"] == "dlp_blocked_notice"]
    assert {dict(n["attributes"])["blocked_record_id"] for n in notices} == {
        rows["evt-000009"]["record_id"],
        rows["evt-000010"]["record_id"],
    }
    assert all(n["body"].startswith("Your WhatsApp message was not delivered: ") for n in notices)
    # the secret is in the archived original only: not in findings, attributes or notices
    for row in rows.values():
        stored = {k: v for k, v in row.items() if k not in ("body", "parties")}
        if row["event_type"] == "dlp_blocked_notice":
            stored["body"] = row["body"]
        assert "Hunter2" not in repr(stored)


# ---------------------------------------------------------------------------------------------
# action resolution and merged regions

CARD = {"type": "pattern", "entity": "CARD", "regex": r"\d{16}", "validator": "luhn"}
PIN = {"type": "pattern", "entity": "PIN", "regex": r"\d{4}(?= is my pin)", "score": 0.9}


def test_a_short_stronger_finding_ending_a_longer_one_is_not_shown_as_its_tail(tmp_path: Path) -> None:
    # the block rule's own mask hides a four-digit value whole; merged with the card it ends, it
    # must not become the card's visible last four
    mask = {"type": "mask", "keep_last": 4}
    engine = engine_for(
        tmp_path, [rule("k.card", [CARD], operator=mask), rule("k.pin", [PIN], action="block", operator=mask)]
    )
    alone = engine.inspect("pin: 1234 is my pin")
    assert alone.redacted_text == "pin: **** is my pin"
    verdict = engine.inspect("4012888888881881 is my pin")
    assert verdict.action is DlpAction.BLOCK
    assert "1881" not in verdict.redacted_text
    assert verdict.redacted_text == "*" * 16 + " is my pin"
    # a card alone still shows its last four
    assert engine.inspect("4012888888881881").redacted_text == "************1881"


def _op(kind: str, **options):
    from pipelines.dlp.policy import OperatorSpec

    return OperatorSpec(type=kind, **options)


def test_spans_merge_alike_in_any_order_around_emoji_and_marks() -> None:
    text = "\U0001f4b3e\u0301" + "4012888888881881" + "\u0301\U0001f44d"
    s = 3
    spans = [
        Span(s, s + 16, "CARD", _op("mask", keep_last=4), finding_rank("redact", 1.0, s, s + 16, "p.card")),
        Span(s + 4, s + 8, "MID", _op("replace"), finding_rank("flag", 1.0, s + 4, s + 8, "a.mid")),
        Span(s + 16, s + 17, "ADJ", _op("replace"), finding_rank("redact", 0.5, s + 16, s + 17, "b.adj")),
        Span(0, 1, "START", _op("replace"), finding_rank("redact", 0.5, 0, 1, "c.start")),
        Span(len(text) - 1, len(text), "END", _op("replace"), finding_rank("redact", 0.5, 0, 1, "d.end")),
    ]
    outputs = {rewrite(text, list(p)) for p in itertools.permutations(spans)}
    assert len(outputs) == 1
    # flag-strength MID is outranked by the card; ADJ only touches the card, so it stays apart
    assert outputs == {"<START>e\u0301" + "*" * 12 + "1881" + "<ADJ><END>"}


def test_strongest_action_wins_whatever_the_rule_and_file_order(tmp_path: Path) -> None:
    texts = [
        "pw password is 4012888888881881 is my pin",
        "4012888888881881 is my pin",
        "password is 4012888888881881",
        "zebra 4012888888881881 zebra",
    ]
    rules = [
        rule("z.card", [CARD], operator={"type": "mask", "keep_last": 4}),
        rule("a.pin", [PIN], action="block", operator={"type": "hash", "key_env": "VIGIL_DLP_HASH_KEY"}),
        rule("m.pw", [{"type": "pattern", "entity": "PW", "regex": r"(?<=password is )\S+"}], action="block"),
        rule("b.zebra", lexicon("ZEBRA"), action="flag"),
        rule("c.card-2", [CARD], action="redact", operator={"type": "replace", "label": "[card]"}),
    ]
    results = set()
    for seed in range(4):
        shuffled = rules[:]
        random.Random(seed).shuffle(shuffled)
        directory = tmp_path / f"order-{seed}"
        files = [write_policy(directory, [r], name=f"p{i}") for i, r in enumerate(shuffled)]
        random.Random(seed).shuffle(files)
        engine = Engine(load_policy_set(files), hash_key_env=HASH_ENV)
        verdicts = engine.inspect_many([(t, Scope()) for t in texts])
        results.add(tuple((v.action, tuple(v.findings), v.redacted_text, v.reason) for v in verdicts))
    assert len(results) == 1
    (outcome,) = results
    assert [action for action, *_ in outcome] == [
        DlpAction.BLOCK,
        DlpAction.BLOCK,
        DlpAction.BLOCK,
        DlpAction.REDACT,
    ]


def test_a_view_rebuilt_from_archived_findings_picks_the_engine_winner(tmp_path: Path) -> None:
    # scores that differ past the fourth decimal are archived equal: the engine must not break the
    # tie on digits the view no longer has, or delivery would differ from body_redacted
    digits = {"type": "pattern", "entity": "DIGITS", "regex": r"\d{8}"}
    policy_set = load_policy_set(
        write_policy(
            tmp_path,
            [
                rule("a.low", [{**digits, "score": 0.85001}], operator={"type": "replace", "label": "[A]"}),
                rule("b.high", [{**digits, "score": 0.85004}], operator={"type": "replace", "label": "[B]"}),
            ],
        )
    )
    row = archived(policy_set, "ref 12345678")
    assert view_text(row, "delivery", policy_set) == row["body_redacted"]


# ---------------------------------------------------------------------------------------------
# views


def test_a_view_operator_rewrites_only_its_own_policys_findings(tmp_path: Path) -> None:
    cards = write_policy(
        tmp_path,
        [rule("cards.number", [CARD])],
        name="cards",
        views={"export": {"show": "redacted", "operator": {"type": "mask", "keep_last": 4}}},
    )
    passwords = write_policy(
        tmp_path,
        [rule("pw.password", [{"type": "pattern", "entity": "PASSWORD", "regex": r"(?<=password is )\S+"}])],
        name="pw",
        views={
            "export": "redacted",
            "crm": {"show": "redacted", "operator": {"type": "hash", "key_env": "K"}},
        },
    )
    env = {"K": "k" * 40}
    for files in ([cards, passwords], [passwords, cards]):
        policy_set = load_policy_set(files)
        for body in (
            "card 4012888888881881 and password is Hunter2Hunter2!x",
            "password is Hunter2Hunter2!x and card 4012888888881881",
        ):
            row = archived(policy_set, body, env)
            export = view_text(row, "export", policy_set, env=env)
            assert export is not None
            assert "<PASSWORD>" in export and "2!x" not in export  # the password policy's own operator
            assert "************1881" in export  # the card policy's view operator
            crm = view_text(row, "crm", policy_set, env=env)
            assert crm is not None
            assert "<CARD>" in crm  # the card policy has no CRM operator: its rule's (replace)
            assert "Hunter2" not in crm and "<PASSWORD>" not in crm  # hashed by its own policy
