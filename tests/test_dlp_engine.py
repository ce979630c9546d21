"""The engine: action precedence, scope, operators, reasons, batching, pickling."""

from __future__ import annotations

import pickle

import pytest
from dlp_helpers import engine_for, rule

from pipelines.dlp import Scope
from pipelines.errors import ConfigError
from pipelines.record import DlpAction

CARD = {"type": "presidio", "entity": "CREDIT_CARD"}
EMAIL = {"type": "presidio", "entity": "EMAIL_ADDRESS"}
WORDS = {"type": "lexicon", "terms": ["keep this between us"]}
TEXT = "keep this between us: card 4012 8888 8888 1881, mail ops@example.com"
K1 = "k1-" + "0123456789abcdef" * 2  # hash keys: at least 32 bytes
K2 = "k2-" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ({"a": "flag"}, "flag"),
        ({"a": "flag", "b": "redact"}, "redact"),
        ({"a": "block", "b": "redact", "c": "flag"}, "block"),
        ({"a": "redact", "b": "block"}, "block"),
        ({"c": "flag", "a": "flag"}, "flag"),
    ],
)
def test_strongest_action_wins(tmp_path, actions, expected) -> None:
    detectors = {"a": CARD, "b": EMAIL, "c": WORDS}
    rules = [rule(f"r.{k}", [detectors[k]], action=v) for k, v in actions.items()]
    verdict = engine_for(tmp_path, rules).inspect(TEXT)
    assert verdict.action == DlpAction(expected)
    assert verdict.rule_ids == sorted(f"r.{k}" for k in actions)


def test_verdict_fields_and_offsets_into_original(tmp_path) -> None:
    text = "mail ops@example.com, card ４０１２ ８８８８ ８８８８ １８８１"
    verdict = engine_for(tmp_path, [rule("r.card", [CARD]), rule("r.mail", [EMAIL], action="flag")]).inspect(
        text
    )
    assert verdict.action is DlpAction.REDACT
    spans = {f.entity: text[f.start : f.end] for f in verdict.findings}
    assert spans == {"EMAIL_ADDRESS": "ops@example.com", "CREDIT_CARD": "４０１２ ８８８８ ８８８８ １８８１"}
    # only redact/block findings are rewritten; flagged ones are alerts
    assert verdict.redacted_text == "mail ops@example.com, card <CREDIT_CARD>"
    assert verdict.reason == "Redacted: test rule r.card."
    assert [f.action for f in verdict.findings] == ["flag", "redact"]


def test_nothing_found(tmp_path) -> None:
    verdict = engine_for(tmp_path, [rule("r.card", [CARD])]).inspect("see you at noon")
    assert (verdict.action, verdict.findings, verdict.rule_ids, verdict.reason) == (
        DlpAction.NONE,
        [],
        [],
        None,
    )
    assert verdict.redacted_text == "see you at noon"


def test_block_reason_lists_block_rules_only(tmp_path) -> None:
    rules = [
        rule("r.b", [CARD], action="block", description="Cards must not be sent."),
        rule("r.a", [EMAIL], action="block", description="No e-mail addresses to clients"),
        rule("r.c", [WORDS], action="flag", description="Secrecy"),
    ]
    verdict = engine_for(tmp_path, rules).inspect(TEXT)
    assert verdict.blocked
    assert verdict.reason == "Blocked: No e-mail addresses to clients; Cards must not be sent."


def test_overlapping_findings_resolve_deterministically(tmp_path) -> None:
    # two rules see the same digits; the stronger action's operator rewrites the merged region
    rules = [
        rule("r.mask", [CARD], operator={"type": "mask", "keep_last": 4}),
        rule(
            "r.block", [{"type": "pattern", "entity": "DIGITS", "regex": r"8888 8888 1881"}], action="block"
        ),
    ]
    text = "card 4012 8888 8888 1881"
    first = engine_for(tmp_path / "a", rules).inspect(text)
    second = engine_for(tmp_path / "b", list(reversed(rules))).inspect(text)
    assert first.redacted_text == second.redacted_text == "card <DIGITS>"
    assert [(f.rule_id, f.start) for f in first.findings] == [(f.rule_id, f.start) for f in second.findings]
    # equal actions and scores: the longer span wins, then the smaller rule id
    tie = [
        rule("r.b", [CARD], operator={"type": "replace", "label": "[B]"}),
        rule("r.a", [CARD], operator={"type": "replace", "label": "[A]"}),
    ]
    assert engine_for(tmp_path / "c", tie).inspect(text).redacted_text == "card [A]"


