"""The access log: every search, conversation view, export and DLP dry-run, hash-chained.

Entries go to ``ARCHIVE/_ledger/audit.jsonl`` through :class:`pipelines.archive.ledger.Ledger`, so
they are tamper-evident the same way as the manifest and ``vigil verify`` checks their chain. An
entry is written *before* results are shown: if the log cannot be written, nothing is disclosed.

Entry fields (plus the ledger's ``seq``, ``prev`` and ``hash``)::

    {"op": "access", "time": "2026-02-01T09:30:00.123456+00:00", "user": "a.chan",
     "os_user": "achan", "role": "reviewer", "role_source": "--role", "action": "search",
     "engine": "embedded",
     "query": {"text": "card", "channels": ["wechat"]}, "results": 12, "details": {...}}

``action`` is ``search``, ``conversation`` (viewed in the terminal), ``export`` (written to a
file, or copied into Elasticsearch by ``vigil es index``: engine ``elasticsearch``, query
``{"destination": alias}``, results the records to send, ``details.es_url`` without credentials)
or ``dlp-dry-run`` (query ``{"policy", "against"}``, results the messages replayed,
``details.returned`` the records whose masked text the samples show);
``details`` holds what else matters for that action (page, sort, output file, ...).
``user`` is the name Vigil was given (``--user`` or the config); ``os_user`` is the operating-system
account that ran the command (its user id's name: ``$LOGNAME`` and ``$USER`` are the caller's to
set), and ``role_source`` says where the role came from (the ``--role`` flag or the config file's
path), so a role granted by flag is visible as such; ``configured_role`` (``{"role", "source"}``)
is the configured role that ``--role`` overrode. A search the role may not ask, or an export to
Elasticsearch by a role other than officer, is logged too, with ``details.refused``; names
suggested for a ``participant:`` that found nothing are in ``details.suggested``. ``dlp_policy``
says which DLP policy set built the text shown (``{"source": path, "label": "id@digest"}``) where
one did: every CRM-role view, and a file exported by a role other than officer; a configured set
that this view does not use is logged by its ``source`` alone.
"""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path
from typing import Any

from pipelines.archive import layout
from pipelines.archive.ledger import Ledger
from pipelines.errors import ArchiveError, QueryError
from pipelines.search.access import AccessRole, Identity, login_name, printable, view_policy

#: ``dlp-dry-run``: a policy replayed over the archived original text (counts and masked samples);
#: ``deadletters``: dead letters listed or their raw lines exported (``vigil deadletters``)
ACTIONS = ("search", "conversation", "export", "dlp-dry-run", "deadletters")


def audit_ledger(archive: Path) -> Ledger:
    return Ledger(Path(archive) / layout.AUDIT, repair_torn_tail=True)


def audit_position(archive: Path) -> dict[str, Any] | None:
    """``{"seq", "head"}`` of the audit log's last entry, or None while it is empty. Each
    ``vigil run`` commit records it, which lets ``vigil verify`` notice a log cut or deleted later."""
    ledger = audit_ledger(archive)
    if not ledger.path.exists():
        return None
    try:
        last = ledger.last_entry()
    except ArchiveError:
        return None  # a damaged tail: verify reports it; the anchor stays at the previous commit's
    return {"seq": last["seq"], "head": last["hash"]} if last else None


def _anchored_seq(archive: Path) -> int:
    from pipelines.archive.manifest_index import live_view

    anchor = live_view(Path(archive)).audit_anchor
    return int(anchor["seq"]) if anchor else 0


def require_officer(
    archive: Path,
    identity: Identity,
    action: str,
    *,
    what: str,
    query: dict[str, Any],
    engine: str,
    details: dict[str, Any],
) -> None:
    """Refuse a command that reads or sends original text (``what`` it does with it) to any role
    but officer. Asking is an access attempt: the refusal is logged, with ``details.refused``."""
    if identity.role is AccessRole.OFFICER:
        return
    refusal = (
        f"{what}, which only officers see (the role here is {identity.role.value}, from "
        f'{identity.source}): run it with --role officer, or with role = "officer" in the config'
    )
    record_refusal(archive, identity, action, query=query, engine=engine, details=details, refusal=refusal)
    raise QueryError(refusal)


def record_refusal(
    archive: Path,
    identity: Identity,
    action: str,
    *,
    query: dict[str, Any],
    engine: str,
    refusal: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Log a refused access: asking is an access attempt, on record with no results and the
    reason in ``details.refused``."""
    record_access(
        archive,
        identity,
        action,
        query=query,
        results=0,
        engine=engine,
        details={**(details or {}), "refused": refusal},
    )


def record_access(
    archive: Path,
    identity: Identity,
    action: str,
    *,
    query: dict[str, Any],
    results: int,
    engine: str,
    details: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Append one access entry; returns it as written (with its hash)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = {
        "op": "access",
        "time": (now or dt.datetime.now(dt.UTC)).isoformat(),
        "user": printable(identity.user),
        "os_user": login_name(),
        "role": identity.role.value,
        "role_source": printable(identity.source),
        "action": action,
        "engine": engine,
        "query": query,
        "results": results,
        "details": details or {},
    }
    if identity.configured is not None:
        entry["configured_role"] = {k: printable(v) for k, v in identity.configured.items()}
    if (policy := view_policy(identity, action)) is not None:
        entry["dlp_policy"] = {k: printable(v) for k, v in policy.items()}
    path = Path(archive) / layout.AUDIT
    _refuse_linked_log(Path(archive))
    _refuse_odd_file(path)
    try:
        (written,) = audit_ledger(archive).append([entry], min_last_seq=_anchored_seq(archive))
    except OSError as exc:
        raise ArchiveError(
            f"cannot write the audit log {path} ({exc.strerror or exc}); "
            "nothing was shown or sent. Check that the archive folder is writable."
        ) from None
    return written


def _refuse_linked_log(archive: Path) -> None:
    """Through a link the log would be appended to (and a torn tail cut) outside the archive, out
    of its protection: refuse, as the archive's writers do."""
    # only the log's own entries: every search passes here, and the run reports need no look
    linked = [
        name
        for name in (layout.LEDGER_DIR, layout.AUDIT, f"{layout.AUDIT}.lock")
        if (Path(archive) / name).is_symlink()
    ]
    if linked:
        raise ArchiveError(
            f"cannot write the audit log: {', '.join(linked)} in {archive} is a symbolic link, which "
            "Vigil never makes; nothing was shown or sent. Run `vigil verify`, and put the real one back"
        )


def _refuse_odd_file(path: Path) -> None:
    """A log that is not a plain file (a folder, a link to a device such as ``/dev/null``, a named
    pipe) cannot hold the entry: say so, rather than what writing to it happened to raise."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # the first entry creates it
    except OSError:
        return  # the append below reports it
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, a pipe or a socket)"
        raise ArchiveError(
            f"cannot write the audit log {path}: it is {what}; nothing was shown or sent. Run "
            "`vigil verify`, and put the log back from a backup"
        )
