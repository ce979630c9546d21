"""``vigil dlp dry-run``: replaying a real archive through a changed policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dlp_helpers import rule, write_policy
from factories import event, write_jsonl
from helpers import ingest

from pipelines.cli import main
from pipelines.dlp import load_policy_set
from pipelines.dlp.dryrun import dry_run, format_report, safe_sample
from pipelines.ingest import parse
from pipelines.record import DlpAction

RULES = Path(__file__).parent.parent / "dlp_rules"
SECRET_CARD = "4012 8888 8888 1881"


def _argv(policy: Path, archive: Path, *more: str) -> list[str]:
    """``vigil dlp dry-run`` of ``policy`` over ``archive``, as an officer."""
    return ["dlp", "dry-run", "--role", "officer", "--policy", str(policy), "--archive", str(archive), *more]


def _audit(archive: Path) -> list[dict]:
    path = archive / "_ledger" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dryrun")
    events = [event(i) for i in range(4)]  # "Message number i about the quarterly review."
    events += [
        event(10, body=f"card {SECRET_CARD} please"),
        event(11, body="keep this between us"),
        event(12, body="the password is Tr0ub4dor&3"),
        event(13, kind="event", event_type="participant_added", body=None),
    ]
    write_jsonl(root / "in" / "events-2026-01-05.jsonl", events)
    ingest(root / "in", root / "archive")  # the real pipeline, with the active policy set
    return root / "archive"


@pytest.fixture
def changed_rules(tmp_path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules, ignore=shutil.ignore_patterns("*.tests.yaml", "conftest.py", "__*"))
    pii = (rules / "pii.yaml").read_text(encoding="utf-8")
    # cards: redact -> block
    pii = pii.replace(
        "  - id: pii.card-number\n    description: Payment card numbers must not be sent in clear text\n"
        "    severity: high\n    action: redact",
        "  - id: pii.card-number\n    description: Payment card numbers must not be sent in clear text\n"
        "    severity: high\n    action: block",
    )
    (rules / "pii.yaml").write_text(pii, encoding="utf-8")
    # conduct dropped, a new flag rule added
    (rules / "review.yaml").write_text(
        "id: review\ndescription: new\nrules:\n"
        "  - id: review.quarterly\n    description: Quarterly reviews\n    severity: low\n    action: flag\n"
        "    detectors:\n      - {type: lexicon, terms: [quarterly review]}\n",
        encoding="utf-8",
    )
    (rules / "active.yaml").write_text("policy_set: next\npolicies: [pii.yaml, secrets.yaml, review.yaml]\n")
    return rules


def test_changes_per_rule_against_stored_verdicts(archive, changed_rules) -> None:
    result = dry_run(load_policy_set(changed_rules), archive)
    # 7 messages replayed; the employee notice the pipeline archived for the blocked one is Vigil's
    # own output and is skipped, as is the event without a body
    assert (result.messages, result.skipped, result.notices) == (7, 1, 1)
    assert result.current_policy == "stored verdicts"
    counts = {rule: dict(entry.counts) for rule, entry in result.rules.items()}
    assert counts == {
        "pii.card-number": {"blocked": 1},
        "conduct.secrecy": {"released": 1},
        "review.quarterly": {"flagged": 4},
    }
    assert result.transitions[("redact", "block")] == 1
    assert result.transitions[("flag", "none")] == 1
    assert result.transitions[("block", "block")] == 1  # the password: unchanged
    assert result.changed == 6 == sum(n for (old, new), n in result.transitions.items() if old != new)


def test_a_renamed_rule_changes_no_action_and_says_which_rules_match_instead(archive, tmp_path) -> None:
    # the headline counts messages whose action changes; a message that keeps its action but is
    # matched by another rule is counted apart, so the headline always equals the transitions
    rules = tmp_path / "renamed"
    shutil.copytree(RULES, rules, ignore=shutil.ignore_patterns("*.tests.yaml", "conftest.py", "__*"))
    conduct = (rules / "conduct.yaml").read_text(encoding="utf-8")
    (rules / "conduct.yaml").write_text(conduct.replace("id: conduct.secrecy\n", "id: conduct.secrecy-2\n"))
    result = dry_run(load_policy_set(rules), archive)
    assert result.changed == 0 == sum(n for (old, new), n in result.transitions.items() if old != new)
    assert result.rematched == 1 and not result.rules
    assert {k: dict(v) for k, v in result.rule_matches.items()} == {
        "conduct.secrecy": {"no longer matches": 1},
        "conduct.secrecy-2": {"now matches": 1},
    }
    text = format_report(result)
    assert "0 would change action" in text
    assert (
        "1 would keep their action but be matched by other rules (conduct.secrecy no longer matches 1; "
        "conduct.secrecy-2 now matches 1)"
    ) in text


def test_samples_never_show_secrets(archive, changed_rules) -> None:
    result = dry_run(load_policy_set(changed_rules), archive, samples=5)
    samples = [s for entry in result.rules.values() for group in entry.samples.values() for s in group]
    assert "card <CREDIT_CARD> please" in samples
    assert all(SECRET_CARD not in s and "Tr0ub4dor" not in s for s in samples)
    text = format_report(result)
    assert "pii.card-number" in text and SECRET_CARD not in text


def test_released_samples_hide_what_the_old_policy_found() -> None:
    assert safe_sample("pin 1234 and card 4012", [(4, 8, "PIN")], []) == "pin <PIN> and card 4012"


def test_against_a_policy_matches_the_stored_verdicts(archive, changed_rules) -> None:
    stored = dry_run(load_policy_set(changed_rules), archive)
    fresh = dry_run(load_policy_set(changed_rules), archive, against=load_policy_set(RULES))
    assert fresh.current_policy.startswith("active@")
    assert {r: dict(e.counts) for r, e in fresh.rules.items()} == {
        r: dict(e.counts) for r, e in stored.rules.items()
    }


def test_cli_json(archive, changed_rules, capsys) -> None:
    code = main(_argv(changed_rules, archive, "--json"))
    assert not code
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] == 7 and report["skipped_blocked_notices"] == 1 and report["changed"] == 6
    assert report["rules"]["pii.card-number"]["counts"] == {"blocked": 1}


@pytest.fixture
def own_archive(archive, tmp_path) -> tuple[Path, int]:
    """A copy of the shared archive, and how many entries its access log held when copied (the
    other tests' dry-runs)."""
    mine = tmp_path / "archive"
    shutil.copytree(archive, mine)
    return mine, len(_audit(mine))


@pytest.mark.parametrize("role", ["reviewer", "crm"])
def test_only_officers_may_replay_policies_and_a_refusal_is_logged(
    own_archive, changed_rules, capsys, role
) -> None:
    """A policy is a question about the original text: even its counts would tell a reviewer
    whether a card number DLP redacted is in the archive. Before, anyone could ask, unlogged."""
    mine, logged = own_archive
    argv = _argv(changed_rules, mine, "--user", "r.view", "--role", role)  # the last --role wins
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "only officers see" in captured.err and "--role officer" in captured.err
    (entry,) = _audit(mine)[logged:]
    assert (entry["action"], entry["role"], entry["user"], entry["results"]) == (
        "dlp-dry-run",
        role,
        "r.view",
        0,
    )
    assert "only officers see" in entry["details"]["refused"]
    assert entry["query"]["policy"] == load_policy_set(changed_rules).label


def test_a_refused_dry_run_is_logged_even_when_its_policy_does_not_load(
    own_archive, tmp_path, capsys
) -> None:
    # before: the policy was loaded first, so a reviewer naming a broken one left no trace
    mine, logged = own_archive
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: b\ndescription: x\nrules:\n  - id: r\n    action: redakt\n", encoding="utf-8")
    with pytest.raises(SystemExit) as refused:
        main(_argv(broken, mine, "--user", "r.view", "--role", "reviewer"))
    assert refused.value.code == 2
    assert "only officers see" in capsys.readouterr().err
    (entry,) = _audit(mine)[logged:]
    assert (entry["action"], entry["role"], entry["results"]) == ("dlp-dry-run", "reviewer", 0)
    assert entry["query"] == {"policy": str(broken), "against": "stored verdicts"}
    # an officer with the same file gets the policy's own error, and nothing is logged
    with pytest.raises(SystemExit) as bad:
        main(_argv(broken, mine))
    assert bad.value.code == 2 and "redakt" in capsys.readouterr().err
    assert len(_audit(mine)) == logged + 1


def test_an_officers_dry_run_is_logged_with_the_records_its_samples_show(
    own_archive, changed_rules, capsys
) -> None:
    mine, logged = own_archive
    assert not main(_argv(changed_rules, mine, "--user", "sec.team", "--samples", "1", "--json"))
    report = json.loads(capsys.readouterr().out)
    (entry,) = _audit(mine)[logged:]
    assert (entry["action"], entry["role"], entry["user"]) == ("dlp-dry-run", "officer", "sec.team")
    assert entry["results"] == report["messages"] == 7
    assert entry["query"] == {"policy": load_policy_set(changed_rules).label, "against": "stored verdicts"}
    assert entry["details"]["changed"] == report["changed"]
    # one sample per rule and change: the card now blocked, the secrecy phrase no rule flags any
    # more, the first quarterly review now flagged; the log names exactly those records
    assert {rule: list(v["samples"]) for rule, v in report["rules"].items()} == {
        "conduct.secrecy": ["released"],
        "pii.card-number": ["blocked"],
        "review.quarterly": ["flagged"],
    }
    from pipelines.archive import reader

    table = reader.read_table(mine, "records").select(["record_id", "body"]).to_pylist()
    body_of = {r["record_id"]: r["body"] for r in table}
    assert sorted(body_of[i] for i in entry["details"]["returned"]) == sorted(
        [f"card {SECRET_CARD} please", "keep this between us", "Message number 0 about the quarterly review."]
    )


def test_no_change_when_replaying_the_same_policy(archive, capsys) -> None:
    main(_argv(RULES, archive))
    out = capsys.readouterr().out
    assert "0 would change" in out and "no rule changes what happens to any message" in out


def test_cli_names_messages_it_could_not_inspect_and_exits_1(tmp_path, capsys) -> None:
    write_jsonl(tmp_path / "in" / "events-2026-01-05.jsonl", [event(1, body="a" * 60 + "!"), event(2)])
    ingest(tmp_path / "in", tmp_path / "archive")
    slow = {"type": "pattern", "entity": "X", "regex": "(a|aa)+$"}
    policy = write_policy(tmp_path / "rules", [rule("r.slow", [slow])])
    code = main(_argv(policy, tmp_path / "archive"))
    out = capsys.readouterr().out
    assert code == 1
    assert "2 message(s) replayed" in out and "1 message(s) could not be inspected" in out
    assert "ran longer than" in out


def test_samples_cannot_drive_the_terminal_or_forge_report_lines(tmp_path, capsys) -> None:
    # a sample is message text: escape sequences, bidirectional overrides and line breaks in it are
    # shown as escapes in the report (one sample, one line), and escaped JSON's way in --json
    body = (
        "quarterly \x1b[2J\x1b[31mred\u202eevil\u2028next\x85nel\x9b31m\n"
        f"  pii.card-number released: card {SECRET_CARD}"
    )
    write_jsonl(tmp_path / "in" / "events-2026-01-05.jsonl", [event(1, body=body)])
    ingest(tmp_path / "in", tmp_path / "archive")
    policy = write_policy(
        tmp_path / "rules",
        [rule("r.quarterly", [{"type": "lexicon", "terms": ["quarterly"]}], action="flag")],
    )
    argv = _argv(policy, tmp_path / "archive")
    assert not main(argv)
    out = capsys.readouterr().out
    assert SECRET_CARD not in out
    for raw in ("\x1b", "\u202e", "\u2028", "\x85", "\x9b"):
        assert raw not in out
    shown = (
        "<RISKY_PHRASE> \\x1b[2J\\x1b[31mred\\u202eevil"
        "\\u2028next\\x85nel\\x9b31m\\n  pii.card-number released: card <CREDIT_CARD>"
    )
    # redact -> flag: the card rule releases it, the new flag rule flags it; one line each
    samples = [line for line in out.splitlines() if line.startswith("  ")]
    assert samples == [f"  pii.card-number released: {shown}", f"  r.quarterly flagged: {shown}"]
    assert not main([*argv, "--json"])
    text = capsys.readouterr().out
    for raw in ("\x1b", "\u202e", "\u2028", "\x85", "\x9b"):
        assert raw not in text
    report = json.loads(text)
    (sample,) = report["rules"]["pii.card-number"]["samples"]["released"]
    assert sample.startswith("<RISKY_PHRASE> \x1b[2J") and "\u202eevil\u2028next\x85nel\x9b31m\n" in sample


def test_records_archived_without_a_verdict_are_not_reported_as_changes(tmp_path) -> None:
    # a run with --no-dlp stores "none" and no policy: that is no verdict, not "nothing matched"
    events = [event(1, body=f"card {SECRET_CARD} please"), event(2, body="keep this between us"), event(3)]
    write_jsonl(tmp_path / "in" / "events-2026-01-05.jsonl", events)
    ingest(tmp_path / "in", tmp_path / "archive", dlp=False)
    report = dry_run(load_policy_set(RULES), tmp_path / "archive")
    assert report.messages == 3 and report.changed == 0 and not report.transitions and not report.rules
    assert report.unverdicted == {"redact": 1, "flag": 1, "none": 1}
    text = format_report(report)
    assert "3 message(s) were archived without a DLP verdict" in text
    assert "flag 1, none 1, redact 1" in text and "->" not in text
    assert report.to_json()["archived_without_verdict"] == {"flag": 1, "none": 1, "redact": 1}
    # against a policy, both sides are fresh verdicts: such records are compared as usual
    against = dry_run(load_policy_set(RULES), tmp_path / "archive", against=load_policy_set(RULES))
    assert not against.unverdicted and against.transitions == {
        ("redact", "redact"): 1,
        ("flag", "flag"): 1,
        ("none", "none"): 1,
    }


def test_large_counts_are_printed_with_thousands_separators() -> None:
    # every other command groups thousands; a dry run over a year of traffic should read the same
    from collections import Counter

    from pipelines.dlp.dryrun import DryRunReport

    report = DryRunReport("new", "current", messages=1_234_567, skipped=20_000, notices=1_500, changed=12_345)
    report.transitions = Counter({("none", "block"): 12_345})
    report.unverdicted = Counter({"redact": 4_321})
    report.rules["pii.card"].counts["blocked"] = 12_345
    text = format_report(report)
    assert "1,234,567 message(s) replayed (20,000 record(s) without a body and 1,500 of" in text
    assert "12,345 would change action" in text and "none -> block: 12,345" in text
    assert "4,321 message(s) were archived without a DLP verdict" in text and "redact 4,321" in text
    assert any(line.startswith("pii.card") and line.split()[1:2] == ["12,345"] for line in text.splitlines())


# -- samples mask what the archived verdict found; every change is credited to its rules --------

CARD_RULE = {"type": "pattern", "entity": "CREDIT_CARD", "regex": r"(?<!\d)\d{4}(?: \d{4}){3}(?!\d)"}
VAULT_TOKEN = "VLT-9QZ2XK7M4P1B"
VAULT_BODY = f"my card {SECRET_CARD} is red, vault token {VAULT_TOKEN}"


def _lexicon(*terms: str, entity: str = "PHRASE") -> dict[str, object]:
    return {"type": "lexicon", "entity": entity, "terms": list(terms)}


@pytest.fixture(scope="module")
def vault(tmp_path_factory) -> Path:
    """An archive whose verdicts came from a policy with a block rule (``vault.token``) that the
    policies compared with it here do not have: only the stored findings say where the token is.
    Beside it: ``new`` (flags the word red) and ``cards`` (redacts card numbers)."""
    root = tmp_path_factory.mktemp("vault")
    token = {"type": "pattern", "entity": "VAULT_TOKEN", "regex": r"VLT-[0-9A-Z]{12}"}
    archived_with = write_policy(
        root / "archived",
        [rule("vault.token", [token], action="block"), rule("vault.card", [CARD_RULE])],
        name="vault",
    )
    write_jsonl(root / "in" / "events-2026-01-05.jsonl", [event(1, body=VAULT_BODY), event(2)])
    ingest(root / "in", root / "archive", policy=str(archived_with))
    write_policy(
        root / "new", [rule("new.red", [_lexicon("red", entity="COLOUR")], action="flag")], name="new"
    )
    write_policy(root / "cards", [rule("cards.card", [CARD_RULE])], name="cards")
    return root


@pytest.mark.parametrize("against", [None, "cards"])
@pytest.mark.parametrize("as_json", [False, True])
def test_samples_mask_the_findings_stored_with_the_record(vault, against, as_json, capsys) -> None:
    # neither compared policy finds the token; the archived verdict did (and blocked the message):
    # a sample must not show it, with --against or without, as text or as JSON
    argv = _argv(vault / "new", vault / "archive")
    if against:
        argv += ["--against", str(vault / against)]
    argv += ["--json"] if as_json else []
    assert not main(argv)
    out = capsys.readouterr().out
    assert VAULT_TOKEN not in out and SECRET_CARD not in out
    if as_json:
        report = json.loads(out)
        samples = [s for r in report["rules"].values() for group in r["samples"].values() for s in group]
    else:
        samples = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("  ")]
    assert samples and set(samples) == {"my card <CREDIT_CARD> is <COLOUR>, vault token <VAULT_TOKEN>"}


