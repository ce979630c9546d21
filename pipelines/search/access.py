"""Who is looking, and what they may see.

Three roles:

* ``officer`` — compliance officers: see the original body and, where DLP redacted it, the
  redacted view too; search the original;
* ``reviewer`` — first-line reviewers: see and search the redacted view only (``body_redacted``).
  Searching the original would let them probe for a secret by guessing it;
* ``crm`` — the CRM integration: sees the CRM view of a body (``pipelines.dlp.view_text`` with the
  ``crm`` destination: the policy's choice of original, redacted or withheld). Blocked records
  are left out altogether, and so are Vigil's notices about them (``dlp_blocked_notice``: they
  name the rule, the reason and, by their time, the message); hits carry no DLP verdict, rule ids
  or blocked flag, and ``dlp:`` / ``rule:`` / ``type:dlp_blocked_notice`` filters are refused. It
  searches the redacted text, except for records whose CRM view differs from it: those are
  matched against the CRM view itself (a withheld view is empty), so no query, NOT included, can
  tell what withheld text contains.

The role and user come from configuration, never from the query: the flags ``--role`` and
``--user``, else the TOML file named by ``--config``, else ``$VIGIL_CONFIG``, else
``$XDG_CONFIG_HOME/vigil/config.toml`` (``~/.config/vigil/config.toml``)::

    user = "a.chan"
    role = "reviewer"
    dlp_policy = "/etc/vigil/dlp_rules"   # optional: policy set for the CRM view

There is no default role: running without one is a configuration error that says how to set it.
"""

from __future__ import annotations

import os
import pwd
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from pipelines.errors import ConfigError, QueryError
from pipelines.record import DlpAction, EventType

CONFIG_ENV = "VIGIL_CONFIG"


class AccessRole(StrEnum):
    OFFICER = "officer"
    REVIEWER = "reviewer"
    CRM = "crm"


#: The body column each role's text search runs on.
SEARCH_FIELD = {
    AccessRole.OFFICER: "body",
    AccessRole.REVIEWER: "body_redacted",
    AccessRole.CRM: "body_redacted",
}


@dataclass(frozen=True)
class Identity:
    user: str
    role: AccessRole
    dlp_policy: str | None = None  # policy set for the CRM view; None: the packaged dlp_rules
    source: str = field(default="flags", compare=False)  # where the role came from, for messages
    #: the role the configuration file gives, when ``--role`` overrode it (for the access log):
    #: ``{"role", "source"}``
    configured: dict[str, str] | None = field(default=None, compare=False)

    @property
    def search_field(self) -> str:
        return SEARCH_FIELD[self.role]

    @property
    def sees_dlp(self) -> bool:
        """May this role see blocked records, DLP verdicts and rule ids, and filter by them? The
        CRM role may not: it gets the CRM view and nothing about why text was withheld."""
        return self.role is not AccessRole.CRM

    @property
    def sees_original(self) -> bool:
        """Does this role see original text? Only officers: the others see DLP's views, so free
        text that DLP does not scan (attachment names, attribute values) is not shown to them."""
        return self.role is AccessRole.OFFICER

    @property
    def text_fields(self) -> tuple[str, ...]:
        """The body fields fetched for this role's hits: only what its view is built from."""
        return _TEXT_FIELDS[self.role]


#: What each role's view of a body is built from (the CRM view needs the original and the
#: findings, because a policy may show it the original or redact it its own way).
_TEXT_FIELDS = {
    AccessRole.OFFICER: ("body", "body_redacted"),
    AccessRole.REVIEWER: ("body_redacted",),
    AccessRole.CRM: ("body", "body_redacted", "dlp_findings", "dlp_action", "blocked"),
}


def check_query(query: Any, identity: Identity) -> None:
    """Refuse what a role may not ask: the CRM role cannot filter by DLP verdict or rule, nor ask
    for DLP's blocked-message notices (that would tell it which records DLP caught, and why)."""
    if identity.sees_dlp:
        return
    if query.dlp_actions or query.rules:
        raise QueryError(
            "the crm role cannot filter by DLP verdict or rule (dlp:, rule:); remove those filters"
        )
    if DLP_NOTICE in query.event_types:
        raise QueryError(
            f"the crm role cannot filter by DLP's blocked-message notices (type:{DLP_NOTICE}): "
            "it does not see them; remove that filter"
        )


#: Vigil's notice to an employee that DLP blocked their message: it names the rules and the
#: reason, and its time pins the blocked message, so roles that do not see DLP verdicts do not
#: see it either.
DLP_NOTICE = EventType.DLP_BLOCKED_NOTICE.value


def hidden_from(row: Mapping[str, Any], identity: Identity) -> bool:
    """Whether ``row`` is left out altogether for ``identity``: for roles that do not see DLP
    verdicts (crm), a blocked record (either mark counts) or a DLP blocked-message notice. The
    engines apply the same rule in the query (``pipelines.search.sql.BLOCKED_OUT`` and its twin
    ``pipelines.search.dsl.BLOCKED_OUT``)."""
    if identity.sees_dlp:
        return False
    return (
        bool(row.get("blocked"))
        or row.get("dlp_action") == DlpAction.BLOCK.value
        or row.get("event_type") == DLP_NOTICE
    )


