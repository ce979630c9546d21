"""Benchmark: `vigil simulate` throughput and peak memory at 100k vs 1M events.

Not a test (pytest does not collect bench_*.py). Each size runs in a fresh subprocess so its peak
RSS is its own; the 100k run is the baseline and the ratios show that memory stays flat while the
event count grows tenfold. The world is the same for both sizes (only activity changes), because
memory is meant to depend on the world, not on the number of events.

    .venv/bin/python tests/benchmarks/bench_simulate.py              # 100k and 1M
    .venv/bin/python tests/benchmarks/bench_simulate.py --sizes 20000 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORLD = {"employees": 60, "contacts": 600, "days": 7, "seed": 7}


def child(size: int, out: Path) -> None:
    """Run one simulation in this process and print its figures as JSON."""
    from pipelines.simulate import SimulationConfig, simulate
    from pipelines.simulate.engine import calibrate
    from pipelines.simulate.world import build_world

    config = SimulationConfig(target_events=size, **WORLD)
    began = time.perf_counter()
    activity = calibrate(config, build_world(config.seed, config.employees, config.contacts))
    pilot = time.perf_counter() - began
    began = time.perf_counter()
    summary = simulate(config.replace(target_events=None, activity=activity), out)
    seconds = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    figures = {"events": summary.events, "bytes": summary.bytes, "seconds": seconds, "pilot": pilot}
    print(json.dumps({**figures, "activity": activity, "peak_kib": peak_kib}))


def run(size: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="vigil-bench-sim-"))
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--out", str(out / "events")],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.out)
        return
    world = ", ".join(f"{k}={v}" for k, v in WORLD.items())
    print(f"vigil simulate, world: {world}; activity calibrated by a pilot run (timed apart)")
    print(
        f"{'target':>10} {'activity':>8} {'events':>10} {'MiB written':>12} {'pilot s':>8} {'write s':>8}"
        f" {'events/s':>9} {'peak RSS MiB':>13}"
    )
    results = []
    for size in args.sizes:
        figures = run(size)
        results.append(figures)
        rate = figures["events"] / figures["seconds"]
        mib, rss = figures["bytes"] / 2**20, figures["peak_kib"] / 1024
        print(
            f"{size:>10,} {figures['activity']:>8.2f} {figures['events']:>10,} {mib:>12,.0f}"
            f" {figures['pilot']:>8.1f} {figures['seconds']:>8.1f} {rate:>9,.0f} {rss:>13,.0f}"
        )
    base, last = results[0], results[-1]
    print(
        f"ratio {args.sizes[-1]:,} / {args.sizes[0]:,}: events x{last['events'] / base['events']:.1f}, "
        f"peak RSS x{last['peak_kib'] / base['peak_kib']:.2f}, "
        f"throughput x{(last['events'] / last['seconds']) / (base['events'] / base['seconds']):.2f}"
    )


if __name__ == "__main__":
    main()