def test_a_kept_tail_never_shows_another_findings_characters(tmp_path) -> None:
    # the card wins the merged region, but its last four would be "1 77": the weaker rule's value
    code = {"type": "pattern", "entity": "CODE", "regex": r"1881 77", "score": 0.5}
    rules = [rule("r.card", [CARD], operator={"type": "mask", "keep_last": 4}), rule("r.code", [code])]
    engine = engine_for(tmp_path, rules)
    overlapping = engine.inspect("card 4012 8888 8888 1881 77")
    assert [f.rule_id for f in overlapping.findings] == ["r.card", "r.code"]
    assert overlapping.redacted_text == "card " + "*" * 22
    # on its own, or with the other value inside it, the card keeps its tail
    assert engine.inspect("card 4012 8888 8888 1881").redacted_text == "card " + "*" * 15 + "1881"
    inner = engine_for(tmp_path / "b", [rules[0], rule("r.code", [{**code, "regex": "8888 18"}])])
    assert inner.inspect("card 4012 8888 8888 1881").redacted_text == "card " + "*" * 15 + "1881"


SCOPED = rule(
    "r.scoped",
    [CARD],
    scope={
        "channels": ["sms", "whatsapp"],
        "directions": ["outbound"],
        "kinds": ["message"],
        "orgs": ["acme"],
        "sub_orgs": ["hk"],
        "employee_groups": ["traders"],
    },
)
IN = {"channel": "sms", "direction": "outbound", "kind": "message", "org": "acme", "sub_org": "hk"}


@pytest.mark.parametrize(
    ("scope", "applies"),
    [
        (Scope(**IN, employee_groups=frozenset({"traders"})), True),
        (Scope(**IN, employee_groups=frozenset({"traders", "research"})), True),
        (Scope(**IN, employee_groups=frozenset({"research"})), False),
        (Scope(**IN), True),  # groups not given: unknown, like any other scope field left out
        (Scope(**IN, employee_groups=frozenset()), False),  # known: no employee of the group
        (Scope(**{**IN, "channel": "wechat"}, employee_groups=frozenset({"traders"})), False),
        (Scope(**{**IN, "direction": "inbound"}, employee_groups=frozenset({"traders"})), False),
        (Scope(**{**IN, "kind": "auto_message"}, employee_groups=frozenset({"traders"})), False),
        (Scope(**{**IN, "org": "other"}, employee_groups=frozenset({"traders"})), False),
        (Scope(**{**IN, "sub_org": "ny"}, employee_groups=frozenset({"traders"})), False),
        (Scope(employee_groups=frozenset({"traders"})), True),  # unknown fields do not restrict
    ],
)
def test_scope_matching(tmp_path, scope, applies) -> None:
    verdict = engine_for(tmp_path, [SCOPED]).inspect("card 4012 8888 8888 1881", scope)
    assert (verdict.action is DlpAction.REDACT) is applies


def test_scope_from_archived_row() -> None:
    row = {
        "channel": "wechat",
        "direction": "outbound",
        "kind": "message",
        "org": "acme",
        "sub_org": None,
        "sender": {"id": "e1", "role": "employee", "groups": ["traders"]},
        "recipients": [
            {"id": "c1", "role": "customer", "groups": ["ignored"]},
            {"id": "e2", "role": "employee", "groups": ["research"]},
        ],
    }
    assert Scope.from_row(row) == Scope(
        channel="wechat",
        direction="outbound",
        kind="message",
        org="acme",
        sub_org="",  # a record without one is in no sub-organisation (not an unknown one)
        employee_groups=frozenset({"traders", "research"}),
    )


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ({"type": "replace"}, "card <CREDIT_CARD> ok"),
        ({"type": "replace", "label": "[card]"}, "card [card] ok"),
        ({"type": "mask"}, "card ******************* ok"),
        ({"type": "mask", "masking_char": "#", "keep_last": 4}, "card ###############1881 ok"),
    ],
)
def test_operators(tmp_path, operator, expected) -> None:
    engine = engine_for(tmp_path, [rule("r.card", [CARD], operator=operator)])
    assert engine.inspect("card 4012 8888 8888 1881 ok").redacted_text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # bidi controls around the number stay where they are, outside the finding
        ("card \u202e4012 8888 8888 1881\u202c ok", "card \u202e###############1881\u202c ok"),
        ("card \u20664012888888881881\u2069 ok", "card \u2066############1881\u2069 ok"),
        # invisible characters inside the number are part of it
        ("card 4012\u200b8888\u200b8888\u200b1881\u200b ok", "card ###############1881\u200b ok"),
        # a right-to-left override shows the number reversed (1881 8888 8888 2104 on screen): it is
        # still the card a copy and paste gives
        ("card \u202e4012 8888 8888 1881\u202c ok", "card \u202e###############1881\u202c ok"),
        # and the number sent reversed under one shows the card on screen: caught too; the last
        # digits as stored are kept, which the screen shows first (4012###...)
        ("card \u202e1881 8888 8888 2104\u202c ok", "card \u202e###############2104\u202c ok"),
    ],
)
def test_keep_last_shows_the_last_digits_however_the_number_is_wrapped(tmp_path, text, expected) -> None:
    operator = {"type": "mask", "masking_char": "#", "keep_last": 4}
    engine = engine_for(tmp_path, [rule("r.card", [CARD], operator=operator)])
    assert engine.inspect(text).redacted_text == expected