#: The records that name a message the channel held or refused, as (kind, event type), and the
#: attribute that names it: the event that releases a held message and the notice telling the
#: employee it was held (``queued_event_id``), and the notices telling the employee a message was
#: not sent (``refused_event_id``: the queue was full, the consecutive-message limit was reached,
#: the 24-hour window had closed).
POINTER_ATTRIBUTES = {
    ("event", EventType.QUEUED_DELIVERED.value): "queued_event_id",
    ("auto_message", EventType.MESSAGE_QUEUED.value): "queued_event_id",
    ("auto_message", EventType.QUEUE_FULL.value): "refused_event_id",
    ("auto_message", EventType.CONSECUTIVE_LIMIT_REACHED.value): "refused_event_id",
    ("auto_message", EventType.WINDOW_EXPIRED.value): "refused_event_id",
}
POINTERS = tuple(POINTER_ATTRIBUTES)
#: the deliveries (``attributes.delivery``) of the messages the :data:`POINTERS` name
POINTED_DELIVERIES = ("queued", "refused")


def pointers_by_attribute() -> dict[str, list[tuple[str, str]]]:
    """The :data:`POINTERS` grouped by the attribute that names the message."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for pointer, attribute in POINTER_ATTRIBUTES.items():
        grouped.setdefault(attribute, []).append(pointer)
    return grouped


def may_show_a_release(query: Any) -> bool:
    """Whether ``query`` can match one of the :data:`POINTERS` at all (its kind and event-type
    filters allow one): only then do the engines look up which held messages a role may not see."""
    return any(
        (not query.kinds or kind in query.kinds) and (not query.event_types or name in query.event_types)
        for kind, name in POINTERS
    )


#: Held or refused messages (``attributes.delivery`` queued or refused) hidden from a role
#: (blocked), as ``(org, channel, event_id)``: the :data:`POINTERS` that name one (its release, its
#: hold notice, the notice that it was not sent) are left out with it (their note, "held for later
#: (1 of 5)", or their time would point at the message), as ``vigil conversation`` does; both
#: engines look them up before a search of a role that does not see DLP verdicts.
HeldOut = frozenset[tuple[str, str, str]]


#: The fields :func:`crm_decided` reads from each candidate.
CRM_FIELDS = ("record_id", "body", "body_redacted", "dlp_findings", "dlp_action", "blocked")


def crm_decided(rows: Iterable[Mapping[str, Any]], query: Any, identity: Identity) -> Any:
    """For the CRM role, the candidates (records with DLP findings that pass the filters) whose
    CRM view differs from the redacted text the engines search, and which of them match the
    query's text *on the view* (a withheld view is empty): a
    :class:`pipelines.search.sql.Decided` that both engines apply both ways."""
    from pipelines.search import match
    from pipelines.search.sql import Decided

    ids: set[str] = set()
    matching: set[str] = set()
    for row in rows:
        view = crm_view(row, identity)
        if view == row.get("body_redacted"):
            continue  # the engine's own test on the redacted text is the right answer
        ids.add(row["record_id"])
        if match.evaluate(query.text, view):
            matching.add(row["record_id"])
    return Decided(frozenset(ids), frozenset(matching))


def default_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "vigil" / "config.toml"


def config_file(flag: Path | None, environ: Mapping[str, str]) -> tuple[Path | None, str]:
    """The configuration file to read and how it was chosen; ``None`` when there is none."""
    if flag is not None:
        if not flag.is_file():
            raise ConfigError(f"--config {flag}: {_not_a_file(flag)}")
        return flag, f"--config {printable(str(flag.absolute()))}"
    named = environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"${CONFIG_ENV} names {path}: {_not_a_file(path)}; fix or unset it")
        return path, f"${CONFIG_ENV} ({printable(str(path))})"
    path = default_config_path(environ)
    return (path, printable(str(path))) if path.is_file() else (None, "")


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f'{path}: not valid TOML ({exc}); e.g. role = "reviewer"') from None
    for key in ("user", "role", "dlp_policy"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f'{path}: {key} must be a string, e.g. {key} = "{_EXAMPLES[key]}"')
    return data


_EXAMPLES = {"user": "a.chan", "role": "reviewer", "dlp_policy": "dlp_rules"}


def load_identity(
    *,
    config: Path | None = None,
    role: str | None = None,
    user: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Identity:
    """The identity for this invocation: flags first, then the configuration file."""
    env = os.environ if environ is None else environ
    path, described = config_file(config, env)
    data = read_config(path) if path is not None else {}
    chosen_role = role or data.get("role")
    source = "--role" if role else described
    if not chosen_role:
        where = path or default_config_path(env)
        raise ConfigError(
            'no role configured: pass --role officer|reviewer|crm, or add role = "reviewer" '
            f"(or officer, crm) to {where} (another file can be named with --config or ${CONFIG_ENV})"
        )
    try:
        access = AccessRole(chosen_role.lower())
    except ValueError:
        raise ConfigError(
            f"role {chosen_role!r} (from {source}) is not a role; use officer, reviewer or crm"
        ) from None
    configured = None
    if role and data.get("role"):
        # the flag wins, but the access log keeps what the configuration says this caller is
        configured = {"role": str(data["role"]).lower(), "source": described}
    who = user or data.get("user") or login_name()
    return Identity(
        user=who, role=access, dlp_policy=data.get("dlp_policy"), source=source, configured=configured
    )


def login_name() -> str:
    """The operating-system account running Vigil: the name of the process's real user id, not
    ``$LOGNAME`` or ``$USER``, which the caller sets at will. Bytes that are not UTF-8 are kept as
    escapes (``\\xff``): the access log is UTF-8."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (containers)
        return f"uid:{uid}"
    return printable(name)


