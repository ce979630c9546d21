"""``record_id -> content_sha256`` of everything archived, kept up to date between commits.

De-duplication checks every new record against it. Building it reads two columns of every record
file (about 1.2 s per million records here), which a ``vigil run --follow`` session would otherwise
pay at every poll. :class:`RecordIndex` reads only the files committed since it last looked:

* a file an ingest commit added is read;
* a compaction's merged file holds exactly the rows of the files it replaced, so it is read only if
  one of those was never indexed (added and compacted between two looks); the replaced files'
  rows stay;
* any other way a file leaves the archive (nothing does today; retention will) means rows may be
  gone, so the index is rebuilt from every live file.

The result equals :func:`pipelines.archive.reader.record_index` after every commit; the tests
check that step by step.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pipelines.archive import layout, reader
from pipelines.archive.manifest import DataFile, ManifestState

COMPACT_ACTION = "compact"


class RecordIndex:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.ids: dict[str, str] = {}
        self.files: set[str] = set()  # the record files whose rows are in ``ids``
        self.head: str | None = None
        self.files_read = 0  # files read over this object's life, for tests and progress
        self._lock = threading.Lock()

    def update(self, state: ManifestState) -> dict[str, str]:
        """The index as of ``state`` (the manifest's committed state)."""
        with self._lock:
            if state.head != self.head:
                live = {f.path: f for f in state.files(layout.RECORDS)}
                to_read = self._to_read(state, live)
                if to_read is None:
                    self.ids = {}
                    to_read = sorted(live)
                for path in to_read:
                    self.ids.update(reader.record_hashes(self.root / path))
                    self.files_read += 1
                self.files = set(live)
                self.head = state.head
            return self.ids

    def _to_read(self, state: ManifestState, live: dict[str, DataFile]) -> list[str] | None:
        """The new files whose rows are not indexed yet, or None when rows may have left."""
        removed_by: dict[str, set[str]] = {}
        for path, removal in state.removed.items():
            removed_by.setdefault(removal["commit"], set()).add(path)

        def compacted(commit: str) -> bool:
            return state.commits.get(commit, {}).get("action") == COMPACT_ACTION

        for path in self.files - live.keys():
            gone = state.removed.get(path)
            if gone is None or not compacted(gone["commit"]):
                return None
        return sorted(
            path
            for path in live.keys() - self.files
            if not (compacted(c := live[path].commit) and set() < removed_by.get(c, set()) <= self.files)
        )
