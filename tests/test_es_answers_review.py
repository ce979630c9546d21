"""Review findings on how Vigil reads Elasticsearch's answers (bulk, search, TLS settings)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from es_support import config, rows

from exporters.elasticsearch.bulk import ES_UNAVAILABLE, IndexState, index_rows
from exporters.elasticsearch.config import make_client
from exporters.elasticsearch.setup import install
from pipelines.errors import IndexingError


@pytest.fixture
def cluster(es_server):
    cfg = config(es_server.url)
    client = make_client(cfg)
    install(client, cfg)
    yield es_server, client, cfg
    client.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _items(change):
    def transform(payload: bytes) -> bytes:
        answer = json.loads(payload)
        answer["items"] = [{op: change(dict(info))} for item in answer["items"] for op, info in item.items()]
        return json.dumps(answer).encode()

    return transform


def _without_status(info):
    info.pop("status", None)
    return info


# ----------------------------------------------------------------- 1. bulk item without a status


@pytest.mark.parametrize(
    "change",
    [_without_status, lambda info: {**info, "status": None}, lambda info: {**info, "status": 7}],
    ids=["missing", "null", "out of range"],
)
def test_a_bulk_item_without_a_usable_status_is_sent_again_not_refused(cluster, change):
    # the documents were stored, but the answer does not say so: before, each became a permanent
    # es_rejected dead letter ("HTTP None no error detail") with no retry
    server, client, cfg = cluster
    batch = rows(4)
    server.garble(_items(change), times=1)
    report = index_rows(client, batch, cfg)
    assert report.read == 4 and report.indexed == 4 and report.dead_lettered == 0
    assert report.retried == 4 and report.requests == 2
    assert Counter(doc_id for _, doc_id in server.docs()) == Counter(r["record_id"] for r in batch)


def test_bulk_items_without_a_status_to_the_end_are_unavailable_dead_letters(cluster):
    server, client, cfg = cluster
    batch = rows(3)
    server.garble(_items(_without_status), times=None)
    report = index_rows(client, batch, cfg, state=IndexState(clock=_Clock()))
    assert report.indexed + report.dead_lettered == report.read == 3
    assert report.requests == 1 + cfg.max_retries
    assert {d["reason_code"] for d in report.dead_letters} == {ES_UNAVAILABLE}
    reason = report.dead_letters[0]["reason"]
    assert "its item for this document has no status" in reason
    assert "HTTP None" not in reason


# ----------------------------------------------------------------- 2. search against another server


@pytest.fixture
def web_server():
    """A plain web server (no X-Elastic-Product header) answering every request with an HTML page
    and the status in ``server.status``."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def _serve(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html><body><h1>Bad Gateway</h1></body></html>"
            self.send_response(self.server.status)  # type: ignore[attr-defined]
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.status = 404  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [404, 502, 401, 403, 400])
def test_searching_something_that_is_not_elasticsearch_says_check_es_url(
    web_server, status, tmp_path, capsys
):
    from search_support import dataset, vigil, write_archive

    web_server.status = status
    url = f"http://127.0.0.1:{web_server.server_address[1]}"
    archive = write_archive(tmp_path / "archive", dataset())
    code = vigil("search", "card", "--role", "officer", "--archive", str(archive), "--es-url", url)
    err = capsys.readouterr().err.strip()
    assert code == IndexingError.exit_code, err
    assert f"answered HTTP {status} while searching, and it is not Elasticsearch" in err
    assert "no X-Elastic-Product header): check --es-url" in err
    assert "install the template" not in err and "ApiError" not in err and "<html>" not in err
    assert "AuthenticationException" not in err and "\n" not in err


# ----------------------------------------------------------------- 3. search hits missing fields


@pytest.fixture
def search_cluster():
    from search_es_support import indexed_cluster
    from search_support import dataset

    with indexed_cluster(dataset()) as (server, cfg, _client):
        yield server, cfg


