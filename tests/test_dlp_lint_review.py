"""Lint findings of a red-team review: rules that could never fire, braces in character classes,
and errors that named no file or line. Each test writes real files and runs the real CLI or loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dlp_helpers import rule, write_policy
from test_dlp_cli import run

from pipelines.dlp import load_policy_set
from pipelines.dlp.batch_regex import RegexTimeout
from pipelines.dlp.engine import Engine, Scope, Verdict
from pipelines.dlp.policy import load_policy
from pipelines.errors import PolicyError

RULES = Path(__file__).parent.parent / "dlp_rules"
FOO = {"type": "pattern", "entity": "FOO", "regex": r"foo\d+"}


def strict_rows(out: str) -> list[dict]:
    """Output lines read as JSON that has no NaN or Infinity (what any other reader expects)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the output: not JSON")

    return [json.loads(row, parse_constant=refuse) for row in out.splitlines()]


# -- rules that could never fire ---------------------------------------------------------------


def lint_error(tmp_path: Path, detector: dict) -> str:
    path = write_policy(
        tmp_path, [rule("t.r1", [FOO, detector] if detector.get("type") == "lexicon" else [detector])]
    )
    with pytest.raises(PolicyError) as info:
        load_policy_set(path)
    return str(info.value)


def list_line(tmp_path: Path, key: str) -> int:
    """The line of the first item of the block list ``key:`` in the policy written."""
    lines = (tmp_path / "policy.yaml").read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, start=1) if text.strip() == f"{key}:") + 1


@pytest.mark.parametrize("word", ["", "   ", "\u200b", "\u200b\u2060\ufeff"])
@pytest.mark.parametrize("key", ["raise_words", "lower_words"])
def test_a_context_word_that_matches_nothing_is_refused(tmp_path, key: str, word: str) -> None:
    context = {key: ["card", word]}
    if key == "raise_words":
        context["required"] = True
    message = lint_error(tmp_path, {**FOO, "context": context})
    where = f"policy.yaml:{list_line(tmp_path, key)}: rules[0].detectors[0].context.{key}: {key} #2 "
    assert where in message
    assert "remove it or write the word to look for" in message
    assert ("is empty" if not word.strip() else "is only invisible characters (U+200B") in message
    assert "write it like this:\n    context:" in message


def test_a_lexicon_term_of_invisible_characters_is_refused(tmp_path) -> None:
    message = lint_error(tmp_path, {"type": "lexicon", "terms": ["guaranteed", "\u200b\u200d"]})
    where = f"policy.yaml:{list_line(tmp_path, 'terms')}: rules[0].detectors[1].terms: term #2 is only"
    assert f"{where} invisible characters " in message
    assert "(U+200B U+200D), which detection removes before matching, so it matches nothing" in message


@pytest.mark.parametrize("regex", [r"(?=EMP)", r"\b", "^", r"(?<=card )\b(?=\d)", r"(?:^|$)"])
def test_a_pattern_that_can_match_only_empty_text_is_refused(tmp_path, regex: str) -> None:
    message = lint_error(tmp_path, {**FOO, "regex": regex})
    assert f"rules[0].detectors[0].regex: regex '{regex}' can match only empty text" in message
    assert "so the rule could never fire" in message


def test_a_pattern_that_may_match_empty_text_but_need_not_is_kept(tmp_path) -> None:
    # an empty match is dropped, a non-empty one reported: the rule can fire
    path = write_policy(tmp_path, [rule("t.r1", [{**FOO, "regex": r"(?<=EMP-)\d*"}], action="flag")])
    verdict = Engine(load_policy_set(path)).inspect("EMP-004211")
    assert [(f.start, f.end) for f in verdict.findings] == [(4, 10)]


