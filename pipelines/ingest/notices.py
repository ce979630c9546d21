"""Auto-messages the pipeline itself sends: today, telling an employee why DLP blocked a message.

The notice is an archived record like any other (kind ``auto_message``, event type
``dlp_blocked_notice``, audience ``employee``), so a conversation read back later shows the block
and what the employee was told. Its event id derives from the blocked event's, so re-running the same
input makes the same notice, which de-duplication then recognises.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pipelines import automessages
from pipelines.record import (
    SCHEMA_VERSION,
    Audience,
    Direction,
    Event,
    EventType,
    Kind,
    Role,
    content_sha256,
    from_micros,
    no_verdict,
    parties_of,
    record_id_for,
    to_micros,
)

SOURCE = "vigil:dlp-notice"
SUFFIX = ":dlp-notice"
#: the longest event id the record model takes (a notice's id must fit too)
EVENT_ID_MAX = next(m.max_length for m in Event.model_fields["event_id"].metadata if hasattr(m, "max_length"))
SYSTEM: dict[str, Any] = {
    "id": "vigil-dlp",
    "name": "Compliance (automatic)",
    "role": Role.SYSTEM.value,
    "handle": None,
    "groups": [],
}


def needs_notice(row: dict[str, Any]) -> bool:
    """Blocked messages an employee wrote, to a customer (outbound) or to colleagues (internal), get
    a notice: otherwise the writer would believe it arrived. A customer's blocked message (inbound)
    gets none: the firm does not tell a customer what its policies look for."""
    return (
        row["kind"] == Kind.MESSAGE.value
        and row["direction"] in (Direction.OUTBOUND.value, Direction.INTERNAL.value)
        and (row.get("sender") or {}).get("role") == Role.EMPLOYEE.value
    )


def notice_event_id(event_id: str) -> str:
    """The notice's event id: the blocked event's id and :data:`SUFFIX`. An id too long to take the
    suffix (event ids may have 256 characters) keeps its start and a digest of the whole id, so the
    same blocked event always gives the same notice id and two long ids never share one."""
    candidate = f"{event_id}{SUFFIX}"
    if len(candidate) <= EVENT_ID_MAX:
        return candidate
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    return f"{event_id[: EVENT_ID_MAX - len(digest) - len(SUFFIX) - 1]}~{digest}{SUFFIX}"


def notice_time(event_time_us: int) -> dt.datetime:
    """When the notice is stamped: one microsecond after the blocked attempt, or at the same instant
    when that would pass the last microsecond of year 9999 (a record may be stamped then). At one
    instant the message still comes first: a conversation orders a message before the auto-messages
    and events of the same instant (``pipelines.search.conversation.ORDER``)."""
    when = from_micros(event_time_us)
    try:
        return when + dt.timedelta(microseconds=1)  # right after the attempt
    except OverflowError:
        return when


def blocked_notice(
    row: dict[str, Any], *, rule_ids: list[str], reason: str | None, now_us: int
) -> dict[str, Any]:
    """The notice row for blocked ``row`` (archive row format)."""
    text = automessages.render(
        EventType.DLP_BLOCKED_NOTICE.value,
        Audience.EMPLOYEE.value,
        channel=row["channel"],
        rule_ids=rule_ids,
        reason=reason or "",
    ).strip()
    when = notice_time(row["event_time"])
    event = Event.model_validate(
        {
            "event_id": notice_event_id(row["event_id"]),
            "org": row["org"],
            "sub_org": row.get("sub_org"),
            "channel": row["channel"],
            "kind": Kind.AUTO_MESSAGE,
            "event_type": EventType.DLP_BLOCKED_NOTICE,
            "audience": Audience.EMPLOYEE,
            "direction": Direction.SYSTEM,
            "event_time": when,
            "received_time": when,
            "conversation_id": row["conversation_id"],
            "thread_id": row["thread_id"],
            "is_group": row.get("is_group", False),
            "participants": row.get("participants") or [],
            "sender": SYSTEM,
            "recipients": [row["sender"]],
            "body": text,
            "attributes": {"blocked_record_id": row["record_id"], "rule_ids": ",".join(rule_ids)},
        }
    )
    notice = event.model_dump(mode="python")
    notice.update(
        event_time=to_micros(event.event_time),
        received_time=to_micros(event.received_time),
        record_id=record_id_for(event.org, event.channel, event.event_id, origin=SOURCE),
        schema_version=SCHEMA_VERSION,
        ingest_time=now_us,
        source_name=SOURCE,
        source_offset=row["source_offset"],
        content_sha256=content_sha256(event),
        **no_verdict(text),
    )
    notice["parties"] = parties_of(notice)
    return notice
