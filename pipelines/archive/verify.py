"""``vigil verify``: does the archive hold exactly what its manifest says?

Checks, each reported as a sentence naming the file or line:

* the manifest's hash chain is intact (no entry altered, removed or reordered);
* every committed file exists, with the SHA-256 and row count the manifest recorded;
* no data file exists that the manifest does not list (added behind its back);
* files a compaction retired are gone;
* the audit log's hash chain is intact;
* optionally, the manifest head equals the one the operator kept elsewhere (``--expect-head``),
  which is what catches a truncated manifest.

Leftover staging folders of an interrupted run are not integrity problems (they were never
committed); they are listed as notes and the next ``vigil run`` removes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.archive import layout
from pipelines.archive.ledger import Ledger
from pipelines.archive.manifest import load_state, manifest_ledger
from pipelines.archive.writer import file_sha256
from pipelines.errors import ArchiveError


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_checked: int = 0
    rows_checked: int = 0
    manifest_head: str = ""
    audit_entries: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(archive: Path, *, expect_head: str | None = None) -> VerifyReport:
    root = Path(archive)
    report = VerifyReport()
    ledger = manifest_ledger(root)
    if not ledger.path.exists():
        if any(root.glob(f"{layout.RECORDS}/**/*")):
            report.problems.append(f"{layout.MANIFEST} is missing but data files exist")
        else:
            report.notes.append("empty archive: nothing committed yet")
        return report
    report.problems.extend(f"manifest: {p}" for p in ledger.problems())
    try:
        state = load_state(root)
    except (ArchiveError, ValueError, KeyError) as exc:
        report.problems.append(f"manifest cannot be replayed: {exc}")
        return report
    report.manifest_head = state.head
    if state.total_lines > state.committed_lines:
        report.notes.append(
            f"{state.total_lines - state.committed_lines} manifest line(s) after the last commit "
            "(an interrupted run; the next `vigil run` removes them)"
        )
    for rel, f in sorted(state.live.items()):
        path = root / rel
        if not path.is_file():
            report.problems.append(f"{rel}: committed file is missing (removed behind the manifest's back)")
            continue
        report.files_checked += 1
        digest = file_sha256(path)
        if digest != f.sha256:
            report.problems.append(
                f"{rel}: content changed (SHA-256 {digest[:16]}… ≠ manifest {f.sha256[:16]}…)"
            )
            continue
        rows = pq.read_metadata(path).num_rows
        report.rows_checked += rows
        if rows != f.rows:
            report.problems.append(f"{rel}: {rows} rows where the manifest recorded {f.rows}")
    for rel in layout.data_files_on_disk(root):
        if rel in state.live:
            continue
        if rel in state.removed:
            report.problems.append(
                f"{rel}: retired by commit {state.removed[rel]['commit']} but still present"
            )
        else:
            report.problems.append(f"{rel}: not in the manifest (added behind its back)")
    staging = root / layout.STAGING
    if staging.is_dir():
        for folder in sorted(p.name for p in staging.iterdir()):
            report.notes.append(
                f"uncommitted staging folder {layout.STAGING}/{folder} (the next run removes it)"
            )
    audit = Ledger(root / layout.AUDIT)
    if audit.path.exists():
        report.problems.extend(f"audit log: {p}" for p in audit.problems())
        report.audit_entries = sum(1 for _ in audit.raw_lines())
    if expect_head and expect_head != state.head:
        report.problems.append(
            f"manifest head is {state.head[:16]}… but {expect_head[:16]}… was expected: "
            "entries were removed from its end, or this is another archive"
        )
    return report
