"""``vigil verify``: does the archive hold exactly what its manifest says?

Checks, each reported as a sentence naming the file or line:

* the manifest's hash chain is intact (no entry altered, removed or reordered);
* every committed file exists, with the SHA-256 and row count the manifest recorded, as a file
  and not a symbolic link to one (Vigil never makes one);
* no data file exists that the manifest does not list (added behind its back);
* files a compaction retired are gone;
* the audit log's hash chain is intact;
* optionally, the manifest head equals the one the operator kept elsewhere (``--expect-head``),
  which is what catches a truncated manifest.

* the audit log still reaches the position (seq and hash) the newest ``vigil run`` commit
  recorded, so cutting its end or deleting it is caught; optionally its head equals the one the
  operator kept (``--expect-audit-head``).

Leftovers of an interrupted run are not integrity problems: a staging folder without a commit was
never committed (the next ``vigil run`` removes it), files of a commit whose publishing was cut
short are still in its staging folder (the next ``vigil run`` or ``vigil compact`` moves them into
place), and files the newest commit retired may still be there (it deletes them). They are listed
as notes, and only when they are byte for byte what the manifest recorded: a staged copy or a
retired file that differs is a problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.archive import layout, manifest_index, reader
from pipelines.archive.ledger import GENESIS, Ledger
from pipelines.archive.manifest import ManifestState, load_state, manifest_ledger, tail_problem
from pipelines.archive.writer import file_sha256, staging_dir
from pipelines.errors import ArchiveError
from pipelines.record import SCHEMA_VERSION


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_checked: int = 0
    rows_checked: int = 0
    manifest_head: str = ""
    audit_entries: int = 0
    audit_head: str = ""
    audit_unreadable: bool = False  # the log exists but could not be read: no head to print

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    archive: Path, *, expect_head: str | None = None, expect_audit_head: str | None = None
) -> VerifyReport:
    root = Path(archive)
    report = VerifyReport()
    report.problems.extend(
        f"{name} is a symbolic link (Vigil never makes one; writers refuse the archive until the real "
        "one is back)"
        for name in layout.linked_bookkeeping(root)
    )
    ledger = manifest_ledger(root)
    if not ledger.path.exists():
        left = [
            name
            for name in (layout.RECORDS, layout.DEAD_LETTERS, layout.RUNS, layout.AUDIT)
            if (root / name).exists()
        ]
        if left:
            report.problems.append(
                f"{layout.MANIFEST} is missing but {', '.join(left)} exist: the manifest was deleted"
            )
        elif layout.is_archive(root) or (root / layout.STAGING).exists():
            # `vigil run` made it; a staging folder alone is a first run stopped before its commit
            report.notes.append("empty archive: nothing committed yet")
        else:  # a mistyped path must not pass as an intact archive
            report.problems.append(layout.not_an_archive(root))
        if expect_head:
            report.problems.append(
                f"{layout.MANIFEST} is missing but head {expect_head[:16]}… was expected: "
                "the archive was wiped, or this is another folder"
            )
        _check_audit(root, report, None, expect_audit_head)
        return report
    if not ledger.path.is_file():
        what = "a folder" if ledger.path.is_dir() else "not a regular file"
        report.problems.append(
            f"{layout.MANIFEST} is {what}, not the manifest: put the manifest back from a backup"
        )
        return report
    try:
        state = load_state(root, fresh=True)
    except (ArchiveError, ValueError, KeyError) as exc:
        report.problems.extend(f"manifest: {p}" for p in ledger.problems())
        report.problems.append(f"manifest cannot be replayed: {exc}")
        return report
    leftover = state.total_lines > state.committed_lines
    tail = tail_problem(root, state) if leftover else None
    # the chain is checked up to the last commit; lines an interrupted append left after it are
    # judged as such (complete entries, perhaps ending in a line cut short), not as a broken chain
    report.problems.extend(
        f"manifest: {p}" for p in ledger.problems(state.committed_lines if leftover and not tail else None)
    )
    report.manifest_head = state.head
    report.problems.extend(manifest_index.problems(root, state))
    if leftover:
        if tail:
            report.problems.append(f"manifest: after the last commit, {tail}")
        else:
            report.notes.append(
                f"{state.total_lines - state.committed_lines} manifest line(s) after the last commit "
                "(an interrupted run; the next `vigil run` removes them)"
            )
    unpublished: dict[str, int] = {}
    newer: dict[int, int] = {}  # files a newer Vigil wrote, by schema version
    for rel, f in sorted(state.live.items()):
        path = root / rel
        if not path.is_file():
            staged = staging_dir(root, f.commit) / rel
            if not staged.is_file():
                report.problems.append(
                    f"{rel}: committed file is missing (removed behind the manifest's back)"
                )
            elif (digest := file_sha256(staged)) != f.sha256:
                report.problems.append(
                    f"{rel}: committed file is missing, and its copy in {layout.STAGING}/{f.commit} is not "
                    f"what was committed (SHA-256 {digest[:16]}… ≠ manifest {f.sha256[:16]}…)"
                )
            else:
                unpublished[f.commit] = unpublished.get(f.commit, 0) + 1
            continue
        if path.is_symlink():
            report.problems.append(
                f"{rel}: is a symbolic link to {os.readlink(path)}, not the committed file (Vigil never "
                "makes one; the data now lives where the archive's protection may not reach): put the "
                "file itself back"
            )
        report.files_checked += 1
        digest = file_sha256(path)
        if digest != f.sha256:
            report.problems.append(
                f"{rel}: content changed (SHA-256 {digest[:16]}… ≠ manifest {f.sha256[:16]}…)"
            )
            continue
        metadata = pq.read_metadata(path)
        rows = metadata.num_rows
        if (version := reader.written_version(metadata.metadata) or 0) > SCHEMA_VERSION:
            newer[version] = newer.get(version, 0) + 1
        report.rows_checked += rows
        if rows != f.rows:
            report.problems.append(f"{rel}: {rows} rows where the manifest recorded {f.rows}")
    for rel in layout.data_files_on_disk(root):
        if rel in state.live:
            continue
        if rel in state.removed:
            retired = state.removed[rel]
            if retired["commit"] == state.last_commit and file_sha256(root / rel) == retired.get("sha256"):
                report.notes.append(
                    f"{rel}: retired by commit {retired['commit']} but still present (the compaction "
                    "was stopped while publishing); the next `vigil run` or `vigil compact` deletes it"
                )
            else:
                report.problems.append(f"{rel}: retired by commit {retired['commit']} but still present")
        else:
            report.problems.append(f"{rel}: not in the manifest (added behind its back)")
    for version, n in sorted(newer.items()):
        report.notes.append(
            f"{n} file(s) were written by a newer Vigil (record schema {version}; this one knows up to "
            f"{SCHEMA_VERSION}): their hashes and row counts were checked, but searching, compacting or "
            "writing this archive needs that Vigil"
        )
    for commit, n in sorted(unpublished.items()):
        report.notes.append(
            f"interrupted commit {commit}: {n} committed file(s) are still in {layout.STAGING}/{commit} "
            "(the run was stopped while publishing them); the next `vigil run` or `vigil compact` "
            "moves them into place"
        )
    staging = root / layout.STAGING
    if staging.is_dir():
        for folder in sorted(p.name for p in staging.iterdir()):
            if folder not in state.commits:
                report.notes.append(
                    f"uncommitted staging folder {layout.STAGING}/{folder} (never committed; "
                    "the next `vigil run` removes it)"
                )
    _check_audit(root, report, state, expect_audit_head)
    if expect_head and expect_head != state.head:
        report.problems.append(
            f"manifest head is {state.head[:16]}… but {expect_head[:16]}… was expected: "
            "entries were removed from its end, or this is another archive"
        )
    return report


def _check_audit(
    root: Path, report: VerifyReport, state: ManifestState | None, expect_audit_head: str | None
) -> None:
    audit = Ledger(root / layout.AUDIT)
    anchor = state.audit_anchor() if state is not None else None
    if audit.path.exists() and not audit.path.is_file():
        what = "a folder" if audit.path.is_dir() else "not a regular file"
        report.problems.append(
            f"audit log: {layout.AUDIT} is {what}, not the log: put the log back from a backup"
        )
        return
    if audit.path.exists():
        try:
            found = audit.problems()
        except OSError as exc:
            report.problems.append(
                f"audit log: {layout.AUDIT} cannot be read ({exc.strerror or exc}), so its chain was "
                "not checked; run `vigil verify` as a user who may read the whole archive"
            )
            report.audit_unreadable = True
            return
        report.problems.extend(f"audit log: {p}" for p in found)
        report.audit_entries = sum(1 for _ in audit.raw_lines())
        try:
            report.audit_head = audit.head() if report.audit_entries else ""
        except ArchiveError:  # a damaged last line: the problems above name it
            report.audit_head = ""
    if anchor is not None:
        entry = audit.entry_at(int(anchor["seq"])) if audit.path.exists() else None
        if entry is None and not audit.path.exists():
            report.problems.append(
                f"audit log is missing, but a `vigil run` commit recorded its entry {anchor['seq']}: "
                "it was deleted"
            )
        elif entry is None:
            report.problems.append(
                f"audit log: ends before entry {anchor['seq']} that a `vigil run` commit recorded; "
                "entries were removed from its end"
            )
        elif entry.get("hash") != anchor.get("head"):
            report.problems.append(
                f"audit log: entry {anchor['seq']} is not the one a `vigil run` commit recorded "
                "(the log was rewritten)"
            )
    if expect_audit_head and expect_audit_head != (report.audit_head or GENESIS):
        shown = report.audit_head[:16] + "…" if report.audit_head else "(empty)"
        report.problems.append(
            f"audit head is {shown} but {expect_audit_head[:16]}… was expected: "
            "entries were removed from the audit log's end, or this is another archive"
        )
