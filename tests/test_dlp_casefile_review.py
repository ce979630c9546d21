"""Case runs: a regex out of its time budget fails its own case (at its line, naming the rule) and
the others still run; a ``value:`` occurring in overlapping places is ambiguous."""

from __future__ import annotations

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