@pytest.mark.parametrize(
    ("detector", "best"),
    [
        ({**FOO, "score": 0.3, "min_score": 0.5}, "(score 0.3, and no context raise_words to lift it)"),
        ({**FOO, "score": 0.0, "min_score": 0.0}, "(score 0, and no context raise_words to lift it)"),
        (
            {**FOO, "score": 0.1, "min_score": 0.9, "context": {"raise_words": ["ref"], "raise_by": 0.2}},
            "(score 0.1, 0.4 with a raise word nearby)",
        ),
        (
            {"type": "lexicon", "terms": ["hush"], "score": 0.4, "min_score": 0.6},
            "(score 0.4, and no context raise_words to lift it)",
        ),
    ],
)
def test_a_detector_whose_score_cannot_reach_min_score_is_refused(tmp_path, detector, best) -> None:
    message = lint_error(tmp_path, detector)
    assert "rules[0].detectors[" in message and ": this detector can never report anything: " in message
    assert best in message
    assert "write it like this:" in message


@pytest.mark.parametrize(
    "detector",
    [
        {**FOO, "score": 0.3, "min_score": 0.5, "validator": "luhn"},  # a valid match scores 1
        {**FOO, "score": 0.3, "min_score": 0.5, "context": {"raise_words": ["ref"]}},  # lifted to 0.65
        {**FOO, "score": 0.1, "min_score": 0.4, "context": {"raise_words": ["ref"], "raise_by": 0.1}},
        {**FOO, "score": 0.5, "min_score": 0.5},
    ],
)
def test_a_detector_that_can_reach_min_score_is_accepted(tmp_path, detector) -> None:
    assert load_policy_set(write_policy(tmp_path, [rule("t.r1", [detector])])).rules


def test_the_lint_cli_refuses_the_dead_rules_of_the_review(tmp_path, capsys) -> None:
    (tmp_path / "p.yaml").write_text(
        "id: t\ndescription: test policy\nrules:\n"
        "  - id: t.r1\n    description: test rule\n    severity: high\n    action: redact\n"
        "    detectors:\n"
        "      - type: pattern\n        entity: FOO\n        regex: 'foo\\d+'\n"
        "        context: {required: true, raise_words: ['']}\n",
        encoding="utf-8",
    )
    code, out, err = run(["dlp", "lint", "--policy", str(tmp_path / "p.yaml")], capsys)
    assert code == 2 and "ok:" not in out
    assert err.startswith(f"error: {tmp_path / 'p.yaml'}:12: rules[0].detectors[0].context.raise_words: ")


# -- braces in character classes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "regex", [r"tpl[{0-9]+", r"[{]6", r"[^{]{2}", r"[]{]6", r"[\]{]6", r"a\{6", r"x{2,}"]
)
def test_a_brace_that_is_no_repeat_count_is_accepted(tmp_path, regex) -> None:
    detector = {"type": "pattern", "entity": "X", "regex": regex}
    assert load_policy_set(write_policy(tmp_path, [rule("r.ok", [detector])])).rules


@pytest.mark.parametrize(
    ("regex", "found"),
    [(r"\d{6", "'{6' at position 2"), (r"[a]{2,", "'{2,' at position 3"), (r"\\{6", "'{6' at position 2")],
)
def test_an_open_repeat_count_outside_a_class_is_still_refused(tmp_path, regex, found) -> None:
    message = lint_error(tmp_path, {"type": "pattern", "entity": "X", "regex": regex})
    assert f"has a repeat count without its closing brace ({found})" in message


def test_a_brace_in_a_class_matches_as_written(tmp_path, capsys) -> None:
    policy = write_policy(
        tmp_path, [rule("t.tpl", [{"type": "pattern", "entity": "TPL", "regex": r"tpl[{0-9]+"}])]
    )
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "see tpl{12 now"}\n', encoding="utf-8")
    code, out, _ = run(["dlp", "scan", "--policy", str(policy), "--input", str(source)], capsys)
    assert code == 0 and strict_rows(out)[0]["findings"][0]["start"] == 4


# -- errors that named no file or line ---------------------------------------------------------


