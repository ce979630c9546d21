"""Security review: secrets kept out of messages, file modes, paths that would leave the archive."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import event, write_jsonl
from helpers import VIGIL, ingest
from search_support import dataset, vigil, write_archive

from exporters.elasticsearch.config import EsConfig
from pipelines.archive import layout, writer
from pipelines.archive.compact import compact
from pipelines.archive.manifest import manifest_ledger
from pipelines.archive.verify import verify
from pipelines.errors import ArchiveError, ConfigError
from pipelines.search.access import AccessRole, Identity
from pipelines.search.audit import record_access

SECRET = "Zq9SecretPw"


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _archive(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(n) for n in range(3)])
    archive = tmp_path / "archive"
    assert ingest(tmp_path / "in", archive).archived == 3
    return archive


# ------------------------------------------------------------------ secrets in the URL


@pytest.mark.parametrize(
    "url",
    [
        f"vigil:{SECRET}@es.example.com:9200",  # the scheme left out
        f"https://vigil:{SECRET}/x@es.example.com:9200",  # a "/" in the password, not encoded
        f"https://vigil:{SECRET}#x@es.example.com:9200",
        f"https://vigil:{SECRET}?x@es.example.com:9200",
        f"https://vigil:12/{SECRET}@es.example.com:9200",  # would parse as host "vigil", port 12
    ],
)
def test_a_url_whose_credentials_do_not_parse_is_refused_without_showing_them(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        EsConfig.from_env({}, url=url)
    assert SECRET not in str(info.value)
    assert "es.example.com:9200" in str(info.value)


def test_credentials_in_the_url_keep_an_ipv6_host_and_a_port_0_is_still_refused() -> None:
    cfg = EsConfig.from_env({}, url=f"https://vigil:{SECRET}@[::1]:9200")
    assert cfg.url == "https://[::1]:9200" and cfg.username == "vigil"
    with pytest.raises(ConfigError, match="port 0"):
        EsConfig.from_env({}, url=f"https://vigil:{SECRET}@127.0.0.1:0")


def test_the_cli_does_not_echo_a_password_from_a_url_without_scheme(tmp_path: Path, capsys) -> None:
    assert vigil("es", "check", "--es-url", f"vigil:{SECRET}@127.0.0.1:9") == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and "add the scheme" in out.err


@pytest.mark.parametrize(
    ("flags", "env", "resend"),
    [
        (
            ["--es-url", f"http://ops:{SECRET}@127.0.0.1:9", "--index-prefix", "desk-a"],
            {},
            "--es-url http://127.0.0.1:9 --username ops --index-prefix desk-a` (with this run's "
            "password in ES_PASSWORD)",
        ),
        (
            ["--es-url", "http://127.0.0.1:9"],
            {"ES_API_KEY": SECRET},
            "--es-url http://127.0.0.1:9` (with this run's API key in ES_API_KEY)",
        ),
    ],
)
def test_the_resend_line_of_a_run_reaches_the_same_index_without_the_secret(
    tmp_path: Path, flags: list[str], env: dict[str, str], resend: str
) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1)])
    archive = tmp_path / "a"
    base = [*VIGIL, "run", "--input", str(tmp_path / "in"), "--archive", str(archive), "--quiet"]
    environ = {**os.environ, "VIGIL_DEBUG": "1", **env}
    out = subprocess.run([*base, *flags], capture_output=True, text=True, timeout=120, env=environ)
    assert out.returncode == 4, out.stderr
    at = shlex.quote(str(archive))
    assert f"run `vigil es index --archive {at} --role officer {resend} when it is back" in out.stdout
    stored = "".join(p.read_text() for p in (archive / layout.RUNS).iterdir())
    assert SECRET not in out.stdout + out.stderr + stored
    report = json.loads(next((archive / layout.RUNS).iterdir()).read_text())["summary"]
    command = f"vigil es index --archive {at} --role officer " + resend.split("`")[0]
    assert report["es_resend"] == command  # the bare command, runnable as it is (no backticks)
    assert report["es_resend_env"] == ("ES_PASSWORD" if "password" in resend else "ES_API_KEY")
    assert shlex.split(command)[:3] == ["vigil", "es", "index"]


# ------------------------------------------------------------------ file modes


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_a_new_html_export_gets_the_umask_mode(tmp_path: Path, capsys, mask: int, expected: int) -> None:
    archive = write_archive(tmp_path / "archive", dataset())
    old = os.umask(mask)
    try:
        code = vigil("conversation", "conv-en", "--archive", str(archive), "--role", "officer",
                     "--user", "a", "--html", str(tmp_path / "c.html"))  # fmt: skip
    finally:
        os.umask(old)
    assert code == 0, capsys.readouterr().err
    assert stat.S_IMODE((tmp_path / "c.html").stat().st_mode) == expected


def test_an_html_export_over_a_file_keeps_that_files_mode(tmp_path: Path, capsys, umask: None) -> None:
    archive = write_archive(tmp_path / "archive", dataset())
    target = tmp_path / "c.html"
    target.write_text("old")
    target.chmod(0o640)
    assert vigil("conversation", "conv-en", "--archive", str(archive), "--role", "officer",
                 "--user", "a", "--html", str(target)) == 0  # fmt: skip
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and "old" not in target.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ paths that leave the archive


def _forge_commit(archive: Path, *entries: dict) -> None:
    """Append a commit whose chain holds (anyone who may write the archive can recompute it)."""
    commit = str(entries[-1]["commit"]) if entries else "c-evil"
    closing = {
        "op": "commit",
        "commit": commit,
        "time": "2026-02-01T00:00:00+00:00",
        "action": "compact",
        "files_added": 0,
        "files_removed": len(entries),
        "rows_added": {},
        "sources": [],
    }
    manifest_ledger(archive).append([*entries, closing])


@pytest.mark.parametrize("path", ["../victim.txt", "records/../../victim.txt", "ABSOLUTE"])
def test_a_manifest_path_outside_the_archive_is_never_deleted(tmp_path: Path, path: str) -> None:
    archive = _archive(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = str(victim) if path == "ABSOLUTE" else path
    _forge_commit(archive, {"op": "remove", "commit": "c-evil", "path": path, "sha256": "0", "reason": "x"})
    problems = verify(archive).problems
    assert any("not a file in records/ or deadletters/" in p for p in problems), problems
    write_jsonl(tmp_path / "more" / "b.jsonl", [event(10)])
    with pytest.raises(ArchiveError, match="not a file in records/ or deadletters/"):
        ingest(tmp_path / "more", archive)
    assert victim.read_text() == "keep me"


def test_a_manifest_commit_id_that_climbs_out_of_staging_is_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    outside = tmp_path / "outside" / "records" / "x"
    outside.mkdir(parents=True)
    (outside / "p.parquet").write_bytes(b"not yours")
    rel = "records/x/p.parquet"
    add = {"op": "add", "commit": "../../outside", "kind": "records", "path": rel, "rows": 1, "bytes": 9,
           "sha256": writer.file_sha256(outside / "p.parquet")}  # fmt: skip
    manifest_ledger(archive).append([add, {**_closing("../../outside")}])
    assert any("not a commit id" in p for p in verify(archive).problems)
    with pytest.raises(ArchiveError, match="not a commit id"):
        ingest(tmp_path / "in", archive, only_new_sources=False)
    assert (outside / "p.parquet").read_bytes() == b"not yours"  # not moved into the archive


def _closing(commit: str) -> dict:
    return {"op": "commit", "commit": commit, "time": "2026-02-01T00:00:00+00:00", "action": "test",
            "files_added": 1, "files_removed": 0, "rows_added": {}, "sources": []}  # fmt: skip


def test_a_manifest_index_naming_a_file_outside_is_ignored_and_named(tmp_path: Path) -> None:
    import json

    from pipelines.archive.reader import live_paths

    archive = _archive(tmp_path)
    index = archive / layout.MANIFEST_INDEX
    document = json.loads(index.read_text())
    document["live"][0][0] = "records/../../elsewhere.parquet"
    index.write_text(json.dumps(document))
    assert all(p.resolve().is_relative_to(archive.resolve()) for p in live_paths(archive))
    assert any("records/../../elsewhere.parquet, which is not a file" in p for p in verify(archive).problems)


@pytest.mark.parametrize("name", [layout.STAGING, layout.RUNS, layout.LEDGER_DIR])
def test_a_linked_bookkeeping_folder_is_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    archive = _archive(tmp_path)
    outside = tmp_path / "outside"
    (outside / "keepme").mkdir(parents=True)
    real = archive / name
    if real.exists():
        for child in real.iterdir():
            child.rename(outside / child.name)
        real.rmdir()
    real.symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in outside.iterdir())
    assert f"{name} is a symbolic link" in " ".join(verify(archive).problems)
    with pytest.raises(ArchiveError, match="symbolic link"):
        ingest(tmp_path / "in", archive, only_new_sources=False)
    assert sorted(p.name for p in outside.iterdir()) == before  # nothing deleted or added there


@pytest.mark.parametrize("name", [*layout.LEDGER_FILES, "run report"])
def test_a_linked_ledger_file_or_run_report_is_named_and_nothing_writes_through_it(
    tmp_path: Path, name: str
) -> None:
    """Before, only the folders were checked: with the manifest a link to a file elsewhere, verify
    said intact and compact appended to (and could cut) the outside file."""
    archive = _archive(tmp_path)
    if name == "run report":
        name = f"{layout.RUNS}/{next((archive / layout.RUNS).iterdir()).name}"
    real = archive / name
    outside = tmp_path / "outside.jsonl"
    if real.exists():
        real.rename(outside)
    else:
        outside.write_bytes(b"")
    real.symlink_to(outside)
    before = outside.read_bytes()
    assert f"{name} is a symbolic link" in " ".join(verify(archive).problems)
    write_jsonl(tmp_path / "in" / "b.jsonl", [event(10)])
    with pytest.raises(ArchiveError, match="symbolic link"):
        ingest(tmp_path / "in", archive)
    with pytest.raises(ArchiveError, match="symbolic link"):
        compact(archive)
    if name in (layout.AUDIT, f"{layout.AUDIT}.lock"):
        with pytest.raises(ArchiveError, match="symbolic link"):
            record_access(
                archive, Identity("t", AccessRole.OFFICER), "search", query={}, results=0, engine="x"
            )
    assert outside.read_bytes() == before


def test_a_linked_lock_file_is_not_truncated(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (archive / layout.LOCK).unlink()
    (archive / layout.LOCK).symlink_to(victim)
    with pytest.raises(ArchiveError, match="symbolic link"):
        ingest(tmp_path / "in", archive, only_new_sources=False)
    assert victim.read_text() == "keep me"


# ------------------------------------------------------------------ names printed to the terminal

ESCAPE_NAME = "\x1b[2J\x1b[31mpwned\x1b[0m\u202e"


def test_run_shows_an_input_file_name_with_escape_sequences_as_escapes(tmp_path: Path, capsys) -> None:
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1)])
    (tmp_path / "in" / f"{ESCAPE_NAME}.txt").write_text("x")
    assert vigil("run", "--input", str(tmp_path / "in"), "--archive", str(tmp_path / "a"), "--quiet") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "(\\x1b[2J\\x1b[31mpwned\\x1b[0m\\u202e.txt)" in out


def test_verify_names_a_planted_file_with_escape_sequences_as_escapes(tmp_path: Path, capsys) -> None:
    archive = _archive(tmp_path)
    (archive / "records" / f"{ESCAPE_NAME}.parquet").write_bytes(b"x")
    assert vigil("verify", "--archive", str(archive)) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\u202e" not in err
    assert "records/\\x1b[2J\\x1b[31mpwned\\x1b[0m\\u202e.parquet: not in the manifest" in err
    assert err.count("\n") >= 2  # the problem list keeps its lines
