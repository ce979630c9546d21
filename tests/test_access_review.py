"""An auditor's review of roles and the access log: what is on record is what happened.

Each test here came from trying to get around the access log or make it say less than happened:
a login name taken from the environment, a role overridden by flag, a refused query, names shown
as suggestions, a log Vigil cannot read, or lines Python cannot read back.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import VIGIL, as_another_user, shared_tmp
from search_support import audit_entries as entries
from search_support import dataset, vigil, write_archive

from pipelines.archive import layout
from pipelines.search.audit import audit_position

ROWS = dataset()
LONG_INT = "9" * 5000  # JSON Python refuses to read back (int max str digits)


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return write_archive(tmp_path / "archive", ROWS)


def _account() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _doctor_line(archive: Path, index: int, old: str, new: str) -> None:
    path = archive / layout.AUDIT
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[index]
    lines[index] = lines[index].replace(old, new, 1)
    path.write_text("".join(lines))


# --- who: the operating-system account and the role's origin ------------------------------------


def test_os_user_is_the_account_running_vigil_not_what_the_environment_claims(
    archive: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "chief.officer")
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    assert vigil("search", "--archive", str(archive), "--role", "officer", "--user", "x", "fee") == 0
    capsys.readouterr()
    defaulted, named = entries(archive)
    assert defaulted["os_user"] == named["os_user"] == _account() != "chief.officer"
    assert defaulted["user"] == _account()  # no --user and no config: the account, not $LOGNAME


def test_a_config_path_that_is_not_utf8_is_logged_with_escapes_not_a_crash(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    config = os.fsdecode(os.fsencode(tmp_path) + b"/r\xff.toml")
    Path(config).write_text('role = "reviewer"\nuser = "r.view"\n')
    monkeypatch.setenv("VIGIL_CONFIG", config)
    assert vigil("search", "--archive", str(archive), "card", "--json") == 0
    captured = capsys.readouterr()
    assert "unexpected" not in captured.err
    (entry,) = entries(archive)
    assert entry["role"] == "reviewer" and entry["role_source"].endswith("r\\xff.toml)")


def test_a_role_taken_by_flag_over_the_configured_one_is_logged_as_such(
    archive: Path, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "rev.toml"
    config.write_text('role = "reviewer"\nuser = "r.view"\n')
    base = ["search", "--archive", str(archive), "--config", str(config)]
    assert vigil(*base, "card") == 0
    assert vigil(*base, "--role", "officer", "card") == 0
    capsys.readouterr()
    configured, overridden = entries(archive)
    assert "configured_role" not in configured
    assert overridden["role"] == "officer" and overridden["role_source"] == "--role"
    assert overridden["configured_role"] == {"role": "reviewer", "source": f"--config {config}"}


# --- what: refused queries and names shown as suggestions ---------------------------------------


def test_a_query_the_role_may_not_ask_is_refused_and_on_record(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "crm", "--user", "crm.feed", "--json"]
    assert vigil(*argv, "card", "dlp:block") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "the crm role cannot filter by DLP verdict" in captured.err
    (entry,) = entries(archive)
    assert entry["action"] == "search" and entry["user"] == "crm.feed" and entry["role"] == "crm"
    assert entry["query"]["dlp_actions"] == ["block"] and entry["query"]["text"] == "card"
    assert entry["results"] == 0 and "cannot filter by DLP verdict" in entry["details"]["refused"]


def test_asking_for_dlp_notices_as_the_crm_role_is_refused_and_on_record(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "crm", "--user", "crm.feed", "--json"]
    assert vigil(*argv, "type:dlp_blocked_notice") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "type:dlp_blocked_notice" in captured.err
    (entry,) = entries(archive)
    assert entry["role"] == "crm" and entry["query"]["event_types"] == ["dlp_blocked_notice"]
    assert entry["results"] == 0 and "blocked-message notices" in entry["details"]["refused"]


def test_a_query_that_does_not_parse_is_not_an_access_attempt(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "crm", "channel:fax") == 2
    capsys.readouterr()
    assert not (archive / layout.AUDIT).exists()


def test_participant_suggestions_are_logged_before_they_are_shown(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "reviewer", "--json"]
    assert vigil(*argv, "participant:kenji") == 0
    err = capsys.readouterr().err
    (entry,) = entries(archive)
    suggested = entry["details"]["suggested"]
    assert list(suggested) == ["kenji"] and suggested["kenji"]
    for key in suggested["kenji"]:
        assert key in err  # every name shown is a name on record
    assert vigil(*argv, "participant:李美") == 0  # found: nothing suggested, nothing logged as such
    capsys.readouterr()
    assert "suggested" not in entries(archive)[-1]["details"]


# --- the log itself: odd files, unreadable lines, an unreadable log -----------------------------


def test_an_audit_log_that_is_not_a_file_is_named_with_what_to_do(archive: Path, capsys) -> None:
    log = archive / layout.AUDIT
    log.parent.mkdir(parents=True, exist_ok=True)
    log.symlink_to("/dev/null")  # appends would vanish
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card", "--json") == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    # a link (here to a device) is refused as one, as every ledger file's link is
    assert "cannot write the audit log" in captured.err and "is a symbolic link" in captured.err
    assert "vigil verify" in captured.err and "writable" not in captured.err
    log.unlink()
    log.mkdir()
    assert vigil("conversation", "conv-en", "--archive", str(archive), "--role", "officer") == 3
    captured = capsys.readouterr()
    assert captured.out == "" and "it is a folder" in captured.err and "nothing was shown" in captured.err


def test_a_last_audit_line_python_cannot_read_is_a_one_line_refusal(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    _doctor_line(archive, 0, '"results":', f'"padding":{LONG_INT},"results":')
    capsys.readouterr()
    assert vigil("search", "--archive", str(archive), "--role", "officer", "fee", "--json") == 3
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "last line of" in captured.err and "is damaged" in captured.err and "vigil verify" in captured.err
    assert "unexpected" not in captured.err and "set_int_max_str_digits" not in captured.err
    assert audit_position(archive) is None  # `vigil run` records no anchor rather than failing


def test_verify_names_audit_lines_python_cannot_read_back(archive: Path, capsys) -> None:
    for text in ("card", "fee", "settlement", "bond"):
        assert vigil("search", "--archive", str(archive), "--role", "officer", text) == 0
    _doctor_line(archive, 1, '"os_user":', '"forged":"\\ud800","os_user":')  # a lone surrogate
    _doctor_line(archive, 2, '"results":', f'"padding":{LONG_INT},"results":')
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive)) == 1
    err = capsys.readouterr().err
    assert "unexpected" not in err and "Traceback" not in err
    assert "audit.jsonl line 2: JSON Vigil cannot read back" in err
    assert "audit.jsonl line 3: JSON Vigil cannot read back" in err
    assert "line 4" not in err  # the intact entry after them is checked and holds


def readable_by_all(base: Path) -> None:
    """Every folder and file under ``base`` readable by the user of :func:`as_another_user`."""
    for path in (base, *base.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)


def verify_as(prefix: list[str], archive: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`vigil verify` run through ``prefix`` (as another user), with ``home`` as its home."""
    return subprocess.run(
        [*prefix, *VIGIL, "verify", "--archive", str(archive)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},
    )