def printable(text: str) -> str:
    """``text`` as UTF-8 can hold it: bytes the operating system gave that are not UTF-8 (a file
    name or environment value in another encoding, read as lone surrogates) become visible
    escapes (``\\xff``), so the access log, which is UTF-8, can record it."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


# ---------------------------------------------------------------------------------------------
# what a role sees of one record


@dataclass(frozen=True)
class Shown:
    """A record's text as one role may see it."""

    text: str | None  # None: nothing to show (no body, or withheld)
    withheld: bool = False  # True when a body exists but this role may not see it
    redacted: str | None = None  # officers only: the redacted view, when it differs from the text


def shown_text(row: Mapping[str, Any], identity: Identity) -> Shown:
    body = row.get("body")
    redacted = row.get("body_redacted")
    if identity.role is AccessRole.OFFICER:
        return Shown(text=body, redacted=redacted if redacted is not None and redacted != body else None)
    if identity.role is AccessRole.REVIEWER:
        if redacted is None:
            return Shown(text=None, withheld=body is not None)
        return Shown(text=redacted)
    view = crm_view(row, identity)
    return Shown(text=view, withheld=view is None and body is not None)


def export_text(row: Mapping[str, Any], identity: Identity) -> Shown:
    """A record's text as ``identity`` may export it to a file (``vigil conversation --html``).

    Officers export what they see. For the other roles the text is the ``export`` view of the
    DLP policy (``pipelines.dlp.view_text``: its show mode and operator, e.g. a hash), but never
    more than the role sees on screen: where the export view shows any part of a finding's value
    the role's own view does not (the original, or a mask keeping more characters), the role's own
    view is exported."""
    own = shown_text(row, identity)
    if identity.role is AccessRole.OFFICER or own.text is None:
        return own  # nothing on screen (no body, or withheld): nothing in the file either
    body = row.get("body")
    if body is None:
        return own
    from pipelines.dlp import view_text

    view = view_text(row, "export", _policy_set(identity.dlp_policy))
    if view is None:
        return Shown(text=None, withheld=True)
    if _shows_more(view, own.text, body, row.get("dlp_findings") or ()):
        return own
    return Shown(text=view)


def _shows_more(view: str, own: str, body: str, findings: Iterable[Mapping[str, Any]]) -> bool:
    """Whether ``view`` shows a piece (three characters) of a finding's value that ``own`` does
    not. Text outside the findings is the same in both views, so such a piece comes from a
    finding; a piece that only happens to occur (in a hash, say) errs on the safe side."""
    for f in findings:
        value = body[f["start"] : f["end"]]
        for i in range(max(len(value) - 2, 0)):
            piece = value[i : i + 3]
            if piece.strip() and piece in view and piece not in own:
                return True
    return False


def crm_view(row: Mapping[str, Any], identity: Identity) -> str | None:
    """The CRM view: what ``pipelines.dlp.view_text`` gives the ``crm`` destination. A record no
    policy ever looked at (no redacted view) shows nothing rather than its raw body."""
    if row.get("body") is None or row.get("body_redacted") is None:
        return None
    if row.get("blocked") or row.get("dlp_action") == DlpAction.BLOCK.value:
        return None
    if not row.get("dlp_findings"):
        return row.get("body_redacted")
    from pipelines.dlp import view_text

    return view_text(row, "crm", _policy_set(identity.dlp_policy))


def view_policy(identity: Identity, action: str) -> dict[str, str] | None:
    """Which DLP policy set shapes what ``identity`` is shown by ``action``, for the access log:
    ``{"source", "label"}`` where the view is built from it (every CRM-role view, and a file
    exported by a role other than officer), ``{"source"}`` alone where a policy set is configured
    but this view does not use it, None otherwise (the packaged set, not used)."""
    source = identity.dlp_policy or "packaged dlp_rules"
    if identity.role is AccessRole.CRM or (action == "export" and identity.role is not AccessRole.OFFICER):
        return {"source": source, "label": _policy_set(identity.dlp_policy).label}
    return {"source": source} if identity.dlp_policy is not None else None


@cache
def _policy_set(location: str | None) -> Any:
    from pipelines.dlp import load_policy_set

    if location is None:
        import dlp_rules

        location = str(Path(dlp_rules.__file__).parent)
    return load_policy_set(location)


def _not_a_file(path: Path) -> str:
    return "a folder, not a configuration file" if path.is_dir() else "no such file"
