"""``vigil search`` from the command line: output, paging, roles from configuration, errors."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import VIGIL
from rich.console import Console
from search_support import (
    audit_entries,
    dataset,
    no_user_config,  # noqa: F401  (autouse: no caller's config)
    vigil,
    write_archive,
)

from pipelines.errors import ConfigError
from pipelines.search import conversation, embedded, render, sql
from pipelines.search.access import AccessRole, Identity, load_identity
from pipelines.search.parse import parse_query
from pipelines.search.results import Page

ROWS = dataset()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("cli") / "archive", ROWS)


def test_json_lines_have_the_promised_fields(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "reviewer", "card", "--json") == 0
    (line,) = capsys.readouterr().out.splitlines()
    hit = json.loads(line)
    assert {"record_id", "conversation_id", "channel", "event_time", "text"} <= hit.keys()
    assert {"kind", "event_type", "direction", "sender", "dlp_action"} <= hit.keys()
    assert hit["event_time"] == "2026-01-05T09:07:00Z"
    assert hit["text"] == "Card <CREDIT_CARD> is the one for the deposit."  # the reviewer's view
    assert hit["dlp_action"] == "redact" and hit["dlp_rule_ids"] == ["pii.card-number"]
    assert hit["highlights"] == [[0, 4]]
    assert "redacted_text" not in hit


@pytest.mark.parametrize("role", ["officer", "reviewer", "crm"])
def test_json_says_whether_a_message_was_queued_or_refused_as_the_table_does(
    archive: Path, capsys, role: str
) -> None:
    # a message the channel queued or refused was not delivered: a script reading --json must
    # be able to tell, as a person reading the table can (`message · queued`)
    argv = ["search", "--archive", str(archive), "--role", role, "--json", "conversation:conv-en"]
    assert vigil(*argv, "--size", "100") == 0
    hits = {h["record_id"]: h for h in map(json.loads, capsys.readouterr().out.splitlines())}
    by_event = {r["event_id"]: r["record_id"] for r in ROWS}
    assert hits[by_event["en-7"]]["delivery"] == "queued"
    assert hits[by_event["en-9"]]["delivery"] == "refused"
    assert hits[by_event["en-8"]]["delivery"] is None  # an event: nothing was delivered or not
    assert all("attributes" not in h and "queue_position" not in json.dumps(h) for h in hits.values())


def test_flags_are_filters_too(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json"]
    assert vigil(*argv, "settlement", "--channel", "sms", "--from", "2026-01-04") == 0
    flagged = capsys.readouterr().out
    assert vigil(*argv, "settlement", "channel:sms", "from:2026-01-04") == 0
    typed = capsys.readouterr().out
    assert flagged == typed and len(typed.splitlines()) == 1


def test_table_shows_totals_paging_and_emphasis(archive: Path) -> None:
    officer = Identity("o", AccessRole.OFFICER)
    result = embedded.search(archive, parse_query("settlement"), officer, Page(number=2, size=2))
    out = io.StringIO()
    render.print_table(
        result, "officer", Console(file=out, force_terminal=True, width=140, color_system="256")
    )
    text = out.getvalue()
    assert "6 hits · page 2 of 3 (2 per page, newest first)" in text
    assert "embedded engine" in text and "role officer" in text
    styled = [line for line in text.splitlines() if "settlement" in line and "portal" in line]
    assert styled, text
    # the matched word is wrapped in a style, the words around it are not
    (line,) = styled[:1]
    before, _, after = line.partition("settlement")
    assert before.rstrip(" ").endswith("m") and "\x1b[" in before[-12:]
    assert after.startswith("\x1b[0m")


def test_past_the_last_page(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "officer", "settlement", "--page", "9") == 0
    out = capsys.readouterr().out
    assert "6 hits" in out and "past the last page" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["card OR channel:sms"], "filters apply to the whole query"),
        (['"unclosed'], "quote is not closed"),
        (["card", "--size", "0"], "--size 0"),
        (["card", "--page", "0"], "pages start at 1"),
        (["--channel", "fax"], "use one of"),
        (["NOT " * 500 + "card"], "at most 32 are allowed"),  # not a RecursionError
        (["participant:(852) 9111-0000"], 'participant:"(852) 9111-0000"'),
        (["from:0001-01-01T00:00:00+01:00"], "outside the calendar"),  # not an OverflowError
        (["--from", "9999-12-31T23:00:00-05:00"], "outside the calendar"),
        (["--to", "0001-01-01T00:00:00+01:00"], "outside the calendar"),
        # a word with a leading "-" reads as an option: the error says how to pass it
        (
            ["hello", "-script"],
            "'-script' reads as an option; put query words that start with '-' after '--'",
        ),
        (["hello", "-hello"], "'-hello' reads as an option"),  # not "-h" for help, then "-e"
        (["-5"], "'-5' reads as an option"),
    ],
)
def test_user_mistakes_are_one_line_errors(archive: Path, capsys, argv: list[str], message: str) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "officer", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "unexpected" not in err
    if '"' not in argv[0]:  # a syntax error adds the query and a pointer below the line
        assert err.count("\n") == 1
    assert "Traceback" not in err


def test_no_role_is_a_configuration_error_that_says_how_to_set_it(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "card") == 2
    err = capsys.readouterr().err
    assert "no role configured" in err and "--role" in err and "config.toml" in err


def test_missing_archive(tmp_path: Path, capsys) -> None:
    assert vigil("search", "--archive", str(tmp_path / "nope"), "--role", "officer", "card") == 2
    assert "no such folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# who is asking: flags, then --config, then $VIGIL_CONFIG, then the default file


def _toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_identity_sources_in_order(tmp_path: Path) -> None:
    default = _toml(tmp_path / "xdg" / "vigil" / "config.toml", 'user = "dee"\nrole = "crm"\n')
    named = _toml(tmp_path / "named.toml", 'user = "nina"\nrole = "reviewer"\n')
    flagged = _toml(tmp_path / "flag.toml", 'user = "fay"\nrole = "officer"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert load_identity(environ=env) == Identity("dee", AccessRole.CRM)
    env["VIGIL_CONFIG"] = str(named)
    assert load_identity(environ=env) == Identity("nina", AccessRole.REVIEWER)
    assert load_identity(config=flagged, environ=env) == Identity("fay", AccessRole.OFFICER)
    assert load_identity(config=flagged, role="crm", user="zed", environ=env) == Identity(
        "zed", AccessRole.CRM
    )
    assert default.exists()


def test_user_defaults_to_the_login_name(tmp_path: Path) -> None:
    identity = load_identity(role="officer", environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert identity.user and identity.role is AccessRole.OFFICER


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('role = "admin"\n', "not a role; use officer, reviewer or crm"),
        ("role = \n", "not valid TOML"),
        ("role = 3\n", 'role must be a string, e.g. role = "reviewer"'),
        ('user = "x"\n', "no role configured"),
    ],
)
def test_bad_configuration_says_what_to_fix(tmp_path: Path, content: str, message: str) -> None:
    path = _toml(tmp_path / "c.toml", content)
    with pytest.raises(ConfigError) as excinfo:
        load_identity(config=path, environ={})
    assert message in str(excinfo.value)


@pytest.mark.parametrize("where", ["flag", "env"])
@pytest.mark.parametrize(
    ("name", "says"), [("missing.toml", "no such file"), ("", "a folder, not a configuration")]
)
def test_a_named_file_that_does_not_exist(tmp_path: Path, where: str, name: str, says: str) -> None:
    missing = tmp_path / name if name else tmp_path
    with pytest.raises(ConfigError) as excinfo:
        if where == "flag":
            load_identity(config=missing, environ={})
        else:
            load_identity(environ={"VIGIL_CONFIG": str(missing)})
    assert str(missing) in str(excinfo.value) and says in str(excinfo.value)


def test_the_role_comes_from_the_config_file_not_the_query(
    archive: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("VIGIL_CONFIG", str(_toml(tmp_path / "c.toml", 'user = "ravi"\nrole = "reviewer"\n')))
    assert vigil("search", "--archive", str(archive), "AKIAIOSFODNN7EXAMPLE", "--json") == 0
    assert capsys.readouterr().out == ""  # a reviewer cannot find the secret by its value
    assert vigil("search", "--archive", str(archive), "role:officer", "card") == 2
    assert "unknown filter role:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("sort", "first"), [("-time", "2026-02-02T12:00:00Z"), ("time", "2026-01-03T12:00:00Z")]
)
def test_sort_flag(archive: Path, capsys, sort: str, first: str) -> None:
    argv = ["search", "--archive", str(archive), "--role", "officer", "settlement", "--json", "--size", "1"]
    assert vigil(*argv, "--sort", sort) == 0
    assert json.loads(capsys.readouterr().out)["event_time"] == first


def _ids(out: str) -> list[str]:
    return [json.loads(line)["record_id"] for line in out.splitlines()]


@pytest.mark.parametrize(
    ("one_string", "words"),
    [
        ("org:globex settlement", ["settlement", "org:globex"]),
        ("channel:sms settlement", ["settlement", "channel:sms"]),
        ("dlp:block rule:pii", ["dlp:block", "rule:pii"]),
        ("conversation:conv-en settlement", ["conversation:conv-en", "settlement"]),
        ("settlement OR bond channel:sms", ["(settlement OR bond)", "channel:sms"]),
        ('participant:"Wei Zhang" card', ["participant:Wei Zhang", "card"]),
    ],
)
def test_a_query_in_one_shell_word_means_what_the_grammar_says(
    archive: Path, capsys, one_string: str, words: list[str]
) -> None:
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json"]
    assert vigil(*argv, one_string) == 0
    together = _ids(capsys.readouterr().out)
    assert vigil(*argv, *words) == 0
    apart = _ids(capsys.readouterr().out)
    assert together == apart and together


def test_a_spaced_participant_word_is_one_filter(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json"]
    assert vigil(*argv, "participant:Kenji  Sato") == 0
    assert len(_ids(capsys.readouterr().out)) == 2


def test_a_compact_date_is_a_whole_day(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json"]
    assert vigil(*argv, "settlement", "to:20260105", "from:20260105") == 0
    compact = _ids(capsys.readouterr().out)
    assert vigil(*argv, "settlement", "to:2026-01-05", "from:2026-01-05") == 0
    assert compact == _ids(capsys.readouterr().out) and len(compact) == 3
    assert vigil(*argv, "from:2026-01-09", "to:2026-01-01") == 2
    assert "from: 2026-01-09 is after to: 2026-01-01" in capsys.readouterr().err


@pytest.mark.parametrize(
    "end", [["to:9999-12-31"], ["to:9999-12-31T23:59:59.999999"], ["--to", "9999-12-31"]]
)
def test_an_end_date_at_the_end_of_the_calendar_means_no_end(archive: Path, capsys, end: list[str]) -> None:
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json", "--size", "100"]
    assert vigil(*argv, "from:2026-01-05", *end) == 0
    far = _ids(capsys.readouterr().out)
    assert vigil(*argv, "from:2026-01-05") == 0
    assert far == _ids(capsys.readouterr().out) and far
    last = json.loads((archive / "_ledger" / "audit.jsonl").read_text(encoding="utf-8").splitlines()[-2])
    assert last["query"]["time_to"] == "9999-12-31"


def test_json_escapes_control_characters(tmp_path: Path, capsys) -> None:
    from search_support import WEI, at, row

    body = (
        "pay \u202egnp.exe\u202c now \x9b31m \x1b[2J del\x7f and \u2066isolate\u2069"
        " line\u2028paragraph\u2029next\x85line"
    )
    sender = {**WEI, "name": "Wei \u202eZhang"}
    archive = write_archive(tmp_path / "a", [row("t-1", at(5, 9), body=body, sender=sender)])
    assert vigil("search", "--archive", str(archive), "--role", "officer", "--json", "pay") == 0
    out = capsys.readouterr().out
    for raw in ("\u202e", "\u202c", "\x9b", "\x1b", "\x7f", "\u2066", "\u2069", "\u2028", "\u2029", "\x85"):
        assert raw not in out
    assert len(out.splitlines()) == 1  # one hit, one line, even to str.splitlines
    assert "\\u202egnp.exe\\u202c now \\u009b31m \\u001b[2J del\\u007f" in out
    hit = json.loads(out)
    assert hit["text"] == body and hit["sender"]["name"] == "Wei \u202eZhang"  # the same text, read back


def test_the_table_shows_line_and_paragraph_separators_as_escapes(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a terminal prints U+2028 as nothing or a box, and the row's right border came out a column off
    from search_support import at, row

    monkeypatch.setenv("COLUMNS", "120")
    body = "hello\u2028world card\u2029end"
    archive = write_archive(tmp_path / "a", [row("t-1", at(5, 9), body=body)])
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    out = capsys.readouterr().out
    assert "\u2028" not in out and "\u2029" not in out
    assert "hello\\u2028world" in out
    widths = {len(line) for line in out.splitlines() if line.startswith(("│", "┃"))}
    assert len(widths) == 1  # every row of the table as wide as the others


def test_a_participant_search_that_finds_nothing_suggests_keys(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json"]
    assert vigil(*argv, "participant:kenji") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert 'did you mean participant:"kenji sato"' in captured.err
    assert vigil(*argv, "participant:李美") == 0
    assert "did you mean" not in capsys.readouterr().err  # found: no hint


def test_a_participant_value_with_a_comma_that_finds_nothing_says_to_repeat_the_filter(
    archive: Path, capsys
) -> None:
    # other filters read `a,b` as "either"; participant: takes the comma as part of one name, so
    # `participant:kenji sato,cust-1` found nothing and said nothing about why
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json"]
    assert vigil(*argv, "participant:Kenji Sato,U4af4980629") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        'note: participant:"kenji sato,u4af4980629" is one name (a name may hold a comma), not a list, '
        'and no record has it; for records with several people, repeat the filter: participant:"kenji sato" '
        "participant:u4af4980629"
    ) in captured.err
    assert vigil(*argv, "participant:Kenji Sato", "participant:U4af4980629") == 0
    captured = capsys.readouterr()
    assert _ids(captured.out) and "one name" not in captured.err  # repeated: found, no note


def test_cjk_names_match_with_or_without_the_space(tmp_path: Path, capsys) -> None:
    from search_support import KENJI, at, row

    sato = {**KENJI, "name": "佐藤 大輔"}
    archive = write_archive(
        tmp_path / "a", [row("s-1", at(5, 9), body="hi", sender=sato, participants=[sato])]
    )
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json"]
    found = []
    for written in ("participant:佐藤大輔", 'participant:"佐藤 大輔"', 'participant:"佐藤  大輔"'):
        assert vigil(*argv, written) == 0
        captured = capsys.readouterr()
        found.append(_ids(captured.out))
        assert "did you mean" not in captured.err
    assert len(found[0]) == 1 and found == [found[0]] * 3


def test_the_crm_role_gets_no_dlp_fields_and_cannot_filter_by_them(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "crm"]
    assert vigil(*argv, "--json", "conversation:conv-en") == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(hits) == 9  # ten records, the blocked one left out
    assert all(not {"dlp_action", "dlp_rule_ids", "blocked"} & h.keys() for h in hits)
    for words in (["dlp:block"], ["rule:pii"], ["--dlp", "flag", "card"]):
        assert vigil(*argv, *words) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "crm role cannot filter by DLP" in err and err.count("\n") == 1


def test_the_table_shows_control_characters_as_escapes(tmp_path: Path) -> None:
    from search_support import at, row

    body = "alert \x1b[2J\x1b[31m RED \x1b[0m \u202eexe.pdf\u202c end"
    archive = write_archive(tmp_path / "a", [row("t-1", at(5, 9), body=body)])
    result = embedded.search(archive, parse_query("RED"), Identity("o", AccessRole.OFFICER))
    out = io.StringIO()
    render.print_table(result, "officer", Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\x1b[31m RED \\x1b[0m" in text and "\\u202eexe.pdf\\u202c" in text
    # the highlight still covers the word itself once escapes have lengthened the text
    hit = result.hits[0]
    shown, spans = render.safe_spans(hit.text or "", hit.highlights)
    assert [shown[s:e] for s, e in spans] == ["RED"]


# DuckDB works on these for minutes; a Ctrl-C must stop them at once. In the second, the signal
# mostly lands inside Vigil's own Python function, which DuckDB reports another way
ENDLESS = {
    "sql": "SELECT sum(hash(i)) + len($files) FROM range(20000000000) t(i)",
    "python-function": (
        f"SELECT count({sql.WIDTH_FOLD}(i::VARCHAR)) + len($files) FROM range(20000000000) t(i)"
    ),
}


@pytest.mark.parametrize("endless", sorted(ENDLESS))
@pytest.mark.parametrize(
    "argv",
    [["search", "settlement"], ["conversation", "conv-en"]],
    ids=["search", "conversation"],
)
def test_ctrl_c_while_duckdb_reads_the_archive_aborts_with_130_and_logs_nothing(
    archive: Path, capsys, monkeypatch: pytest.MonkeyPatch, argv: list[str], endless: str
) -> None:
    # DuckDB reports a Ctrl-C during a statement as its own error, not as KeyboardInterrupt, and
    # one that lands inside Vigil's Python function was lost about one time in three: each must
    # reach the user as an abort, at once, not as "unexpected RuntimeError ... please report it"
    real = embedded._execute
    con = embedded.connection()  # this thread's, the one the command uses
    stuck = threading.Event()  # the signal did not stop DuckDB: end the statement another way
    timers: list[threading.Timer] = []

    def unstick() -> None:
        stuck.set()
        con.interrupt()

    def never_ending(statement: str, params: dict[str, Any], *, arrow: bool = False) -> Any:
        timers[:] = [
            threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)),  # once it runs
            threading.Timer(20, unstick),
        ]
        for timer in timers:
            timer.start()
        return real(ENDLESS[endless], {"files": params["files"]}, arrow=arrow)

    monkeypatch.setattr(embedded, "_execute", never_ending)
    monkeypatch.setattr(conversation, "execute", never_ending)  # imported by name there
    logged = len(audit_entries(archive))
    for _ in range(3):  # a lost Ctrl-C was a matter of timing: try it more than once
        try:
            code = vigil(argv[0], argv[1], "--archive", str(archive), "--role", "officer")
        finally:
            for timer in timers:
                timer.cancel()
        assert not stuck.is_set()
        assert code == 130
        err = capsys.readouterr().err
        assert "Aborted." in err and "unexpected" not in err and "report" not in err
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    assert len(audit_entries(archive)) == logged  # nothing was shown, so nothing is on record


@pytest.mark.parametrize("where", ["pages", "footer"])
def test_a_damaged_file_is_named_as_such_by_search_and_by_conversation(
    archive: Path, tmp_path, capsys, where: str
) -> None:
    import shutil

    damaged = tmp_path / "archive"
    shutil.copytree(archive, damaged)
    target = max((damaged / "records").rglob("*.parquet"), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    size = len(data)
    # after the leading magic (column pages), or before the trailing length and magic (metadata)
    spots = range(8, size // 4, 13) if where == "pages" else range(size - size // 4, size - 8, 13)
    for at in spots:
        data[at] ^= 0xFF
    target.write_bytes(bytes(data))
    for argv in (["search", "settlement"], ["conversation", "conv-en"]):
        assert vigil(*argv, "--archive", str(damaged), "--role", "officer") == 3
        err = capsys.readouterr().err
        assert err.startswith("error: the archive could not be read (") and "run `vigil verify`" in err
        assert "search" not in err.split("(")[0]  # the conversation view is not called a search


@pytest.mark.parametrize("end", [["to:9999-12-31"], ["--to", "9999-12-31"]])
def test_no_end_keeps_a_record_stamped_at_the_last_microsecond_of_the_calendar(
    tmp_path: Path, capsys, end: list[str]
) -> None:
    """An end at the calendar's last instant was applied as "before it" and left out a record
    stamped there (a source may stamp year 9999); "no end" compiles to no upper bound at all."""
    import datetime as dt

    from search_support import at, row

    from pipelines.search.dsl import compile_query as compile_dsl

    last = dt.datetime.max.replace(tzinfo=dt.UTC)
    archive = write_archive(
        tmp_path / "a",
        [row("t-1", at(5, 9), body="early"), row("t-2", last, body="late", received_time=last)],
    )
    argv = ["search", "--archive", str(archive), "--role", "officer", "--json"]
    assert vigil(*argv, "from:2026-01-05", *end) == 0
    times = [json.loads(line)["event_time"][:4] for line in capsys.readouterr().out.splitlines()]
    assert sorted(times) == ["2026", "9999"]
    assert vigil(*argv, "to:9999-12-30") == 0
    assert [json.loads(line)["event_time"][:4] for line in capsys.readouterr().out.splitlines()] == ["2026"]
    dsl = json.dumps(compile_dsl(parse_query("from:2026-01-05 to:9999-12-31")))
    assert '"gte"' in dsl and '"lt"' not in dsl
    assert "event_time <" not in sql.compile_query(parse_query("to:9999-12-31")).where


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_json_lines_print_whatever_the_output_encoding_and_read_back_the_same(
    archive: Path, encoding: str
) -> None:
    """Before, --json ended with "unexpected UnicodeEncodeError" (exit 3) when the output was
    Latin-1: the characters it cannot hold are now written the JSON way (\\u6c47)."""
    argv = [*VIGIL, "search", "--archive", str(archive), "--role", "officer", "--json", "channel:wechat"]
    plain = subprocess.run(argv, capture_output=True, timeout=120, check=True)
    result = subprocess.run(
        argv, capture_output=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": encoding}
    )
    assert result.returncode == 0, result.stderr
    # (click writes UTF-8 where Python says ASCII: the C locale's way of saying "unknown")
    written = "utf-8" if encoding == "ascii" else encoding
    wanted = [json.loads(line) for line in plain.stdout.decode("utf-8").splitlines()]
    assert any(not json.dumps(hit, ensure_ascii=False).isascii() for hit in wanted)  # Chinese in it
    assert [json.loads(line) for line in result.stdout.decode(written).splitlines()] == wanted
    scan = subprocess.run(
        [*VIGIL, "dlp", "scan", "--policy", "dlp_rules"],
        input='{"id": "汇", "text": "card 4012 8888 8888 1881 汇率 😀"}\n'.encode(),
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": encoding},
    )
    assert scan.returncode == 0, scan.stderr
    (out,) = [json.loads(line) for line in scan.stdout.decode(written).splitlines()]
    assert out["id"] == "汇" and out["redacted_text"] == "card ***************1881 汇率 😀"


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_the_table_prints_on_a_terminal_that_cannot_show_every_character(
    archive: Path, encoding: str
) -> None:
    """Before, the summary's own "·" and "–" (and any Chinese body) ended the table with an
    "unexpected UnicodeEncodeError" when the output's encoding was ASCII or Latin-1."""
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    for argv in (
        ["search", "--archive", str(archive), "--role", "officer", "channel:wechat"],
        ["conversation", "conv-zh", "--archive", str(archive), "--role", "officer"],
    ):
        result = subprocess.run([*VIGIL, *argv], capture_output=True, timeout=120, env=env)
        assert result.returncode == 0 and b"unexpected" not in result.stderr, result.stderr
        assert b"\\u" in result.stdout  # what the encoding cannot hold, written as escapes


def test_a_word_with_a_leading_dash_after_double_dash_is_a_word(archive: Path, capsys) -> None:
    argv = ("search", "--archive", str(archive), "--role", "officer", "--json")
    assert vigil(*argv, "settlement") == 0
    plain = capsys.readouterr().out
    assert plain and vigil(*argv, "--", "-settlement") == 0
    assert capsys.readouterr().out == plain  # the "-" is part of the word, which matches as ever
    # an option's value may start with "-": it is no query word
    assert vigil(*argv, "--sort", "-time", "settlement") == 0
    assert capsys.readouterr().out == plain
