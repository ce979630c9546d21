"""A policy author's review: a security analyst, not a Python developer, copies
``dlp_rules/template.yaml``, makes the usual mistakes one at a time and runs the tools. Each mistake
must be named at its file and line in the words of YAML and of the policy format (not pydantic's),
with what to write instead; pytest must judge a case file as `vigil dlp test` does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dlp_helpers import engine_for, rule
from test_dlp_cli import run

from pipelines.dlp.casefile import load_cases
from pipelines.dlp.policy import MAX_FILE_BYTES, load_policy
from pipelines.errors import PolicyError

RULES = Path(__file__).parent.parent / "dlp_rules"
TEMPLATE = (RULES / "template.yaml").read_text(encoding="utf-8")
CASES = (RULES / "template.tests.yaml").read_text(encoding="utf-8")


def author(tmp_path: Path, old: str = "", new: str = "", name: str = "emp") -> Path:
    """The template with one edit (none without ``old``), saved as ``<name>.yaml`` with the
    template's cases beside it."""
    assert old in TEMPLATE, old
    path = tmp_path / f"{name}.yaml"
    path.write_text(TEMPLATE.replace(old, new, 1) if old else TEMPLATE, encoding="utf-8")
    (tmp_path / f"{name}.tests.yaml").write_text(CASES, encoding="utf-8")
    return path


def line_of(path: Path, fragment: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, text in enumerate(lines, start=1) if fragment in text)


def refused(path: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return str(info.value)


# -- pydantic's words, said in YAML's ----------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "at", "said"),
    [
        # a list where a mapping belongs
        (
            "  delivery: redacted\n  export: redacted\n  crm: redacted\n",
            "  - delivery: redacted\n  - export: redacted\n  - crm: redacted\n",
            "- delivery",
            "views: expected a mapping (`key: value` lines indented under it, or `{key: value}`), got a list",
        ),
        # one word where a list belongs: the fix is spelt out
        (
            "directions: [outbound]",
            "directions: outbound",
            "directions:",
            "rules[0].scope.directions: expected a list (`[a, b]`, or one `- item` per line indented under "
            "it), got the text 'outbound'; write `directions: [outbound]`",
        ),
        (
            "raise_words: [employee, staff]",
            "raise_words: employee, staff",
            "raise_words:",
            "got the text 'employee, staff'; write `raise_words: [employee, staff]`",
        ),
        # a name that does not fit: in words, with a name that does
        (
            "entity: EMPLOYEE_ID",
            "entity: employee id",
            "entity:",
            "entity: 'employee id' is not a valid name: use capital letters, digits and '_' only (no "
            "spaces), starting with a letter, e.g. EMPLOYEE_ID",
        ),
        (
            "  - id: template.employee-id",
            "  - id: Template Employee ID",
            "- id:",
            "rules[0].id: 'Template Employee ID' is not a valid name: use lower-case letters, digits, '.', "
            "'_' and '-' only (no spaces), starting with a letter or digit, e.g. template-employee-id",
        ),
        # a percentage for a score: the value given, and the scale
        (
            "score: 0.7",
            "score: 0.7\n        min_score: 50",
            "min_score:",
            "min_score: Input should be less than or equal to 1 (got 50); scores run from 0 to 1: write 0.5 "
            "for 50%",
        ),
        ("score: 0.7", "score: high", "score:", "score: expected a number such as 0.6, got the text 'high'"),
    ],
)
def test_a_type_mistake_is_said_in_yaml_terms_with_the_fix(tmp_path, old, new, at, said) -> None:
    path = author(tmp_path, old, new)
    message = refused(path)
    assert message.startswith(f"{path}:{line_of(path, at)}: "), message
    assert said in message, message
    assert "dictionary" not in message and "instance of" not in message and "^[" not in message


def test_an_empty_lexicon_and_a_short_span_are_said_plainly(tmp_path, capsys) -> None:
    path = author(tmp_path, "      # - type: lexicon", "      - type: lexicon\n        terms: []\n      #")
    assert (
        f"{path}:{line_of(path, 'terms: []')}: rules[0].detectors[1].terms: is empty; give at least one item"
        in (refused(path))
    )
    author(tmp_path)
    (tmp_path / "emp.tests.yaml").write_text(
        CASES.replace('value: "EMP-004211"', "span: [8]"), encoding="utf-8"
    )
    code, _, err = run(["dlp", "test", "--policy", str(tmp_path / "emp.yaml")], capsys)
    assert code == 2
    assert "emp.tests.yaml:9: cases[0].expect.findings[0].span: too few items: item 2 is missing" in err


# -- mistakes the YAML reader meets ------------------------------------------------------------