def test_verify_names_an_audit_log_it_cannot_read_and_checks_the_rest() -> None:
    prefix = as_another_user()
    base = shared_tmp()
    try:
        archive = write_archive(base / "archive", ROWS)
        assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
        readable_by_all(base)
        (archive / layout.AUDIT).chmod(0)
        result = verify_as(prefix, archive, base)
        assert result.returncode == 1, result.stderr
        assert "audit log: _ledger/audit.jsonl cannot be read" in result.stderr
        assert "as a user who may read the whole archive" in result.stderr
        assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
        assert re.search(r"checked [1-9][0-9]* file", result.stdout)  # the rest was still checked
        assert "audit head:    (cannot be read)" in result.stdout
    finally:
        shutil.rmtree(base)


def test_two_processes_appending_at_once_keep_one_chain(archive: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipelines.search.access import AccessRole, Identity\n"
        "from pipelines.search.audit import record_access\n"
        "who = Identity(sys.argv[2], AccessRole.OFFICER)\n"
        "for n in range(25):\n"
        "    record_access(Path(sys.argv[1]), who, 'search', query={'text': str(n)}, results=n,"
        " engine='embedded')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(archive), who]) for who in ("p1", "p2")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    logged = entries(archive)  # also checks the chain
    assert [e["seq"] for e in logged] == list(range(1, 51))
    for who in ("p1", "p2"):
        assert [e["query"]["text"] for e in logged if e["user"] == who] == [str(n) for n in range(25)]
    assert json.loads((archive / layout.AUDIT).read_text().splitlines()[-1])["seq"] == 50


def test_verify_names_a_data_folder_it_cannot_list_instead_of_calling_the_archive_intact() -> None:
    # before: a file planted in a partition folder verify could not list was never named, and
    # the archive was "intact"
    prefix = as_another_user()
    base = shared_tmp()
    try:
        archive = write_archive(base / "archive", ROWS)
        hidden = archive / "records" / "event_month=1999-01"
        (hidden / "ch=sms").mkdir(parents=True)
        shutil.copy(next((archive / "records").rglob("*.parquet")), hidden / "ch=sms" / "part-x.parquet")
        readable_by_all(base)
        hidden.chmod(0)
        result = verify_as(prefix, archive, base)
        assert result.returncode == 1, result.stderr
        assert "records/event_month=1999-01: the folder cannot be listed (Permission denied)" in result.stderr
        assert "run verify as a user who can read the whole archive" in result.stderr
        assert "Traceback" not in result.stderr and "intact" not in result.stdout
    finally:
        hidden.chmod(0o755)
        shutil.rmtree(base)
