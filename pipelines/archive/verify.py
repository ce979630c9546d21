"""``vigil verify``: does the archive hold exactly what its manifest says?

Checks, each reported as a sentence naming the file or line:

* the manifest's hash chain is intact (no entry altered, removed or reordered); a damaged line (not
  an entry, fields missing or invalid, a broken link) is named and the rest replayed past it, so
  every other check still runs; a file only a damaged line held is checked against the manifest
  index when the last commit's ``live_sha256`` vouches for the index's list;
* every committed file exists, with the SHA-256 and row count the manifest recorded, as a file
  and not a symbolic link to one (Vigil never makes one);
* no data file exists that the manifest does not list (added behind its back);
* files a compaction retired are gone;
* the audit log's hash chain is intact;
* each run report (``_runs/<commit>.json``) names an ingest commit the manifest holds and agrees
  with it (files written, records and dead letters stored, DLP policy, manifest head), and its
  own counts add up (read = archived + dead-lettered + duplicates, dead letters by reason); a
  missing report is a problem, except the newest commit's (a run stopped between its commit and
  its report: the next writer rebuilds it). What the manifest does not hold (how many lines were
  duplicates, the Elasticsearch counts) is checked only as far as that sum goes;
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

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.archive import layout, manifest_index, reader
from pipelines.archive.compact import COMPACTED_INTO
from pipelines.archive.ledger import GENESIS, Ledger
from pipelines.archive.ledger import read_line as ledger_read_line
from pipelines.archive.manifest import (
    LIVE_DIGEST,
    ManifestState,
    lines_after,
    live_digest,
    load_state,
    manifest_ledger,
    tail_problem,
)
from pipelines.archive.writer import DLP_ACTIONS, file_sha256, staging_dir
from pipelines.errors import ArchiveError
from pipelines.record import SCHEMA_VERSION


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_checked: int = 0
    rows_checked: int = 0
    manifest_head: str = ""
    run_reports_checked: int = 0
    audit_entries: int = 0
    audit_head: str = ""
    audit_unreadable: bool = False  # the log exists but could not be read: no head to print
    manifest_break: int | None = None  # the first damaged manifest line: the head is not to be kept
    audit_break: int | None = None  # the same for the audit log

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
    damaged: list[tuple[int, str]] = []  # lines the replay left out, with why
    state = load_state(root, fresh=True, damaged=damaged)
    leftover = state.total_lines > state.committed_lines
    tail = tail_problem(root, state) if leftover else None
    # the chain is checked up to the last commit; lines an interrupted append left after it are
    # judged as such (complete entries, perhaps ending in a line cut short), not as a broken chain
    # a whole last entry without its line end is what a crash right after writing it leaves: the
    # next writer ends the line, so it is a note (its hash and link are still checked)
    unended = ledger.unended_tail() if not leftover else None
    unended_whole = unended is not None and unended[1]
    breaks = ledger.breaks(state.committed_lines if leftover and not tail else None, unended_ok=unended_whole)
    if unended is not None and unended_whole and not breaks:
        report.notes.append(
            f"manifest: its last entry (line {unended[0]}) is whole but lacks its line end (a crash "
            "right after writing it); the next `vigil run` or `vigil compact` writes it"
        )
    found = sorted(breaks + damaged, key=lambda named: named[0])
    report.problems.extend(f"manifest: {p}" for _, p in found)
    report.manifest_head = state.head
    if found:
        report.manifest_break = found[0][0]
        report.problems.extend(_after_break(found[0][0], state))
    report.problems.extend(manifest_index.problems(root, state))
    report.problems.extend(removal_problems(ledger.raw_lines(), state.committed_lines))
    if leftover:
        if tail:
            report.problems.append(f"manifest: after the last commit, {tail}")
        else:
            report.notes.append(
                f"{state.total_lines - state.committed_lines} manifest line(s) after the last commit "
                "(an interrupted run; the next `vigil run` removes them)"
            )
    live = dict(state.live)
    if found:  # what the damaged lines held, as far as the manifest index vouches for it
        for rel, f in sorted(manifest_index.vouched_live(root, state).items()):
            if rel not in live:
                live[rel] = f
                report.notes.append(
                    f"{rel}: no readable manifest line adds it, but {layout.MANIFEST_INDEX} lists it "
                    f"and commit {state.last_commit} recorded that list ({LIVE_DIGEST}): checked "
                    "against the index"
                )
    recorded = state.commits.get(state.last_commit or "", {}).get(LIVE_DIGEST)
    if recorded is not None and recorded != live_digest(live, state.audit_anchor()):
        report.problems.append(
            f"manifest: the files it lists are not the ones its last commit {state.last_commit} "
            f"recorded ({LIVE_DIGEST}), and no {layout.MANIFEST_INDEX} that commit vouches for "
            "lists them: the damaged lines held files that could not be checked; restore the manifest "
            "from a copy"
            if found
            else f"manifest: the files it lists are not the ones its last commit {state.last_commit} "
            f"recorded ({LIVE_DIGEST}) although its chain holds: lines were removed or changed and the "
            "chain computed again after them; restore the manifest from a copy, and pass --expect-head "
            "with a head kept elsewhere to catch a rewrite that recomputes this too"
        )
    unpublished: dict[str, int] = {}
    # dead letters by reason in each commit's intact files, the reasons of its run report checked
    # against (files the run stored itself: Elasticsearch's refusals, stage index, are not in them)
    stored_reasons: dict[str, Counter[str]] = {}
    intact_dead_rows: Counter[str] = Counter()
    newer: dict[int, int] = {}  # files a newer Vigil wrote, by schema version
    unknown_columns: list[str] = []  # files with columns this Vigil does not know, at a known version
    for rel, f in sorted(live.items()):
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
        elif unknown := reader.unknown_columns(metadata.schema.to_arrow_schema(), f.kind):
            unknown_columns.append(f"{rel} ({', '.join(unknown)})")
        report.rows_checked += rows
        if rows != f.rows:
            report.problems.append(f"{rel}: {rows} rows where the manifest recorded {f.rows}")
        elif f.kind == layout.DEAD_LETTERS and version <= SCHEMA_VERSION:
            reasons = _stored_reasons(path)
            if reasons is not None:
                stored_reasons.setdefault(f.commit, Counter()).update(reasons)
                intact_dead_rows[f.commit] += rows
    unlistable: list[tuple[str, str]] = []
    on_disk = layout.data_files_on_disk(root, unlistable)
    for rel, why in unlistable:
        report.problems.append(
            f"{rel}: the folder cannot be listed ({why}), so files added there behind the manifest's "
            "back cannot be looked for: run verify as a user who can read the whole archive"
        )
    # files the lines after the last commit add, and in place (the tail problem above names why):
    # named together as that commit's, not one by one as "added behind its back"
    tail_adds = _tail_adds(root, state) if leftover and tail else set()
    in_tail = [rel for rel in on_disk if rel not in live and rel in tail_adds]
    if in_tail:
        shown = ", ".join(in_tail[:3]) + (f" and {len(in_tail) - 3} more" if len(in_tail) > 3 else "")
        report.problems.append(
            f"{len(in_tail)} file(s) in place are added by the manifest lines after its last commit, "
            f"whose closing entry is damaged or missing, so they are not committed: {shown}"
        )
    for rel in on_disk:
        if rel in live or rel in tail_adds:
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
        elif (root / rel).is_symlink():
            report.problems.append(
                f"{rel}: is a symbolic link to {os.readlink(root / rel)}, which Vigil never makes and "
                "the manifest does not list (readers would follow it into data no commit holds): "
                "remove the link"
            )
        else:
            report.problems.append(f"{rel}: not in the manifest (added behind its back)")
    if unknown_columns:
        report.notes.append(
            f"{len(unknown_columns)} file(s) hold columns this Vigil does not know under a schema "
            f"version it does: {'; '.join(unknown_columns[:5])}{' …' if len(unknown_columns) > 5 else ''}: "
            "their hashes and row counts were checked, but searching, compacting or writing this "
            "archive needs the Vigil that wrote them"
        )
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
        for entry in sorted(staging.iterdir()):
            folder = entry.name
            if not entry.is_dir() or entry.is_symlink():
                report.notes.append(
                    f"{layout.STAGING}/{folder} is not a staging folder Vigil makes (a file or link put "
                    "there); the next `vigil run` removes it"
                )
            elif folder not in state.commits:
                report.notes.append(
                    f"uncommitted staging folder {layout.STAGING}/{folder} (never committed; "
                    "the next `vigil run` removes it)"
                )
            elif folder not in unpublished:
                held = sum(1 for p in entry.rglob("*") if p.is_file())
                report.notes.append(
                    f"{layout.STAGING}/{folder} is the staging folder of commit {folder}, which has "
                    f"nothing left to publish, yet it holds {held} file(s) (the run was stopped after "
                    "its commit, or they were put there): the next `vigil run` or `vigil compact` "
                    "removes it, and writes the commit's run report from the manifest if it is missing"
                )
    whole = {  # commits whose dead letters are all still in files of their own (not compacted)
        commit: reasons
        for commit, reasons in stored_reasons.items()
        if intact_dead_rows[commit] == _rows_added(state.commits.get(commit), layout.DEAD_LETTERS)
    }
    _check_run_reports(root, report, state, whole)
    _check_audit(root, report, state, expect_audit_head)
    if expect_head and expect_head != state.head:
        later = _entries_after(
            manifest_ledger(root).path, expect_head, op="commit", upto=state.committed_lines
        )
        if later is not None:
            report.notes.append(
                f"the expected manifest head {expect_head[:16]}… is a commit in the chain, and "
                f"{later} commit(s) came after it: the archive grew since (keep the current head, "
                f"{state.head[:16]}…, for the next check)"
            )
        else:
            shown = state.head[:16] + "…" if state.head else "unknown" if found else "(empty)"
            report.problems.append(
                f"manifest head is {shown} but {expect_head[:16]}… was expected, and no commit in "
                "the chain has that hash: entries were removed from its end or rewritten, or this "
                "is another archive"
            )
    return report


def removal_problems(lines: Iterable[tuple[int, bytes]], committed_lines: int) -> list[str]:
    """What the committed ``remove`` entries do not account for. A file may leave the archive only
    by a compaction (``action`` compact) that names the file it was merged into, which the same
    commit adds in the same folder holding every row of the files merged into it; and only a file
    that was live, as the manifest recorded it. Otherwise a commit that merged four files into one
    holding one row, or retired a file with no replacement, would pass: the removed files' absence
    from disk is what the manifest says. (Lines that are not entries are named by the chain check.)"""
    problems: list[str] = []
    live: dict[str, dict[str, Any]] = {}
    pending: list[dict[str, Any]] = []
    for number, line in lines:
        if number > committed_lines:
            break
        try:
            entry = ledger_read_line(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("op") in ("add", "remove"):
            pending.append(entry)
        elif entry.get("op") == "commit":
            problems.extend(_commit_removals(entry, pending, live))
            pending = []
    return problems


def _commit_removals(
    commit: dict[str, Any], entries: list[dict[str, Any]], live: dict[str, dict[str, Any]]
) -> list[str]:
    name = f"manifest: commit {commit.get('commit')}"
    adds = {e.get("path"): e for e in entries if e.get("op") == "add"}
    removes = [e for e in entries if e.get("op") == "remove"]
    problems: list[str] = []
    merged: dict[str, int] = {}  # the file compacted into -> rows of the files merged into it
    for entry in removes:
        path = entry.get("path")
        was = live.get(path) if isinstance(path, str) else None
        if was is None:
            problems.append(f"{name} removes {path}, which was not a committed file then")
            continue
        if entry.get("sha256") not in (None, was.get("sha256")):
            problems.append(f"{name} removes {path} under another SHA-256 than the one it was committed with")
        reason = entry.get("reason")
        into = (
            reason[len(COMPACTED_INTO) :]
            if isinstance(reason, str) and reason.startswith(COMPACTED_INTO)
            else None
        )
        if commit.get("action") != "compact" or into is None:
            problems.append(
                f"{name} ({commit.get('action')}) removes {path} ({reason}): only a compaction, naming the "
                "file it merged it into, takes a file out of the archive"
            )
        elif into not in adds or into.rsplit("/", 1)[0] != str(path).rsplit("/", 1)[0]:
            problems.append(
                f"{name} removes {path} as merged into {into}, which it does not add in that folder"
            )
        else:
            rows = was.get("rows")
            merged[into] = merged.get(into, 0) + (rows if isinstance(rows, int) else 0)
    for into, rows in sorted(merged.items()):
        if adds[into].get("rows") != rows:
            problems.append(
                f"{name} merged files holding {rows} row(s) into {into}, which holds "
                f"{adds[into].get('rows')}: rows were lost or added by the compaction; restore the "
                "removed files from a backup"
            )
    for entry in removes:
        live.pop(entry.get("path"), None)  # type: ignore[arg-type]
    for path, entry in adds.items():
        if isinstance(path, str):
            live[path] = entry
    return problems


def _parses_as_entry(path: Path, number: int) -> bool:
    """Whether line ``number`` of the ledger at ``path`` reads as a whole entry (a JSON object
    carrying a hash), chained or not."""
    try:
        line = path.read_bytes().splitlines()[number - 1]
        entry = ledger_read_line(line)
    except (OSError, IndexError, ValueError):
        return False
    return isinstance(entry, dict) and "hash" in entry


def _entries_after(path: Path, wanted: str, *, op: str | None = None, upto: int | None = None) -> int | None:
    """How many entries (of ``op``, when given) follow the entry whose hash is ``wanted`` in the
    ledger at ``path``, or None when no such entry is there. A head kept from an earlier check is
    still in the chain of a ledger that has only grown since; verify checks the chain itself, up
    to line ``upto`` (all lines when None): a line after it (an append cut short, lines after the
    last commit) is in no chain, so a head found only there is not vouched for."""
    seen: int | None = None
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return None
    for line in lines[:upto]:
        try:
            entry = ledger_read_line(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or (op is not None and entry.get("op") != op):
            continue
        if seen is not None:
            seen += 1
        elif entry.get("hash") == wanted:
            seen = 0
    return seen


def _tail_adds(root: Path, state: ManifestState) -> set[str]:
    """The paths the readable ``add`` lines after ``state``'s last commit name."""
    found: set[str] = set()
    for line in lines_after(manifest_ledger(root).path, state.committed_bytes):
        try:
            entry = ledger_read_line(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("op") == "add" and isinstance(entry.get("path"), str):
            found.add(entry["path"])
    return found


def _after_break(line: int, state: ManifestState) -> list[str]:
    """The committed manifest lines after the first damaged one (``line``), which the chain can no
    longer vouch for, as a problem (none when the damage is past the last commit)."""
    if line >= state.committed_lines:
        return []
    after = (
        f"line {state.committed_lines} comes"
        if line + 1 == state.committed_lines
        else f"lines {line + 1} to {state.committed_lines} come"
    )
    return [
        f"manifest: {after} after the damage at line {line}, so the hash chain cannot vouch for "
        f"{'it' if line + 1 == state.committed_lines else 'them'}: replayed, and the files listed "
        "checked, but restore the manifest from a copy, or compare its head with one kept elsewhere"
    ]


def _rows_added(entry: Any, kind: str) -> Any:
    """What a commit entry says it added of ``kind`` (None where an edited entry says nothing
    readable: its own problem is named elsewhere)."""
    rows = entry.get("rows_added") if isinstance(entry, dict) else None
    return rows.get(kind) if isinstance(rows, dict) else None


def _stored_reasons(path: Path) -> Counter[str] | None:
    """The dead letters of one file by reason, those Elasticsearch refused left out; None when the
    file cannot be read so (its hash already vouched for it: a problem would have been named)."""
    try:
        table = pq.read_table(path, columns=["stage", "reason_code"])
    except (OSError, ValueError, KeyError):
        return None
    stages, codes = table.column("stage").to_pylist(), table.column("reason_code").to_pylist()
    return Counter(str(code) for stage, code in zip(stages, codes, strict=True) if stage != "index")


def reason_problems(said: Any, stored: Counter[str], already_stored: Any) -> list[str]:
    """Where a run report's dead letters by reason disagree with the dead letters its commit stored
    (``stored``, by reason). A line dead-lettered again (``dead_letters_already_stored``) is counted
    by the report but stored by an earlier commit, so the report may say more for a reason, never
    less, and the differences add up to that count."""
    if not isinstance(said, dict) or not isinstance(already_stored, int):
        return []  # named by the report's own checks
    counts = {str(k): v for k, v in said.items() if isinstance(v, int) and not isinstance(v, bool)}
    short = {r: n for r, n in stored.items() if counts.get(r, 0) < n}
    extra = sum(counts.values()) - stored.total()
    if not short and extra == already_stored:
        return []
    shown = ", ".join(f"{r} {n:,}" for r, n in sorted(stored.items())) or "none"
    return [
        f"says dead letters by reason {dict(sorted(counts.items()))!r}, but its commit stored {shown}"
        + (f" (and {already_stored:,} were stored by an earlier run)" if already_stored else "")
        + " (the report was edited)"
    ]


def _check_run_reports(
    root: Path, report: VerifyReport, state: ManifestState, stored_reasons: dict[str, Counter[str]]
) -> None:
    folder = root / layout.RUNS
    found: set[str] = set()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            name = f"{layout.RUNS}/{path.name}"
            if path.name.endswith(".json.tmp") and path.is_file():
                report.notes.append(
                    f"{name}: a run report cut short while it was written (the run was stopped); "
                    "harmless, delete it"
                )
                continue
            commit = path.name.removesuffix(".json")
            if commit == path.name or not layout.is_commit_id(commit) or not path.is_file():
                report.problems.append(f"{name}: not a run report Vigil writes (added behind its back)")
                continue
            found.add(commit)
            entry = state.commits.get(commit)
            if entry is None:
                report.problems.append(
                    f"{name}: reports commit {commit}, which the manifest does not hold (added behind "
                    "its back, or its commit was removed)"
                )
                continue
            try:
                run = json.loads(path.read_bytes())
            except (OSError, ValueError) as exc:
                report.problems.append(f"{name}: cannot be read as JSON ({exc})")
                continue
            problems = run_report_problems(run, entry)
            report.problems.extend(f"{name}: {p}" for p in problems)
            summary = run.get("summary") if isinstance(run, dict) else None
            if not problems and isinstance(summary, dict) and commit in stored_reasons:
                report.problems.extend(
                    f"{name}: {p}"
                    for p in reason_problems(
                        summary.get("dead_letter_reasons") or {},
                        stored_reasons[commit],
                        summary.get("dead_letters_already_stored", 0),
                    )
                )
            report.run_reports_checked += 1
            if isinstance(run, dict) and run.get("recovered"):
                report.notes.append(
                    f"{name}: rebuilt from the manifest (the run was stopped after its commit), so "
                    "how many events it read, found duplicate or dead-lettered for which reason is "
                    "not known"
                )
    for commit, entry in state.commits.items():
        if entry.get("action") != "ingest" or commit in found:
            continue
        if commit == state.last_commit:
            report.notes.append(
                f"no run report for the newest commit {commit} (the run was stopped after its "
                "commit); the next `vigil run` or `vigil compact` rebuilds it from the manifest"
            )
        else:
            report.problems.append(
                f"{layout.RUNS}/{commit}.json is missing: the run report of commit {commit} was "
                "deleted (the next writer rebuilds only the newest one's)"
            )


def run_report_problems(run: Any, entry: dict[str, Any]) -> list[str]:
    """Where a run report disagrees with the commit entry it is named after, or with itself."""
    if entry.get("action") != "ingest":
        return [f"commit {entry.get('commit')} is a {entry.get('action')}, which writes no run report"]
    if not isinstance(run, dict):
        return ["is not a run report (not a JSON object)"]
    rows = entry.get("rows_added") or {}
    if not isinstance(rows, dict):
        return [
            f"cannot be compared with its commit, whose rows_added is {rows!r}, not a count per kind "
            "(the manifest was edited)"
        ]
    sources = entry.get("sources") or []
    if run.get("recovered"):  # rebuilt from the entry by `writer.recover`: a copy of its fields
        claims = {
            "commit": (run.get("commit"), entry.get("commit")),
            "rows_added": (run.get("rows_added"), rows),
            "files_added": (run.get("files_added"), entry.get("files_added")),
            "sources": (run.get("sources"), sources),
            "dlp_policy": (run.get("dlp_policy"), entry.get("dlp_policy")),
        }
        if DLP_ACTIONS in entry:  # commits made before the manifest counted them have none
            claims[DLP_ACTIONS] = (run.get(DLP_ACTIONS), entry[DLP_ACTIONS])
        return [
            f"says {field} {said!r} but its commit has {held!r}"
            for field, (said, held) in claims.items()
            if said != held
        ]
    summary = run.get("summary")
    if not isinstance(summary, dict):
        return ["has no summary (not a run report Vigil writes)"]

    def count(name: str) -> int | None:
        value = summary.get(name, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    names = (
        "read", "archived", "notices", "dead_lettered", "dead_letters_already_stored", "duplicates",
        "files_written",
    )  # fmt: skip
    counts = {name: count(name) for name in names}
    if bad := [name for name, n in counts.items() if n is None]:
        return [f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a count"]
    n = {name: value or 0 for name, value in counts.items()}
    es = summary.get("es")
    es_dead = es.get("dead_lettered", 0) if isinstance(es, dict) else 0
    if not isinstance(es_dead, int) or isinstance(es_dead, bool) or es_dead < 0:
        return ["es.dead_lettered is not a count"]
    problems = []
    claims = {
        "commit": (summary.get("commit"), entry.get("commit")),
        "files written": (n["files_written"], entry.get("files_added")),
        "records stored (archived + notices)": (n["archived"] + n["notices"], rows.get(layout.RECORDS)),
        # the input's dead letters, and the documents Elasticsearch refused (stage ``index``),
        # which the run stores in the same commit
        "dead letters stored": (
            n["dead_lettered"] - n["dead_letters_already_stored"] + es_dead,
            rows.get(layout.DEAD_LETTERS),
        ),
        "DLP policy": (summary.get("dlp_policy"), entry.get("dlp_policy")),
        "manifest head": (summary.get("manifest_head"), entry.get("hash")),
    }
    problems += [
        f"says {what} {said!r} but its commit has {held!r} (the report was edited, or belongs "
        "to another archive)"
        for what, (said, held) in claims.items()
        if said != held
    ]
    problems += _dlp_count_problems(summary.get("dlp"), entry, n)
    total = n["archived"] + n["dead_lettered"] + n["duplicates"]
    if n["read"] != total:
        problems.append(
            f"says {n['read']:,} events read but archived + dead-lettered + duplicates = {total:,} "
            "(the report was edited)"
        )
    reasons = summary.get("dead_letter_reasons") or {}
    by_reason = sum(v for v in reasons.values() if isinstance(v, int)) if isinstance(reasons, dict) else 0
    if by_reason != n["dead_lettered"]:
        problems.append(
            f"its dead-letter reasons add up to {by_reason:,}, not the {n['dead_lettered']:,} "
            "dead-lettered it says (the report was edited)"
        )
    return problems


def _dlp_count_problems(said: Any, entry: dict[str, Any], n: dict[str, int]) -> list[str]:
    """The report's records by DLP action against what its commit counted in the files it added
    (and, for commits older than that count, against the report's own other counts)."""
    if said is None:
        said = {}
    valid = isinstance(said, dict) and all(
        key in ("flag", "redact", "block") and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for key, v in said.items()
    )
    if not valid:
        return [f"its DLP counts {said!r} are not counts of flag, redact and block (the report was edited)"]
    counts = {key: v for key, v in said.items() if v}
    if DLP_ACTIONS in entry:
        held = entry[DLP_ACTIONS]
        if counts != held:
            return [
                f"says DLP counts {counts!r} but its commit's files hold {held!r} (the report was "
                "edited, or belongs to another archive)"
            ]
        return []
    problems = []
    if n["notices"] > counts.get("block", 0):
        problems.append(
            f"says {n['notices']:,} blocked-message notices but only {counts.get('block', 0):,} blocked "
            "(each notice answers a blocked message: the report was edited)"
        )
    if sum(counts.values()) > n["archived"]:
        problems.append(
            f"says {sum(counts.values()):,} records had a DLP action but only {n['archived']:,} were "
            "archived (the report was edited)"
        )
    return problems


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
    torn: int | None = None  # the line number of an append cut short ending the log
    if audit.path.exists():
        try:
            # a last line without line end is what a crash mid-append leaves: the next access
            # repairs it (and logs the repair), so it is a note, and the entries before it count
            tail = audit.unended_tail()
            torn = tail[0] if tail is not None and not tail[1] else None
            found = audit.breaks(lines=None if tail is None else tail[0] - 1)
        except OSError as exc:
            report.problems.append(
                f"audit log: {layout.AUDIT} cannot be read ({exc.strerror or exc}), so its chain was "
                "not checked; run `vigil verify` as a user who may read the whole archive"
            )
            report.audit_unreadable = True
            return
        report.problems.extend(f"audit log: {p}" for _, p in found)
        report.audit_break = found[0][0] if found else None
        lines = sum(1 for _ in audit.raw_lines())
        report.audit_entries = lines - (torn is not None)
        if tail is not None and torn is None:
            report.notes.append(
                f"audit log: its last entry (line {tail[0]}) is whole but lacks its line end (a crash "
                "right after writing it); the next search, conversation view or export writes it"
            )
        elif torn is not None and _parses_as_entry(audit.path, torn):
            # a crash leaves a line cut short, which does not parse; a whole entry that does not
            # chain onto the one before it was put there (perhaps an entry cut off and re-added)
            report.problems.append(
                f"audit log: line {torn} is a whole entry without its line end that does not chain onto "
                f"line {torn - 1} (a crash leaves a line cut short, not this: it was put there, or the "
                "entries before it were rewritten); restore the log from a backup"
            )
        elif torn is not None:
            report.notes.append(
                f"audit log: line {torn} is an append cut short (no line end, not a whole entry: a "
                f"crash while writing it); the {torn - 1} entries before it are intact, and the next "
                "search, conversation view or export cuts it and logs the repair"
            )
        try:
            if torn is not None:
                report.audit_head = str((audit.entry_at(torn - 1) or {}).get("hash", "")) if torn > 1 else ""
            else:
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
    later = (
        _entries_after(audit.path, expect_audit_head, upto=None if torn is None else torn - 1)
        if expect_audit_head and expect_audit_head != (report.audit_head or GENESIS)
        else None
    )
    if expect_audit_head and later is not None:
        report.notes.append(
            f"audit log: the expected audit head {expect_audit_head[:16]}… is an entry of the log, and "
            f"{later} entr{'y' if later == 1 else 'ies'} came after it: the log grew since"
        )
    elif expect_audit_head and expect_audit_head != (report.audit_head or GENESIS):
        shown = (
            report.audit_head[:16] + "…"
            if report.audit_head
            else "unknown"
            if report.audit_break
            else "(empty)"
        )
        report.problems.append(
            f"audit head is {shown} but {expect_audit_head[:16]}… was expected: "
            "no entry of the log has that hash: entries were removed from its end or rewritten, or "
            "this is another archive"
        )
