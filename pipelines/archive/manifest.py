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

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.archive import layout
from pipelines.archive.ledger import GENESIS, Ledger, chain_break, read_line
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


_DATA_FILE_FIELDS = [f.name for f in dataclasses.fields(DataFile)]


@dataclass
class ManifestState:
    live: dict[str, DataFile] = field(default_factory=dict)
    removed: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> remove entry
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)  # commit id -> commit entry
    committed_lines: int = 0  # lines up to and including the last commit entry
    total_lines: int = 0
    head: str = ""
    last_commit: str | None = None
    committed_bytes: int = 0  # where the last commit entry ends in the manifest file
    last_line_bytes: int = 0  # the length of that entry's line

    def copy(self) -> ManifestState:
        return dataclasses.replace(
            self, live=dict(self.live), removed=dict(self.removed), commits=dict(self.commits)
        )

    def audit_anchor(self) -> dict[str, Any] | None:
        """The newest audit-log position a commit recorded (``{"seq", "head"}``), if any."""
        for entry in reversed(list(self.commits.values())):
            anchor = entry.get("audit")
            if isinstance(anchor, dict) and isinstance(anchor.get("seq"), int) and anchor["seq"] > 0:
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


def parse_entries(path: Path, lines: list[bytes], first_line: int = 1) -> list[dict[str, Any]]:
    """The entries of ``lines`` (numbered from ``first_line`` in ``path``, for messages). A damaged
    *last* line is the leftover of an interrupted append and is skipped; damage anywhere else is
    corruption and raises."""
    return [entry for entry in _parse(path, lines, first_line, lenient=False) if entry is not None]


def _parse(path: Path, lines: list[bytes], first_line: int, *, lenient: bool) -> list[dict[str, Any] | None]:
    """:func:`parse_entries`; ``lenient`` reads a damaged line before the last as None instead of
    raising (the line keeps its place, so the entries after it keep their line numbers)."""
    entries: list[dict[str, Any] | None] = []
    for i, line in enumerate(lines):
        try:
            entry = read_line(line)  # what the chain check reads as an entry, and nothing else
        except ValueError as exc:
            if i == len(lines) - 1:
                break
            if lenient:
                entries.append(None)
                continue
            raise ArchiveError(
                f"{path} line {first_line + i} is damaged; run `vigil verify` to see every problem"
            ) from exc
        if not isinstance(entry, dict):
            if lenient:
                entries.append(None)
                continue
            raise ArchiveError(
                f"{path} line {first_line + i} is not a JSON object (the ledger was edited); "
                "run `vigil verify` to see every problem"
            )
        entries.append(entry)
    return entries


def _replay_committed(
    path: Path,
    state: ManifestState,
    entries: list[dict[str, Any] | None],
    first_line: int,
    *,
    chain_lines: list[bytes] | None,
    damaged: list[tuple[int, str]] | None = None,
) -> int:
    """Apply ``entries`` (read from line ``first_line`` of ``path`` on) up to their last commit
    entry (what follows it was never committed) to ``state``; returns how many lines that is. With
    ``chain_lines`` (the lines the entries were read from), each entry must carry on the hash chain
    from ``state``'s head: a line removed, edited or moved is refused rather than read as if the
    manifest had always said so. An entry with missing or invalid fields is refused too; with
    ``damaged`` (verify's lenient replay, which checks the chain itself) it is named there, with its
    line number, and left out, and so is a line that is not an entry (None)."""
    last_commit = max(
        (i for i, e in enumerate(entries) if e is not None and e.get("op") == "commit"), default=-1
    )
    prev = state.head or GENESIS
    valid: list[dict[str, Any]] = []
    for i, entry in enumerate(entries[: last_commit + 1]):
        if entry is None:  # only when lenient: Ledger.problems names such a line
            continue
        if chain_lines and (
            broken := chain_break(entry, chain_lines[i], prev, state.committed_lines + i + 1)
        ):
            raise ArchiveError(
                f"{path} line {first_line + i}: {broken} (the manifest was edited); nothing was read. "
                "Run `vigil verify` to see every problem, and restore the manifest from a copy"
            )
        prev = str(entry.get("hash"))
        problem = field_problem(entry)
        if problem is None:
            valid.append(entry)
        elif damaged is not None:
            damaged.append(
                (
                    first_line + i,
                    f"{path.name} line {first_line + i} {problem} (the ledger was edited), "
                    "so the replay left it out",
                )
            )
        else:
            raise ArchiveError(
                f"{path} line {first_line + i} {problem} (the ledger was edited); "
                "run `vigil verify` to see every problem"
            )
    _replay(state, valid)
    closing = [e for e in valid if e.get("op") == "commit"]
    if closing:
        state.head = closing[-1]["hash"]
    return last_commit + 1


