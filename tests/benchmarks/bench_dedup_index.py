"""What de-duplication's record index costs a ``vigil run --follow`` poll on a large archive.

    .venv/bin/python tests/benchmarks/bench_dedup_index.py [--records 1000000] [--repeat 3]

Writes (in a temporary folder) an archive of ``--records`` records in 14 files through the real
writer (only the two columns the index reads: random record ids and content hashes), then, in this
one process:

* baseline: building ``record_id -> content hash`` from every file (``reader.record_index``), what
  every poll paid before;
* ``RecordIndex.update`` after one more ingest commit of 60 records (what a poll pays now).

(After a compaction the update reads no file at all; ``tests/test_archive_record_index.py`` shows
that. The files here hold only the two columns the index reads, which compaction cannot rewrite.)

Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from pathlib import Path

import pyarrow as pa
from timing import timed

from pipelines.archive import layout, writer
from pipelines.archive.manifest import load_state
from pipelines.archive.reader import record_index
from pipelines.archive.record_index import RecordIndex

FILES = 14


def _table(n: int) -> pa.Table:
    return pa.table(
        {
            "record_id": [f"acme:sms:{secrets.token_hex(12)}" for _ in range(n)],
            "content_sha256": [secrets.token_hex(32) for _ in range(n)],
        }
    )


def _commit(root: Path, tables: list[pa.Table], month: str = "2026-01") -> None:
    commit = layout.new_commit_id()
    staged = [
        writer.stage_table(root, commit, layout.record_file(month, "sms", commit, i), layout.RECORDS, t)
        for i, t in enumerate(tables)
    ]
    writer.commit(root, commit, staged, action="ingest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-dedup-") as tmp:
        root = Path(tmp)
        _commit(root, [_table(args.records // FILES) for _ in range(FILES)])
        full = timed(lambda: record_index(root), args.repeat)
        index = RecordIndex(root)
        index.update(load_state(root))
        polls: list[float] = []
        for _ in range(args.repeat):
            _commit(root, [_table(60)], month="2026-02")
            polls.append(timed(lambda: index.update(load_state(root))))
        assert index.ids == record_index(root)
        print(f"archive: {len(index.ids):,} records in {len(index.files)} live files")
        poll = min(polls)
        print(f"full build (baseline)             {full * 1000:8.1f} ms")
        print(f"update after one ingest commit    {poll * 1000:8.1f} ms   {full / poll:7.1f}x faster")


if __name__ == "__main__":
    main()