@pytest.mark.parametrize(
    ("hit", "named"),
    [
        ({"_id": "x", "_source": {}}, "hit 'x': its _source has no conversation_id, channel, event_time"),
        ({"_id": "x"}, "hit 'x': its _source has no conversation_id"),
        ({"_id": "x", "_source": []}, "hit 'x': it is not an object with a _source object"),
        ("x", "hit without an _id: it is not an object"),
        (
            {
                "_id": "x",
                "_source": {
                    "conversation_id": "c",
                    "channel": "line",
                    "event_time": "soon",
                    "kind": "message",
                    "direction": "inbound",
                    "org": "acme",
                },
            },
            "hit 'x': ValueError",
        ),
    ],
    ids=["empty source", "no source", "source not an object", "hit not an object", "bad time"],
)
def test_a_search_hit_missing_fields_is_one_line_naming_it(search_cluster, hit, named):
    from pipelines.search import es_engine
    from pipelines.search.access import AccessRole, Identity
    from pipelines.search.parse import parse_query

    server, cfg = search_cluster
    answer = json.dumps({"hits": {"total": {"value": 3}, "hits": [hit]}}).encode()
    server.garble(lambda payload: answer, path=r"/_search$", times=None)
    with pytest.raises(IndexingError) as excinfo:
        es_engine.search(cfg, parse_query("card"), Identity("olivia", AccessRole.OFFICER))
    message = str(excinfo.value)
    assert "not with hits as Elasticsearch 9.x does" in message and named in message
    assert "check --es-url" in message and "\n" not in message


def test_the_cli_says_which_hit_is_wrong_not_an_unexpected_key_error(search_cluster, tmp_path, capsys):
    from search_support import dataset, vigil, write_archive

    server, cfg = search_cluster
    answer = json.dumps({"hits": {"total": {"value": 3}, "hits": [{"_id": "x", "_source": {}}]}}).encode()
    server.garble(lambda payload: answer, path=r"/_search$", times=None)
    archive = write_archive(tmp_path / "archive", dataset())
    code = vigil("search", "card", "--role", "officer", "--archive", str(archive), "--es-url", cfg.url)
    err = capsys.readouterr().err.strip()
    assert code == IndexingError.exit_code, err
    assert "hit 'x': its _source has no conversation_id" in err
    assert "KeyError" not in err and "please report" not in err


# ----------------------------------------------------------------- 4. a CA bundle with no certificate


@pytest.mark.parametrize(
    "content", [b"not a pem\n", b"", b"\x30\x82\x01\x0a\x02\x82"], ids=["text", "empty", "DER"]
)
def test_a_ca_bundle_without_a_pem_certificate_is_refused_with_the_settings(tmp_path, capsys, content):
    from test_es_cli import vigil as run_vigil

    bundle = tmp_path / "bad.pem"
    bundle.write_bytes(content)
    code, _, err = run_vigil(
        capsys, "es", "setup", "--es-url", "https://127.0.0.1:9", "--ca-certs", str(bundle), "--replicas", "0"
    )
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert f"CA bundle {str(bundle)!r} holds no usable PEM certificate" in line
    assert "in PEM form (-----BEGIN CERTIFICATE-----)" in line
    assert "TLS with" not in line


def test_a_ca_bundle_with_certificates_is_taken():
    import certifi

    from exporters.elasticsearch.config import EsConfig

    cfg = EsConfig.from_env({}, url="https://es.example.com:9200", ca_certs=certifi.where())
    assert str(cfg.ca_certs) == certifi.where()


def test_tls_failing_with_a_given_bundle_says_the_bundle_is_not_the_right_one(tmp_path):
    """A bundle that holds certificates, but not the one that signed the server's: the message no
    longer tells the user to pass --ca-certs, which they did."""
    import datetime as dt
    import http.server
    import ssl
    import threading

    import certifi

    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from exporters.elasticsearch.config import EsConfig
    from exporters.elasticsearch.setup import check

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = EsConfig(
            url=f"https://127.0.0.1:{server.server_address[1]}", ca_certs=certifi.where(), max_retries=0
        )
        with pytest.raises(IndexingError) as excinfo:
            check(make_client(cfg), cfg)
    finally:
        server.shutdown()
        server.server_close()
    message = str(excinfo.value)
    assert f"with the CA bundle {certifi.where()!r}" in message
    assert "is the bundle of the CA that signed the cluster's certificate" in message
    assert "pass the cluster's CA bundle" not in message


# ----------------------------------------------------------------- 5. the summary's bulk requests


