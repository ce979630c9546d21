"""``vigil es setup | check | index`` against the fake cluster, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from es_support import rows, write_archive

from pipelines.archive import layout, reader
from pipelines.archive.verify import verify
from pipelines.cli import main


def vigil(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = int(main(list(argv)) or 0)  # the console script does sys.exit(main())
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _backfill(archive, url: str, *more: str) -> tuple[str, ...]:
    """``vigil es index`` of ``archive`` into the cluster at ``url``, as an officer."""
    return ("es", "index", "--role", "officer", "--archive", str(archive), "--es-url", url, *more)


@pytest.fixture(autouse=True)
def _no_es_env(monkeypatch, tmp_path):
    for var in ("ES_URL", "ES_API_KEY", "ES_USERNAME", "ES_PASSWORD", "ES_CA_CERTS", "VIGIL_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no config of whoever runs the tests


def test_setup_then_setup_again(es_server, capsys):
    code, out, _ = vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    assert code == 0
    assert "installed ILM policy vigil-records-retention" in out
    assert "installed index template vigil-records" in out
    code, out, _ = vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    assert code == 0 and "Nothing to do" in out


def test_setup_with_another_replica_count_mends_existing_indices_without_a_reindex(
    es_server, capsys, tmp_path
):
    archive = write_archive(tmp_path / "archive", rows(5))
    vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "1")
    argv = _backfill(archive, es_server.url, "--quiet")
    assert vigil(capsys, *argv)[0] == 0
    code, out, err = vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    assert code == 0, err
    assert "changed: set 2 existing index(es) to 0 replica(s) per shard" in out
    assert "vigil es index" not in out and "mapping" not in out
    assert {str(i.settings["index"]["number_of_replicas"]) for i in es_server.indices.values()} == {"0"}


def test_setup_warns_about_months_an_earlier_mapping_governs(es_server, capsys, tmp_path):
    archive = write_archive(tmp_path / "archive", rows(5))
    vigil(capsys, "es", "setup", "--es-url", es_server.url)
    assert vigil(capsys, *_backfill(archive, es_server.url, "--quiet"))[0] == 0
    for index in es_server.indices.values():  # made with the stock cjk analyzer, before the fingerprint
        index.mappings["_meta"] = {"vigil_record": "Record"}
        index.mappings["properties"]["body"]["fields"]["cjk"]["analyzer"] = "cjk"
    code, out, err = vigil(capsys, "es", "setup", "--es-url", es_server.url)
    assert code == 0, err
    assert "warning: 2 existing index(es) still have the mapping of an earlier Vigil" in out
    assert "Nothing to do" in out  # nothing setup itself could change


def test_setup_takes_the_url_and_key_from_the_environment(es_server, capsys, monkeypatch):
    es_server.require_api_key("ZW52OmtleQ==")
    monkeypatch.setenv("ES_URL", es_server.url)
    monkeypatch.setenv("ES_API_KEY", "ZW52OmtleQ==")
    code, out, err = vigil(capsys, "es", "setup", "--retention-days", "3650")
    assert code == 0, err
    assert "retention 3650 days" in out
    assert "ZW52OmtleQ==" not in out + err


def test_check_exit_codes(es_server, capsys):
    code, out, _ = vigil(capsys, "es", "check", "--es-url", es_server.url)
    assert code == 1 and "problem: index template vigil-records is missing" in out
    vigil(capsys, "es", "setup", "--es-url", es_server.url)
    code, out, _ = vigil(capsys, "es", "check", "--es-url", es_server.url, "--json")
    assert code == 0
    assert json.loads(out)["ok"] is True


def test_index_backfills_the_archive(es_server, capsys, tmp_path):
    archive = write_archive(tmp_path / "archive", rows(25))
    vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    argv = _backfill(archive, es_server.url, "--batch-size", "10")
    code, out, err = vigil(capsys, *argv)
    assert code == 0, err
    assert "read 25, indexed 25, dead-lettered 0" in out
    assert len(es_server.docs("vigil-records")) == 25
    assert len(es_server.bulk_bodies()) == 3
    # idempotent: a second backfill overwrites, it does not add
    code, out, _ = vigil(capsys, *argv)
    assert code == 0 and len(es_server.docs()) == 25
    assert reader.read_table(archive, layout.DEAD_LETTERS).num_rows == 0


def test_index_keeps_each_bulk_request_under_max_request_mb(es_server, capsys, tmp_path):
    archive = write_archive(tmp_path / "archive", rows(30, body="q" * 60_000))  # about 60 kB each
    vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    argv = _backfill(archive, es_server.url, "--quiet")
    code, out, err = vigil(capsys, *argv, "--max-request-mb", "0.5")
    assert code == 0, err
    assert "read 30, indexed 30, dead-lettered 0" in out
    sizes = [int(r.headers["content-length"]) for r in es_server.requests if r.path.endswith("/_bulk")]
    assert len(sizes) >= 4 and max(sizes) <= 512 * 1024  # 30 × 60 kB = 1.8 MB in ≤ 0.5 MiB requests


def test_index_dead_letters_go_into_the_archive_and_exit_1(es_server, capsys, tmp_path):
    batch = rows(6)
    archive = write_archive(tmp_path / "archive", batch)
    vigil(capsys, "es", "setup", "--es-url", es_server.url)
    es_server.fail_items({batch[2]["record_id"], batch[4]["record_id"]}, 400)
    argv = _backfill(archive, es_server.url)
    code, out, err = vigil(capsys, *argv)
    assert code == 1
    assert "read 6, indexed 4, dead-lettered 2" in out
    assert "2 dead letter(s) (2 new)" in err and "deadletters/at_stage=index)" in err
    written = list(reader.iter_rows(archive, kind=layout.DEAD_LETTERS))
    assert sorted(d["record_id"] for d in written) == sorted([batch[2]["record_id"], batch[4]["record_id"]])
    assert {d["reason_code"] for d in written} == {"es_rejected"}
    assert {d["stage"] for d in written} == {"index"}
    assert json.loads(written[0]["raw"])["record_id"] == written[0]["record_id"]
    assert verify(archive).ok  # committed through the manifest like ingest's dead letters
    # the same failure again is not stored twice
    code, _, err = vigil(capsys, *argv)
    assert code == 1 and "(0 new)" in err
    assert len(list(reader.iter_rows(archive, kind=layout.DEAD_LETTERS))) == 2


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["es", "setup"], 2, "error: no Elasticsearch URL: pass --es-url URL or set ES_URL"),
        (["es", "setup", "--es-url", "localhost:9200"], 2, "not an http(s) URL"),
        (
            ["es", "setup", "--es-url", "http://127.0.0.1:9", "--max-retries", "0"],
            4,
            "cannot reach Elasticsearch",
        ),
        (
            [
                "es",
                "index",
                "--role",
                "officer",
                "--es-url",
                "http://127.0.0.1:9",
                "--archive",
                "/nonexistent",
            ],
            2,
            "error: --archive /nonexistent: no such folder",
        ),
    ],
)
def test_user_mistakes_are_one_line_errors(capsys, argv, code, message):
    got, out, err = vigil(capsys, *argv)
    assert got == code
    assert message in err
    assert "Traceback" not in out + err


def test_index_needs_setup_first(es_server, capsys, tmp_path):
    archive = write_archive(tmp_path / "archive", rows(1))
    code, _, err = vigil(capsys, *_backfill(archive, es_server.url))
    assert code == 4 and "run `vigil es setup` first" in err
    assert es_server.docs() == {}


def test_help_lists_the_subcommands(capsys):
    code, out, _ = vigil(capsys, "es", "--help")
    assert code == 0
    for name in ("setup", "check", "index"):
        assert name in out


def test_elasticsearch_loads_only_when_asked_for():
    probe = (
        "import sys\n"
        "from pipelines.cli import cli\n"
        "import exporters.elasticsearch, exporters.elasticsearch.mapping, exporters.elasticsearch.documents\n"
        "loaded = [m for m in ('elasticsearch', 'elastic_transport', 'apache_beam') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_package_exports_resolve():
    import exporters.elasticsearch as pkg

    for name in pkg.__all__:
        assert getattr(pkg, name) is not None
    with pytest.raises(AttributeError):
        _ = pkg.not_a_thing


def test_console_script_exit_code(es_server):
    # what a shell sees: `vigil es check` against a cluster without the template exits 1
    script = "import sys; from pipelines.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", script, "es", "check", "--es-url", es_server.url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "problem: ILM policy vigil-records-retention is missing" in result.stdout


def test_index_after_the_cluster_died_and_came_back_converges(es_server, capsys, tmp_path):
    batch = rows(30)
    archive = write_archive(tmp_path / "archive", batch)
    vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    argv = _backfill(archive, es_server.url, "--batch-size", "10")
    es_server.die_after_bulk(1)
    code, out, err = vigil(capsys, *argv, "--max-retries", "0", "--quiet")
    # the backfill stops at once, with one line, exit 4 (cluster unreachable), and no dead letter:
    # the next run re-sends everything anyway
    assert code == 4 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("error: indexed 10 of 30 record(s), then Elasticsearch at http://127.0.0.1:")
    assert "stopped answering (last error: ConnectionError:" in line
    assert "stopped without sending the other 20" in line
    assert "Nothing is lost, the archive holds every record" in line
    assert "run the same `vigil es index` again once the cluster is healthy" in line
    assert reader.read_table(archive, layout.DEAD_LETTERS).num_rows == 0
    es_server.revive()
    code, out, err = vigil(capsys, *argv, "--quiet")
    assert code == 0, err
    assert "read 30, indexed 30, dead-lettered 0" in out
    assert sorted(doc_id for _, doc_id in es_server.docs("vigil-records")) == sorted(
        r["record_id"] for r in batch
    )


def test_a_backfill_that_stops_keeps_the_refusals_met_before(es_server, capsys, tmp_path):
    batch = rows(30)
    archive = write_archive(tmp_path / "archive", batch)
    vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    es_server.fail_items({batch[3]["record_id"]}, 400)  # refused for good in the first batch
    es_server.die_after_bulk(1)
    argv = _backfill(archive, es_server.url, "--batch-size", "10")
    code, _, err = vigil(capsys, *argv, "--max-retries", "0", "--quiet")
    assert code == 4
    assert "indexed 9 of 30 record(s) (1 dead-lettered before that, 1 new in the dead-letter store" in err
    assert "stopped without sending the other 20" in err
    letters = list(reader.iter_rows(archive, kind=layout.DEAD_LETTERS))
    assert [(d["record_id"], d["reason_code"]) for d in letters] == [(batch[3]["record_id"], "es_rejected")]


def test_credentials_in_the_url_work_and_never_show(es_server, capsys):
    es_server.require_basic_auth("vigil", "p@ss:word")
    url = es_server.url.replace("http://", "http://vigil:p%40ss%3Aword@") + "/"
    code, out, err = vigil(capsys, "es", "setup", "--es-url", url, "--replicas", "0")
    assert code == 0, err
    assert "p%40ss" not in out + err and "p@ss" not in out + err
    code, out, err = vigil(capsys, "es", "setup", "--es-url", url, "--api-key", "a2V5")
    assert code == 2 and "keep one" in err and "p%40ss" not in out + err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:9200", "add the scheme: https://localhost:9200"),
        ("http://localhost:99999", "is not a valid URL (check the port)"),
        (" http://127.0.0.1:9 ", "cannot reach Elasticsearch at http://127.0.0.1:9 "),
        ("http://localhost:9200/?pretty", "has a ?query"),
    ],
)
def test_url_mistakes_are_one_line_errors(capsys, url, message):
    code, out, err = vigil(capsys, "es", "check", "--es-url", url, "--max-retries", "0")
    assert code in (2, 4) and message in err
    assert "unexpected" not in err and "Traceback" not in out + err


def test_a_new_failure_of_a_dead_lettered_document_is_stored_with_its_own_reason(es_server, capsys, tmp_path):
    # a record first dead-lettered because the cluster was busy, then refused for good by the next
    # backfill: the store must hold the refusal and its advice, not only the stale "cluster was busy"
    batch = rows(4)
    archive = write_archive(tmp_path / "archive", batch)
    vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    argv = _backfill(archive, es_server.url, "--quiet")
    target = batch[1]["record_id"]
    es_server.fail_items({target}, 429)
    code, _, err = vigil(capsys, *argv, "--max-retries", "0")
    assert code == 1 and "1 dead letter(s) (1 new)" in err
    es_server.fail_items({target}, 400, error_type="mapper_parsing_exception", reason="failed to parse [org]")
    code, out, err = vigil(capsys, *argv)
    assert code == 1 and "read 4, indexed 3, dead-lettered 1" in out
    assert "1 dead letter(s) (1 new)" in err
    letters = list(reader.iter_rows(archive, kind=layout.DEAD_LETTERS))
    assert sorted(d["reason_code"] for d in letters) == ["es_rejected", "es_unavailable"]
    assert {d["record_id"] for d in letters} == {target}
    # the same refusal again is still stored once
    code, _, err = vigil(capsys, *argv)
    assert code == 1 and "(0 new)" in err
    assert len(list(reader.iter_rows(archive, kind=layout.DEAD_LETTERS))) == 2


def test_index_says_why_documents_were_dead_lettered_and_what_to_do(es_server, capsys, tmp_path):
    batch = rows(6)
    archive = write_archive(tmp_path / "archive", batch)
    vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    refused = {batch[0]["record_id"]}
    es_server.fail_items(refused, 400, error_type="mapper_parsing_exception", reason="bad org")
    es_server.fail_items({batch[3]["record_id"], batch[4]["record_id"]}, 429)
    argv = _backfill(archive, es_server.url, "--quiet")
    code, out, err = vigil(capsys, *argv, "--max-retries", "1")
    assert code == 1 and "read 6, indexed 3, dead-lettered 3" in out
    assert "3 dead letter(s) (3 new)" in err
    assert "es_unavailable: 2 (e.g. Elasticsearch did not take the document after 2 attempt(s)" in err
    assert "es_rejected: 1 (e.g. Elasticsearch refused the document: HTTP 400 mapper_parsing_exception" in err
    assert "re-run `vigil es index" in err


@pytest.mark.parametrize(
    "command",
    [
        ["es", "check"],
        ["search", "--role", "officer", "settlement"],
        ["run", "--input", "IN", "--quiet"],
    ],
    ids=["es check", "search", "run"],
)
def test_an_http_url_without_a_port_is_a_usage_error_of_every_command_that_takes_it(
    capsys, tmp_path, command
):
    from factories import event, write_jsonl

    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1)])
    archive = tmp_path / "archive"
    if command[0] == "search":
        main(["run", "--input", str(tmp_path / "in"), "--archive", str(archive), "--quiet"])
        capsys.readouterr()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = [str(tmp_path / "in") if word == "IN" else word for word in command]
    if command[0] != "es":
        argv += ["--archive", str(archive)]
    code, _, err = vigil(capsys, *argv, "--es-url", "http://localhost")
    assert code == 2, err
    assert err.strip() == (
        "error: Elasticsearch settings: url: Value error, 'http://localhost' has no port, and the client "
        "assumes none for http://: write it, e.g. http://localhost:9200"
    )
    # nothing written: no archive folder for `run`, no audit entry for `search`
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_backfill_whose_credentials_are_refused_stops_at_once_without_dead_letters(
    es_server, capsys, tmp_path
):
    # before: every record became its own es_rejected dead letter, kept for good, and exit 1
    batch = rows(30)
    archive = write_archive(tmp_path / "archive", batch)
    vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")
    es_server.fail(r"/_bulk$", 401, times=None, error_type="security_exception", reason="api key expired")
    code, out, err = vigil(capsys, *_backfill(archive, es_server.url, "--batch-size", "10"), "--quiet")
    assert code == 4 and out == ""
    (line,) = err.splitlines()
    assert (
        "then Elasticsearch at http://127.0.0.1:" in line and "refused the credentials (last error:" in line
    )
    assert "stopped without sending the other 30" in line and "once the credentials are fixed" in line
    assert reader.read_table(archive, layout.DEAD_LETTERS).num_rows == 0


def test_https_to_a_plain_http_port_says_so_not_to_pass_a_ca_bundle(es_server, capsys):
    url = es_server.url.replace("http://", "https://")
    code, _, err = vigil(capsys, "es", "setup", "--es-url", url, "--replicas", "0")
    assert code == 4
    (line,) = err.splitlines()
    assert "the server does not speak TLS on that port; use an http:// URL" in line
    assert "--ca-certs" not in line


def test_tls_options_with_an_http_url_are_refused_not_ignored(es_server, capsys, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not used")
    for option in (["--ca-certs", str(bundle)], ["--no-verify-certs"]):
        code, _, err = vigil(capsys, "es", "setup", "--es-url", es_server.url, *option)
        assert code == 2 and "TLS settings, and the URL is plain http://" in err
