"""Finding input files and reading their lines as raw bytes with byte offsets.

Lines are kept as bytes on purpose: decoding is validation (invalid UTF-8 is a dead letter with the
raw bytes kept), not something the reader may do silently. A line longer than ``max_line_bytes`` is
not loaded whole: its first bytes, total size and SHA-256 are kept and it is reported as too long.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.errors import InputError

MAX_LINE_BYTES = 1 << 20  # 1 MiB
RAW_KEEP_BYTES = 64 * 1024  # what a dead letter keeps of an oversized payload
PATTERNS = ("*.jsonl", "*.jsonl.gz", "*.ndjson", "*.ndjson.gz")


@dataclass(frozen=True)
class SourceFile:
    name: str  # the path or URI as the filesystem knows it
    size: int
    mtime_ns: int

    def key(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass(frozen=True)
class Line:
    source: str
    offset: int
    raw: bytes  # without the trailing newline; capped when too_long
    size: int  # full size in bytes, without the line end
    sha256: str | None  # set only for oversized lines (raw is partial then)
    span: int = 0  # bytes the line takes in the file, line end included (for progress)

    @property
    def too_long(self) -> bool:
        return self.sha256 is not None


def discover(input_path: str) -> list[SourceFile]:
    """Event files under ``input_path`` (a folder or a glob, local or any Beam filesystem).

    Names starting with ``_`` or ``.`` are bookkeeping (labels, manifests) and skipped."""
    if any(ch in input_path for ch in "*?["):
        patterns = [input_path]
    else:
        base = input_path.rstrip("/")
        if not FileSystems.exists(base):
            raise InputError(
                f"input {input_path} does not exist; pass the folder `vigil simulate --out` wrote"
            )
        if FileSystems.match([base])[0].metadata_list and base.endswith(tuple(p[1:] for p in PATTERNS)):
            patterns = [base]  # a single file
        else:
            patterns = [f"{base}/**/{p}" for p in PATTERNS] + [f"{base}/{p}" for p in PATTERNS]
    found: dict[str, SourceFile] = {}
    try:
        results = FileSystems.match(patterns)
    except Exception as exc:  # Beam raises its own BeamIOError with per-pattern details
        raise InputError(f"cannot list input {input_path!r}: {exc}") from exc
    for result in results:
        for meta in result.metadata_list:
            base_name = meta.path.rstrip("/").rsplit("/", 1)[-1]
            if base_name.startswith(("_", ".")) or base_name.endswith(".tmp"):
                continue
            mtime = int((meta.last_updated_in_seconds or 0) * 1e9)
            found[meta.path] = SourceFile(meta.path, meta.size_in_bytes, mtime)
    return sorted(found.values(), key=lambda s: s.name)


class _LineSource(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def _strip_eol(chunk: bytes) -> bytes:
    return chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1] if chunk.endswith(b"\n") else chunk


def _lines(stream: _LineSource, source: str, max_line_bytes: int, hold_partial_tail: bool) -> Iterator[Line]:
    offset = 0
    while True:
        chunk = stream.readline(max_line_bytes + 1)
        if not chunk:
            return
        if hold_partial_tail and not chunk.endswith(b"\n") and len(chunk) <= max_line_bytes:
            return  # a writer is still appending this line; the next poll reads it whole
        if chunk.endswith(b"\n") or len(chunk) <= max_line_bytes:
            raw = _strip_eol(chunk)
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
            digest.update(pending)
            pending = following
            consumed += len(following)
        tail = _strip_eol(pending)
        digest.update(tail)
        size = consumed - (len(pending) - len(tail))
        yield Line(source, offset, head[:RAW_KEEP_BYTES], size, digest.hexdigest(), consumed)
        offset += consumed


def read_lines(
    source: str, max_line_bytes: int = MAX_LINE_BYTES, *, hold_partial_tail: bool = False
) -> Iterator[Line]:
    """Every line of ``source`` with its byte offset (in the decompressed stream for .gz files).

    ``hold_partial_tail`` (follow mode) leaves a last line without its newline unread: a writer
    appending to the file has not finished it yet."""
    # Beam's own decompressing reader cannot bound a line's length, so decompress here.
    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        if source.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as stream:
                yield from _lines(stream, source, max_line_bytes, hold_partial_tail)
        else:
            yield from _lines(raw, source, max_line_bytes, hold_partial_tail)