def test_samples_mask_stored_findings_also_when_the_row_is_given(vault) -> None:
    from pipelines.dlp.dryrun import COLUMNS, archive_rows

    rows = list(archive_rows(vault / "archive", COLUMNS))
    assert {f["rule_id"] for r in rows for f in r["dlp_findings"]} == {"vault.token", "vault.card"}
    report = dry_run(
        load_policy_set(vault / "new"), Path("unused"), rows=rows, against=load_policy_set(vault / "cards")
    )
    samples = [s for entry in report.rules.values() for group in entry.samples.values() for s in group]
    assert samples and all(VAULT_TOKEN not in s for s in samples)


def test_a_weaker_action_credits_the_rule_that_decides_it(vault) -> None:
    # the reviewer's case: redact -> flag. The card rule no longer applies (released) and the new
    # flag rule is what flags the message now: both are in the table, the text and the JSON
    report = dry_run(
        load_policy_set(vault / "new"), vault / "archive", against=load_policy_set(vault / "cards")
    )
    assert report.transitions == {("redact", "flag"): 1, ("none", "none"): 1} and report.changed == 1
    assert {r: dict(e.counts) for r, e in report.rules.items()} == {
        "cards.card": {"released": 1},
        "new.red": {"flagged": 1},
    }
    assert report.to_json()["rules"]["new.red"]["counts"] == {"flagged": 1}
    text = format_report(report)
    assert "redact -> flag: 1" in text
    assert any(line.split() == ["new.red", "0", "0", "1", "0"] for line in text.splitlines())
    # against the stored verdict (block, by two rules the new policy lacks) it is the same
    stored = dry_run(load_policy_set(vault / "new"), vault / "archive")
    assert stored.transitions[("block", "flag")] == 1
    assert {r: dict(e.counts) for r, e in stored.rules.items()} == {
        "vault.token": {"released": 1},
        "vault.card": {"released": 1},
        "new.red": {"flagged": 1},
    }


