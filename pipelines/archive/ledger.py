"""An append-only, hash-chained JSON-lines log.

The archive manifest and the audit log are both ledgers. Each entry carries ``seq``, the ``prev``
hash (the previous entry's ``hash``; 64 zeros for the first) and its own ``hash``: the SHA-256 of the
entry's canonical JSON without the ``hash`` key. Changing, removing or reordering any entry breaks
the chain from that point on, which :meth:`Ledger.problems` reports.

Truncating the tail cannot be seen from inside the file; that is what the head hash is for: print it
(``vigil verify`` does), keep it somewhere else, and pass it back with ``--expect-head``.

Appends are a single ``write`` of all new lines followed by ``fsync``: a batch of entries lands
whole or, after a crash mid-write, leaves a torn last line (no line end) that
:meth:`Ledger.repair_tail` removes. A ledger opened with ``repair_torn_tail`` (the audit log) does
that itself before its next append, under its lock, and records the repair as an entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pipelines.errors import ArchiveError

GENESIS = "0" * 64


def canonical(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def written_hash_matches(line: bytes, expected: str) -> bool:
    """Whether ``line``, with its ``hash`` member taken out, has the SHA-256 ``expected``: for a line
    as Vigil writes it (the canonical JSON of the entry) that is :func:`entry_hash`, without
    serialising the entry again (several times faster); a line written any other way, or whose
    ``hash`` is not ``expected``, does not match."""
    member = b'"hash":' + json.dumps(expected).encode()
    body = line.rstrip(b"\n")
    at = body.find(b"," + member)
    if at >= 0:
        body = body[:at] + body[at + len(member) + 1 :]
    elif body.startswith(b"{" + member + b","):
        body = b"{" + body[len(member) + 2 :]
    else:
        return False
    return hashlib.sha256(body).hexdigest() == expected


def chain_break(entry: dict[str, Any], line: bytes, prev: str, seq: int) -> str | None:
    """What breaks the chain at ``entry`` (read from ``line``, expected to be number ``seq``, after
    ``prev``), if anything: what :meth:`Ledger.problems` checks, for a reader that stops at the
    first break rather than account for every line."""
    if entry.get("seq") != seq:
        return f"sequence number {json.dumps(entry.get('seq'))} where {seq} was expected"
    if entry.get("prev") != prev:
        return "chain broken, 'prev' does not match the previous entry's hash"
    if not (isinstance(entry.get("hash"), str) and written_hash_matches(line, entry["hash"])):
        return "entry content does not match its hash, or the line is not written as Vigil writes it"
    return None


def read_line(line: bytes) -> Any:
    """The JSON value on ``line``. Raises ``ValueError`` for anything Vigil cannot read back and
    hash again: not JSON or not UTF-8 (``JSONDecodeError``, ``UnicodeDecodeError``), an integer
    longer than Python reads, an escaped lone surrogate (``"\\ud800"``) that cannot be encoded, or
    arrays or objects nested deeper than Python reads."""
    try:
        value = json.loads(line)
        canonical(value).encode()
    except RecursionError:
        raise ValueError("nested deeper than Vigil reads") from None
    return value


def _unreadable(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return "not valid JSON"
    return f"JSON Vigil cannot read back ({str(exc).split(';')[0]})"


class Ledger:
    def __init__(self, path: Path, *, repair_torn_tail: bool = False):
        self.path = Path(path)
        self.repair_torn_tail = repair_torn_tail

    # reading -----------------------------------------------------------------------------------

    def raw_lines(self) -> Iterator[tuple[int, bytes]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            yield from enumerate(f, start=1)

    def entries(self) -> list[dict[str, Any]]:
        """All entries, trusting the file. Use :meth:`problems` to check it first."""
        out = []
        for number, line in self.raw_lines():
            if not line.strip():
                continue
            try:
                out.append(read_line(line))
            except ValueError as exc:
                raise ValueError(f"{self.path}:{number}: {_unreadable(exc)}") from exc
        return out

    def head(self) -> str:
        last = self.last_entry()
        return last["hash"] if last else GENESIS

    def problems(self, lines: int | None = None) -> list[str]:
        """Every break in the chain, as sentences naming the line; only in the first ``lines``
        lines when given (what follows is judged by the caller, e.g. an interrupted append)."""
        return [problem for _, problem in self.breaks(lines)]

    def breaks(self, lines: int | None = None, *, unended_ok: bool = False) -> list[tuple[int, str]]:
        """:meth:`problems`, each with the number of the line it names. ``unended_ok``: a last line
        that is a JSON object but lacks its line end is judged as an entry (its hash and its link),
        not named as cut: what a crash right after writing a whole entry leaves."""
        found: list[tuple[int, str]] = []
        prev = GENESIS
        expected_seq: int | None = 1
        for number, line in self.raw_lines():
            if lines is not None and number > lines:
                break
            where = f"{self.path.name} line {number}"
            cut = not line.endswith(b"\n")
            try:
                entry = read_line(line)
            except ValueError as exc:
                entry, what = None, f"{_unreadable(exc)}; the ledger was edited or damaged"
            else:
                what = "not a JSON object"
            if cut and not (unended_ok and isinstance(entry, dict)):
                found.append((number, f"{where}: incomplete last line (an interrupted write, or a cut file)"))
            elif cut:
                cut = False  # judged below as any entry
            if not isinstance(entry, dict):
                if not cut:  # a line cut short is named once, as cut
                    found.append((number, f"{where}: {what}"))
                # named once: the next entry's number and link are not held against it
                prev, expected_seq = "?", None
                continue
            seq = entry.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                found.append((number, f"{where}: sequence number {json.dumps(seq)} is not a whole number"))
                seq = None
            elif expected_seq is not None and seq != expected_seq:
                found.append((number, f"{where}: sequence number {seq} where {expected_seq} was expected"))
            if prev != "?" and entry.get("prev") != prev:
                found.append(
                    (number, f"{where}: chain broken, 'prev' does not match the previous entry's hash")
                )
            if entry.get("hash") != entry_hash(entry):
                found.append((number, f"{where}: entry content does not match its hash; it was altered"))
            elif line.rstrip(b"\n") != canonical(entry).encode():
                # same meaning to Python, but a key named twice reads differently elsewhere
                found.append(
                    (
                        number,
                        f"{where}: not written the way Vigil writes entries (a key repeated, keys "
                        "reordered or spacing changed); its bytes were edited although its hash still "
                        "matches what Python reads",
                    )
                )
            prev = entry.get("hash", "?")
            if seq:
                expected_seq = seq + 1
            elif expected_seq is not None:
                expected_seq += 1
        return found

    def unended_tail(self) -> tuple[int, bool] | None:
        """The last line, if it has no line end: its line number, and whether it is a whole entry
        chained onto the one before it (kept by the next append, which writes the line end) or an
        append cut short (cut by the next append of a ledger that repairs its own tail)."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            if end == 0:
                return None
            f.seek(end - 1)
            if f.read(1) == b"\n":
                return None
            line = _line_before(f, end)
            whole = self._whole_entry(line, before=end - len(line))
        number = sum(1 for _ in self.raw_lines())
        return number, whole

    # writing -----------------------------------------------------------------------------------

    def entry_at(self, seq: int) -> dict[str, Any] | None:
        """The entry with sequence number ``seq`` (the ``seq``-th line), or None if there is none."""
        for number, line in self.raw_lines():
            if number == seq:
                try:
                    entry = read_line(line)
                except ValueError:
                    return {}
                return entry if isinstance(entry, dict) else {}
        return None

    def append(self, new: list[dict[str, Any]], *, min_last_seq: int = 0) -> list[dict[str, Any]]:
        """Chain ``new`` onto the ledger in one write; returns the entries as written.

        Holds an exclusive lock on the ledger file from reading the head to the end of the write,
        so concurrent appenders (two officers searching at once) cannot fork the chain.
        ``min_last_seq``: refuse to append when the ledger ends before that entry (it was cut or
        deleted; starting a new chain would hide that)."""
        if not new:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            # checked before a torn last line is cut: a refused append leaves the file as it was
            # (the damaged line is evidence, and the refusal says nothing was written)
            if min_last_seq and self._last_seq_kept() < min_last_seq:
                raise ArchiveError(
                    f"{self.path} ends before entry {min_last_seq}, which the archive manifest recorded: "
                    "entries were removed or the file was deleted. Nothing was written; run "
                    "`vigil verify` and restore the log from a backup"
                )
            repaired = self._end_last_line()
            if repaired:
                new = [{"op": "repair", "cut_bytes": repaired, "reason": "torn last line"}, *new]
            written = self._append_locked(new)
            return written[1:] if repaired else written
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)

    def _last_seq_kept(self) -> int:
        """The sequence number of the last entry an append keeps: the last line's, or, when that
        line is an append cut short (which the append cuts), the one before it (an entry's
        sequence number is its line number)."""
        tail = self.unended_tail()
        if tail is not None and not tail[1]:
            return tail[0] - 1
        last = self.last_entry()
        return last["seq"] if last else 0

    def end_last_line(self) -> bool:
        """Write the line end a whole last entry lacks (a crash right after writing it), under the
        ledger's lock; True if one was written. A last line cut short is left to the caller."""
        tail = self.unended_tail()
        if tail is None or not tail[1]:
            return False
        lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            self._end_last_line()
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)
        return True

    def _end_last_line(self) -> int:
        """Make the ledger end in a line end before appending; returns the bytes cut.

        A last line that lacks only its line end (a whole entry, chained onto the one before it)
        is kept and its line end written: nothing of it was lost, and appending onto it would glue
        two entries into one line. A last line cut short inside an entry (an append cut short) is
        removed when the ledger repairs its own tail (the audit log); otherwise (the manifest,
        whose crash recovery runs before any append) it is an error, and nothing is written."""
        if not self.path.exists():
            return 0
        with self.path.open("rb+") as f:
            end = f.seek(0, os.SEEK_END)
            if end == 0:
                return 0
            f.seek(end - 1)
            if f.read(1) == b"\n":
                return 0
            start = max(0, end - (1 << 20))
            while True:
                f.seek(start)
                cut = f.read(end - start).rfind(b"\n")
                if cut >= 0 or start == 0:
                    keep = start + cut + 1 if cut >= 0 else 0
                    break
                start = max(0, start - (1 << 20))
            f.seek(keep)
            cut_bytes = 0
            if self._whole_entry(f.read(end - keep), before=keep):
                f.seek(end)
                f.write(b"\n")
            elif self.repair_torn_tail:
                f.truncate(keep)
                cut_bytes = end - keep
            else:
                raise ArchiveError(
                    f"{self.path} ends in a line that is cut short and is not a whole entry, so "
                    "nothing can be chained onto it. Nothing was written; run `vigil verify` to see "
                    "every problem and restore the file from a copy"
                )
            f.flush()
            os.fsync(f.fileno())
        return cut_bytes

    def _whole_entry(self, line: bytes, *, before: int) -> bool:
        """Whether ``line`` is a complete entry that chains onto the ledger's first ``before``
        bytes (whose last line is the entry before it)."""
        try:
            entry = read_line(line)
        except ValueError:
            return False
        if not isinstance(entry, dict) or entry.get("hash") != entry_hash(entry):
            return False
        previous = self._entry_ending_at(before)
        if previous is None:
            return entry.get("seq") == 1 and entry.get("prev") == GENESIS
        return entry.get("seq") == previous.get("seq", 0) + 1 and entry.get("prev") == previous.get("hash")

    def _entry_ending_at(self, end: int) -> dict[str, Any] | None:
        """The entry on the line that ends at byte ``end`` (None at the start of the file, ``{}``
        for a line that is not an entry)."""
        if end == 0:
            return None
        with self.path.open("rb") as f:
            line = _line_before(f, end)
        try:
            entry = read_line(line)
        except ValueError:
            return {}
        return entry if isinstance(entry, dict) else {}

    def last_entry(self) -> dict[str, Any] | None:
        """The last entry, read from the end of the file (appends stay O(1) as the log grows)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with self.path.open("rb") as f:
            return self._parse_last(_line_before(f, f.seek(0, os.SEEK_END)))

    def _parse_last(self, line: bytes) -> dict[str, Any]:
        try:
            entry = read_line(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int) or "hash" not in entry:
            raise ArchiveError(
                f"the last line of {self.path} is damaged, so nothing can be chained onto it; "
                "run `vigil verify` to see every problem"
            )
        return entry

    def _append_locked(self, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
        last = self.last_entry()
        prev = last["hash"] if last else GENESIS
        seq = last["seq"] if last else 0
        written = []
        for item in new:
            seq += 1
            entry = {k: v for k, v in item.items() if k not in ("seq", "prev", "hash")}
            entry["seq"] = seq
            entry["prev"] = prev
            entry["hash"] = entry_hash(entry)
            prev = entry["hash"]
            written.append(entry)
        payload = "".join(canonical(e) + "\n" for e in written).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(payload)
            while view:
                done = os.write(fd, view)
                view = view[done:]
            os.fsync(fd)
        finally:
            os.close(fd)
        return written

    def repair_tail(self, keep: int) -> int:
        """Cut the ledger back to its first ``keep`` lines (an interrupted append's leftovers).

        Only called by crash recovery for lines that never completed a commit. Returns the number
        of lines removed."""
        lines = [line for _, line in self.raw_lines()]
        if len(lines) <= keep:
            return 0
        with self.path.open("rb+") as f:
            f.truncate(sum(len(x) for x in lines[:keep]))
            f.flush()
            os.fsync(f.fileno())
        return len(lines) - keep


def _line_before(f: BinaryIO, end: int) -> bytes:
    """The last line of ``f`` before byte ``end``, without its line end, read backwards in
    growing blocks (so it costs the same however long the ledger is)."""
    block = 4096
    while True:
        start = max(0, end - block)
        f.seek(start)
        body = f.read(end - start).rstrip(b"\n")
        cut = body.rfind(b"\n")
        if cut >= 0 or start == 0:
            return body[cut + 1 :]
        block *= 4
