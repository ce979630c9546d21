"""How much Vigil's indexing path costs on top of the client's own bulk helper.

    .venv/bin/python tests/benchmarks/bench_es_bulk.py [--rows 20000] [--batch 500]

Two figures, each against a baseline run in the same process:

1. documents: ``to_action`` (model-driven conversion of a row) vs ``json.dumps`` of the same row,
   the least any path must do to put a row on the wire;
2. indexing into the fake cluster: ``index_rows`` (conversion, per-item bookkeeping, dead letters)
   vs ``elasticsearch.helpers.bulk`` over actions built beforehand. The fake server (pure Python)
   dominates both, so the ratio shows Vigil's overhead, not cluster throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: es_support and fakes

from es_support import config, rows  # noqa: E402
from fakes.es_server import FakeElasticsearch  # noqa: E402
from timing import timed  # noqa: E402

from exporters.elasticsearch.bulk import index_rows  # noqa: E402
from exporters.elasticsearch.config import make_client  # noqa: E402
from exporters.elasticsearch.documents import to_action  # noqa: E402
from exporters.elasticsearch.setup import install  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    batch = rows(args.rows, minutes_apart=1)
    with FakeElasticsearch() as server:
        cfg = config(server.url)
        client = make_client(cfg)
        install(client, cfg)

        base_docs = timed(lambda: [json.dumps(r, default=str) for r in batch], repeat=5)
        ours_docs = timed(lambda: [to_action(r, cfg) for r in batch], repeat=5)
        print(f"documents  json.dumps baseline {args.rows / base_docs:>10,.0f} rows/s")
        ratio = ours_docs / base_docs
        print(f"documents  to_action           {args.rows / ours_docs:>10,.0f} rows/s   ratio {ratio:.2f}x")

        from elasticsearch.helpers import bulk

        actions = [to_action(r, cfg) for r in batch]
        base_bulk = timed(lambda: bulk(client, actions, chunk_size=args.batch))
        server.indices.clear()
        server.aliases.clear()
        report = None

        def ours() -> None:
            nonlocal report
            report = index_rows(client, batch, cfg, batch_size=args.batch, on_batch=lambda _: None)

        ours_bulk = timed(ours)
        assert report is not None and report.indexed == args.rows, report
        print(f"indexing   helpers.bulk baseline {args.rows / base_bulk:>8,.0f} docs/s (actions prebuilt)")
        ratio = ours_bulk / base_bulk
        print(f"indexing   index_rows            {args.rows / ours_bulk:>8,.0f} docs/s   ratio {ratio:.2f}x")
        client.close()


if __name__ == "__main__":
    main()