@pytest.fixture(scope="module")
def shifts(tmp_path_factory) -> tuple[Path, Path, Path]:
    """An archive and two policies: ``old`` and ``new`` share rules, change actions, drop and add."""
    root = tmp_path_factory.mktemp("shifts")
    events = [
        event(1, body=f"card {SECRET_CARD} stays between us"),  # block (card) -> redact (card)
        event(2, body="keep this between us"),  # flag -> flag
        event(3, body="between us: the wire code is 1234"),  # flag -> block (a new rule)
        event(4, body="let's take this offline"),  # flag (a dropped rule) -> block (another rule)
        event(5, body="the fee is 20 percent"),  # redact (a dropped rule) -> none
        event(6),  # none -> none
    ]
    write_jsonl(root / "in" / "events-2026-01-05.jsonl", events)
    ingest(root / "in", root / "archive", dlp=False)  # both sides are fresh verdicts (--against)
    secrecy = rule("t.secrecy", [_lexicon("between us")], action="flag")
    old = write_policy(
        root / "old",
        [
            rule("t.card", [CARD_RULE], action="block"),
            secrecy,
            rule("t.offline-old", [_lexicon("offline")], action="flag"),
            rule("t.fee", [_lexicon("20 percent")]),
        ],
        name="old",
    )
    new = write_policy(
        root / "new",
        [
            rule("t.card", [CARD_RULE]),
            secrecy,
            rule("t.wire", [_lexicon("wire code")], action="block"),
            rule("t.offline-new", [_lexicon("offline")], action="block"),
        ],
        name="new",
    )
    return root / "archive", old, new


