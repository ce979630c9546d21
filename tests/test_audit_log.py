"""Every search, conversation view and export lands in the hash-chained audit log first."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from search_support import audit_entries as entries
from search_support import dataset, vigil, write_archive

from pipelines.archive import layout
from pipelines.archive.ledger import Ledger
from pipelines.search.access import AccessRole, Identity
from pipelines.search.audit import record_access

ROWS = dataset()


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return write_archive(tmp_path / "archive", ROWS)


def test_a_search_is_logged_with_who_what_and_how_many(archive: Path, capsys) -> None:
    argv = ["search", "--archive", str(archive), "--role", "reviewer", "--user", "ravi"]
    assert vigil(*argv, "settlement", "channel:sms", "--size", "1", "--json") == 0
    printed = capsys.readouterr().out.splitlines()
    (entry,) = entries(archive)
    assert entry["op"] == "access" and entry["action"] == "search"
    assert entry["user"] == "ravi" and entry["role"] == "reviewer"
    assert entry["engine"] == "embedded"
    assert entry["query"] == {
        "text": "settlement",
        "text_tree": {"word": "settlement"},
        "channels": ["sms"],
    }
    assert entry["results"] == 2  # the total, not just the page
    assert entry["details"]["returned"] == [json.loads(printed[0])["record_id"]]
    assert entry["details"]["page"] == 1 and entry["details"]["output"] == "json"
    assert entry["time"].endswith("+00:00")
    assert entry["seq"] == 1 and len(entry["hash"]) == 64


def test_views_and_exports_are_logged(archive: Path, tmp_path: Path, capsys) -> None:
    who = ["--archive", str(archive), "--role", "officer", "--user", "olivia"]
    assert vigil("conversation", "conv-zh", *who) == 0
    assert (
        vigil("conversation", "conv-zh", *who, "--html", str(tmp_path / "c.html"), "--from", "2026-01-06")
        == 0
    )
    capsys.readouterr()
    view, export = entries(archive)
    assert view["action"] == "conversation" and view["results"] == 3
    assert view["query"] == {"conversations": ["conv-zh"]}
    assert export["action"] == "export" and export["details"]["format"] == "html"
    assert export["details"]["file"] == str((tmp_path / "c.html").resolve())
    assert export["query"] == {"conversations": ["conv-zh"], "time_from": "2026-01-06"}
    assert export["prev"] == view["hash"]


def test_tampering_with_an_audit_entry_fails_verify(archive: Path, capsys) -> None:
    for text in ("card", "settlement", "结算"):
        assert vigil("search", "--archive", str(archive), "--role", "officer", "--user", "mallory", text) == 0
    assert vigil("verify", "--archive", str(archive)) == 0
    path = archive / layout.AUDIT
    lines = path.read_text().splitlines(keepends=True)
    doctored = json.loads(lines[1])
    doctored["user"] = "someone-else"  # hide who searched for "settlement"
    lines[1] = json.dumps(doctored, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    path.write_text("".join(lines))
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive)) == 1
    err = capsys.readouterr().err
    assert "audit log" in err and "line 2" in err and "altered" in err


def test_removing_an_audit_entry_fails_verify(archive: Path, capsys) -> None:
    for text in ("card", "settlement", "结算"):
        assert vigil("search", "--archive", str(archive), "--role", "officer", text) == 0
    path = archive / layout.AUDIT
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive)) == 1
    assert "audit log" in capsys.readouterr().err


def test_nothing_is_shown_when_the_log_cannot_be_written(archive: Path, capsys) -> None:
    (archive / layout.AUDIT).mkdir(parents=True)  # a folder where the log file should be
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card", "--json") == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cannot write the audit log" in captured.err and "nothing was shown" in captured.err


def test_concurrent_searchers_keep_one_chain(archive: Path) -> None:
    identity = Identity("t", AccessRole.OFFICER)

    def log(n: int) -> None:
        for _ in range(10):
            record_access(archive, identity, "search", query={"text": str(n)}, results=n, engine="embedded")

    threads = [threading.Thread(target=log, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logged = entries(archive)
    assert len(logged) == 60
    assert [e["seq"] for e in logged] == list(range(1, 61))


def test_unknown_actions_are_refused(archive: Path) -> None:
    with pytest.raises(ValueError):
        record_access(archive, Identity("t", AccessRole.OFFICER), "delete", query={}, results=0, engine="x")


def _searches_then_a_run(archive: Path, tmp_path: Path, n: int = 3) -> None:
    from factories import event, write_jsonl
    from helpers import ingest

    for text in ("card", "settlement", "结算")[:n]:
        assert vigil("search", "--archive", str(archive), "--role", "officer", text) == 0
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1)])
    ingest(tmp_path / "in", archive)  # the commit records the audit log's position


def test_a_run_anchors_the_audit_log_so_cutting_its_end_fails_verify(
    archive: Path, tmp_path: Path, capsys
) -> None:
    _searches_then_a_run(archive, tmp_path)
    path = archive / layout.AUDIT
    assert vigil("verify", "--archive", str(archive)) == 0
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1]))  # hide the last two searches
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive)) == 1
    assert "ends before entry 3 that a `vigil run` commit recorded" in capsys.readouterr().err


def test_a_deleted_audit_log_fails_verify_and_is_not_restarted_at_seq_1(
    archive: Path, tmp_path: Path, capsys
) -> None:
    _searches_then_a_run(archive, tmp_path)
    (archive / layout.AUDIT).unlink()
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive)) == 1
    assert "audit log is missing, but a `vigil run` commit recorded its entry 3" in capsys.readouterr().err
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card", "--json") == 3
    captured = capsys.readouterr()
    assert captured.out == "" and "ends before entry 3, which the archive manifest recorded" in captured.err
    assert "Traceback" not in captured.err
    assert not (archive / layout.AUDIT).exists()  # no fresh chain papering over the gap


def test_a_refused_access_leaves_a_torn_anchored_last_line_as_it_was(
    archive: Path, tmp_path: Path, capsys
) -> None:
    # the run anchored entry 3; that entry's line is then cut short. The next search must be
    # refused (the log ends before entry 3 once the torn line goes) without cutting it: the
    # damaged line is evidence, and the refusal says nothing was written
    _searches_then_a_run(archive, tmp_path)
    path = archive / layout.AUDIT
    torn = path.read_bytes()[:-3]
    path.write_bytes(torn)
    capsys.readouterr()
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card", "--json") == 3
    captured = capsys.readouterr()
    assert (
        captured.out == "" and "ends before entry 3" in captured.err and "Nothing was written" in captured.err
    )
    assert path.read_bytes() == torn
    assert vigil("verify", "--archive", str(archive)) == 1
    assert "entry 3 is not the one a `vigil run` commit recorded" in capsys.readouterr().err


def test_verify_prints_the_audit_head_and_checks_an_expected_one(archive: Path, capsys) -> None:
    for text in ("card", "settlement"):
        assert vigil("search", "--archive", str(archive), "--role", "officer", text) == 0
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive)) == 0
    head = Ledger(archive / layout.AUDIT).head()
    assert f"audit head:    {head}" in capsys.readouterr().out
    assert vigil("verify", "--archive", str(archive), "--expect-audit-head", head) == 0
    path = archive / layout.AUDIT
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive), "--expect-audit-head", head) == 1
    err = capsys.readouterr().err
    assert f"but {head[:16]}… was expected" in err and "no entry of the log has that hash" in err


def test_a_torn_last_audit_line_is_cut_and_recorded_not_a_traceback(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    with (archive / layout.AUDIT).open("a") as f:
        f.write('{"op":"acc')  # an append cut short by a crash or a full disk
    capsys.readouterr()
    assert vigil("search", "--archive", str(archive), "--role", "officer", "fee", "--json") == 0
    assert "Traceback" not in capsys.readouterr().err
    first, repair, second = entries(archive)  # entries() also checks the chain
    assert repair["op"] == "repair" and repair["cut_bytes"] == len('{"op":"acc')
    assert (first["seq"], repair["seq"], second["seq"]) == (1, 2, 3)


def test_verify_reads_a_torn_last_audit_line_as_the_crash_it_is(archive: Path, capsys) -> None:
    """Before the next access repairs it, a torn append leaves every earlier entry intact: verify
    passes with a note, counts and prints the head of the last whole entry, and that head still
    matches --expect-audit-head (before: "audit head: (empty)", "entries were removed")."""
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    assert vigil("search", "--archive", str(archive), "--role", "officer", "fee") == 0
    first, second = entries(archive)
    with (archive / layout.AUDIT).open("a") as f:
        f.write('{"op":"access","seq":')  # an append cut short by a crash
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive), "--expect-audit-head", second["hash"]) == 0
    out = capsys.readouterr().out
    assert f"audit head:    {second['hash']}" in out and "2 audit entries" in out
    assert "line 3 is an append cut short" in out and "2 entries before it are intact" in out
    # a head kept before the last entry is still in the log: the log grew since, which is fine
    assert vigil("verify", "--archive", str(archive), "--expect-audit-head", first["hash"]) == 0
    assert "is an entry of the log, and 1 entry came after it" in capsys.readouterr().out
    # what a torn line may not hide: an entry before it that was altered
    lines = (archive / layout.AUDIT).read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"card"', b'"cord"')
    (archive / layout.AUDIT).write_bytes(b"\n".join(lines))
    assert vigil("verify", "--archive", str(archive)) == 1
    assert "audit.jsonl line 1: entry content does not match its hash" in capsys.readouterr().err


def test_an_entry_cut_out_of_the_audit_log_is_not_hidden_behind_its_old_head_re_added_unended(
    archive: Path, capsys
) -> None:
    """Someone deletes an entry, recomputes the chain after it, and puts the original last line
    (whose hash is the head the auditor kept) back at the end without its line end, where verify
    used to take it for an append cut short and find the kept head on it."""
    for user, word in (("alice", "card"), ("mallory", "fee"), ("alice", "invoice")):
        assert vigil("search", "--archive", str(archive), "--role", "officer", "--user", user, word) == 0
    log = archive / layout.AUDIT
    original = log.read_bytes().splitlines()
    head = json.loads(original[-1])["hash"]
    kept = [e for e in entries(archive) if e.get("user") != "mallory"]
    assert len(kept) == 2
    rewritten = Ledger(archive / "rewritten.jsonl")
    rewritten.append([{k: v for k, v in e.items() if k not in ("seq", "prev", "hash")} for e in kept])
    log.write_bytes(rewritten.path.read_bytes() + original[-1])
    rewritten.path.unlink()
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive), "--expect-audit-head", head) == 1
    err = capsys.readouterr().err
    assert "line 3 is a whole entry without its line end that does not chain onto line 2" in err
    assert f"but {head[:16]}… was expected: no entry of the log has that hash" in err


def test_verify_takes_a_whole_last_audit_entry_without_line_end(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    (only,) = entries(archive)
    path = archive / layout.AUDIT
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # a crash between the entry and its line end
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive), "--expect-audit-head", only["hash"]) == 0
    out = capsys.readouterr().out
    assert "1 audit entry" in out and "is whole but lacks its line end" in out


def test_a_damaged_complete_last_audit_line_is_a_one_line_error(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    with (archive / layout.AUDIT).open("a") as f:
        f.write("[]\n")
    capsys.readouterr()
    assert vigil("search", "--archive", str(archive), "--role", "officer", "fee") == 3
    err = capsys.readouterr().err
    assert "last line of" in err and "vigil verify" in err and "Traceback" not in err


def test_the_os_login_and_where_the_role_came_from_are_logged(archive: Path, tmp_path: Path, capsys) -> None:
    import os
    import pwd

    config = tmp_path / "rev.toml"
    config.write_text('role = "reviewer"\nuser = "r.view"\n')
    assert vigil("search", "--archive", str(archive), "--config", str(config), "card") == 0
    assert vigil("search", "--archive", str(archive), "--config", str(config), "--role", "officer", "x") == 0
    by_config, by_flag = entries(archive)
    assert by_config["os_user"] == by_flag["os_user"] == pwd.getpwuid(os.getuid()).pw_name
    assert str(config) in by_config["role_source"]
    assert (by_flag["role"], by_flag["role_source"], by_flag["user"]) == ("officer", "--role", "r.view")


def test_an_audit_line_that_is_json_but_not_an_object_fails_verify_in_one_line(archive: Path, capsys) -> None:
    assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    with (archive / layout.AUDIT).open("a") as f:
        f.write('"str"\n')
    capsys.readouterr()
    assert vigil("verify", "--archive", str(archive)) == 1
    captured = capsys.readouterr()
    assert "audit log: audit.jsonl line 2: not a JSON object" in captured.err
    assert "audit head:    unknown (the chain is damaged at line 2)" in captured.out
    assert "Traceback" not in captured.err


def test_the_dlp_policy_that_built_the_view_is_logged(archive: Path, tmp_path: Path, capsys) -> None:
    import dlp_rules
    from pipelines.dlp import load_policy_set

    packaged = Path(dlp_rules.__file__).parent
    chosen = tmp_path / "rules"
    chosen.mkdir()
    (chosen / "pii.yaml").write_bytes((packaged / "pii.yaml").read_bytes())
    label = load_policy_set(chosen).label
    crm = tmp_path / "crm.toml"
    crm.write_text(f'role = "crm"\nuser = "crm.feed"\ndlp_policy = "{chosen}"\n')
    reviewer = tmp_path / "rev.toml"
    reviewer.write_text(f'role = "reviewer"\nuser = "r.view"\ndlp_policy = "{chosen}"\n')
    base = ["--archive", str(archive)]
    assert vigil("search", *base, "--role", "officer", "card") == 0
    assert vigil("search", *base, "--role", "crm", "card") == 0
    assert vigil("search", *base, "--config", str(crm), "card") == 0
    assert vigil("search", *base, "--config", str(reviewer), "card") == 0
    html = str(tmp_path / "c.html")
    assert vigil("conversation", "conv-en", *base, "--config", str(reviewer), "--html", html) == 0
    capsys.readouterr()
    officer, crm_packaged, crm_chosen, reviewer_search, reviewer_export = entries(archive)
    assert "dlp_policy" not in officer  # an officer's view is the archive's own text
    assert crm_packaged["dlp_policy"] == {
        "source": "packaged dlp_rules",
        "label": load_policy_set(packaged).label,
    }
    assert crm_chosen["dlp_policy"] == {"source": str(chosen), "label": label}
    assert reviewer_search["dlp_policy"] == {"source": str(chosen)}  # configured, not what built the view
    assert reviewer_export["action"] == "export"
    assert reviewer_export["dlp_policy"] == {"source": str(chosen), "label": label}


def test_an_audit_log_that_is_a_folder_fails_verify_in_one_line(archive: Path, capsys) -> None:
    (archive / layout.AUDIT).parent.mkdir(parents=True, exist_ok=True)
    (archive / layout.AUDIT).mkdir()
    assert vigil("verify", "--archive", str(archive)) == 1
    err = capsys.readouterr().err
    assert "audit log: _ledger/audit.jsonl is a folder, not the log" in err
    assert "Traceback" not in err and "unexpected" not in err


@pytest.mark.parametrize("entries_before", [1, 2])
def test_a_last_entry_missing_only_its_line_end_is_kept_not_cut(
    archive: Path, capsys, entries_before: int
) -> None:
    # the whole entry reached the disk, its "\n" did not: it is completed, not thrown away
    for _ in range(entries_before):
        assert vigil("search", "--archive", str(archive), "--role", "officer", "card") == 0
    log = archive / layout.AUDIT
    whole = log.read_bytes()
    log.write_bytes(whole[:-1])
    assert vigil("search", "--archive", str(archive), "--role", "officer", "fee", "--json") == 0
    capsys.readouterr()
    logged = entries(archive)
    assert [e["op"] for e in logged] == ["access"] * (entries_before + 1)  # no repair entry
    assert log.read_bytes().startswith(whole)
    assert [e["query"].get("text") for e in logged] == ["card"] * entries_before + ["fee"]


# ------------------------------------------------------------------ `vigil es index` is an export


def _es_index(archive: Path, url: str, *who: str) -> list[str]:
    return ["es", "index", "--archive", str(archive), "--es-url", url, "--quiet", *who]


def _bulk_requests(server) -> int:
    return sum(r.path.endswith("/_bulk") for r in server.requests)


def test_es_index_logs_one_export_before_it_sends_anything(archive: Path, es_server, capsys) -> None:
    es_server.require_basic_auth("vigil", "s3cret")
    url = es_server.url.replace("http://", "http://vigil:s3cret@")
    assert vigil("es", "setup", "--es-url", url, "--replicas", "0") == 0
    assert vigil(*_es_index(archive, url, "--role", "officer", "--user", "olivia")) == 0
    assert f"indexed {len(ROWS)}," in capsys.readouterr().out
    (entry,) = entries(archive)
    assert entry["action"] == "export" and entry["engine"] == "elasticsearch"
    assert entry["user"] == "olivia" and entry["role"] == "officer" and entry["role_source"] == "--role"
    assert entry["query"] == {"destination": "vigil-records"}
    assert entry["results"] == len(ROWS)  # what is to be sent
    assert entry["details"] == {"es_url": es_server.url}  # without the credentials
    assert "s3cret" not in (archive / layout.AUDIT).read_text()
    assert vigil("verify", "--archive", str(archive)) == 0


def test_es_index_sends_nothing_when_the_export_cannot_be_logged(archive: Path, es_server, capsys) -> None:
    assert vigil("es", "setup", "--es-url", es_server.url, "--replicas", "0") == 0
    (archive / layout.AUDIT).mkdir()  # a log that cannot be written
    assert vigil(*_es_index(archive, es_server.url, "--role", "officer")) == 3
    assert "cannot write the audit log" in capsys.readouterr().err
    assert _bulk_requests(es_server) == 0 and es_server.docs() == {}


@pytest.mark.parametrize("role", ["reviewer", "crm"])
def test_es_index_needs_the_officer_role_and_logs_a_refusal(archive: Path, es_server, capsys, role) -> None:
    assert vigil("es", "setup", "--es-url", es_server.url, "--replicas", "0") == 0
    before = len(es_server.requests)
    assert vigil(*_es_index(archive, es_server.url, "--role", role, "--user", "ravi")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: vigil es index copies the original text")
    assert f"the role here is {role}, from --role" in err and "run it with --role officer" in err
    assert len(es_server.requests) == before  # the cluster was not even asked
    (entry,) = entries(archive)
    assert entry["action"] == "export" and entry["role"] == role and entry["results"] == 0
    assert entry["details"]["refused"] in err
    assert entry["query"] == {"destination": "vigil-records"}


def test_es_index_without_a_role_says_what_to_pass(archive: Path, es_server, capsys) -> None:
    assert vigil(*_es_index(archive, es_server.url)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no role configured: pass --role officer") and err.count("\n") == 1
    assert not (archive / layout.AUDIT).exists() and es_server.requests == []


def test_es_index_takes_the_role_from_the_config(archive: Path, es_server, tmp_path: Path, capsys) -> None:
    config = tmp_path / "vigil.toml"
    config.write_text('user = "o.fficer"\nrole = "officer"\n')
    assert vigil("es", "setup", "--es-url", es_server.url, "--replicas", "0") == 0
    assert vigil(*_es_index(archive, es_server.url, "--config", str(config))) == 0
    (entry,) = entries(archive)
    assert entry["user"] == "o.fficer" and entry["role_source"].startswith("--config ")
