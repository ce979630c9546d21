"""What a reader pays to list the archive's live files after a long ``vigil run --follow``.

    .venv/bin/python tests/benchmarks/bench_manifest.py [--commits 20000] [--repeat 5]

Builds (in a temporary folder) a manifest shaped like ``--follow`` leaves it: ``--commits``
micro-batches, each adding a small file to two or three month×channel partitions and naming its
input file, with a compaction commit after every eighth batch merging each partition's small files
(as ``vigil run --follow`` does). Entries go through the real ledger, so they are chained and
hashed as in an archive; no Parquet is written, as listing files never opens them.

Then, in this one process, best of ``--repeat``:

* baseline: a full manifest replay (``load_state(fresh=True)``), what every reader did before the index, and
  twice per search, next to the same replay checking the hash chain (what a writer's first read and a
  reader without a fitting index do);
* ``live_view`` with the index the last commit left (what a search does now);
* ``live_view`` with an index 100 commits old (a reader catching up on a tail);
* for writers: ``load_state`` in a process that read the manifest before, after one more commit
  (what each ``--follow`` poll does), against a full replay.

Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from timing import timed

from pipelines.archive import layout, manifest_index
from pipelines.archive.compact import TARGET_ROWS
from pipelines.archive.manifest import (
    LIVE_DIGEST,
    DataFile,
    ManifestState,
    apply_lines,
    live_digest_after,
    load_state,
    manifest_ledger,
)

CHANNELS = ("sms", "mms", "voicemail", "whatsapp", "wechat", "line", "teams")


def commit_entries(n: int, rng: random.Random, live: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    """One micro-batch commit (plus, every eighth, a compaction commit) in the writer's format."""
    commit = f"20260101T{n:012d}Z-{rng.randrange(16**6):06x}"
    month = f"2026-{1 + n * 12 // 100_000:02d}"
    entries: list[dict[str, Any]] = []
    for channel in rng.sample(CHANNELS, rng.choice((2, 3))):
        path = layout.record_file(month, channel, commit, 0)
        rows = rng.randrange(20, 80)
        live[path] = (path.rsplit("/", 1)[0], rows)
        entries.append(_add(commit, path, rows))
    source = {"name": f"in/batch-{n:07d}.jsonl", "size": 40_000, "mtime_ns": n, "lines": 60}
    entries.append(_commit(commit, "ingest", len(entries), 0, [source]))
    if n % 8 == 7:
        entries += compaction(n, rng, live)
    return entries


