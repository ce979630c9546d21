"""What readers need from the manifest, without replaying all of it.

Searches and conversation views need the committed files and the audit log's anchor. Replaying the
manifest for them costs time linear in its length, and a long ``--follow`` adds a few entries per
commit (156,000 entries, 20,000 micro-batches, take about 1.9 s). ``_ledger/manifest.index.json``
holds that view as of one manifest line (the last entry of a commit): the live files, the newest
audit anchor, and where that line is (byte offset, length, hash). A reader checks that the
manifest still has that entry at that place, and that the entry's ``live_sha256`` (the digest of
the live files and audit anchor the commit left, see :func:`pipelines.archive.manifest.live_digest`)
is the digest of what the index lists, then replays only the lines after it. So an index edited to
hide a file, list one the manifest does not have or lower the audit anchor is not used: the index
itself holds no secret, but the digest is in the hash-chained manifest.

The index is a cache, never the record: each commit rewrites it, a reader that replayed a long
tail refreshes it, anything that does not fit (missing, damaged, older format, manifest rewritten
or cut, contents not what the commit recorded, or a commit written before commits recorded the
digest) makes the reader replay the whole manifest instead, and ``vigil verify`` checks it against
a full replay of the lines it covers (:func:`problems`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from pathlib import Path
from typing import Any

from pipelines.archive import layout
from pipelines.archive.manifest import (
    LIVE_DIGEST,
    DataFile,
    ManifestState,
    apply_lines,
    commit_entry_at,
    lines_after,
    live_digest,
    load_state,
    manifest_ledger,
    tail_problem,
)
from pipelines.errors import ArchiveError

FORMAT = 1
#: a reader that replayed at least this many committed lines past the index rewrites it
REFRESH_AFTER_LINES = 200

_FILE_FIELDS = [f.name for f in dataclasses.fields(DataFile)]


@dataclasses.dataclass
class LiveView:
    """The committed files and the audit anchor. ``state`` has the live files and the manifest
    position; commits and removals from before the index are not in it."""

    state: ManifestState
    audit_anchor: dict[str, Any] | None
    replayed_lines: int  # manifest lines this read replayed (all of them without a fitting index)

    def files(self, kind: str) -> list[DataFile]:
        return self.state.files(kind)


def index_path(root: Path) -> Path:
    return Path(root) / layout.MANIFEST_INDEX


def live_view(root: Path, *, write_after: int | None = None) -> LiveView:
    """The committed files, from the index plus the manifest lines after it. The index is rewritten
    when that meant replaying at least ``write_after`` lines (default :data:`REFRESH_AFTER_LINES`)."""
    root = Path(root)
    path = manifest_ledger(root).path
    for attempt in (1, 2):
        state, anchor = _fitting_index(root, _read(index_path(root))) or (ManifestState(), None)
        covered = state.committed_lines
        state = apply_lines(path, state, lines_after(path, state.committed_bytes))
        problem = tail_problem(root, state) if state.total_lines > state.committed_lines else None
        # a writer may have closed its commit and moved the files into place while this read
        # the lines before it: read once more before calling the manifest damaged
        if problem is None or attempt == 2:
            break
    if problem is not None:
        # the last commit's closing entry is damaged: reading on would show the archive without it
        raise ArchiveError(
            f"{path}: after the last commit, {problem}; nothing was read. Run `vigil verify --archive "
            f"{root}` and restore the manifest from a copy"
        )
    replayed = state.committed_lines - covered
    view = LiveView(state, state.audit_anchor() or anchor, replayed)
    trusted = LIVE_DIGEST in state.commits.get(state.last_commit or "", {})  # else never used: not written
    if trusted and replayed and replayed >= (REFRESH_AFTER_LINES if write_after is None else write_after):
        write(root, view)
    return view


def refresh(root: Path) -> LiveView:
    """Bring the index up to the manifest's last commit (the writer calls this after each commit)."""
    return live_view(root, write_after=1)


