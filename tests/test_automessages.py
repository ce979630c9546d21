"""Auto-message wording: templates per event type and audience, overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from _simulate_support import WEEK, events

from pipelines.automessages import TEMPLATES_ENV, available, render, template_candidates
from pipelines.errors import ConfigError
from pipelines.record import Audience, EventType, Kind

NAMES = {"contact_name": "Wang Fang", "employee_name": "Ann Lee", "firm": "Meridian Harbour Capital"}


def test_every_auto_message_the_simulator_emits_has_a_template() -> None:
    used = {(e.channel, e.event_type, e.audience) for e in events(WEEK) if e.kind == Kind.AUTO_MESSAGE}
    assert len({(t, a) for _, t, a in used}) > 30
    have = available()
    for channel, event_type, audience in used:
        assert (channel, event_type, audience) in have or (None, event_type, audience) in have, (
            f"no template for {event_type}.{audience} ({channel})"
        )


def test_template_names_use_known_event_types_and_audiences() -> None:
    audiences = {a.value for a in Audience}
    for channel, event_type, audience in available():
        assert event_type in {t.value for t in EventType}, event_type
        assert audience in audiences, audience
        assert channel is None or channel in {
            "sms",
            "mms",
            "voicemail",
            "whatsapp",
            "wechat",
            "line",
            "teams",
        }


@pytest.mark.parametrize(
    ("rule_ids", "reason", "expected"),
    [
        (["pii.card"], "Card numbers may not be sent.", "policy (pii.card). Card numbers may not be sent."),
        (["pii.card", "pii.iban"], "", "policies (pii.card, pii.iban)."),
    ],
)
def test_dlp_blocked_notice_names_the_rules(rule_ids: list[str], reason: str, expected: str) -> None:
    text = render("dlp_blocked_notice", "employee", channel="whatsapp", rule_ids=rule_ids, reason=reason)
    assert "WhatsApp message was not delivered" in text
    assert expected in text
    assert "\n" not in text and "  " not in text


@pytest.mark.parametrize(
    ("lang", "marker"),
    [("en", "Welcome"), ("zh", "欢迎"), (None, "Welcome")],
)
def test_customer_notices_follow_the_contacts_language(lang: str | None, marker: str) -> None:
    context = {**NAMES, "consecutive_limit": 3, "inactive_hours": 48, "leave_keyword": "#LEAVE"}
    if lang is not None:
        context["lang"] = lang
    text = render("welcome", "customer", channel="wechat", **context)
    assert marker in text and "#LEAVE" in text and "48" in text


def test_channel_specific_template_wins_over_the_generic_one() -> None:
    generic = render(
        "welcome",
        "customer",
        channel="wechat",
        consecutive_limit=3,
        inactive_hours=48,
        leave_keyword="#LEAVE",
        **NAMES,
    )
    line = render("welcome", "customer", channel="line", **NAMES)
    assert "#LEAVE" in generic and "#LEAVE" not in line
    assert template_candidates("welcome", "customer", "line") == [
        "line/welcome.customer.j2",
        "welcome.customer.j2",
    ]


def test_override_directory_from_argument_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    firm = tmp_path / "firm"
    (firm / "line").mkdir(parents=True)
    (firm / "opted_in.employee.j2").write_text("{{ contact_name }} said yes (firm wording).")
    (firm / "line" / "welcome.employee.j2").write_text("LINE hello for {{ contact_name }}.")
    assert render("opted_in", "employee", templates_dir=firm, **NAMES) == "Wang Fang said yes (firm wording)."
    monkeypatch.setenv(TEMPLATES_ENV, str(firm))
    assert render("opted_in", "employee", **NAMES) == "Wang Fang said yes (firm wording)."
    assert render("welcome", "employee", channel="line", **NAMES) == "LINE hello for Wang Fang."
    # the firm's generic file also beats a packaged channel-specific one
    (firm / "welcome.customer.j2").write_text("Firm welcome.")
    assert render("welcome", "customer", channel="line", **NAMES) == "Firm welcome."
    # templates the firm did not override still come from the package
    assert "most the policy allows" in render("queue_full", "employee", limit=5, **NAMES)


def test_missing_template_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no_such_event\.employee\.j2"):
        render("no_such_event", "employee")


def test_missing_override_directory_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEMPLATES_ENV, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="VIGIL_TEMPLATES"):
        render("opted_in", "employee", **NAMES)


def test_a_variable_the_caller_did_not_pass_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"opted_in\.employee\.j2.*contact_name"):
        render("opted_in", "employee")


def test_broken_template_syntax_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "opted_in.employee.j2").write_text("{% if %}")
    with pytest.raises(ConfigError, match="line 1"):
        render("opted_in", "employee", templates_dir=tmp_path, **NAMES)


def test_wrapped_lines_join_and_blank_lines_start_paragraphs(tmp_path: Path) -> None:
    (tmp_path / "validation_help.customer.j2").write_text("First line\ncontinues.\n\nSecond   paragraph.\n")
    assert (
        render("validation_help", "customer", templates_dir=tmp_path)
        == "First line continues.\nSecond paragraph."
    )