def base_policy(tmp_path: Path, name: str = "p.yaml", **replace: str) -> Path:
    text = (
        "id: t\ndescription: test policy\nrules:\n  - id: t.r1\n    description: test rule\n"
        "    severity: high\n    action: redact\n    detectors:\n"
        "      - type: pattern\n        entity: FOO\n        regex: 'foo\\d+'\n"
    )
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("depth", [900, 5000])
def test_deeply_nested_yaml_is_refused_with_its_file_and_line(tmp_path, capsys, depth: int) -> None:
    path = tmp_path / "nest.yaml"
    path.write_text("id: t\nrules:\n  - a: " + "[" * depth + "]" * depth + "\n", encoding="utf-8")
    code, _, err = run(["dlp", "lint", "--policy", str(path)], capsys)
    assert code == 2 and err.startswith(
        f"error: {path}:3: nesting too deep: more than 100 lists and mappings"
    )
    cases = tmp_path / "nest.tests.yaml"  # case files are read the same way
    shutil.copy(path, cases)
    code, _, err = run(["dlp", "test", "--policy", str(cases)], capsys)
    assert code == 2 and err.startswith(f"error: {cases}:3: nesting too deep")


def test_a_control_character_is_reported_at_its_line(tmp_path, capsys) -> None:
    path = base_policy(tmp_path, **{"test rule": "test\x07 rule"})
    code, _, err = run(["dlp", "lint", "--policy", str(path)], capsys)
    assert code == 2
    assert err == (
        f"error: {path}:5: not valid YAML: character U+0007 at column 22 is not allowed in YAML; delete "
        'it (in a double-quoted string it can be written as an escape, e.g. "\\x07")\n'
    )


def test_a_set_member_that_is_not_yaml_is_called_what_it_is(tmp_path, capsys) -> None:
    base_policy(tmp_path)
    (tmp_path / "notes.txt").write_text("hi\n")
    (tmp_path / "p.tests.yaml").write_text("cases: []\n")
    (tmp_path / "active.yaml").write_text("policy_set: s\npolicies: [p.yaml, notes.txt, p.tests.yaml]\n")
    code, _, err = run(["dlp", "lint", "--policy", str(tmp_path)], capsys)
    assert code == 2
    assert (
        f"{tmp_path / 'active.yaml'}:2: policies: 'notes.txt' is not a policy file: a set lists policy "
        "files, YAML files ending in .yaml or .yml" in err
    )
    assert f"{tmp_path / 'active.yaml'}:2: policies: 'p.tests.yaml' is a file of test cases" in err
    assert "'notes.txt' is a file of test cases" not in err


def test_a_policy_id_used_twice_names_both_files(tmp_path, capsys) -> None:
    a = base_policy(tmp_path, "a.yaml")
    b = base_policy(tmp_path, "b.yaml", **{"t.r1": "t.r2", "description: test policy": "description: other"})
    code, _, err = run(["dlp", "lint", "--policy", str(tmp_path)], capsys)
    assert code == 2
    assert err.startswith(
        f"error: {b}:1: policy id 't' is already the id of {a}:1; policy ids must be unique"
    )


def test_a_double_quoted_regex_gets_the_single_quote_hint(tmp_path, capsys) -> None:
    path = base_policy(tmp_path, **{"regex: 'foo\\d+'": 'regex: "foo\\d+"'})
    code, _, err = run(["dlp", "lint", "--policy", str(path)], capsys)
    assert code == 2 and err.startswith(
        f"error: {path}:11: not valid YAML: found unknown escape character 'd'"
    )
    assert "write a regex in single quotes, which keep every backslash as written" in err


@pytest.mark.parametrize(
    ("set_text", "meant"),
    [
        ("policy_set: s\npolicy: [p.yaml]\n", "policies"),  # a list: the member files
        ("policy_set: s\npolicy: p.yaml\n", "policies"),  # policy_set is already there
        ("policy: s\npolicies: [p.yaml]\n", "policy_set"),  # a name
    ],
)
def test_a_misspelt_set_key_is_matched_to_the_key_its_value_fits(tmp_path, capsys, set_text, meant) -> None:
    base_policy(tmp_path)
    (tmp_path / "set.yaml").write_text(set_text)
    code, _, err = run(["dlp", "lint", "--policy", str(tmp_path / "set.yaml")], capsys)
    if "policy_set" in set_text:
        assert code == 2 and f"unknown key 'policy' (did you mean {meant!r}?)" in err
    else:  # no policy_set: read as a policy, which says what a set file looks like
        assert code == 2 and "a policy-set file names itself with `policy_set: <name>`" in err