def test_every_change_is_credited_to_the_rules_that_decide_it_whichever_way(shifts) -> None:
    archive, old, new = shifts
    report = dry_run(load_policy_set(new), archive, against=load_policy_set(old))
    assert report.transitions == {
        ("block", "redact"): 1,
        ("flag", "flag"): 1,
        ("flag", "block"): 2,
        ("redact", "none"): 1,
        ("none", "none"): 1,
    }
    assert report.changed == 4 == sum(n for (a, b), n in report.transitions.items() if a != b)
    assert {r: dict(e.counts) for r, e in report.rules.items()} == {
        # block -> redact by the same rule: it now redacts (newly redacted) and no longer blocks
        # (released); t.secrecy still flags that message as before and is not credited
        "t.card": {"redacted": 1, "released": 1},
        # flag -> block: the new block rule; t.secrecy still flags, so it releases nothing
        "t.wire": {"blocked": 1},
        # flag -> block by another rule: the new one blocks, the dropped one no longer flags
        "t.offline-new": {"blocked": 1},
        "t.offline-old": {"released": 1},
        "t.fee": {"released": 1},
    }
    assert not report.rematched and not report.rule_matches
    # how the counts relate to the transitions: each message whose action changes to X is credited
    # to at least one rule as newly X (no rule more often than such messages exist), and each message
    # whose action got weaker is released by at least one rule
    moved = [(DlpAction(a), DlpAction(b), n) for (a, b), n in report.transitions.items() if a != b]
    for action, change in {DlpAction.BLOCK: "blocked", DlpAction.REDACT: "redacted"}.items():
        into = sum(n for _, b, n in moved if b is action)
        counts = [e.counts[change] for e in report.rules.values() if e.counts[change]]
        assert max(counts) <= into <= sum(counts)
    weakened = sum(n for a, b, n in moved if b.strength < a.strength)
    released = [e.counts["released"] for e in report.rules.values() if e.counts["released"]]
    assert weakened <= sum(released) and max(released) <= report.changed