def test_the_index_summary_counts_the_http_bulk_requests_sent(es_server, capsys, tmp_path):
    """The figure used to count retry rounds: one round is many requests when the documents exceed
    --max-request-mb, and a 413 from the cluster adds more (the review saw 19 said, 293 sent)."""
    import re

    from es_support import write_archive
    from test_es_cli import _backfill
    from test_es_cli import vigil as run_vigil

    archive = write_archive(tmp_path / "archive", rows(30, body="q" * 60_000))  # about 60 kB each
    assert run_vigil(capsys, "es", "setup", "--es-url", es_server.url, "--replicas", "0")[0] == 0
    es_server.max_content_length = 200_000  # the cluster takes less than --max-request-mb: 413s
    es_server.bulk_requests = 0
    es_server.fail(r"/_bulk$", 503, times=2)  # and two requests are answered 503: retried
    code, out, err = run_vigil(
        capsys, *_backfill(archive, es_server.url, "--quiet", "--max-request-mb", "0.5")
    )
    assert code == 0, err
    assert "read 30, indexed 30, dead-lettered 0" in out
    said = int(re.search(r"(\d+) bulk requests", out).group(1))
    assert es_server.too_large_requests >= 1
    assert said == es_server.bulk_requests + es_server.too_large_requests  # every HTTP request sent
    assert said > 4


def test_an_attempt_cut_into_several_requests_counts_each(cluster):
    server, client, cfg = cluster
    cfg = cfg.model_copy(update={"max_request_bytes": 64 * 1024})
    server.bulk_requests = 0
    report = index_rows(client, rows(40, body="x" * 6000), cfg, batch_size=40)
    assert report.indexed == 40 and report.requests == 1  # one attempt (round)
    assert report.http_requests == server.bulk_requests >= 5


# ----------------------------------------------------------------- 6. credentials revoked mid-run


def test_a_run_whose_credentials_are_refused_says_so_in_every_dead_letter(cluster):
    server, client, cfg = cluster
    first = index_rows(client, rows(3), cfg, batch_size=3)
    assert first.indexed == 3
    server.fail(r"/_bulk$", 401, times=None, error_type="security_exception", reason="api key revoked")
    batch = rows(12, start=3)
    report = index_rows(client, batch, cfg, batch_size=3, state=IndexState(clock=_Clock()))
    assert report.read == 12 and report.indexed == 0 and report.dead_lettered == 12
    reasons = [d["reason"] for d in report.dead_letters]
    assert {d["reason_code"] for d in report.dead_letters} == {ES_UNAVAILABLE}
    assert all("once the credentials are fixed, re-run `vigil es index" in r for r in reasons)
    assert not any("stopped answering" in r or "cluster is healthy" in r for r in reasons)
    # the batches after the first were not sent (the breaker): they say why
    assert (
        sum(r.startswith("Elasticsearch refused the credentials (last error: HTTP 401") for r in reasons) == 9
    )


def test_a_cluster_that_went_away_still_reads_as_an_outage(cluster):
    server, client, cfg = cluster
    server.fail(r"/_bulk$", 503, times=None)
    report = index_rows(client, rows(6), cfg, batch_size=3, state=IndexState(clock=_Clock()))
    reasons = [d["reason"] for d in report.dead_letters]
    assert len(reasons) == 6 and all("once the cluster is healthy" in r for r in reasons)
    assert any(r.startswith("Elasticsearch stopped answering") for r in reasons)


def test_vigil_run_dead_letters_carry_the_credentials_wording(es_server, tmp_path):
    from factories import event, write_jsonl
    from helpers import ingest

    from exporters.elasticsearch.config import EsConfig
    from pipelines.archive import layout, reader

    cfg = EsConfig(url=es_server.url, replicas=0, max_retries=2, retry_backoff=0.01, retry_backoff_max=0.05)
    setup_client = make_client(cfg)
    install(setup_client, cfg)
    setup_client.close()
    es_server.fail(r"/_bulk$", 401, times=None, error_type="security_exception", reason="api key revoked")
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(12)])
    summary = ingest(tmp_path / "in", tmp_path / "archive", es=cfg, es_batch_size=4)
    assert summary.archived == 12 and summary.balanced and summary.es["dead_lettered"] == 12
    letters = list(reader.iter_rows(tmp_path / "archive", kind=layout.DEAD_LETTERS))
    assert len(letters) == 12
    assert all("once the credentials are fixed" in letter["reason"] for letter in letters)
    assert not any("stopped answering" in letter["reason"] for letter in letters)
    # and the run's summary says so, not only the dead letters
    assert summary.es["refused_credentials"] == 12
    assert "12 because it refused the credentials: fix them" in summary.render(tmp_path / "archive")
