"""``vigil search`` from the command line: output, paging, roles from configuration, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from search_support import dataset, vigil, write_archive

from pipelines.errors import ConfigError
from pipelines.search import embedded, render
from pipelines.search.access import AccessRole, Identity, load_identity
from pipelines.search.parse import parse_query
from pipelines.search.results import Page

ROWS = dataset()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("cli") / "archive", ROWS)


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


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
    ],
)
def test_user_mistakes_are_one_line_errors(archive: Path, capsys, argv: list[str], message: str) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "officer", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
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
def test_a_named_file_that_does_not_exist(tmp_path: Path, where: str) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as excinfo:
        if where == "flag":
            load_identity(config=missing, environ={})
        else:
            load_identity(environ={"VIGIL_CONFIG": str(missing)})
    assert str(missing) in str(excinfo.value)


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