def field_problem(entry: dict[str, Any]) -> str | None:
    """What is wrong with ``entry``'s fields (``has no field 'path'``), or None."""
    try:
        _check_fields(entry)
    except KeyError as exc:
        return f"has no field {exc}"
    except TypeError as exc:
        return f"has a {exc}"
    except ValueError as exc:
        return f"names {exc}"
    return None


#: the last state each manifest was read to, by path: long-running writers (``--follow``) then
#: replay only what was appended since (a few files, not the least recently read, are kept)
_last_read: dict[str, ManifestState] = {}
_KEEP = 4


def load_state(
    root: Path,
    *,
    upto_lines: int | None = None,
    fresh: bool = False,
    damaged: list[tuple[int, str]] | None = None,
) -> ManifestState:
    """The committed state of the manifest; entries after the last commit entry are ignored (never
    committed). Treat the result as read-only.

    A process remembers the state it last read: if the manifest still holds that state's last
    commit entry at the same place, only the lines after it are replayed. ``fresh`` (what verify
    uses) and ``upto_lines`` (the state after that many lines) replay from the first line, without
    checking the chain. With ``damaged`` as well (verify's reading, which names every break in the
    chain itself and goes on to the files), a line that is not an entry or has missing or invalid
    fields is left out rather than refused: each one with fields wrong is named in ``damaged``
    (``(line number, sentence)``), one that is not a JSON object is left to ``Ledger.problems``."""
    ledger = manifest_ledger(root)
    if fresh or upto_lines is not None:
        lines = [line for _, line in ledger.raw_lines()]
        return apply_lines(
            ledger.path,
            ManifestState(),
            lines if upto_lines is None else lines[:upto_lines],
            chained=False,
            damaged=damaged,
        )
    key = str(ledger.path.absolute())
    start = _last_read.pop(key, None)
    if start is None or not ends_at(ledger.path, start):
        start = ManifestState()
    lines = lines_after(ledger.path, start.committed_bytes)
    unchanged = not lines and start.total_lines == start.committed_lines
    state = start if unchanged else apply_lines(ledger.path, start.copy(), lines)
    _last_read[key] = state
    while len(_last_read) > _KEEP:
        del _last_read[next(iter(_last_read))]
    return state


def apply_lines(
    path: Path,
    state: ManifestState,
    lines: list[bytes],
    *,
    chained: bool = True,
    damaged: list[tuple[int, str]] | None = None,
) -> ManifestState:
    """Replay the committed part of ``lines`` (the manifest lines after ``state``) onto ``state``,
    checking the hash chain unless ``chained`` is false (verify, which names every break itself);
    ``damaged``: see :func:`load_state`."""
    covered = state.committed_lines
    if damaged is None:
        entries: list[dict[str, Any] | None] = list(parse_entries(path, lines, first_line=covered + 1))
    else:
        entries = _parse(path, lines, covered + 1, lenient=True)
    applied = _replay_committed(
        path,
        state,
        entries,
        covered + 1,
        chain_lines=lines if chained and damaged is None else None,
        damaged=damaged,
    )
    state.total_lines = covered + len(lines)
    if applied:
        state.committed_lines = covered + applied
        state.committed_bytes += sum(len(line) for line in lines[:applied])
        state.last_line_bytes = len(lines[applied - 1])
    return state


def ends_at(path: Path, state: ManifestState) -> bool:
    """Whether the manifest still has ``state``'s last commit entry where ``state`` says it ends
    (same bytes position, sequence number and hash). Always true for the empty state."""
    return state.committed_lines == 0 or commit_entry_at(path, state) is not None