def test_a_source_record_with_the_notice_type_is_traffic_and_replayed(
    tmp_path, changed_rules, monkeypatch
) -> None:
    # only the notices Vigil made are its own output; a source's record that happens to carry the
    # event type is compared like any other (here: its card number is newly blocked). Ingest now
    # refuses one (reserved_event_type), so the archive is written as before that refusal
    monkeypatch.setattr(parse, "RESERVED_EVENT_TYPES", frozenset())
    events = [
        event(
            1,
            kind="auto_message",
            event_type="dlp_blocked_notice",
            audience="employee",
            direction="system",
            body=f"card {SECRET_CARD} please",
        )
    ]
    write_jsonl(tmp_path / "in" / "a.jsonl", events)
    ingest(tmp_path / "in", tmp_path / "archive")
    result = dry_run(load_policy_set(changed_rules), tmp_path / "archive")
    assert (result.messages, result.notices) == (1, 0)
    assert dict(result.rules["pii.card-number"].counts) == {"blocked": 1}


@pytest.mark.parametrize("held", [None, "short"])
def test_a_hash_policy_replays_without_the_production_key(
    archive, tmp_path, capsys, monkeypatch, held: str | None
) -> None:
    """Samples show labels, never digests: the author's machine need not hold the HMAC secret, and
    a key there too short for `run` (before: refused, "only 5 bytes long") does not stop it."""
    if held is None:
        monkeypatch.delenv("VIGIL_DRYRUN_ONLY_KEY", raising=False)
    else:
        monkeypatch.setenv("VIGIL_DRYRUN_ONLY_KEY", held)
    card = {"type": "pattern", "entity": "CREDIT_CARD", "regex": r"\d{4}(?: \d{4}){3}"}
    policy = write_policy(
        tmp_path,
        [rule("t.card", [card], operator={"type": "hash", "key_env": "VIGIL_DRYRUN_ONLY_KEY"})],
        name="hashed",
    )
    code = main(_argv(policy, archive, "--json"))
    out = capsys.readouterr().out
    assert not code
    report = json.loads(out)
    assert report["messages"] == 7  # replayed, not refused for the missing key
    assert SECRET_CARD not in out