def compaction(n: int, rng: random.Random, live: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    commit = f"20260101T{n:012d}Z-compact"
    by_partition: dict[str, list[str]] = {}
    for path, (partition, rows) in live.items():
        if rows < TARGET_ROWS:
            by_partition.setdefault(partition, []).append(path)
    entries: list[dict[str, Any]] = []
    removed = 0
    for i, (partition, paths) in enumerate(sorted(by_partition.items())):
        if len(paths) < 2:
            continue
        rows = sum(live[p][1] for p in paths)
        for p in paths:
            entries.append(
                {"op": "remove", "commit": commit, "path": p, "sha256": "0" * 64, "reason": "compacted"}
            )
            del live[p]
            removed += 1
        merged = f"{partition}/part-{commit}-{i:04d}.parquet"
        live[merged] = (partition, rows)
        entries.append(_add(commit, merged, rows))
    added = sum(1 for e in entries if e["op"] == "add")
    return [*entries, _commit(commit, "compact", added, removed, [])]


def seal(state: ManifestState, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` with each commit entry's ``live_sha256``, as the writer records it (readers trust
    the index only with it); ``state`` is kept to the live files after them."""
    start = 0
    for end, entry in enumerate(entries, start=1):
        if entry["op"] != "commit":
            continue
        entry[LIVE_DIGEST] = live_digest_after(state, entries[start:end])
        for e in entries[start:end]:
            if e["op"] == "add":
                fields = {k: e[k] for k in ("path", "kind", "rows", "bytes", "sha256", "commit")}
                state.live[e["path"]] = DataFile(**fields)
            elif e["op"] == "remove":
                state.live.pop(e["path"], None)
        start = end
    return entries


def _add(commit: str, path: str, rows: int) -> dict[str, Any]:
    return {"op": "add", "commit": commit, "kind": "records", "path": path, "rows": rows,
            "bytes": rows * 900, "sha256": f"{hash(path) & (2**256 - 1):064x}"}  # fmt: skip


def _commit(commit: str, action: str, added: int, removed: int, sources: list[Any]) -> dict[str, Any]:
    return {"op": "commit", "commit": commit, "time": "2026-01-01T00:00:00+00:00", "action": action,
            "files_added": added, "files_removed": removed, "rows_added": {"records": 0, "deadletters": 0},
            "sources": sources}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=20_000, help="micro-batch commits (default 20,000)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-manifest-") as tmp:
        root = Path(tmp)
        ledger = manifest_ledger(root)
        live: dict[str, tuple[str, int]] = {}
        sealed = ManifestState()
        chunk: list[dict[str, Any]] = []
        old_index = b""
        for n in range(args.commits):
            chunk += seal(sealed, commit_entries(n, rng, live))
            if len(chunk) > 5000 or n == args.commits - 1 or n == args.commits - 101:
                ledger.append(chunk)
                chunk = []
            if n == args.commits - 101:
                manifest_index.refresh(root)
                old_index = (root / layout.MANIFEST_INDEX).read_bytes()
        manifest_index.refresh(root)
        state = load_state(root)
        assert manifest_index.live_view(root).files("records") == state.files("records")
        lines, live_files = state.committed_lines, len(state.live)
        size = (root / layout.MANIFEST).stat().st_size
        print(f"manifest: {args.commits:,} micro-batches, {lines:,} entries, {size / 1e6:.1f} MB; "
              f"{live_files:,} live files")  # fmt: skip

        full = timed(lambda: load_state(root, fresh=True).files("records"), args.repeat)
        # what a writer's first read, or a reader without a fitting index, pays: the hash chain too
        chained = timed(
            lambda: apply_lines(ledger.path, ManifestState(), [line for _, line in ledger.raw_lines()]),
            args.repeat,
        )
        indexed = timed(lambda: manifest_index.live_view(root).files("records"), args.repeat)

        def stale() -> None:
            (root / layout.MANIFEST_INDEX).write_bytes(old_index)
            manifest_index.live_view(root).files("records")

        behind = timed(stale, args.repeat)

        load_state(root)  # this process has read it once, as a --follow session has
        n = args.commits

        def next_batch() -> None:
            nonlocal n
            ledger.append(seal(sealed, commit_entries(n, rng, live)))
            n += 1
            started = time.perf_counter()
            load_state(root)
            follow_times.append(time.perf_counter() - started)

        follow_times: list[float] = []
        for _ in range(args.repeat):
            next_batch()
        again = min(follow_times)
        fresh = timed(lambda: load_state(root, fresh=True), args.repeat)
        print(f"full replay (baseline)        {full * 1000:8.1f} ms")
        print(f"full replay, chain checked    {chained * 1000:8.1f} ms   {full / chained:6.2f}x")
        print(f"index at the last commit      {indexed * 1000:8.1f} ms   {full / indexed:6.1f}x faster")
        print(f"index 100 commits behind      {behind * 1000:8.1f} ms   {full / behind:6.1f}x faster")
        print("a writer re-reading the manifest after one more commit (as --follow does at each poll):")
        print(f"full replay (baseline)        {fresh * 1000:8.1f} ms")
        print(f"replay of the new lines only  {again * 1000:8.1f} ms   {fresh / again:6.1f}x faster")


if __name__ == "__main__":
    main()