def test_a_case_file_without_tests_in_its_name_is_told_the_convention(tmp_path, capsys) -> None:
    base_policy(tmp_path)
    (tmp_path / "p_cases.yaml").write_text("cases:\n  - text: x\n    expect: {action: none}\n")
    for command in ("lint", "test"):
        code, _, err = run(["dlp", command, "--policy", str(tmp_path / "p_cases.yaml")], capsys)
        assert code == 2
        told = "this is a file of test cases, not a policy; name a case file after the policy it tests"
        assert told in err
        assert "<policy>.tests.yaml next to <policy>.yaml (pii.tests.yaml for pii.yaml)" in err


def test_lint_of_a_folder_names_the_policy_files_its_set_leaves_out(tmp_path, capsys) -> None:
    base_policy(tmp_path)
    base_policy(tmp_path, "new.yaml", **{"severity: high": "severity: hgh"})  # broken, and not listed
    (tmp_path / "p.tests.yaml").write_text("cases: []\n")
    (tmp_path / "active.yaml").write_text("policy_set: s\npolicies: [p.yaml]\n")
    code, out, err = run(["dlp", "lint", "--policy", str(tmp_path)], capsys)
    assert code == 0 and out.splitlines()[-1].startswith("ok: set s@")
    assert err == (
        f"note: {tmp_path / 'active.yaml'} does not list new.yaml, so lint did not check it; lint one "
        "with --policy FILE, or add it to the set\n"
    )
    (tmp_path / "active.yaml").write_text("policy_set: s\npolicies: [p.yaml, new.yaml]\n")
    code, _, err = run(["dlp", "lint", "--policy", str(tmp_path)], capsys)
    assert code == 2 and "note:" not in err and "new.yaml:6: rules[0].severity" in err


def test_the_shipped_rules_still_lint_and_pass(capsys) -> None:
    code, out, _ = run(["dlp", "lint", "--policy", str(RULES)], capsys)
    assert code == 0 and out.splitlines()[-1].startswith("ok: set active@")
    for path in sorted(RULES.glob("*.yaml")):
        if not path.name.endswith(".tests.yaml") and path.name != "active.yaml":
            load_policy(path)
    code, out, _ = run(["dlp", "test", "--policy", str(RULES)], capsys)
    assert code == 0 and " 0 failed" in out.splitlines()[-1]


# -- a second authoring review: allow-lists, view operators, types taken as written -------------


@pytest.mark.parametrize("regex", [".*", ".+", r"[\s\S]*", "(?s).*"])
def test_an_allow_regex_that_lets_every_value_through_is_refused(tmp_path, regex: str) -> None:
    path = write_policy(tmp_path, [rule("t.r1", [FOO])], allow={"regexes": [regex]})
    with pytest.raises(PolicyError) as info:
        load_policy_set(path)
    assert f"policy.yaml:5: allow.regexes: allow regex '{regex}' matches any value" in str(info.value)


@pytest.mark.parametrize("value", ["", "  ", "-", "\u200b", "( )"])
def test_an_allow_value_that_is_empty_once_compared_is_refused(tmp_path, value: str) -> None:
    path = write_policy(tmp_path, [rule("t.r1", [FOO])], allow={"values": ["4111 1111 1111 1111", value]})
    with pytest.raises(PolicyError) as info:
        load_policy_set(path)
    assert f"allow.values: allow value #2 {value!r} is empty once spaces" in str(info.value)


