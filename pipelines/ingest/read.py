"""Finding input files and reading their lines as raw bytes with byte offsets.

Lines are kept as bytes on purpose: decoding is validation (invalid UTF-8 is a dead letter with the
raw bytes kept), not something the reader may do silently. A line longer than ``max_line_bytes`` is
not loaded whole: its first bytes, total size and SHA-256 are kept and it is reported as too long.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import re
import stat
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from glob import escape as glob_escape
from typing import Any

from apache_beam.io.filesystem import CompressionTypes, FileMetadata, FileSystem
from apache_beam.io.filesystems import FileSystems

from pipelines.errors import InputError
from pipelines.ingest.extras import FILESYSTEMS, missing_for_filesystem, pip_install
from pipelines.ingest.lines import MAX_LINE_BYTES, Line, split_lines, strip_eol
from pipelines.json_lines import is_utf8

#: how an event file's name ends
SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
#: the same, for messages: ".jsonl, .jsonl.gz, .ndjson or .ndjson.gz"
SUFFIXES_TEXT = ", ".join(SUFFIXES[:-1]) + " or " + SUFFIXES[-1]


@dataclass(frozen=True)
class SourceFile:
    name: str  # the path or URI as the filesystem knows it
    size: int
    mtime_ns: int

    def key(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "mtime_ns": self.mtime_ns}


#: reason codes of a file-level problem (one dead letter for the file, at the offset reading stopped)
FILE_PROBLEMS = ("unreadable_file", "truncated_gzip")


def is_local(path: str) -> bool:
    return "://" not in path


def canonical(path: str) -> str:
    """One spelling per input file: the real absolute path for local files (``./in``, ``in/`` and
    ``/abs/in`` are the same source), the URI as given for other filesystems."""
    return os.path.realpath(path) if is_local(path) else path


def canonical_dir(path: str) -> str:
    """``path`` with its folder made canonical and its own name kept (a link stays itself)."""
    if not is_local(path):
        return path
    folder, _, name = path.rpartition("/")
    return f"{os.path.realpath(folder or '/')}/{name}".replace("//", "/")


def _hidden_below(path: str, base: str | None) -> bool:
    """A file inside a ``_`` or ``.`` folder (relative to the input root), or named so."""
    rel = path
    if base is not None:
        prefix = base.rstrip("/") + "/"
        rel = path[len(prefix) :] if path.startswith(prefix) else path.rsplit("/", 1)[-1]
    else:
        rel = path.rsplit("/", 1)[-1]
    return any(part.startswith(("_", ".")) for part in rel.split("/") if part)


@dataclass(frozen=True)
class Listing:
    """What an input holds: the event files to read, and the other files found beside them (not
    bookkeeping, not named like event files), which are not read but must not go unmentioned."""

    files: list[SourceFile]
    unread: list[str]  # relative to the input folder
    #: named like event files but not readable as files: "name (why)", relative to the input folder
    skipped: list[str] = field(default_factory=list)
    #: named like event files but left out as bookkeeping (a name, or a folder on the way, starting
    #: with ``_`` or ``.``) or as still being written (``.tmp``): not read, but named
    left_out: list[str] = field(default_factory=list)


def discover(input_path: str, exclude: str | None = None) -> list[SourceFile]:
    """The event files of :func:`list_input`."""
    return list_input(input_path, exclude).files


def check_input(input_path: str) -> tuple[str, str | None, bool]:
    """How to list ``input_path``: the pattern to match, the folder it starts from and whether it
    is a glob. An input that does not exist, or one file not named like an event file, is an
    :class:`InputError` (checked before a run touches the archive). A local path that exists is
    taken as written, even with ``*?[`` in its name (``in[1]/``). A pipe, socket or device named
    on its own (``/dev/stdin``, a FIFO) is refused too: Vigil reads files."""
    check_filesystem(input_path)
    literal = is_local(input_path) and os.path.exists(input_path)
    if literal and (kind := _special_kind(input_path)):
        raise InputError(
            f"input {_shown(input_path)} is {kind}, not a file or folder: Vigil reads event files, "
            "which it can read again and resume where a run stopped; write the events to a file "
            "first (cat > in/events.jsonl) and pass that file or its folder"
        )
    if not literal and any(ch in input_path for ch in "*?["):
        parts = input_path.split("/")
        fixed = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
        root = "/".join(parts[:fixed]) or None  # the folder the glob starts from
        return input_path, canonical(root) if root and is_local(root) else root, True
    if literal:
        input_path = canonical(input_path)
    base = input_path.rstrip("/")
    if not FileSystems.exists(base):
        raise InputError(f"input {input_path} does not exist; pass the folder `vigil simulate --out` wrote")
    # Beam matches patterns; brackets (the one way to quote *?[ in one) make the name literal
    quoted = glob_escape(base) if is_local(base) else base
    single = os.path.isfile(base) if is_local(base) else bool(_match(base))
    name = base.rsplit("/", 1)[-1]
    if single and (name.startswith(("_", ".")) or name.endswith(".tmp")):
        tmp = name.endswith(".tmp")
        why = "still being written (.tmp)" if tmp else "bookkeeping (a name starting with _ or .)"
        raise InputError(
            f"input {_shown(input_path)} has a name Vigil leaves out as {why}, here and when it lists "
            "a folder or a pattern; if it holds events, rename it (e.g. "
            f"{name.lstrip('_.').removesuffix('.tmp') or 'events.jsonl'}) and pass that"
        )
    if single and not base.endswith(SUFFIXES):
        raise InputError(
            f"input {input_path} is not named like an event file; Vigil reads newline-delimited "
            f"JSON from files ending in {SUFFIXES_TEXT}: rename it, or name it with a pattern (every "
            f"file a pattern matches is read: '{_pattern_for(base)}')"
        )
    return (quoted if single else f"{quoted}/**"), base, False  # a folder: one listing of the whole tree


def check_filesystem(input_path: str) -> None:
    """Refuse a ``scheme://`` input that no installed Beam file system reads: its Beam extra is not
    installed (``gs://`` without ``apache-beam[gcp]``), or no Beam file system has that scheme."""
    scheme = FileSystems.get_scheme(input_path)
    if scheme is None:
        return
    if extra := missing_for_filesystem(scheme):
        raise InputError(
            f"input {input_path}: Beam reads {scheme}:// paths only with its {extra} extra, which is not "
            f"installed: {pip_install(extra)} (into Vigil's environment)"
        )
    try:
        FileSystems.get_filesystem(input_path)
    except ValueError:
        *others, last = (f"{name}://" for name in FILESYSTEMS)
        raise InputError(
            f"input {input_path}: no Beam file system reads {scheme}:// paths; give a local path, or "
            f"a {', '.join(others)} or {last} one"
        ) from None


def _pattern_for(path: str) -> str:
    """A glob matching just ``path``: its last letter in brackets (``export.tx[t]``)."""
    head, last = path[:-1], path[-1]
    return f"{glob_escape(head) if is_local(path) else head}[{last}]"


def _match(pattern: str) -> list[Any]:
    with warnings.catch_warnings():  # Beam's translation of a quoted "[" looks like a nested set to re
        warnings.simplefilter("ignore", FutureWarning)
        return FileSystems.match([pattern])[0].metadata_list


def list_input(input_path: str, exclude: str | None = None) -> Listing:
    """Event files under ``input_path`` (a folder, one file or a glob, local or any Beam
    filesystem), named canonically (see :func:`canonical`), and the folder's other files.

    Files whose name, or any folder between the input root and them, starts with ``_`` or ``.`` are
    bookkeeping (labels, manifests, staging) and skipped, as are ``.tmp`` files (still being
    written); so is everything under ``exclude`` (the archive, when it sits inside the input
    folder). Every file a glob matches is an event file (a local glob is matched by
    :func:`_local_glob`, which names what it cannot read); a folder's files are event files when
    their names end in one of :data:`SUFFIXES`, and one file named on its own must be one."""
    pattern, root, glob = check_input(input_path)
    excluded = canonical(exclude).rstrip("/") + "/" if exclude else None
    found: dict[str, SourceFile] = {}
    unread: list[tuple[str, str]] = []  # (name in the input, real path)
    skipped: list[str] = []
    left_out: set[str] = set()

    def relative(listed: str) -> str:
        return _shown(listed[len(root) + 1 :] if root and listed.startswith(root + "/") else listed)

    def ignored(listed: str, name: str) -> bool:
        """Bookkeeping, a file still being written, or the archive."""
        if excluded and (name.startswith(excluded) or listed.startswith(excluded)):
            return True
        if _hidden_below(listed, root) or listed.endswith(".tmp"):
            if listed.removesuffix(".tmp").endswith(SUFFIXES):
                left_out.add(relative(listed))
            return True
        return False

    def consider(meta: Any, link: tuple[str, str] | None = None) -> None:
        # judged by the name it has in the input (a link is an event file if the link is named like
        # one), read and remembered by its real path (two names of one file are read once)
        listed, name = canonical_dir(meta.path), canonical(meta.path)
        if link is not None and listed.startswith(link[1] + "/"):  # found through a folder link
            listed = link[0] + listed[len(link[1]) :]
        if ignored(listed, name):
            return
        if not glob and not listed.endswith(SUFFIXES):
            unread.append((relative(listed), name))
            return
        problem = _not_a_readable_file(listed, name)
        if problem:
            skipped.append(f"{relative(listed)} ({problem})")
            return
        mtime = int((meta.last_updated_in_seconds or 0) * 1e9)
        found.setdefault(name, SourceFile(name, meta.size_in_bytes, mtime))

    try:
        if glob and is_local(pattern):
            # Beam's local matching drops what it cannot stat and stops `*` at a backslash
            matched, problems = _local_glob(pattern)
            for meta in matched:
                consider(meta)
            for path, why in problems:
                listed = canonical_dir(path.rstrip("/"))  # a folder's path ends in "/"
                if not ignored(listed, canonical(path)):
                    skipped.append(f"{relative(listed)}{'/' if path.endswith('/') else ''} ({why})")
        else:
            for meta in _match(pattern):
                consider(meta)
        if not glob and root and is_local(root) and os.path.isdir(root):
            # Beam's listing neither follows folder links nor says which folders it could not list
            tree = _walk(root, excluded)
            for link, real in tree.linked_folders:
                for meta in _match(glob_escape(real) + "/**"):
                    consider(meta, (canonical_dir(link), real))
            skipped += [relative(canonical_dir(path)) + f" ({why})" for path, why in tree.problems]
    except InputError:
        raise
    except Exception as exc:  # Beam raises its own BeamIOError with per-pattern details
        raise InputError(f"cannot list input {input_path!r}: {exc}") from exc
    # a file read through a link named like an event file was read: not listed as unread
    not_read = sorted(shown for shown, name in unread if name not in found)
    files = _one_per_file(sorted(found.values(), key=lambda s: s.name))
    return Listing(files, not_read, sorted(skipped), sorted(left_out))


def _one_per_file(files: list[SourceFile]) -> list[SourceFile]:
    """``files`` without the second name of a local file hard-linked under two names (its real
    paths differ, its device and inode do not): read once, under the first name in order."""
    seen: set[tuple[int, int]] = set()
    kept = []
    for source in files:
        try:
            st = os.stat(source.name) if is_local(source.name) else None
        except OSError:
            st = None  # gone since it was listed: the reader says so
        if st is not None and st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        kept.append(source)
    return kept


def _special_kind(path: str) -> str | None:
    """What the local ``path`` (its links followed) is when it is neither a file nor a folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # cannot be looked at: listing it says what is wrong
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def _not_a_readable_file(listed: str, name: str) -> str | None:
    """Why an input entry named like an event file cannot be read as one, or None."""
    if not (is_utf8(listed) and is_utf8(name)):  # the name, or the real path a link leads to
        return "its name is not valid UTF-8, which the archive cannot record; rename it"
    if is_local(name):
        try:
            mode = os.stat(name).st_mode
        except OSError:
            return None  # gone since it was listed: the reader says so
        if not stat.S_ISREG(mode):
            return "not a regular file but a pipe, socket or device; Vigil reads files"
        if not os.access(name, os.R_OK):
            return "the user running Vigil may not read it: fix its permissions and run again"
    return None


def _shown(path: str) -> str:
    """``path`` printable: bytes of a name that are not UTF-8 written as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _local_glob(pattern: str) -> tuple[list[Any], list[tuple[str, str]]]:
    """The files a local glob matches, as Beam's matching names them (``*`` within one folder,
    ``**`` across folders), and (path, why) for the matches that cannot be read: a link that leads
    nowhere, a folder on the way that cannot be listed. Unlike Beam's, a name holding a backslash
    matches ``*``, and an entry that cannot be looked at is named, not dropped."""
    wanted = re.compile(FileSystem.translate_pattern(pattern).replace(r"[^/\\]*", "[^/]*"))
    fixed = re.match(r"[^[*?]*", pattern)
    start = os.path.dirname(fixed.group(0) if fixed else "")
    found: list[Any] = []
    problems: list[tuple[str, str]] = []

    def unlistable(exc: OSError) -> None:
        problem = _unlistable(exc)
        if problem:
            problems.append(problem)

    for folder, _, files in os.walk(start or ".", onerror=unlistable):
        for entry in files:
            path = os.path.join(folder, entry) if start else os.path.relpath(os.path.join(folder, entry))
            if not wanted.match(path):
                continue
            try:
                st = os.stat(path)
            except OSError as exc:
                problems.append((path, _dangling(path) or f"cannot be looked at: {exc.strerror or exc}"))
                continue
            found.append(FileMetadata(path, st.st_size, st.st_mtime))
    return found, problems


def _unlistable(exc: OSError) -> tuple[str, str] | None:
    """(folder, why) for a folder a listing could not read, as the summary names it."""
    if exc.filename and os.path.isdir(exc.filename):
        why = exc.strerror or str(exc)
        return (
            exc.filename + "/",
            f"a folder the user running Vigil cannot list ({why}): nothing in it was read; "
            "fix its permissions and run again",
        )
    return None


def _dangling(path: str) -> str | None:
    """Why ``path`` cannot be read when it is a link that leads nowhere (to nothing, or round a
    loop of links back to itself), or None."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except OSError as exc:
        target = _shown(os.readlink(path))
        if exc.errno == errno.ELOOP:  # to itself, or round links that lead back to it
            return f"a link to {target}, which loops (ELOOP): it leads back round to itself, never to a file"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"a link to {target}, which does not exist"
        return f"a link to {target}, which cannot be looked at ({exc.strerror or exc})"
    return None


@dataclass
class _Tree:
    #: (the link as named in the input, the real folder) for each link to a folder outside the
    #: input and outside the other linked folders, each real folder once (links in a loop end)
    linked_folders: list[tuple[str, str]] = field(default_factory=list)
    #: (path, why) for what is there but cannot be read: folders that cannot be listed, links
    #: named like event files that lead nowhere
    problems: list[tuple[str, str]] = field(default_factory=list)


def _walk(root: str, excluded: str | None) -> _Tree:
    """What a plain listing of ``root`` does not show, outside ``_``/``.`` folders and ``excluded``."""
    tree = _Tree()
    covered = [os.path.realpath(root).rstrip("/") + "/"]  # real folders already listed

    def unlistable(exc: OSError) -> None:
        problem = _unlistable(exc)
        if problem:
            tree.problems.append(problem)

    for folder, dirs, files in os.walk(root, onerror=unlistable, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        for entry in list(dirs):
            path = os.path.join(folder, entry)
            if excluded and canonical_dir(path).startswith(excluded):
                dirs.remove(entry)
                continue
            if os.path.islink(path):
                real = os.path.realpath(path)
                if any((real + "/").startswith(done) for done in covered) or (
                    excluded and (real + "/").startswith(excluded)
                ):
                    dirs.remove(entry)  # already listed (a loop, or a second link to it)
                    continue
                covered.append(real + "/")
                tree.linked_folders.append((path, real))
        for entry in files:
            path = os.path.join(folder, entry)
            if (
                entry.endswith(SUFFIXES)
                and not entry.startswith(("_", "."))
                and not (excluded and canonical_dir(path).startswith(excluded))
                and (why := _dangling(path))
            ):
                tree.problems.append((path, why))
    return tree


def prefix_sha256(source: str, length: int) -> str | None:
    """SHA-256 of the first ``length`` bytes of a plain (not compressed) file; None if it is shorter
    or unreadable. How a later run tells an appended file (same prefix) from a rewritten one."""
    digest = hashlib.sha256()
    left = length
    try:
        with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            while left:
                chunk = raw.read(min(left, 1 << 20))
                if not chunk:
                    return None
                digest.update(chunk)
                left -= len(chunk)
    except OSError:
        return None
    return digest.hexdigest()


class PrefixHash:
    """SHA-256 of a plain file's bytes up to the last line end read, taken while the lines are read
    (so a file is read once, not once for its lines and again for :func:`prefix_sha256`).

    :func:`read_lines` feeds it every chunk it reads; a chunk without a line end (a long line's
    head, or a last line a writer is still appending) is hashed on a copy until its line end
    arrives, so :attr:`upto` and :meth:`hexdigest` always describe whole lines."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._whole: Any = None  # the hash before an unfinished line, while one is being read
        self.position = 0  # bytes seen
        self.upto = 0  # bytes up to and including the last line end seen

    def feed(self, chunk: bytes) -> None:
        if chunk.endswith(b"\n"):
            self._hash.update(chunk)
            self._whole = None
            self.upto = self.position + len(chunk)
        elif chunk:
            if self._whole is None:
                self._whole = self._hash.copy()
            self._hash.update(chunk)
        self.position += len(chunk)

    def hexdigest(self) -> str:
        return (self._whole or self._hash).hexdigest()


class _Hashed:
    """A line source that shows every chunk it returns to a :class:`PrefixHash`."""

    def __init__(self, stream: Any, prefix: PrefixHash):
        self._stream = stream
        self._prefix = prefix

    def readline(self, size: int = -1, /) -> bytes:
        chunk = self._stream.readline(size)
        self._prefix.feed(chunk)
        return chunk


class _Bounded:
    """A line source that ends ``left`` bytes on, whatever is appended after that."""

    def __init__(self, stream: Any, left: int):
        self._stream = stream
        self._left = left

    def readline(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            return b""
        chunk = self._stream.readline(self._left if size < 0 else min(size, self._left))
        self._left -= len(chunk)
        return chunk


class _Capped:
    """A binary file that ends ``limit`` bytes in, whatever is appended after that: a gzip file
    read as it was listed, so a member its writer adds while the batch reads is left for the next
    poll instead of being read half-written (and reported as a cut stream)."""

    def __init__(self, raw: Any, limit: int):
        self._raw = raw
        self._limit = limit

    def read(self, size: int = -1, /) -> bytes:
        left = self._limit - self._raw.tell()
        if left <= 0:
            return b""
        return self._raw.read(left if size is None or size < 0 else min(size, left))

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if whence != 0:
            raise OSError("a capped file seeks from its start only")
        return self._raw.seek(min(offset, self._limit))

    def tell(self) -> int:
        return int(self._raw.tell())

    def readable(self) -> bool:
        return True


def resumable(source: str) -> bool:
    """Only plain files can be resumed at a byte offset (a .gz stream is read from its start)."""
    return not source.endswith(".gz")


def read_lines(
    source: str,
    max_line_bytes: int = MAX_LINE_BYTES,
    *,
    hold_partial_tail: bool = False,
    start: int = 0,
    prefix: PrefixHash | None = None,
    until: int | None = None,
) -> Iterator[Line]:
    """Every line of ``source`` with its byte offset (in the decompressed stream for .gz files).

    ``hold_partial_tail`` (follow mode) leaves a last line without its newline unread: a writer
    appending to the file has not finished it yet. ``start`` (plain files only) resumes at a byte
    offset where an earlier run stopped. ``prefix`` (plain files only) is fed every byte read,
    the first ``start`` bytes included, to hash what was read. ``until`` stops at that byte offset
    (of the compressed file, for .gz files): the size the file was listed with, so what a writer
    appends meanwhile waits for the next poll instead of being read half-written."""
    # Beam's own decompressing reader cannot bound a line's length, so decompress here.
    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        if resumable(source):
            if start == 0:
                magic = raw.read(len(GZIP_MAGIC))
                raw.seek(0)
                if magic == GZIP_MAGIC:  # no JSON text starts with these bytes
                    yield file_problem(source, 0, "unreadable_file", _gzip_named_plain(source))
                    return
            stream: Any = raw
            if prefix is not None:
                left = start
                while left:  # read the part an earlier run archived into the hash, not past it
                    chunk = raw.read(min(left, 1 << 20))
                    if not chunk:
                        return  # the file is now shorter than what was read before
                    prefix.feed(chunk)
                    left -= len(chunk)
                prefix.upto = prefix.position
                stream = _Hashed(raw, prefix)
            elif start:
                raw.seek(start)
            if until is not None:
                stream = _Bounded(stream, until - start)
            yield from split_lines(stream, source, max_line_bytes, hold_partial_tail, start)
            return
        compressed: Any = raw if until is None else _Capped(raw, until)
        magic = compressed.read(len(GZIP_MAGIC))
        if not GZIP_MAGIC.startswith(magic):  # text, or anything else, under a .gz name
            yield file_problem(source, 0, "unreadable_file", _plain_named_gzip(source))
            return
        if magic != GZIP_MAGIC:
            # Python reads an empty file as an empty gzip stream, but a gzip file has at least its
            # header: this one was created and not (yet) written, or cut to nothing (or to 1f)
            if not hold_partial_tail:  # follow mode waits for its writer, as for any cut stream
                what = (
                    "the file is empty, not even a gzip header (created and never written, or cut to nothing)"
                    if not magic
                    else "the file ends after the first byte of its gzip header (still being written, or cut)"
                )
                yield file_problem(
                    source,
                    0,
                    "truncated_gzip",
                    f"{what}; put a complete copy in its place: the next run reads it again "
                    "(until then every run reads it again)",
                )
            return
        compressed.seek(0)
        damage = gzip_damage(compressed)
        if damage is not None:
            yield file_problem(source, 0, "unreadable_file", damage)
            return
        compressed.seek(0)
        with gzip.GzipFile(fileobj=compressed) as stream:
            offset = 0
            try:
                for line in split_lines(stream, source, max_line_bytes, hold_partial_tail):
                    offset = line.offset + line.span
                    yield line
            except EOFError:
                if hold_partial_tail:
                    return  # follow mode: the writer has not finished the file; read it again later
                yield file_problem(
                    source,
                    offset,
                    "truncated_gzip",
                    f"the gzip stream ends early after {offset:,} decompressed bytes "
                    "(the file is cut, or still being written); the lines before were read. Put a "
                    "complete copy in its place: the next run reads it again, counting the lines "
                    "already archived as duplicates (until then every run reads it again)",
                )
            except (OSError, zlib.error) as exc:
                yield file_problem(
                    source,
                    offset,
                    "unreadable_file",
                    f"cannot decompress the file after {offset:,} bytes ({exc}); "
                    "the lines before were read, nothing after. Put an intact copy in its place, "
                    "or, if only stray bytes follow its last gzip member, what gunzip can read "
                    "(gunzip -c FILE | gzip > NEW.jsonl.gz): the next run reads it again, counting "
                    "the lines already archived as duplicates (until then every run reads it again)",
                )


#: The first two bytes of every gzip file.
GZIP_MAGIC = b"\x1f\x8b"


def _gzip_named_plain(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    return (
        f"the file is gzip-compressed but its name does not end in .gz, so it would be read as "
        f"text; nothing of it was archived: rename it to {name}.gz (or decompress it with "
        f"gunzip -c {name} > NEW.jsonl) and run again"
    )


def _plain_named_gzip(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    plain = name.removesuffix(".gz")
    return (
        f"the file is not gzip-compressed (it does not start with the gzip bytes 1f 8b) but its "
        f"name ends in .gz, so it cannot be decompressed; nothing of it was archived: if it is "
        f"JSON lines text, rename it to {plain} (without .gz) and run again"
    )


def gzip_damage(raw: Any) -> str | None:
    """Why the gzip stream ``raw`` cannot be trusted, or None.

    A gzip member's checksum (CRC-32 and length) is checked only at its end, after its lines have
    been decompressed: a byte changed inside the file decompresses into different text and is only
    caught there. So a first pass decompresses the whole file and checks every member before any
    line of it is read; a member that fails, or deflate data that is not valid, means none of the
    file can be trusted. A stream that stops early (cut, or still being written) or is followed
    by bytes that are not gzip is no damage: the members before that point checked out, and the
    reading pass reports the rest."""
    with gzip.GzipFile(fileobj=raw) as stream:
        try:
            while stream.read(1 << 20):
                pass
        except EOFError:
            return None
        except gzip.BadGzipFile as exc:
            if not str(exc).startswith(("CRC check failed", "Incorrect length")):
                return None  # not gzip after complete members: read up to there
            why = str(exc)
        except zlib.error as exc:
            why = f"invalid deflate data: {exc}"
        except OSError:
            return None  # the reading pass meets it too, at the offset it happens
        else:
            return None
    return (
        f"the file fails its gzip check ({why}): it was damaged "
        "or altered after it was compressed, so none of its lines can be trusted and none was "
        "archived; put an intact copy in its place and run again"
    )


def file_problem(source: str, offset: int, code: str, reason: str) -> Line:
    """A line standing for a file-level problem (one of :data:`FILE_PROBLEMS`) at ``offset``."""
    return Line(source, offset, b"", 0, None, 0, problem=(code, reason))


def ends_a_line(source: str, offset: int) -> bool:
    """Whether the byte before ``offset`` in the plain file ``source`` is a line end (or there is
    none): ``offset`` then starts a line rather than continuing one."""
    if offset <= 0:
        return True
    try:
        with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            raw.seek(offset - 1)
            return raw.read(1) in (b"\n", b"")
    except OSError:
        return True


def line_at(source: str, offset: int, max_bytes: int = 16 * MAX_LINE_BYTES) -> bytes | None:
    """The raw bytes of the line starting at ``offset`` in ``source`` (without its line end), or
    None when the file is gone or unreadable: how a later stage gets back the bytes as received."""
    try:
        with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            stream: Any = gzip.GzipFile(fileobj=raw) if source.endswith(".gz") else raw
            stream.seek(offset)
            return strip_eol(stream.readline(max_bytes + 1))
    except (OSError, EOFError, ValueError, zlib.error):
        return None
