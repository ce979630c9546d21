"""Case runs: a regex out of its time budget fails its own case (at its line, naming the rule) and
the others still run; a ``value:`` occurring in overlapping places is ambiguous."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dlp_helpers import rule, write_policy
from test_dlp_cli import run

from pipelines.dlp.casefile import run_casefile
from pipelines.errors import PolicyError

FOO = {"type": "pattern", "entity": "FOO", "regex": r"foo\d+"}


# -- a regex out of its time budget in a case run ----------------------------------------------


def test_a_case_the_engine_fails_on_is_a_failed_case_naming_the_rule(tmp_path, capsys) -> None:
    slow = {"type": "pattern", "entity": "BAR", "regex": "(a|aa)+$"}
    write_policy(tmp_path, [rule("t.ok", [FOO]), rule("t.slow", [slow])], name="slow")
    (tmp_path / "slow.tests.yaml").write_text(
        "cases:\n"
        "  - name: fine case\n"
        '    text: "foo12"\n'
        "    expect: {action: redact, findings: [{entity: FOO, value: foo12}]}\n"
        "  - name: long run of a\n"
        f'    text: "{"a" * 60}!"\n'
        "    expect: {action: none}\n"
        "  - name: after it\n"
        '    text: "no foo here"\n'
        "    expect: {action: none}\n",
        encoding="utf-8",
    )
    code, out, err = run(["dlp", "test", "--policy", str(tmp_path / "slow.tests.yaml")], capsys)
    assert code == 1 and err == "error: 1 policy test case(s) failed\n"
    assert f"  FAIL {tmp_path / 'slow.tests.yaml'}:5 long run of a\n" in out
    failed = "- the DLP engine failed on this text: policy regex '(a|aa)+$' of rule t.slow ran longer"
    assert failed in out
    assert out.splitlines()[-1] == "2 passed, 1 failed, 0 known misses"


# -- a value: that occurs in overlapping places ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "where", "first"),
    [
        ("4012 8888 8888 8888 1881", "8888 8888", "(at [5, 14], [10, 19])", "[5, 14]"),
        ("aaa", "aa", "(at [0, 2], [1, 3])", "[0, 2]"),
    ],
)
def test_a_value_occurring_in_overlapping_places_is_ambiguous(tmp_path, text, value, where, first) -> None:
    write_policy(tmp_path, [rule("t.r1", [{"type": "pattern", "entity": "FOO", "regex": "8888 8888|aa"}])])
    cases = tmp_path / "policy.tests.yaml"
    expected = {"entity": "FOO", "value": value}
    cases.write_text(
        yaml.safe_dump({"cases": [{"text": text, "expect": {"action": "redact", "findings": [expected]}}]}),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as info:
        run_casefile(cases)
    assert str(info.value) == (
        f"{cases}:2: cases[0]: value {value!r} occurs 2 times in the text {where}; say which with "
        f"span: [start, end] (the first is span: {first})"
    )


# -- expectations that contradict themselves ---------------------------------------------------


@pytest.mark.parametrize(
    ("expect", "says"),
    [
        ({"action": "redact"}, "action: redact needs a finding, but findings: is empty and only: is true"),
        ({"action": "block", "findings": []}, "action: block needs a finding"),
        (
            {"action": "none", "findings": [{"entity": "FOO", "value": "8888"}]},
            "action: none means nothing is found, but findings: lists some",
        ),
    ],
)
def test_an_expectation_that_could_never_pass_is_a_case_file_error(tmp_path, capsys, expect, says) -> None:
    write_policy(tmp_path, [rule("t.r1", [{"type": "pattern", "entity": "FOO", "regex": "8888"}])])
    cases = tmp_path / "policy.tests.yaml"
    cases.write_text(
        yaml.safe_dump(
            {
                "cases": [
                    {"name": "ok", "text": "x", "expect": {"action": "none"}},
                    {"text": "card 8888", "expect": expect},
                ]
            }
        ),
        encoding="utf-8",
    )
    code, _, err = run(["dlp", "test", "--policy", str(tmp_path / "policy.yaml")], capsys)
    assert code == 2  # a mistake in the case file, not a failing policy
    assert f"{cases}:" in err and "cases[1].expect" in err and says in err
    assert "could never pass" in err


def test_only_false_checks_the_action_alone(tmp_path, capsys) -> None:
    write_policy(tmp_path, [rule("t.r1", [{"type": "pattern", "entity": "FOO", "regex": "8888"}])])
    cases = tmp_path / "policy.tests.yaml"
    cases.write_text(
        yaml.safe_dump({"cases": [{"text": "card 8888", "expect": {"action": "redact", "only": False}}]}),
        encoding="utf-8",
    )
    code, out, _ = run(["dlp", "test", "--policy", str(tmp_path / "policy.yaml")], capsys)
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed, 0 known misses"


def test_the_case_example_in_error_hints_passes_against_the_shipped_policy(tmp_path, capsys) -> None:
    # an author copies the hint first: it must pass with the rules they start from (the example
    # card is not on pii.yaml's allow-list of test numbers)
    import shutil
    import textwrap

    from pipelines.dlp.casefile import Case

    rules = Path(__file__).parent.parent / "dlp_rules"
    shutil.copy(rules / "pii.yaml", tmp_path / "pii.yaml")
    example = textwrap.indent(textwrap.dedent(Case.EXAMPLE), "  ")
    (tmp_path / "pii.tests.yaml").write_text(f"cases:\n{example}\n", encoding="utf-8")
    code, out, _ = run(["dlp", "test", "--policy", str(tmp_path / "pii.yaml")], capsys)
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed, 0 known misses"


# -- numbers and flags in a case file are taken as written -------------------------------------


@pytest.mark.parametrize(
    ("expect", "extra", "field"),
    [
        ({"action": "redact", "findings": [{"entity": "FOO", "span": ["5", 9]}]}, {}, "span"),
        ({"action": "redact", "findings": [{"entity": "FOO", "span": [5, 9.0]}]}, {}, "span"),
        ({"action": "redact", "only": "yes", "findings": [{"entity": "FOO", "value": "8888"}]}, {}, "only"),
        ({"action": "none"}, {"known_miss": "true", "note": "quoted"}, "known_miss"),
    ],
    ids=["quoted-offset", "float-offset", "quoted-only", "quoted-known-miss"],
)
def test_quoted_numbers_and_flags_in_a_case_file_are_refused_at_their_line(
    tmp_path, capsys, expect, extra, field
) -> None:
    """A quoted "true" must not turn a failing case into a known miss, as policies refuse "0.5"."""
    write_policy(tmp_path, [rule("t.r1", [{"type": "pattern", "entity": "FOO", "regex": "8888"}])])
    cases = tmp_path / "policy.tests.yaml"
    cases.write_text(
        yaml.safe_dump({"cases": [{"text": "card 8888", "expect": expect, **extra}]}), encoding="utf-8"
    )
    code, _, err = run(["dlp", "test", "--policy", str(cases)], capsys)
    assert code == 2, err
    assert f"{cases}:" in err and field in err and "Traceback" not in err
