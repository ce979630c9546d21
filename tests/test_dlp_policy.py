"""Policy loading: broken configs fail with file, line and a hint; sets, digests, public API."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipelines.dlp
from pipelines.dlp import load_policy, load_policy_set
from pipelines.errors import PolicyError

CONF = Path(__file__).parent / "conf" / "dlp"
RULES = Path(__file__).parent.parent / "dlp_rules"


@pytest.mark.parametrize(
    ("name", "line", "fragments"),
    [
        (
            "unknown_key.yaml",
            11,
            ["unknown key 'regx'", "did you mean 'regex'", "write it like this", "regex:"],
        ),
        ("unknown_top_key.yaml", 3, ["unknown key 'rule'", "did you mean 'rules'"]),
        ("bad_regex.yaml", 11, ["does not compile", "missing )"]),
        ("unknown_validator.yaml", 12, ["unknown validator 'lunh'", "luhn", "sg_nric", "hk_id"]),
        ("unknown_entity.yaml", 10, ["unknown Presidio entity 'CREDIT_CARDS'", "did you mean CREDIT_CARD"]),
        ("unknown_operator.yaml", 8, ["unknown operator 'shred'", "hash, mask, replace"]),
        ("unknown_detector_type.yaml", 9, ["unknown detector type 'regexp'", "lexicon, pattern, presidio"]),
        ("duplicate_ids.yaml", 10, ["duplicate rule id 'broken.card'", "first at line 4"]),
        ("empty_description.yaml", 5, ["description is empty"]),
        ("bad_severity.yaml", 6, ["'low', 'medium', 'high' or 'critical'", "got 'urgent'"]),
        ("missing_action.yaml", 4, ["missing required key 'action'", "action: redact"]),
        ("hash_without_key.yaml", 8, ["needs key_env", "key_env: VIGIL_DLP_HASH_KEY"]),
        ("bad_yaml.yaml", 6, ["not valid YAML", "indentation"]),
        ("unclosed_quote.yaml", 6, ["end of stream (while scanning a quoted scalar that starts on line 4)"]),
        (
            "empty_scope.yaml",
            10,
            ["scope.directions: an empty list matches nothing", "leave `directions` out"],
        ),
        ("blank_org.yaml", 9, ["scope.orgs: an empty name matches nothing"]),
        ("option_of_another_operator.yaml", 8, ["keep_last (mask only) does nothing with type: replace"]),
        (
            "required_without_words.yaml",
            13,
            ["required: true needs raise_words", "add them or remove required"],
        ),
        ("phone_region_uk.yaml", 11, ["unknown phone region 'UK'", "did you mean GB", "Kingdom is GB"]),
        ("regions_not_a_phone.yaml", 9, ["regions: applies to PHONE_NUMBER only, not EMAIL_ADDRESS"]),
        ("overlapped_unbounded.yaml", 9, ["overlapped: true needs a regex of bounded length", "\\d{13,19}"]),
        (
            "key_in_wrong_place.yaml",
            12,
            ["unknown key 'terms' (that key belongs to another part of a policy"],
        ),
    ],
)
def test_broken_policy_is_reported_with_line_and_hint(name, line, fragments) -> None:
    path = CONF / name
    with pytest.raises(PolicyError) as excinfo:
        load_policy(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in message


def test_a_file_of_test_cases_given_as_a_policy_is_named_for_what_it_is() -> None:
    with pytest.raises(PolicyError, match=r"pii\.tests\.yaml: this is a file of test cases, not a policy"):
        load_policy(RULES / "pii.tests.yaml")


def test_duplicate_rule_ids_across_files_of_a_set() -> None:
    with pytest.raises(
        PolicyError, match=r"b\.yaml:5: duplicate rule id 'shared\.card', already defined in .*a\.yaml:4"
    ):
        load_policy_set(CONF / "dup_across")


def test_missing_file_and_set_member(tmp_path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "nope.yaml")
    (tmp_path / "set.yaml").write_text("policy_set: s\npolicies: [pii.yaml, gone.yaml]\n")
    (tmp_path / "pii.yaml").write_text((RULES / "pii.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"set\.yaml:2: policies: 'gone\.yaml' does not exist"):
        load_policy_set(tmp_path / "set.yaml")
    # every missing member, each at its own line
    members = "  - pii.yaml\n  - gone.yaml\n  - lost.yaml\n  - rules\n"
    (tmp_path / "rules").mkdir()
    (tmp_path / "set.yaml").write_text("policy_set: s\npolicies:\n" + members)
    with pytest.raises(PolicyError) as excinfo:
        load_policy_set(tmp_path / "set.yaml")
    assert str(excinfo.value).splitlines() == [
        f"{tmp_path / 'set.yaml'}:4: policies: 'gone.yaml' does not exist next to set.yaml",
        f"{tmp_path / 'set.yaml'}:5: policies: 'lost.yaml' does not exist next to set.yaml",
        f"{tmp_path / 'set.yaml'}:6: policies: 'rules' is a folder; a set lists policy files (name each one)",
    ]
    # members that are not policies, each named for what it is, at its line
    (tmp_path / "pii.tests.yaml").write_text("cases: []\n")
    (tmp_path / "other.yaml").write_text("policy_set: other\npolicies: [pii.yaml]\n")
    members = "  - pii.yaml\n  - pii.tests.yaml\n  - other.yaml\n  - set.yaml\n  - pii.yaml\n"
    (tmp_path / "set.yaml").write_text("policy_set: s\npolicies:\n" + members)
    with pytest.raises(PolicyError) as excinfo:
        load_policy_set(tmp_path / "set.yaml")
    assert [line.split(": policies: ", 1)[1] for line in str(excinfo.value).splitlines()] == [
        "'pii.tests.yaml' is a file of test cases; list the policy it tests",
        "'other.yaml' is a policy set itself; sets do not nest: list its policies here",
        "'set.yaml' is a policy set itself; sets do not nest: list its policies here",
        "'pii.yaml' is listed twice",
    ]
    assert str(excinfo.value).splitlines()[0].startswith(f"{tmp_path / 'set.yaml'}:4: ")
    # a set file that forgot to name itself is told how, in the project's terms
    (tmp_path / "set.yaml").write_text("id: s\npolicies: [pii.yaml]\n")
    with pytest.raises(PolicyError, match=r"has no `rules:`; a policy-set file names itself"):
        load_policy_set(tmp_path / "set.yaml")


def test_rules_directory_resolves_to_the_active_set() -> None:
    from_dir = load_policy_set(RULES)
    from_file = load_policy_set(RULES / "active.yaml")
    assert [p.id for p in from_dir.policies] == ["pii", "secrets", "conduct"]
    assert from_dir.digest == from_file.digest and len(from_dir.digest) == 64
    assert from_dir.id == "active" and from_dir.label == f"active@{from_dir.digest[:12]}"
    assert not from_dir.needs_ner  # the quick start loads no language model
    assert load_policy_set(RULES / "presidio_default.yaml").needs_ner


def test_digest_changes_with_any_byte(tmp_path) -> None:
    text = (RULES / "conduct.yaml").read_text(encoding="utf-8")
    (tmp_path / "conduct.yaml").write_text(text, encoding="utf-8")
    before = load_policy_set(tmp_path / "conduct.yaml").digest
    (tmp_path / "conduct.yaml").write_text(text + "\n# a comment\n", encoding="utf-8")
    assert load_policy_set(tmp_path / "conduct.yaml").digest != before


@pytest.mark.parametrize(
    "name", ["pii", "secrets", "conduct", "template", "presidio_patterns", "presidio_default"]
)
def test_every_shipped_policy_loads_and_has_tests(name) -> None:
    policy = load_policy(RULES / f"{name}.yaml")
    assert policy.rules and all(r.description for r in policy.rules)
    assert (RULES / f"{name}.tests.yaml").is_file()


def test_exported_names() -> None:
    assert sorted(pipelines.dlp.__all__) == [
        "Engine",
        "Policy",
        "PolicySet",
        "Scope",
        "Verdict",
        "load_policy",
        "load_policy_set",
        "view_text",
    ]
    for name in pipelines.dlp.__all__:
        assert getattr(pipelines.dlp, name).__module__.startswith("pipelines.dlp.")


def test_words_yaml_reads_as_booleans_or_numbers_are_told_to_be_quoted(tmp_path) -> None:
    path = tmp_path / "words.yaml"
    path.write_text(
        "id: words\ndescription: d\nrules:\n  - id: words.r\n    description: d\n    severity: low\n"
        "    action: flag\n    detectors:\n      - type: lexicon\n        terms: [no, '007']\n"
        "        context: {raise_words: [yes, 2026-01-05]}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as excinfo:
        load_policy(path)
    found = [line for line in str(excinfo.value).splitlines() if line.startswith(str(path))]
    assert [line.split(": Input should be a valid string ", 1)[1] for line in found] == [
        "(YAML read this as bool False: put the word in quotes)",
        "(YAML read this as bool True: put the word in quotes)",
        "(YAML read this as date datetime.date(2026, 1, 5): put the word in quotes)",
    ]
    assert found[0].startswith(f"{path}:10: ") and found[1].startswith(f"{path}:11: ")


def test_a_policy_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path) -> None:
    """A pipe drains on the first of the two reads a policy gets (it read as "empty"); a FIFO with
    no writer hung the command."""
    import os
    import signal

    def hung(*_: object) -> None:
        raise AssertionError("loading waited for a writer to open the FIFO")

    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    cases = tmp_path / "policy.tests.yaml"
    os.mkfifo(cases)
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(PolicyError, match=r"not a regular file .* save the policy file"):
            load_policy_set(fifo)  # returns at once: nothing opens the FIFO
        with pytest.raises(PolicyError, match="save the case file"):
            load_policy(cases)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_folder_without_an_active_set_loads_every_policy_file_in_it(tmp_path) -> None:
    """template.yaml copied into a folder of one's own is a policy like the others: a folder's set
    must not leave it out while `dlp test` still runs its cases."""
    import shutil

    for name in ("template.yaml", "template.tests.yaml", "pii.yaml"):
        shutil.copy(RULES / name, tmp_path / name)
    loaded = load_policy_set(tmp_path)
    assert sorted(p.id for p in loaded.policies) == sorted(
        [load_policy(RULES / "template.yaml").id, load_policy(RULES / "pii.yaml").id]
    )
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(RULES / "template.yaml", alone / "template.yaml")
    assert [p.id for p in load_policy_set(alone).policies] == [load_policy(RULES / "template.yaml").id]


def test_a_misspelt_key_is_one_error_not_also_the_key_it_should_have_been(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(CONF / "unknown_key.yaml")
    said = str(caught.value)
    assert "unknown key 'regx'" in said and "missing required key" not in said
    # a key missing beside an unknown key spelt otherwise is still named
    text = (CONF / "unknown_key.yaml").read_text(encoding="utf-8").replace("regx:", "colour:")
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"(?s)unknown key 'colour'.*missing required key 'regex'"):
        load_policy(tmp_path / "p.yaml")
    # and another key left out beside the misspelt one is named too
    text = (CONF / "unknown_key.yaml").read_text(encoding="utf-8").replace("        entity: CARD\n", "")
    (tmp_path / "q.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "q.yaml")
    said = str(caught.value)
    assert "unknown key 'regx'" in said and "missing required key 'entity'" in said
    assert "missing required key 'regex'" not in said
