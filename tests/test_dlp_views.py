"""Views of archived rows for each destination, from offsets alone (no detection re-run)."""

from __future__ import annotations

import pytest
from dlp_helpers import rule, write_policy

from pipelines.dlp import Engine, load_policy_set, view_text
from pipelines.errors import ConfigError

CARD = {"type": "presidio", "entity": "CREDIT_CARD"}
WORDS = {"type": "lexicon", "terms": ["between us"]}
BODY = "between us: card 4012 8888 8888 1881"


def archived(policy_set, body: str = BODY) -> dict:
    """A row as the pipeline archives it: original body plus the verdict."""
    verdict = Engine(policy_set).inspect(body)
    return {
        "body": body,
        "dlp_action": verdict.action.value,
        "blocked": verdict.blocked,
        "dlp_findings": [f.model_dump() for f in verdict.findings],
    }


@pytest.fixture
def policy_set(tmp_path):
    rules = [
        rule("p.card", [CARD], operator={"type": "mask", "keep_last": 4}),
        rule("p.words", [WORDS], action="flag"),
    ]
    views = {
        "delivery": "redacted",
        "export": {"show": "redacted", "operator": {"type": "replace"}},
        "crm": "withheld",
    }
    return load_policy_set(write_policy(tmp_path, rules, views=views))


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("delivery", "between us: card ***************1881"),  # the rule's operator
        ("export", "between us: card <CREDIT_CARD>"),  # the destination's operator
        ("crm", None),  # withheld
    ],
)
def test_destinations(policy_set, destination, expected) -> None:
    assert view_text(archived(policy_set), destination, policy_set) == expected


def test_view_needs_no_detection(policy_set) -> None:
    # findings are applied as stored: a finding at arbitrary offsets is rewritten even though no
    # detector would find anything there now
    row = {
        "body": "hello world",
        "dlp_action": "redact",
        "dlp_findings": [
            {
                "rule_id": "p.card",
                "entity": "CREDIT_CARD",
                "detector": "x",
                "start": 6,
                "end": 11,
                "score": 1.0,
                "action": "redact",
            }
        ],
    }
    assert view_text(row, "delivery", policy_set) == "hello *orld"  # mask, keep_last 4


def test_blocked_messages_are_not_delivered(tmp_path) -> None:
    policy_set = load_policy_set(write_policy(tmp_path, [rule("p.card", [CARD], action="block")]))
    row = archived(policy_set)
    assert row["blocked"]
    assert view_text(row, "delivery", policy_set) is None
    assert view_text(row, "export", policy_set) == "between us: card <CREDIT_CARD>"


def test_flag_only_rows_are_shown_unchanged(policy_set) -> None:
    row = archived(policy_set, "keep it between us")
    assert row["dlp_action"] == "flag"
    assert view_text(row, "delivery", policy_set) == "keep it between us"


def test_rows_without_findings_and_without_body(policy_set) -> None:
    assert view_text({"body": "hi", "dlp_findings": []}, "crm", policy_set) == "hi"
    assert view_text({"body": None, "dlp_findings": []}, "export", policy_set) is None


def test_findings_of_removed_rules_stay_redacted(policy_set) -> None:
    row = {
        "body": "id 12345",
        "dlp_findings": [
            {
                "rule_id": "gone.rule",
                "entity": "X",
                "detector": "x",
                "start": 3,
                "end": 8,
                "score": 1,
                "action": "redact",
            }
        ],
    }
    assert view_text(row, "export", policy_set) == "id <X>"


def test_unknown_destination(policy_set) -> None:
    with pytest.raises(ConfigError, match="unknown destination"):
        view_text({"body": "x"}, "printer", policy_set)
