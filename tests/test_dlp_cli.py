"""``vigil dlp``: scan (good and bad lines), test (shipped rules pass, a broken case file fails),
lint, and errors without tracebacks."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import VIGIL

from pipelines.cli import main

RULES = Path(__file__).parent.parent / "dlp_rules"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        # like the console script: sys.exit(main())
        code = int(main(argv) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_scan_good_and_bad_lines(tmp_path, capsys) -> None:
    lines = [
        json.dumps({"id": "a", "text": "card 4012 8888 8888 1881", "direction": "outbound"}).encode(),
        b"{not json",
        json.dumps({"id": "c"}).encode(),
        b"\xff\xfe bad bytes",
        b"",
        json.dumps({"id": "e", "text": "hi", "channel": "fax"}).encode(),
        json.dumps({"id": "f", "text": "SSN 536-22-1234", "direction": "outbound"}).encode(),
        json.dumps({"id": "g", "text": "ＳＳＮ ５３６-２２-１２３４", "direction": "inbound"}).encode(),
        json.dumps({"id": "h", "text": "see you at noon"}).encode(),
        b"[1, 2]",
        # a second "text" would be what a last-wins reader scans and a first-wins reader sends
        b'{"id": "k", "text": "hello", "text": "card 4012 8888 8888 1881"}',
        b"[" * 5000 + b"]" * 5000,  # too deep for the JSON reader: an error line, the scan goes on
        b'{"id": "x", "id": "y", "text": "hello"}',  # which id is meant is the question: none given
        json.dumps({"id": "m", "text": "last line"}).encode(),
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = run(["dlp", "scan", "--policy", str(RULES), "--input", str(source)], capsys)
    assert code == 1  # some lines failed
    rows = [json.loads(line) for line in out.splitlines()]
    # error objects carry the id whenever the JSON could be read
    # one output line per input line: the empty line 5 too
    expected = ["a", 2, "c", 4, 5, "e", "f", "g", "h", 10, "k", 12, 13, "m"]
    assert [r.get("id", r.get("line")) for r in rows] == expected
    assert {r["id"]: r["line"] for r in rows if "error" in r and "id" in r} == {"c": 3, "e": 6, "k": 11}
    by_id = {r["id"]: r for r in rows if "id" in r and "error" not in r}
    assert by_id["a"]["action"] == "redact" and by_id["a"]["redacted_text"] == "card ***************1881"
    assert by_id["a"]["findings"] == [
        {"rule": "pii.card-number", "entity": "CREDIT_CARD", "start": 5, "end": 24, "score": 1.0}
    ]
    assert by_id["f"]["action"] == "block"
    assert by_id["g"]["action"] == "redact" and by_id["g"]["redacted_text"] == "ＳＳＮ <US_SSN>"
    assert by_id["h"] == {"id": "h", "action": "none", "findings": [], "redacted_text": "see you at noon"}
    errors = {r["line"]: r["error"] for r in rows if "error" in r}
    assert errors[2].startswith("malformed JSON")
    assert errors[3].startswith("missing text")
    assert errors[4].startswith("invalid UTF-8")
    assert errors[5] == "empty line"
    assert errors[6].startswith("unknown channel 'fax'")
    assert errors[10].startswith("expected a JSON object")
    assert errors[11].startswith("key 'text' appears twice")
    assert errors[12] == "JSON nested too deeply to read safely"
    assert errors[13].startswith("key 'id' appears twice")
    assert by_id["m"]["action"] == "none"
    assert "9 error(s)" in err


def test_scan_names_what_a_text_that_is_no_string_is(tmp_path, capsys) -> None:
    values = [5, 2.5, True, None, ["hi"], {"body": "hi"}]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": v}) + "\n" for i, v in enumerate(values)))
    code, out, _ = run(["dlp", "scan", "--policy", str(RULES), "--input", str(source)], capsys)
    assert code == 1
    errors = [json.loads(line)["error"] for line in out.splitlines()]
    kinds = ["a number", "a number", "true", "null", "an array", "an object"]
    assert errors == [f"text is {k}, not a string: write the message text in quotes" for k in kinds]


def test_scan_does_not_load_a_line_longer_than_any_text_it_may_scan(tmp_path, capsys) -> None:
    from pipelines.dlp.scan import max_line_bytes

    limit = max_line_bytes(100)
    huge = json.dumps({"id": "huge", "text": "x" * (limit * 3)}).encode()  # no newline inside
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([huge, json.dumps({"id": "after", "text": "hello"}).encode()]) + b"\n")
    argv = ["dlp", "scan", "--policy", str(RULES), "--input", str(source), "--max-text-chars", "100"]
    code, out, err = run(argv, capsys)
    assert code == 1
    first, second = (json.loads(line) for line in out.splitlines())
    assert first == {
        "line": 1,
        "error": f"line is {len(huge):,} bytes, more than the {limit:,} a text of --max-text-chars 100 "
        "can take; it was not read whole",
    }
    assert second["id"] == "after" and second["action"] == "none"
    assert "2 line(s)" in err and "1 error(s)" in err


def test_scan_refuses_a_text_limit_whose_lines_could_not_be_held(tmp_path, capsys) -> None:
    """Before, a huge --max-text-chars ended in "unexpected OverflowError" (exit 3)."""
    from pipelines.cli.dlp import MAX_TEXT_CHARS_LIMIT

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "hello"}) + "\n")
    argv = ["dlp", "scan", "--policy", str(RULES), "--input", str(source), "--max-text-chars"]
    code, out, err = run([*argv, str(2**63 - 1)], capsys)
    assert code == 2 and out == "" and f"is not in the range 1<=x<={MAX_TEXT_CHARS_LIMIT}" in err
    code, out, _ = run([*argv, str(MAX_TEXT_CHARS_LIMIT)], capsys)
    assert code == 0 and json.loads(out)["action"] == "none"


def test_scan_all_good_exits_zero(tmp_path, capsys) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps({"id": i, "text": f"message {i}"}) for i in range(2500)) + "\n")
    code, out, _ = run(
        [
            "dlp",
            "scan",
            "--policy",
            str(RULES / "conduct.yaml"),
            "--input",
            str(source),
            "--batch-size",
            "100",
        ],
        capsys,
    )
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == list(range(2500))


def test_scan_writes_one_line_per_text_whatever_the_text_holds(tmp_path, capsys) -> None:
    # line and paragraph separators, NEL and bidi controls inside a text stay inside its JSON line
    texts = ["card 4012 8888 8888 1881\u2028next", "a\u2029b\x85c", "\u202emirrored\u202c"]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    code, out, _ = run(["dlp", "scan", "--policy", str(RULES / "pii.yaml"), "--input", str(source)], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert rows[0]["redacted_text"] == "card ***************1881\u2028next"
    assert [r["redacted_text"] for r in rows[1:]] == texts[1:]


def test_scan_refuses_to_write_over_its_input_or_into_a_missing_folder(tmp_path, capsys) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "card 4012 8888 8888 1881"}\n')
    (tmp_path / "link.jsonl").symlink_to(source)
    policy = str(RULES / "pii.yaml")
    for output in (source, tmp_path / "link.jsonl"):  # the same file, also under another name
        code, _, err = run(
            ["dlp", "scan", "--policy", policy, "--input", str(source), "--output", str(output)], capsys
        )
        assert code == 2 and "is the --input file" in err and "Traceback" not in err
        assert source.read_text().startswith('{"id": 1')  # left as it was
    missing = tmp_path / "nowhere" / "out.jsonl"
    code, _, err = run(
        ["dlp", "scan", "--policy", policy, "--input", str(source), "--output", str(missing)], capsys
    )
    assert code == 2 and err == (
        f"error: --output {missing}: cannot write it (No such file or directory); the folder "
        f"{missing.parent} does not exist: create it (mkdir -p {missing.parent}) or pick another\n"
    )
    blocked = tmp_path / "afile" / "out.jsonl"  # a file where the folder should be
    blocked.parent.write_text("x")
    code, _, err = run(
        ["dlp", "scan", "--policy", policy, "--input", str(source), "--output", str(blocked)], capsys
    )
    assert code == 2 and err.endswith(
        f"{blocked.parent} is a file where a folder should be: move it away or pick another folder\n"
    )


def test_scan_refuses_nan_and_infinity_which_json_does_not_have(capsys, monkeypatch) -> None:
    import io
    import sys

    data = (
        b'{"id": NaN, "text": "x"}\n'
        b'{"id": 2, "text": "y", "n": -Infinity}\n'
        b'{"id": 3, "text": "NaN is a word"}\n'
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(["dlp", "scan", "--policy", str(RULES / "pii.yaml")], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert rows[0] == {"line": 1, "error": "malformed JSON: NaN is not a JSON value at column 8"}
    assert rows[1]["error"].startswith("malformed JSON: -Infinity is not a JSON value")
    assert rows[2]["id"] == 3 and rows[2]["action"] == "none"


def test_policy_tests_pass_on_shipped_rules(capsys) -> None:
    code, out, _ = run(["dlp", "test", "--policy", str(RULES)], capsys)
    assert code == 0, out
    assert " 0 failed" in out.splitlines()[-1]
    assert "known miss" in out


def test_policy_tests_fail_on_a_broken_case_file(tmp_path, capsys) -> None:
    shutil.copy(RULES / "conduct.yaml", tmp_path / "conduct.yaml")
    (tmp_path / "conduct.tests.yaml").write_text(
        "cases:\n"
        "  - name: passes\n"
        "    text: keep this between us\n"
        "    expect: {action: flag, findings: [{entity: RISKY_PHRASE, value: keep this between us}]}\n"
        "  - name: wrong expectation\n"
        "    text: the weather is nice\n"
        "    expect: {action: flag, only: false}\n",
        encoding="utf-8",
    )
    code, out, err = run(["dlp", "test", "--policy", str(tmp_path / "conduct.yaml")], capsys)
    assert code == 1
    assert f"FAIL {tmp_path / 'conduct.tests.yaml'}:5 wrong expectation" in out
    assert "action is none, expected flag" in out
    assert "1 passed, 1 failed" in out
    assert "error: 1 policy test case(s) failed" in err


def test_policy_tests_report_an_invalid_case_file(tmp_path, capsys) -> None:
    shutil.copy(RULES / "conduct.yaml", tmp_path / "conduct.yaml")
    (tmp_path / "conduct.tests.yaml").write_text(
        "cases:\n  - text: hi\n    expct: {action: none}\n", encoding="utf-8"
    )
    code, _, err = run(["dlp", "test", "--policy", str(tmp_path)], capsys)
    assert code == 2
    assert "conduct.tests.yaml:3: cases[0]: unknown key 'expct' (did you mean 'expect'?)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("span", "line", "message"),
    [
        ("[24, 5]", 6, "span [24, 5] is not [start, end) with 0 <= start < end"),
        ("[-20, -1]", 6, "span [-20, -1] is not [start, end) with 0 <= start < end"),
        ("[5, 3300]", 2, "span [5, 3300] ends after the text, which has 24 characters"),
        # an empty value is no finding (not "occurs 25 times", as an empty string does)
        ('""', 6, "value is empty, and a finding is never empty: copy the text it covers"),
    ],
)
def test_a_case_span_outside_its_text_is_refused_where_it_is_written(tmp_path, capsys, span, line, message):
    field = "value" if span == '""' else "span"
    shutil.copy(RULES / "pii.yaml", tmp_path / "pii.yaml")
    (tmp_path / "pii.tests.yaml").write_text(
        "cases:\n"
        "  - name: a span written wrong\n"
        '    text: "card 4012 8888 8888 1881"\n'
        "    expect:\n"
        "      action: redact\n"
        f"      findings: [{{entity: CREDIT_CARD, {field}: {span}}}]\n"
    )
    code, out, err = run(["dlp", "test", "--policy", str(tmp_path / "pii.yaml")], capsys)
    assert code == 2 and "passed" not in out
    assert f"pii.tests.yaml:{line}: " in err and message in err


@pytest.mark.parametrize(
    ("finding", "message"),
    [
        (
            "{entity: RISKY_PHRASE, rule: conduct.secrecyy, value: keep this between us}",
            "cases[0]: rule 'conduct.secrecyy' is not in the policy; its rules: conduct.guarantee, ",
        ),
        (
            "{entity: RISKY_PHRASES, value: keep this between us}",
            "cases[0]: no detector of the policy reports 'RISKY_PHRASES'; it reports RISKY_PHRASE",
        ),
        (
            "{entity: RISKY_PHRASE, value: between them}",
            "cases[0]: value 'between them' does not occur in the text; copy it from the text as written",
        ),
        (
            "{entity: RISKY_PHRASE, value: us}",
            "cases[0]: value 'us' occurs 2 times in the text (at [18, 20], [24, 26]); say which "
            "with span: [start, end] (the first is span: [18, 20])",
        ),
    ],
)
def test_a_case_that_could_never_pass_is_a_mistake_in_the_case_file(tmp_path, capsys, finding, message):
    shutil.copy(RULES / "conduct.yaml", tmp_path / "conduct.yaml")
    (tmp_path / "conduct.tests.yaml").write_text(
        "cases:\n  - text: keep this between us, thus\n"
        f"    expect: {{action: flag, findings: [{finding}]}}\n",
        encoding="utf-8",
    )
    code, out, err = run(["dlp", "test", "--policy", str(tmp_path / "conduct.yaml")], capsys)
    assert code == 2 and "passed" not in out
    assert f"conduct.tests.yaml:2: {message}" in err


def test_policy_tests_refuse_a_folder_whose_set_does_not_load(tmp_path, capsys) -> None:
    # passing cases must not vouch for a set `vigil run` would refuse
    for name in ("pii.yaml", "pii.tests.yaml"):
        shutil.copy(RULES / name, tmp_path / name)
    (tmp_path / "active.yaml").write_text("policy_set: mine\npolicies:\n  - pii.yaml\n  - missing.yaml\n")
    code, out, err = run(["dlp", "test", "--policy", str(tmp_path)], capsys)
    assert code == 2 and "passed" not in out
    assert f"{tmp_path / 'active.yaml'}:4: policies: 'missing.yaml' does not exist" in err
    # a folder without active.yaml is every policy in it: one that does not compile fails the run
    (tmp_path / "active.yaml").unlink()
    shutil.copy(Path(__file__).parent / "conf/dlp/bad_regex.yaml", tmp_path / "untested.yaml")
    code, out, err = run(["dlp", "test", "--policy", str(tmp_path)], capsys)
    assert code == 2 and "untested.yaml:11: " in err and "does not compile" in err


def test_scan_refuses_a_misspelt_scope_field_and_a_scope_that_is_not_text(tmp_path, capsys) -> None:
    lines = [
        {"id": 1, "text": "card 4012 8888 8888 1881", "directon": "inbound"},
        {"id": 2, "text": "card 4012 8888 8888 1881", "employee_group": ["traders"]},
        {"id": 3, "text": "card 4012 8888 8888 1881", "sub_org": ["hong-kong"]},
        {"id": 4, "text": "card 4012 8888 8888 1881", "org": 123},
        {"id": 5, "text": "card 4012 8888 8888 1881", "label": "kept by the caller", "channel": "sms"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, out, _ = run(["dlp", "scan", "--policy", str(RULES), "--input", str(source)], capsys)
    rows = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert code == 1
    assert rows[1]["error"].startswith("unknown field 'directon'; did you mean 'direction'?")
    assert rows[2]["error"].startswith("unknown field 'employee_group'; did you mean 'employee_groups'?")
    assert rows[3]["error"] == "sub_org must be a string, not list"
    assert rows[4]["error"] == "org must be a string, not int"
    assert rows[5]["action"] == "redact"  # other fields pass through


def test_lint_summarises_and_rejects(capsys) -> None:
    code, out, _ = run(["dlp", "lint", "--policy", str(RULES)], capsys)
    assert code == 0 and "pii.card-number" in out and "no language model needed" in out
    code, _, err = run(
        ["dlp", "lint", "--policy", str(Path(__file__).parent / "conf/dlp/bad_regex.yaml")], capsys
    )
    assert code == 2 and err.startswith("error: ") and ":11: " in err


@pytest.mark.parametrize("sub", ["lint", "test", "scan", "dry-run"])
def test_help(sub, capsys) -> None:
    code, out, _ = run(["dlp", sub, "--help"], capsys)
    assert code == 0 and "--policy" in out


def test_a_case_naming_a_rule_that_reports_another_entity_is_a_mistake_in_the_case_file(tmp_path, capsys):
    # before: the case failed with "missing CREDIT_CARD" and "unexpected CREDIT_CARD ... by
    # pii.card-number", two lines differing only in a rule the first did not name
    shutil.copy(RULES / "pii.yaml", tmp_path / "pii.yaml")
    (tmp_path / "pii.tests.yaml").write_text(
        "cases:\n  - text: card 4012 8888 8888 1881 ok\n"
        "    expect: {action: redact, findings: [{entity: CREDIT_CARD, value: 4012 8888 8888 1881, "
        "rule: pii.bank-account}]}\n",
        encoding="utf-8",
    )
    code, out, err = run(["dlp", "test", "--policy", str(tmp_path / "pii.yaml")], capsys)
    assert code == 2 and "passed" not in out
    assert "pii.tests.yaml:2: cases[0]: rule 'pii.bank-account' reports no 'CREDIT_CARD', only " in err
    assert "name the rule that does, or leave rule: out" in err


@pytest.mark.parametrize(
    ("redirect", "said"),
    [
        # before, an "unexpected AttributeError" (exit 3): Python has no sys.stdin or sys.stdout
        ("<&-", "standard input is closed: pass the texts with --input FILE"),
        (">&- --input {src}", "standard output is closed: write the verdicts with --output FILE"),
        # before, "cannot use: No space left on device" without naming where
        (
            "--input {src} --output /dev/full",
            "cannot write the verdicts to --output /dev/full: No space left",
        ),
        ("--input {src} >/dev/full", "cannot write the verdicts to standard output: No space left"),
    ],
)
def test_scan_names_a_closed_or_full_stream(tmp_path, redirect: str, said: str) -> None:
    if not Path("/dev/full").exists() and "/dev/full" in redirect:
        pytest.skip("this system has no /dev/full")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "card 4012 8888 8888 1881 " * 2000}) + "\n")
    command = " ".join(map(shlex.quote, [*VIGIL, "dlp", "scan", "--policy", str(RULES / "pii.yaml")]))
    result = subprocess.run(
        ["bash", "-c", f"{command} {redirect.format(src=shlex.quote(str(src)))}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


def test_scan_tells_a_read_error_from_a_write_error_and_stops_quietly_at_a_closed_pipe(tmp_path) -> None:
    """Before, every error without a file name was reported as failing to write the verdicts
    ("free space there"): a read error on the input, and a reader that went away (`| head`)."""
    policy = str(RULES / "pii.yaml")
    if Path("/proc/self/mem").exists():
        unreadable = subprocess.run(
            [*VIGIL, "dlp", "scan", "--policy", policy, "--input", "/proc/self/mem"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert unreadable.returncode == 2, unreadable.stderr
        assert "cannot read the texts from --input /proc/self/mem" in unreadable.stderr
        assert "verdicts" not in unreadable.stderr
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": i, "text": "card 4012 8888 8888 1881 " * 20}) + "\n" for i in range(3000))
    )
    command = " ".join(map(shlex.quote, [*VIGIL, "dlp", "scan", "--policy", policy, "--input", str(src)]))
    piped = subprocess.run(
        ["bash", "-c", f"{command} | head -1"], capture_output=True, text=True, timeout=300
    )
    assert piped.stdout.startswith('{"id": 0, "action": "redact"')
    assert piped.stderr == ""  # no "cannot write the verdicts", no traceback


def test_a_missing_case_file_is_named_as_one(tmp_path, capsys) -> None:
    code, _, err = run(["dlp", "test", "--policy", str(tmp_path / "desk.tests.yaml")], capsys)
    assert code == 2
    assert "desk.tests.yaml: no such test case file; write it beside its policy (desk.yaml)" in err