def test_a_tab_a_python_tag_an_empty_file_and_utf16_are_each_named_with_the_fix(tmp_path) -> None:
    tab = author(tmp_path, "      - type: pattern  ", "\t- type: pattern  ", name="tab")
    assert refused(tab).splitlines()[1].strip() == (
        f"YAML indents with spaces, never tabs: replace the tab on line {line_of(tab, chr(9))} (column 1) "
        "with spaces, and set your editor to insert spaces for the Tab key"
    )
    tag = author(tmp_path, "severity: medium", "severity: !!python/name:os.system", name="tag")
    assert "YAML tags such as !!python/object are not read; remove the tag" in refused(tag)

    for name, text in (("empty", ""), ("comments", "# to do: write the rules\n")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        assert refused(path).startswith(f"{path}:1: the file is empty (or only comments)\n  write it like")

    for encoding in ("utf-16", "utf-16-le"):  # Notepad's "Unicode", with and without the mark
        path = tmp_path / "wide.yaml"
        path.write_bytes(TEMPLATE.encode(encoding))
        assert (
            refused(path) == f"{path}:1: saved as UTF-16 (or another wide encoding); save the file as UTF-8"
        )
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(TEMPLATE.replace("What this", "Café: what this").encode("latin-1", errors="replace"))
    assert refused(latin1).startswith(f"{latin1}:{line_of(RULES / 'template.yaml', 'What this')}: not UTF-8")


def test_a_policy_too_large_to_load_in_reasonable_time_is_refused_unread(tmp_path) -> None:
    path = author(tmp_path, "rules:\n", "#" * MAX_FILE_BYTES + "\nrules:\n")
    assert refused(path).startswith(f"{path}: larger than 1 MiB, the most a policy file may hold")


def test_a_case_file_too_large_is_told_about_cases_not_lexicons(tmp_path) -> None:
    author(tmp_path)
    cases = tmp_path / "emp.tests.yaml"
    cases.write_text(CASES + "#" * MAX_FILE_BYTES + "\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_cases(cases)
    said = str(info.value)
    assert said.startswith(f"{cases}: larger than 1 MiB, the most a case file may hold")
    assert "lexicon" not in said and "keep the cases that each show something new" in said


def test_a_case_file_naming_a_missing_policy_says_where_and_what_is_there(tmp_path) -> None:
    author(tmp_path)
    cases = tmp_path / "emp.tests.yaml"
    cases.write_text("policy: nope.yaml\n" + CASES, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_cases(cases)
    assert str(info.value) == (
        f"{cases}:1: the policy nope.yaml these cases test does not exist; `policy:` names a file "
        "beside this one (emp.yaml): correct it"
    )


# -- lexicon terms edged with punctuation ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("really?! ok", "?!"),  # no word to end: the letter before does not matter
        ("we are#winning today", "#winning"),
        ("C.O.D.s accepted", "C.O.D."),  # nor after it
        ("XC.O.D. here", None),  # "C" starts a word: there the boundary holds
        ("it was 100% safely", None),  # a word still ends where a word ends
    ],
)
def test_a_term_starting_or_ending_with_punctuation_needs_no_boundary_there(tmp_path, text, found) -> None:
    lexicon = {"type": "lexicon", "entity": "RISKY", "terms": ["?!", "#winning", "C.O.D.", "100% safe"]}
    verdict = engine_for(tmp_path, [rule("t.r", [lexicon], action="flag")]).inspect(text)
    assert [text[f.start : f.end] for f in verdict.findings] == ([found] if found else [])


# -- a failing case says why, where the policy itself explains it ------------------------------


def test_a_missing_finding_names_the_allow_list_or_the_scope_that_keeps_it_out(tmp_path, capsys) -> None:
    author(tmp_path, "  values: []", '  values: ["EMP-004211"]', name="allowed")
    code, out, _ = run(["dlp", "test", "--policy", str(tmp_path / "allowed.yaml")], capsys)
    assert code == 1
    assert (
        "missing EMPLOYEE_ID at [8, 18] ('EMP-004211'): the value is on the allow-list of "
        "template.employee-id (allow: in the policy or the rule), and allow-listed values are never "
        "reported" in out
    )
    author(tmp_path, "directions: [outbound]", "directions: [internal]", name="scoped")
    code, out, _ = run(["dlp", "test", "--policy", str(tmp_path / "scoped.yaml")], capsys)
    assert code == 1
    assert (
        "missing EMPLOYEE_ID at [8, 18] ('EMP-004211'): template.employee-id does not apply in this "
        "case's scope" in out
    )


# -- pytest judges a case file as `vigil dlp test` does ----------------------------------------


def pytest_on(folder: Path) -> str:
    shutil.copy(RULES / "conftest.py", folder / "conftest.py")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(folder)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.stdout + done.stderr


def test_pytest_refuses_a_case_file_that_vigil_dlp_test_refuses_without_a_traceback(tmp_path) -> None:
    author(tmp_path, name="ok")
    for suffix in (".yaml", ".tests.yaml"):  # .yml is collected too, as `vigil dlp test` finds it
        (tmp_path / f"ok{suffix}").rename(tmp_path / f"ok{suffix.replace('.yaml', '.yml')}")
    author(tmp_path, name="norule")
    (tmp_path / "norule.tests.yaml").write_text(
        CASES.replace('value: "EMP-004211"}', 'value: "EMP-004211", rule: template.employee-ids}'),
        encoding="utf-8",
    )
    tab = author(tmp_path, "      - type: pattern  ", "\t- type: pattern  ", name="tab")
    out = pytest_on(tmp_path)
    assert "norule.tests.yaml:4: cases[0]: rule 'template.employee-ids' is not in the policy" in out
    assert out.count(f"{tab}:{line_of(tab, chr(9))}: not valid YAML") == 1
    assert "Traceback" not in out and "conftest.py:" not in out and "PolicyError" not in out
    assert "missing EMPLOYEE_ID" not in out  # not the failing case it could never stop being

    for bad in ("norule", "tab"):
        (tmp_path / f"{bad}.tests.yaml").unlink()
    assert "3 passed" in pytest_on(tmp_path)  # the .tests.yml cases
