"""What a search returns, whichever engine ran it.

Both engines produce :class:`Hit` objects from record fields (a Parquet row or an Elasticsearch
``_source``) through :func:`hit_from_row`, so a hit renders the same way whichever engine found it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import QueryError
from pipelines.record import from_micros
from pipelines.search import match
from pipelines.search.access import Identity, shown_text
from pipelines.search.query import Query

SORTS = ("-time", "time")
MAX_SIZE = 1000

#: Record fields a hit needs (besides the body columns, which depend on the role).
HIT_FIELDS = (
    "record_id",
    "conversation_id",
    "channel",
    "event_time",
    "kind",
    "event_type",
    "audience",
    "direction",
    "org",
    "sub_org",
    "sender",
    "dlp_action",
    "dlp_rule_ids",
    "dlp_findings",
    "blocked",
    "attributes",
)
TEXT_FIELDS = ("body", "body_redacted")
DELIVERY_OUTCOMES = ("delivered", "queued", "refused")


@dataclass(frozen=True)
class Page:
    number: int = 1
    size: int = 20
    sort: str = "-time"

    def __post_init__(self) -> None:
        if self.number < 1:
            raise QueryError(f"--page {self.number}: pages start at 1")
        if not 1 <= self.size <= MAX_SIZE:
            raise QueryError(f"--size {self.size}: give 1 to {MAX_SIZE} hits per page")
        if self.sort not in SORTS:
            raise QueryError(f"--sort {self.sort}: use -time (newest first) or time (oldest first)")

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def newest_first(self) -> bool:
        return self.sort == "-time"


@dataclass(frozen=True)
class Hit:
    record_id: str
    conversation_id: str
    channel: str
    event_time: dt.datetime
    kind: str
    event_type: str | None
    audience: str | None
    direction: str
    org: str
    sub_org: str | None
    sender: dict[str, Any]
    dlp_action: str | None
    dlp_rule_ids: tuple[str, ...]
    blocked: bool
    attributes: dict[str, str]
    text: str | None  # what the searching role may see
    withheld: bool  # a body exists that this role may not see
    redacted: str | None  # officers: the redacted view when it differs
    highlights: tuple[match.Span, ...] = ()
    dlp_shown: bool = True  # False for roles that may not see DLP verdicts (crm): left out below

    @property
    def delivery(self) -> str | None:
        """Whether the channel delivered the message, queued it or refused it (None: not recorded).
        Only those three words: the attribute is source text, shown whole to officers alone."""
        value = self.attributes.get("delivery")
        return value if value in DELIVERY_OUTCOMES else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "conversation_id": self.conversation_id,
            "channel": self.channel,
            "event_time": self.event_time.isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "event_type": self.event_type,
            "audience": self.audience,
            "direction": self.direction,
            "org": self.org,
            "sub_org": self.sub_org,
            "sender": {k: self.sender.get(k) for k in ("id", "name", "handle", "role")},
            "dlp_action": self.dlp_action,
            "dlp_rule_ids": list(self.dlp_rule_ids),
            "blocked": self.blocked,
            "delivery": self.delivery,
            "text": self.text,
            "text_withheld": self.withheld,
            "highlights": [list(s) for s in self.highlights],
        }
        if self.redacted is not None:
            out["redacted_text"] = self.redacted
        if not self.dlp_shown:
            for key in ("dlp_action", "dlp_rule_ids", "blocked"):
                del out[key]
        return out


@dataclass(frozen=True)
class SearchResult:
    query: Query
    page: Page
    total: int
    hits: list[Hit]
    engine: str
    took_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page.size))


def _time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    if isinstance(value, int):
        return from_micros(value)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC)


def _attributes(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return dict(value)  # Arrow maps read back as [(key, value), ...]


def hit_from_row(
    row: Mapping[str, Any],
    query: Query,
    identity: Identity,
    highlights: list[match.Span] | None = None,
) -> Hit:
    """A hit from record fields. ``highlights`` (spans in the shown text) come from the engine
    when it has them (Elasticsearch); otherwise they are found here."""
    shown = shown_text(row, identity)
    spans = highlights if highlights is not None else match.spans(query.text, shown.text)
    sender = row.get("sender") or {}
    return Hit(
        record_id=row["record_id"],
        conversation_id=row["conversation_id"],
        channel=row["channel"],
        event_time=_time(row["event_time"]),
        kind=row["kind"],
        event_type=row.get("event_type"),
        audience=row.get("audience"),
        direction=row["direction"],
        org=row["org"],
        sub_org=row.get("sub_org"),
        sender=dict(sender),
        dlp_action=row.get("dlp_action") if identity.sees_dlp else None,
        dlp_rule_ids=tuple(row.get("dlp_rule_ids") or ()) if identity.sees_dlp else (),
        blocked=bool(row.get("blocked")) and identity.sees_dlp,
        attributes=_attributes(row.get("attributes")),
        text=shown.text,
        withheld=shown.withheld,
        redacted=shown.redacted,
        highlights=tuple(spans),
        dlp_shown=identity.sees_dlp,
    )


def kind_label(kind: str, audience: str | None, event_type: str | None, delivery: str | None) -> str:
    """What a record is, in a few words ("auto-message to customer · opted in · queued"); the
    search table and the conversation view say it the same way."""
    if kind == "auto_message":
        label = f"auto-message to {audience or 'unknown audience'}"
    else:
        label = "event" if kind == "event" else "message"
    if event_type:
        label += f" · {event_type.replace('_', ' ')}"
    if delivery in ("queued", "refused"):
        label += f" · {delivery}"
    return label
