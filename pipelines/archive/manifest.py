"""The archive manifest: which data files are committed, derived from the ledger.

Entry kinds (all chained, see :mod:`pipelines.archive.ledger`):

* ``{"op": "add", "commit", "kind", "path", "rows", "bytes", "sha256"}`` a data file joins;
* ``{"op": "remove", "commit", "path", "sha256", "reason"}`` a file leaves (compaction);
* ``{"op": "commit", "commit", "time", "action", "sources", ...}`` closes a commit.

A commit is written as one append whose last line is its ``commit`` entry, so the entries of a
commit count only when that closing entry is present. Anything after the last ``commit`` entry is
the leftover of an interrupted append; recovery cuts it off (it was never committed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.archive import layout
from pipelines.archive.ledger import Ledger
from pipelines.errors import ArchiveError


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the archive root, POSIX
    kind: str  # records | deadletters
    rows: int
    bytes: int
    sha256: str
    commit: str

    @property
    def partition(self) -> dict[str, str]:
        return layout.partition_of(self.path)


@dataclass
class ManifestState:
    live: dict[str, DataFile] = field(default_factory=dict)
    removed: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> remove entry
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)  # commit id -> commit entry
    committed_lines: int = 0  # lines up to and including the last commit entry
    total_lines: int = 0
    head: str = ""
    last_commit: str | None = None

    def audit_anchor(self) -> dict[str, Any] | None:
        """The newest audit-log position a commit recorded (``{"seq", "head"}``), if any."""
        for entry in reversed(list(self.commits.values())):
            anchor = entry.get("audit")
            if isinstance(anchor, dict) and anchor.get("seq"):
                return anchor
        return None

    def files(self, kind: str) -> list[DataFile]:
        return sorted((f for f in self.live.values() if f.kind == kind), key=lambda f: f.path)

    def consumed_sources(self, key: str = "sources") -> dict[str, dict[str, Any]]:
        """Input files already archived, by name, with the size and mtime they had then
        (``key="unfinished_sources"``: files a commit could not read to their end)."""
        seen: dict[str, dict[str, Any]] = {}
        for entry in self.commits.values():
            for source in entry.get(key, []):
                seen[source["name"]] = source
        return seen


def manifest_ledger(root: Path) -> Ledger:
    return Ledger(Path(root) / layout.MANIFEST)


def _entries_tolerating_tail(ledger: Ledger) -> tuple[list[dict[str, Any]], int]:
    """Entries, plus the number of raw lines. A damaged *last* line is the leftover of an
    interrupted append and is skipped; damage anywhere else is corruption and raises."""
    lines = [line for _, line in ledger.raw_lines()]
    entries = []
    for i, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if i == len(lines) - 1:
                break
            raise ArchiveError(
                f"{ledger.path} line {i + 1} is damaged; run `vigil verify` to see every problem"
            ) from exc
        if not isinstance(entry, dict):
            raise ArchiveError(
                f"{ledger.path} line {i + 1} is not a JSON object (the ledger was edited); "
                "run `vigil verify` to see every problem"
            )
        entries.append(entry)
    return entries, len(lines)


def load_state(root: Path) -> ManifestState:
    """Replay the manifest. Entries after the last commit entry are ignored (never committed)."""
    ledger = manifest_ledger(root)
    entries, total = _entries_tolerating_tail(ledger)
    last_commit = max((i for i, e in enumerate(entries) if e.get("op") == "commit"), default=-1)
    state = ManifestState(committed_lines=last_commit + 1, total_lines=total)
    try:
        _replay(state, entries[: last_commit + 1])
        state.head = entries[last_commit]["hash"] if last_commit >= 0 else ""
    except (KeyError, TypeError) as exc:
        raise ArchiveError(
            f"{ledger.path} has an entry without the field {exc} (the ledger was edited); "
            "run `vigil verify` to see every problem"
        ) from None
    return state


def _replay(state: ManifestState, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        op = entry.get("op")
        if op == "add":
            state.live[entry["path"]] = DataFile(
                path=entry["path"],
                kind=entry["kind"],
                rows=entry["rows"],
                bytes=entry["bytes"],
                sha256=entry["sha256"],
                commit=entry["commit"],
            )
            state.removed.pop(entry["path"], None)
        elif op == "remove":
            state.live.pop(entry["path"], None)
            state.removed[entry["path"]] = entry
        elif op == "commit":
            state.commits[entry["commit"]] = entry
            state.last_commit = entry["commit"]