@pytest.mark.parametrize(
    ("regex", "named"),
    [
        ("\u200b", "U+200B ZERO WIDTH SPACE"),
        ("EMP-\u200b\\d{4}", "U+200B ZERO WIDTH SPACE"),
        ("EMP\\x00", "U+0000 NUL"),
        ("x(?:\u2060)+y", "U+2060 WORD JOINER"),
        ("[\u200b\u200c]", "U+200B ZERO WIDTH SPACE"),
        ("EMP[\u200b-\u200d]\\d{4}", "U+200B ZERO WIDTH SPACE"),  # a range of them
        ("EMP(?:\u200b\\d|\u200c\\w)", "U+200B ZERO WIDTH SPACE"),  # every alternative needs one
    ],
)
def test_a_regex_that_needs_a_character_detection_removes_is_refused(
    tmp_path, regex: str, named: str
) -> None:
    # the text a pattern runs on has no invisible or control characters: such a rule never fires
    path = write_policy(tmp_path, [rule("t.r1", [{"type": "pattern", "entity": "ZW", "regex": regex}])])
    with pytest.raises(PolicyError) as info:
        load_policy_set(path)
    assert f"needs {named}, which detection removes from the text" in str(info.value)


@pytest.mark.parametrize(
    "regex", ["a(?:\u200b)?b", "[\u200ba]", "(a|\u200b)", "EMP(?:\u200b\\d|x)", "[\u200b-\u200da]"]
)
def test_a_regex_where_such_a_character_is_optional_is_accepted(tmp_path, regex: str) -> None:
    path = write_policy(tmp_path, [rule("t.r1", [{"type": "pattern", "entity": "ZW", "regex": regex}])])
    load_policy_set(path)


def test_an_allow_regex_for_some_values_is_accepted(tmp_path) -> None:
    path = write_policy(tmp_path, [rule("t.r1", [FOO])], allow={"regexes": [r".*@example\.com", "foo1.*"]})
    engine = Engine(load_policy_set(path))
    assert engine.inspect("foo123 and foo999").findings[0].start == 11  # foo1… let through


def test_a_slow_allow_regex_runs_out_of_its_time_budget_like_a_detectors(tmp_path) -> None:
    path = write_policy(
        tmp_path,
        [rule("t.r1", [{"type": "pattern", "entity": "X", "regex": "a{10,60}"}])],
        allow={"regexes": ["(a|aa)+c"]},
    )
    engine = Engine(load_policy_set(path))
    verdicts = engine.inspect_each([("a" * 60, Scope()), ("hello", Scope())])
    assert isinstance(verdicts[0], RegexTimeout) and verdicts[0].rules == ("t.r1",)
    assert "'(a|aa)+c' of rule t.r1 ran longer than 1 s" in str(verdicts[0])
    assert isinstance(verdicts[1], Verdict) and verdicts[1].findings == []


def test_a_hash_operator_without_key_is_named_where_it_is_written(tmp_path) -> None:
    path = write_policy(
        tmp_path,
        [rule("t.r1", [FOO]), rule("t.r2", [FOO], operator={"type": "replace"})],
        views={"export": {"show": "redacted", "operator": {"type": "hash"}}},
    )
    with pytest.raises(PolicyError) as info:
        load_policy_set(path)
    message = str(info.value)
    assert "views.export.operator: the hash operator needs key_env" in message
    assert "rules[" not in message  # the rules have no hash operator of their own


@pytest.mark.parametrize(
    ("where", "value", "said"),
    [
        ("operator", {"type": "mask", "keep_last": True}, "expected a whole number such as 4, got True"),
        ("score", "0.7", "expected a number such as 0.6, got the text '0.7'"),
        ("overlapped", "true", "overlapped"),
        ("window", True, "window"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_not_converted(tmp_path, where: str, value, said: str) -> None:
    detector = dict(FOO)
    extra: dict = {}
    if where == "operator":
        extra["operator"] = value
    elif where == "window":
        detector["context"] = {"window": value, "raise_words": ["staff"]}
    else:
        detector[where] = value
    path = write_policy(tmp_path, [rule("t.r1", [detector])], **extra)
    with pytest.raises(PolicyError) as info:
        load_policy_set(path)
    assert said in str(info.value)
