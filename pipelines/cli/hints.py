"""What the closing hints of a command print: lines a user can paste into a shell as they are."""

from __future__ import annotations

import errno
import shlex
import sys
from pathlib import Path

from pipelines.invisible import escaped


def vigil_command() -> str:
    """How the user started vigil (``.venv/bin/vigil`` when run through the venv), else ``vigil``."""
    argv0 = sys.argv[0] if sys.argv else ""
    return shlex.quote(argv0) if Path(argv0).name == "vigil" else "vigil"


def quoted(path: object) -> str:
    return shlex.quote(str(path))


def cannot_write(flag: str, target: Path, exc: OSError) -> str:
    """The one line for an output file (``--html``, ``--output``) that cannot be written: the
    reason, and what to do about the usual causes."""
    reason = exc.strerror or str(exc)
    folder = target.absolute().parent
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        fix = f"{blocking} is a file where a folder should be: move it away or pick another folder"
    elif not folder.is_dir():
        fix = f"the folder {folder} does not exist: create it (mkdir -p {quoted(folder)}) or pick another"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"the user running Vigil may not write in {folder}: pick a folder it may write in"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "the disk is full: make room or pick another disk"
    else:
        fix = "check the path and run the command again"
    if exc.errno == errno.ENAMETOOLONG and len(target.name.encode()) <= _NAME_MAX:
        fix = f"the folder {folder} allows shorter names than this: pick a shorter name"
    return escaped(f"{flag} {target}: cannot write it ({reason}); {fix}")


#: the longest file name most file systems take, in bytes
_NAME_MAX = 255


def staging_path(target: Path) -> Path:
    """Where a file is written before it is renamed to ``target``: beside it (one file system), a
    hidden ``.tmp`` name ``vigil run`` skips, unique, and never longer than a file name may be,
    however long ``target``'s own name is."""
    import secrets

    suffix = f".{secrets.token_hex(6)}.tmp"
    name = target.name.encode()[: _NAME_MAX - 1 - len(suffix)].decode(errors="ignore")
    return target.parent / f".{name}{suffix}"


def check_export_target(target: Path, archive: Path, flag: str, example: str) -> None:
    """Refuse a file a command is asked to write (``flag``: ``--html``, ``--export-raw``) that is
    inside the archive folder (links resolved, for the file and for the folder its temporary copy
    is written to: it would replace the audit log, the manifest or a data file) or that exists and
    is not a plain file (it is written beside its target and renamed over it: a link, pipe or
    device would be replaced, not written through). Checked before anything is logged or written;
    ``example`` is the name the error suggests instead."""
    from pipelines.errors import ConfigError
    from pipelines.invisible import escaped

    shown = escaped(str(target))
    root = archive.resolve()
    for path in (target.resolve(), target.absolute().parent.resolve() / target.name):
        if path == root or path.is_relative_to(root):
            raise ConfigError(
                f"{flag} {shown}: this is inside the archive folder {escaped(str(archive))}, which only "
                f"Vigil writes; write the file somewhere else (e.g. {flag} {example})"
            )
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise ConfigError(
            f"{flag} {shown}: it exists and is not a plain file (a link, a folder, a pipe or a "
            "device); give the name of a new or ordinary file"
        )