def commit_entry_at(path: Path, state: ManifestState) -> dict[str, Any] | None:
    """``state``'s last commit entry, read where ``state`` says it ends, or None when the manifest
    has no such entry there (another position, sequence number or hash) or ``state`` is empty."""
    offset, length = state.committed_bytes, state.last_line_bytes
    try:
        with path.open("rb") as f:
            if not 0 < length <= offset or f.seek(0, os.SEEK_END) < offset:
                return None
            f.seek(offset - length)
            line = f.read(length)
        entry = read_line(line)
    except (OSError, ValueError):
        return None
    fits = (
        line.endswith(b"\n")
        and isinstance(entry, dict)
        and entry.get("op") == "commit"
        and entry.get("hash") == state.head
        and entry.get("seq") == state.committed_lines
    )
    return entry if fits else None


#: the commit entry's field holding :func:`live_digest` of the archive as of that commit
LIVE_DIGEST = "live_sha256"


def live_digest(live: Mapping[str, DataFile], audit_anchor: Mapping[str, Any] | None) -> str:
    """SHA-256 of the committed files (every field of each, by path) and the audit anchor: what a
    commit records of the state it leaves, so a reader can tell a cache of that state (the manifest
    index) from one edited to hide, add or change a file."""
    files = [[getattr(f, name) for name in _DATA_FILE_FIELDS] for _, f in sorted(live.items())]
    body = json.dumps(
        {"live": files, "audit": audit_anchor}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(body.encode()).hexdigest()


def live_digest_after(state: ManifestState, entries: list[dict[str, Any]]) -> str:
    """:func:`live_digest` of the archive once ``entries`` (a commit about to be appended) are in,
    ``state`` unchanged. Only the live files are copied: a long ``--follow`` manifest's history of
    commits and removals is not, at every commit."""
    after = dataclasses.replace(state, live=dict(state.live), removed={}, commits={})
    _replay(after, entries)
    return live_digest(after.live, after.audit_anchor() or state.audit_anchor())


def tail_problem(root: Path, state: ManifestState) -> str | None:
    """Why the manifest lines after ``state``'s last commit are *not* the leftover of an
    interrupted append, or ``None`` when they are. One append writes a commit's lines, and its
    files are moved into place only after it: so a leftover is complete ``add``/``remove``
    entries, perhaps ending in one line cut short, naming files that are not in place yet. A
    complete line that does not parse, a closing ``commit`` entry, or a file already in place
    means a committed commit was damaged: cutting the lines would erase it."""
    path = manifest_ledger(root).path
    lines = lines_after(path, state.committed_bytes)
    for i, line in enumerate(lines):
        number = state.committed_lines + i + 1
        if i == len(lines) - 1 and not line.endswith(b"\n"):
            return None  # cut short by the crash
        try:
            entry = read_line(line)
        except ValueError:
            return f"line {number} is complete but not valid JSON (damaged or edited, not cut by a crash)"
        if not isinstance(entry, dict) or entry.get("op") not in ("add", "remove"):
            return f"line {number} is not an entry an interrupted run leaves behind"
        rel = entry.get("path")
        if entry["op"] == "add" and isinstance(rel, str) and (root / rel).is_file():
            return (
                f"line {number} adds {rel}, which is already in place: its commit was published, "
                "so its closing entry was damaged or removed"
            )
    return None


def lines_after(path: Path, offset: int) -> list[bytes]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(offset)
        return list(f)


#: the fields each manifest entry must have, with their JSON types (bool is not an int here)
_FIELDS: dict[str, dict[str, type]] = {
    "add": {"path": str, "kind": str, "rows": int, "bytes": int, "sha256": str, "commit": str},
    "remove": {"path": str},
    "commit": {"commit": str, "hash": str},
}


def _check_fields(entry: dict[str, Any]) -> None:
    for name, kind in _FIELDS.get(entry.get("op"), {}).items():  # type: ignore[arg-type]
        if name not in entry:
            raise KeyError(name)
        value = entry[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise TypeError(
                f"field {name!r} that is {json.dumps(value)}, not a {'number' if kind is int else 'string'}"
            )
    # followed as given, these would read, move or delete files outside the archive
    if entry.get("op") in ("add", "remove") and not layout.is_data_path(entry["path"]):
        path = json.dumps(entry["path"])
        raise ValueError(f"the path {path}, which is not a file in records/ or deadletters/")
    commit = entry.get("commit")
    if (
        entry.get("op") in _FIELDS
        and commit is not None
        and not (isinstance(commit, str) and layout.is_commit_id(commit))
    ):
        raise ValueError(f"the commit {json.dumps(commit)}, which is not a commit id")


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
