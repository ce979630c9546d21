"""Benchmark: `vigil run` over ~200k simulated events, against pyarrow alone on the same records.

    .venv/bin/python tests/benchmarks/bench_run.py [--events 200000] [--workdir /tmp/vigil-bench-run]

What it prints, all measured in this one process on this machine:

* the `vigil run` pipeline (embedded Beam runner) end to end: read, validate, DLP with the shipped
  active policy set, de-duplicate, write partitioned Parquet, commit to the manifest — events/s;
* the same without DLP (``--no-dlp``), to show what the policy engine costs;
* the baseline: pyarrow alone reading the same JSON-lines files (its vectorised JSON reader) and
  writing them as Parquet partitioned the same way (event month and channel) — events/s;
* the ratio between them.

The corpus is generated once with `vigil simulate` (no faults, so pyarrow's reader accepts every
line) and reused from the work dir. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from pipelines.ingest.read import discover
from pipelines.ingest.run import RunOptions, run
from pipelines.simulate import SimulationConfig, simulate


def corpus(workdir: Path, events: int) -> Path:
    out = workdir / f"events-{events}"
    marker = out / "_simulation.json"
    if marker.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    print(f"generating ~{events:,} events into {out} ...", flush=True)
    simulate(SimulationConfig(days=14, seed=11, target_events=events, employees=60, contacts=900), out)
    return out


def pyarrow_baseline(source: Path, target: Path) -> tuple[int, float]:
    """pyarrow alone: read every JSON-lines file, add the partition keys, write a partitioned dataset."""
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    tables = []
    for f in discover(str(source)):
        table = pajson.read_json(f.name)
        month = pc.utf8_slice_codeunits(table["event_time"], 0, 7)  # the simulator writes UTC ISO-8601
        tables.append(table.append_column("event_month", month))
    combined = pa.concat_tables(tables, promote_options="permissive")
    pq.write_to_dataset(
        combined,
        target,
        partition_cols=["event_month", "channel"],
        compression="zstd",
        existing_data_behavior="overwrite_or_ignore",
    )
    return combined.num_rows, time.perf_counter() - started


def vigil_run(source: Path, archive: Path, **kw) -> tuple[int, float, dict]:
    shutil.rmtree(archive, ignore_errors=True)
    started = time.perf_counter()
    summary = run(RunOptions(input=str(source), archive=archive, show_progress=False, **kw))
    seconds = time.perf_counter() - started
    assert summary.balanced, summary
    return summary.read, seconds, summary.as_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vigil-bench-run"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = corpus(args.workdir, args.events)
    size = sum(f.size for f in discover(str(source)))
    print(f"corpus: {source} ({size / 2**20:,.1f} MiB)")

    n_base, t_base = pyarrow_baseline(source, args.workdir / "pyarrow-out")
    print(
        f"pyarrow alone (read JSON, write partitioned Parquet): {n_base:,} events in {t_base:.2f}s "
        f"= {n_base / t_base:,.0f} events/s"
    )

    results = []
    variants = [
        ("vigil run (DLP: shipped active policy set)", {}),
        ("vigil run --no-dlp", {"dlp": False}),
    ]
    for label, kw in variants:
        n, t, summary = vigil_run(source, args.workdir / "archive", **kw)
        results.append({"variant": label, "events": n, "seconds": round(t, 2), "events_per_s": round(n / t)})
        dlp = summary["dlp"]
        print(
            f"{label}: {n:,} events in {t:.2f}s = {n / t:,.0f} events/s "
            f"(archived {summary['archived']:,}, dlp {dlp}) — {t / t_base:.1f}x pyarrow's time"
        )
    print(json.dumps({"pyarrow_events_per_s": round(n_base / t_base), "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