def write(root: Path, view: LiveView) -> None:
    """Replace the index atomically. A cache: failing to write it (read-only archive, full disk)
    only means the next reader replays more."""
    target = index_path(root)
    document = {
        "format": FORMAT,
        "lines": view.state.committed_lines,
        "offset": view.state.committed_bytes,
        "last_line_bytes": view.state.last_line_bytes,
        "hash": view.state.head,
        "audit_anchor": view.audit_anchor,
        "live": [[getattr(f, name) for name in _FILE_FIELDS] for _, f in sorted(view.state.live.items())],
    }
    temp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        temp.write_text(json.dumps(document, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
        os.replace(temp, target)
    except OSError:
        temp.unlink(missing_ok=True)


def problems(root: Path, replayed: ManifestState | None = None) -> list[str]:
    """What is wrong with the index, checked against a full replay of the manifest lines it covers
    (``replayed``, verify's own replay, is used when it ends where the index does). An index that
    no longer matches the manifest is ignored by readers, so only one that matches but lists other
    files (or another audit anchor) is a problem."""
    document = _read(index_path(root))
    if document is None:
        return []
    outside = [str(row[0]) for row in document["live"] if not _names_a_data_file(row)]
    if outside:  # readers ignore such an index, but nothing Vigil writes looks like it
        return [
            f"{layout.MANIFEST_INDEX} lists {rel}, which is not a file in records/ or deadletters/ "
            f"{_DELETE_IT}"
            for rel in outside
        ]
    if _fitting_index(root, document, check_digest=False) is None:
        return []
    if _fitting_index(root, document) is not None:
        # what its commit entry recorded (``live_sha256``): where a replay differs, the manifest
        # lines before it were damaged, which verify names by line (and the index is evidence)
        return []
    if replayed is not None and replayed.committed_lines == document["lines"]:
        expected = replayed
    else:  # leaving out damaged lines, which verify names itself
        expected = load_state(root, upto_lines=document["lines"], damaged=[])
    found: list[str] = []
    listed = {row[0] for row in document["live"]}
    for rel in sorted(listed - set(expected.live)):
        found.append(f"{layout.MANIFEST_INDEX} lists {rel}, which the manifest does not have live")
    for rel in sorted(set(expected.live) - listed):
        found.append(f"{layout.MANIFEST_INDEX} leaves out {rel}, which the manifest has live")
    for row in document["live"]:
        f = expected.live.get(row[0])
        if f is not None and list(row) != [getattr(f, name) for name in _FILE_FIELDS]:
            found.append(f"{layout.MANIFEST_INDEX} describes {row[0]} differently from the manifest")
    if document.get("audit_anchor") != expected.audit_anchor():
        found.append(f"{layout.MANIFEST_INDEX} has another audit anchor than the manifest")
    return [
        f"{p} (delete it: readers then replay the manifest, and the next commit writes it again)"
        for p in found
    ]


def vouched_live(root: Path, replayed: ManifestState) -> dict[str, DataFile]:
    """The live files the index lists, when it was written for ``replayed``'s last commit (same
    line and hash; its byte offset is not required to fit, a damaged line before may have changed
    length) and lists exactly what that commit entry recorded of them (``live_sha256``); else
    nothing. Verify uses it for the files a damaged manifest line held."""
    document = _read(index_path(root))
    entry = replayed.commits.get(replayed.last_commit or "")
    if document is None or entry is None or not all(_names_a_data_file(row) for row in document["live"]):
        return {}
    if (document["lines"], document["hash"]) != (replayed.committed_lines, replayed.head):
        return {}
    try:
        live = {row[0]: DataFile(**dict(zip(_FILE_FIELDS, row, strict=True))) for row in document["live"]}
    except TypeError:
        return {}
    if entry.get(LIVE_DIGEST) != live_digest(live, document.get("audit_anchor")):
        return {}
    return live


_DELETE_IT = "(delete it: readers then replay the manifest, and the next commit writes it again)"


def _read(path: Path) -> dict[str, Any] | None:
    """The index document, or None when it is missing, damaged or of another format."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return None
    ints = ("lines", "offset", "last_line_bytes")
    if not all(isinstance(document.get(k), int) and document[k] > 0 for k in ints):
        return None
    if not isinstance(document.get("hash"), str) or not isinstance(document.get("live"), list):
        return None
    if not all(isinstance(row, list) and len(row) == len(_FILE_FIELDS) for row in document["live"]):
        return None
    anchor = document.get("audit_anchor")
    if anchor is not None and not isinstance(anchor, dict):
        return None
    return document


def _fitting_index(
    root: Path, document: dict[str, Any] | None, *, check_digest: bool = True
) -> tuple[ManifestState, dict[str, Any] | None] | None:
    """The index ``document`` as a starting state, if it still fits the manifest: the commit entry
    it names is where it says (see :func:`pipelines.archive.manifest.commit_entry_at`) and, with
    ``check_digest``, recorded the digest of the files and audit anchor the index lists (verify
    leaves that out, to name what an edited index changed)."""
    if document is None:
        return None
    try:
        live = {row[0]: DataFile(**dict(zip(_FILE_FIELDS, row, strict=True))) for row in document["live"]}
    except TypeError:
        return None
    if not all(_names_a_data_file(row) for row in document["live"]):
        return None  # readers would open what it names outside the archive; the manifest says better
    state = ManifestState(
        live=live,
        committed_lines=document["lines"],
        total_lines=document["lines"],
        head=document["hash"],
        committed_bytes=document["offset"],
        last_line_bytes=document["last_line_bytes"],
    )
    entry = commit_entry_at(manifest_ledger(root).path, state)
    if entry is None:
        return None
    anchor = document.get("audit_anchor")
    if check_digest and entry.get(LIVE_DIGEST) != live_digest(state.live, anchor):
        return None  # edited, or a commit from before commits recorded the digest: replay
    return state, anchor


def _names_a_data_file(row: list[Any]) -> bool:
    """Whether an index row's path and commit stay inside the archive (see ``layout``)."""
    path, commit = row[_FILE_FIELDS.index("path")], row[_FILE_FIELDS.index("commit")]
    return (
        isinstance(path, str)
        and isinstance(commit, str)
        and layout.is_data_path(path)
        and layout.is_commit_id(commit)
    )
