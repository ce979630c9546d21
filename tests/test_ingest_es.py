"""`vigil run --es-url`: records land in the archive and in Elasticsearch; refusals are dead letters."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from factories import event, write_jsonl
from helpers import VIGIL, ingest

from exporters.elasticsearch.config import EsConfig, make_client
from exporters.elasticsearch.setup import install
from pipelines.archive import layout, reader
from pipelines.archive.verify import verify
from pipelines.record import record_id_for


def _setup(url: str) -> EsConfig:
    cfg = EsConfig(url=url, replicas=0, max_retries=2, retry_backoff=0.01, retry_backoff_max=0.05)
    client = make_client(cfg)
    install(client, cfg)
    client.close()
    return cfg


def test_run_indexes_what_it_archives(es_server, tmp_path: Path) -> None:
    cfg = _setup(es_server.url)
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(12)] + [event(3), b"{bad\n"])
    s = ingest(tmp_path / "in", tmp_path / "archive", es=cfg, es_batch_size=5)
    assert s.archived == 12 and s.duplicates == 1 and s.dead_lettered == 1 and s.balanced
    assert s.es == {"indexed": 12, "retried": 0, "dead_lettered": 0}
    docs = es_server.docs("vigil-records")
    assert {doc_id for _, doc_id in docs} == {r["record_id"] for r in reader.iter_rows(tmp_path / "archive")}
    assert {index for index, _ in docs} == {"vigil-records-2026.01.01"}


def test_refused_documents_become_index_dead_letters(es_server, tmp_path: Path) -> None:
    cfg = _setup(es_server.url)
    refused = record_id_for("acme", "whatsapp", "evt-000002")
    es_server.fail_items({refused}, 400)
    es_server.storm_429(2)  # and a short 429 storm, which retries absorb
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(6)])
    s = ingest(tmp_path / "in", tmp_path / "archive", es=cfg)
    assert s.archived == 6 and s.balanced  # the archive is complete whatever ES says
    assert s.es["indexed"] == 5 and s.es["dead_lettered"] == 1 and s.es["retried"] >= 2
    (letter,) = list(reader.iter_rows(tmp_path / "archive", kind=layout.DEAD_LETTERS))
    assert letter["stage"] == "index" and letter["record_id"] == refused
    assert letter["reason_code"] == "es_rejected"
    # with an input dead letter too: the run report accounts for both kinds its commit stored
    write_jsonl(tmp_path / "in" / "b.jsonl", [event(i) for i in range(6, 9)] + [b"{bad\n"])
    es_server.fail_items({record_id_for("acme", "whatsapp", "evt-000007")}, 400)
    second = ingest(tmp_path / "in", tmp_path / "archive", es=cfg)
    assert second.dead_lettered == 1 and second.es["dead_lettered"] == 1
    report = verify(tmp_path / "archive")  # before: "says dead letters stored 1 but its commit has 2"
    assert report.ok, report.problems


def test_run_archives_anyway_without_the_template(es_server, tmp_path: Path) -> None:
    cfg = EsConfig(url=es_server.url, max_retries=0)
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(1)])
    summary = ingest(tmp_path / "in", tmp_path / "archive", es=cfg)
    assert summary.archived == 1 and summary.es is None  # archived; nothing indexed
    assert summary.es_unavailable and "vigil es setup" in summary.es_unavailable
    assert "Elasticsearch unreachable: nothing indexed" in summary.render(tmp_path / "archive")


def test_cli_run_with_es_url(es_server, tmp_path: Path) -> None:
    _setup(es_server.url)
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(3)])
    out = subprocess.run(
        [
            *VIGIL,
            "run",
            "--input",
            str(tmp_path / "in"),
            "--archive",
            str(tmp_path / "archive"),
            "--es-url",
            es_server.url,
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Elasticsearch: 3 indexed, 0 dead-lettered" in out.stdout
    assert len(es_server.docs("vigil-records")) == 3


def test_cli_run_splits_bulk_requests_the_cluster_finds_too_large(es_server, tmp_path: Path) -> None:
    # the cluster (or a proxy before it) takes at most 200 kB per request; --es-max-request-mb
    # keeps requests under it, and a 413 from it halves the requests instead of losing documents
    _setup(es_server.url)
    es_server.max_content_length = 200_000
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i, body="r" * 30_000) for i in range(20)])
    argv = [*VIGIL, "run", "--input", str(tmp_path / "in"), "--archive", str(tmp_path / "archive")]
    out = subprocess.run(
        [*argv, "--es-url", es_server.url, "--es-max-request-mb", "0.15", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Elasticsearch: 20 indexed, 0 dead-lettered" in out.stdout
    assert es_server.too_large_requests == 0
    sizes = [int(r.headers["content-length"]) for r in es_server.requests if r.path.endswith("/_bulk")]
    assert len(sizes) >= 4 and max(sizes) <= 0.15 * 1024 * 1024


def test_cli_run_exits_4_when_documents_were_dead_lettered(es_server, tmp_path: Path) -> None:
    # archived in full, not all indexed: the summary says how to re-send, the exit code tells a
    # scheduler that the index is incomplete
    _setup(es_server.url)
    es_server.fail_items({record_id_for("acme", "whatsapp", "evt-000001")}, 400)
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(3)])
    argv = [*VIGIL, "run", "--input", str(tmp_path / "in"), "--archive", str(tmp_path / "archive")]
    out = subprocess.run(
        [*argv, "--es-url", es_server.url, "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 4, out.stderr
    assert "Elasticsearch: 2 indexed, 1 dead-lettered" in out.stdout
    at = shlex.quote(str(tmp_path / "archive"))
    resend = f"re-send with `vigil es index --archive {at} --role officer --es-url {es_server.url}`"
    assert resend in out.stdout
    assert "= 3 (every event accounted for)" in out.stdout  # the archive itself is complete


def test_a_malformed_bulk_answer_does_not_stop_capture(es_server, tmp_path: Path) -> None:
    # a 200 whose body is not a bulk answer used to raise inside the Beam sink and fail the run:
    # now the archive is complete and every record is counted as dead-lettered for the index
    cfg = _setup(es_server.url)
    es_server.garble(lambda payload: b'{"took": 1, "errors": false}', times=None)
    write_jsonl(tmp_path / "in" / "a.jsonl", [event(i) for i in range(4)])
    s = ingest(tmp_path / "in", tmp_path / "archive", es=cfg)
    assert s.archived == 4 and s.balanced
    assert s.es is not None and s.es["indexed"] == 0 and s.es["dead_lettered"] == 4
    assert s.es_incomplete
    letters = list(reader.iter_rows(tmp_path / "archive", kind=layout.DEAD_LETTERS))
    assert len(letters) == 4 and {d["reason_code"] for d in letters} == {"es_unavailable"}
    assert all("malformed" in d["reason"] for d in letters)
