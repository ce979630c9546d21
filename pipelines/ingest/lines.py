"""Splitting a byte stream into lines with their offsets, never loading an oversized line whole.

Beam-free, so ``vigil dlp scan`` reads its input the way ingest does without importing Beam.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

MAX_LINE_BYTES = 1 << 20  # 1 MiB
RAW_KEEP_BYTES = 64 * 1024  # what a dead letter keeps of an oversized payload
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Line:
    source: str
    offset: int
    raw: bytes  # without the trailing newline; capped when too_long
    size: int  # full size in bytes, without the line end
    sha256: str | None  # set only for oversized lines (raw is partial then)
    span: int = 0  # bytes the line takes in the file, line end included (for progress)
    problem: tuple[str, str] | None = None  # (reason code, reason): the FILE could not be read on

    @property
    def too_long(self) -> bool:
        return self.sha256 is not None


def unfinished_tail(
    path: str, max_line_bytes: int = MAX_LINE_BYTES, start: int = 0, end: int | None = None
) -> bool:
    """Whether the plain file at ``path`` ends in a line without its line end that is not yet a
    whole JSON value: a writer that paused in the middle of it (follow mode waits for the rest),
    also when it is already longer than a line may be (read now, it would be dead-lettered cut
    short, and again whole once finished). A tail that parses (a writer that never ends its file
    with a line end) is not unfinished: it is read as it is. A file that cannot be opened (removed
    since it was listed) is not: reading it reports what happened. ``start``: an offset known to be
    at a line start (where a commit stopped reading), so only what follows it is read. ``end``: the
    size the file was listed with, which is what a batch reads (not what was written since)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            size = size if end is None else min(size, end)
            begin = max(start, size - max_line_bytes - 1)
            f.seek(begin)
            data = f.read(max(0, size - begin))
    except OSError:
        return False
    cut = data.rfind(b"\n")
    if cut < 0 and begin > start:
        return True  # no line end in the last max_line_bytes: an over-long line still unfinished
    tail = data[cut + 1 :]
    tail = tail[_marks(tail) :]
    if not tail.strip():
        return False
    return not whole_json(tail)


def _marks(data: bytes) -> int:
    """How many bytes of byte-order marks ``data`` starts with (none, one or more)."""
    at = 0
    while data.startswith(BOM, at):
        at += len(BOM)
    return at


def whole_json(raw: bytes) -> bool:
    """Whether a line is one whole JSON value (so a writer cannot still be adding to it). Invalid
    UTF-8 is judged when the line is read, not here."""
    try:
        json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return False
    return True


class _LineSource(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def strip_eol(chunk: bytes) -> bytes:
    """A line without its line end: ``\\n`` or ``\\r\\n``, or a lone ``\\r`` where a line read to
    the end of its file stops (a CRLF file cut before its last ``\\n``: JSON ignores the ``\\r``,
    and the line's size does not count it, as it would not count the whole ``\\r\\n``)."""
    if chunk.endswith(b"\n"):
        return chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1]
    return chunk.removesuffix(b"\r")


def split_lines(
    stream: _LineSource, source: str, max_line_bytes: int, hold_partial_tail: bool, start: int = 0
) -> Iterator[Line]:
    """The lines of ``stream`` from byte ``start`` on. A line over ``max_line_bytes`` comes back
    as its head, its full size and its SHA-256 (``too_long``), read in pieces, never whole. With
    ``hold_partial_tail`` a last line without its line end is left for later (a writer may still be
    appending it). A UTF-8 byte-order mark starting a line is skipped (the line's offset is after it).
    The limit counts the line's own bytes: neither the mark nor the line end (``\\r\\n`` or ``\\n``, or
    a lone ``\\r`` ending the file)."""
    offset = start
    room = max_line_bytes + 2  # a whole line at the limit, with a two-byte line end
    while True:
        chunk = stream.readline(room)
        if not chunk:
            return
        # byte-order marks are not part of the event: at the start of the file, or of a line where
        # files were joined with `cat` (several when a file that had one got another)
        while chunk.startswith(BOM):
            marks = _marks(chunk)
            chunk = chunk[marks:]
            offset += marks
            if not chunk or chunk.endswith(b"\n"):
                break
            # the marks took room the line needs: read on to the limit (a read that stopped inside
            # a mark leaves the rest of it first, and the loop takes it off too)
            chunk += stream.readline(room - len(chunk))
        if not chunk:
            continue
        ended = chunk.endswith(b"\n")
        if hold_partial_tail and not ended and len(strip_eol(chunk)) <= max_line_bytes:
            return  # a writer is still appending this line; the next poll reads it whole
        if len(strip_eol(chunk)) <= max_line_bytes:
            raw = strip_eol(chunk)
            yield Line(source, offset, raw, len(raw), None, len(chunk))
            offset += len(chunk)
            continue
        # too long: keep the head, hash the whole line (without its line end), skip to its end
        head, pending, consumed = chunk, chunk, len(chunk)
        digest = hashlib.sha256()
        while not pending.endswith(b"\n"):
            following = stream.readline(1 << 20)
            if not following:
                break
            digest.update(pending[:-1])  # the last byte waits: it may be the \r of a \r\n
            pending = pending[-1:] + following
            consumed += len(following)
        if hold_partial_tail and not pending.endswith(b"\n"):
            return  # a long line a writer is still appending: the next poll reads it whole
        tail = strip_eol(pending)
        digest.update(tail)
        size = consumed - (len(pending) - len(tail))
        # the head is the line's own bytes: a line just over the limit was read with its line end
        yield Line(source, offset, head[: min(size, RAW_KEEP_BYTES)], size, digest.hexdigest(), consumed)
        offset += consumed