@pytest.mark.parametrize(
    ("keep_last", "text", "expected"),
    [
        (4, "pin 4012 ok", "pin #### ok"),  # as many digits as keep_last: none shown
        (4, "pin 40-12 ok", "pin ##### ok"),
        (2, "pin 40-12 ok", "pin ###12 ok"),
        (4, "ref 40-12-9 ok", "ref #0-12-9 ok"),  # the last four digits, the dashes between them
        (0, "pin 4012 ok", "pin #### ok"),
        # a character that stands for two digits counts as two: never more than keep_last shown
        (4, "pin 4012-88-⑱81 ok", "pin ########⑱81 ok"),
        (4, "pin ㊵⑫㉞㉜ ok", "pin ##㉞㉜ ok"),
        (3, "pin 4012-㉜ ok", "pin ###2-㉜ ok"),
        (3, "pin 4012-㉞㉜ ok", "pin ######㉜ ok"),  # ㉞ would make four
    ],
)
def test_keep_last_counts_letters_and_digits_and_never_shows_the_whole_value(
    tmp_path, keep_last, text, expected
) -> None:
    pin = {"type": "pattern", "entity": "PIN", "regex": r"(?<!\d)\d[\d-]*\d(?!\d)"}
    operator = {"type": "mask", "masking_char": "#", "keep_last": keep_last}
    engine = engine_for(tmp_path, [rule("r.pin", [pin], operator=operator)])
    assert engine.inspect(text).redacted_text == expected


def test_hash_operator_is_keyed(tmp_path) -> None:
    op = {"type": "hash", "key_env": "TEST_DLP_KEY", "length": 16}
    text = "card 4012 8888 8888 1881 ok"
    one = engine_for(tmp_path / "1", [rule("r", [CARD], operator=op)], env={"TEST_DLP_KEY": K1}).inspect(text)
    same = engine_for(tmp_path / "2", [rule("r", [CARD], operator=op)], env={"TEST_DLP_KEY": K1}).inspect(
        text
    )
    other = engine_for(tmp_path / "3", [rule("r", [CARD], operator=op)], env={"TEST_DLP_KEY": K2}).inspect(
        text
    )
    digest = one.redacted_text.split()[1]
    assert len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)
    assert one.redacted_text == same.redacted_text != other.redacted_text
    assert "4012" not in one.redacted_text


def test_hash_operator_needs_its_key(tmp_path) -> None:
    op = {"type": "hash", "key_env": "TEST_DLP_KEY_UNSET"}
    with pytest.raises(ConfigError, match=r"TEST_DLP_KEY_UNSET.*not set"):
        engine_for(tmp_path, [rule("r", [CARD], operator=op)], env={})


def test_inspect_many_matches_inspect_one_by_one(tmp_path) -> None:
    rules = [
        rule("r.card", [CARD, {"type": "pattern", "entity": "EMP", "regex": r"^EMP-\d+$"}]),
        rule("r.mail", [EMAIL], action="block"),
        rule("r.words", [WORDS], action="flag"),
        rule("r.phone", [{"type": "presidio", "entity": "PHONE_NUMBER", "min_score": 0.4}], action="flag"),
    ]
    engine = engine_for(tmp_path, rules)
    texts = [
        TEXT,
        "EMP-42",
        "line one\nEMP-42",  # ^...$ is single-line: must not match in the middle of a text
        "call +44 20 7946 0958",
        "4012 8888",
        "8888 1881",  # the two halves of a card in adjacent texts must not join
        "",
        "keep this",
        "between us",
        "ops@example.com",
    ] * 3
    scopes = [Scope(direction=d) for d in ("outbound", "inbound")]
    items = [(t, scopes[i % 2]) for i, t in enumerate(texts)]
    batched = engine.inspect_many(items)
    assert batched == [engine.inspect(t, s) for t, s in items]
    assert [v.action.value for v in batched[:10]] == [
        "block",
        "redact",
        "none",
        "flag",
        "none",
        "none",
        "none",
        "none",
        "none",
        "block",
    ]


def test_engine_pickles_and_rebuilds(tmp_path) -> None:
    engine = engine_for(tmp_path, [rule("r.card", [CARD])])
    clone = pickle.loads(pickle.dumps(engine))
    assert clone.inspect(TEXT) == engine.inspect(TEXT)
