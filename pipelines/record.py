"""The archived record, defined once.

Every conversation artefact Vigil keeps (a message, an auto-message a channel rule sent, or an
event such as an opt-in or a participant leaving) is one :class:`Record`. The pydantic models in
this module are the single source of truth: the Parquet schema (:data:`ARROW_SCHEMA`), the
Elasticsearch mapping (``exporters.elasticsearch.mapping``) and the simulator all read from them.

Two layers:

* :class:`Event` is what a channel connector (or ``vigil simulate``) delivers: one JSON object per
  line. It carries no provenance; Vigil adds that on ingest.
* :class:`Record` is an :class:`Event` plus identity, provenance and the DLP verdict, as archived.

Inside Beam, records travel as plain ``dict`` rows (see :func:`record_to_row`) because dicts of
primitives are cheap to encode between stages; timestamps are integer microseconds since the epoch
(UTC) in rows, which is also what the Arrow timestamp columns store.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import types
import typing
import unicodedata
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from pipelines.invisible import INVISIBLE, visible

#: Bumped whenever a field is added, removed or changes meaning. Readers accept every version up to
#: this one (older files simply lack newer columns).
#: 1: first archive layout (identity, provenance, content).
#: 2: DLP verdict, findings, policy digest, blocked flag and the redacted view of the body.
SCHEMA_VERSION = 2

UTC = dt.UTC


class Channel(StrEnum):
    SMS = "sms"
    MMS = "mms"
    VOICEMAIL = "voicemail"
    WHATSAPP = "whatsapp"
    WECHAT = "wechat"
    LINE = "line"
    TEAMS = "teams"


class Kind(StrEnum):
    MESSAGE = "message"
    AUTO_MESSAGE = "auto_message"
    EVENT = "event"


class Direction(StrEnum):
    INBOUND = "inbound"  # from the customer to the firm
    OUTBOUND = "outbound"  # from an employee (or bot) to the customer
    INTERNAL = "internal"  # between employees
    SYSTEM = "system"  # produced by the platform or a channel rule


class Audience(StrEnum):
    EMPLOYEE = "employee"
    CUSTOMER = "customer"
    BOTH = "both"


class Role(StrEnum):
    EMPLOYEE = "employee"
    CUSTOMER = "customer"
    BOT = "bot"
    SYSTEM = "system"


class EventType(StrEnum):
    """What an auto-message or event is about. Plain messages have no event type."""

    # conversation life cycle
    CONVERSATION_STARTED = "conversation_started"  # contact followed/initiated, thread created
    WELCOME = "welcome"  # channel rules explained to a party at the start
    CONVERSATION_RESTARTED = "conversation_restarted"
    # consent (WhatsApp)
    OPT_IN_REQUESTED = "opt_in_requested"
    OPTED_IN = "opted_in"
    OPT_IN_REMINDER = "opt_in_reminder"
    CONSENT_REFUSED = "consent_refused"
    # the 24-hour window (WhatsApp) and templates
    TEMPLATE_SENT = "template_sent"
    WINDOW_EXPIRED = "window_expired"
    # WeChat pacing
    NO_REPLY_WARNING = "no_reply_warning"  # 24 h without a reply from the contact
    CHAT_INACTIVE = "chat_inactive"  # 48 h without a reply
    CONSECUTIVE_LIMIT_REACHED = "consecutive_limit_reached"
    ON_HOLD_NOTICE = "on_hold_notice"  # contact asked to reply so the employee may continue
    # queueing while a conversation is pending (opt-in or inactive)
    MESSAGE_QUEUED = "message_queued"
    QUEUE_FULL = "queue_full"  # pending limit reached, the message was not queued
    QUEUED_DELIVERED = "queued_delivered"
    # participants
    PARTICIPANT_ADDED = "participant_added"
    PARTICIPANT_REMOVED = "participant_removed"
    PARTICIPANTS_CHANGED_NOTICE = "participants_changed_notice"
    TRANSFERRED = "transferred"
    LEFT_CONVERSATION = "left_conversation"
    CUSTOMER_LEAVE = "customer_leave"  # the contact typed #LEAVE
    # chat-bot routing
    BOT_ROUTING_STARTED = "bot_routing_started"
    BOT_HANDED_OFF = "bot_handed_off"
    # phone validation (WeChat) and validated numbers (LINE)
    PHONE_VALIDATION_REQUESTED = "phone_validation_requested"
    PHONE_NUMBER_REJECTED = "phone_number_rejected"
    OTP_SENT = "otp_sent"
    OTP_FAILED = "otp_failed"
    PHONE_VALIDATED = "phone_validated"
    VALIDATION_FAILED = "validation_failed"  # tries exhausted
    VALIDATION_HELP = "validation_help"
    VALIDATED_PHONE_SHOWN = "validated_phone_shown"
    # voicemail
    VOICEMAIL_LEFT = "voicemail_left"
    # DLP (added by the pipeline, never by a channel)
    DLP_BLOCKED_NOTICE = "dlp_blocked_notice"


class DlpAction(StrEnum):
    """Strength order matters: the strongest action of all hitting rules wins."""

    NONE = "none"
    FLAG = "flag"
    REDACT = "redact"
    BLOCK = "block"

    @property
    def strength(self) -> int:
        return _ACTION_STRENGTH[self]


_ACTION_STRENGTH = {DlpAction.NONE: 0, DlpAction.FLAG: 1, DlpAction.REDACT: 2, DlpAction.BLOCK: 3}

# Hard limits, overridable per run. A body above this is dead-lettered, not truncated.
MAX_BODY_CHARS = 64 * 1024
#: The earliest event or receive time accepted: older is a broken clock or a unit mix-up.
EARLIEST_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
#: the UTC offsets time zones use: one outside them (``+23:59``) is a source's bug, not a zone
MIN_UTC_OFFSET, MAX_UTC_OFFSET = dt.timedelta(hours=-12), dt.timedelta(hours=14)
_CONTROL = frozenset(chr(c) for c in range(0x20))
MAX_PARTICIPANTS = 256
#: an attribute name's length at most (as an id's): Elasticsearch indexes a name with its value
MAX_ATTRIBUTE_NAME = 256
#: an attribute value's length at most: channel details (a validated phone, a queue position), never
#: a side channel for text larger than a body, which DLP would not see
MAX_ATTRIBUTE_VALUE = MAX_BODY_CHARS
MAX_ATTACHMENTS = 32
MAX_INT64 = 2**63 - 1  # the archive's integer columns are int64
#: a number, as text (the digits before and after a point are never two ways to split one run of
#: digits: ``\d+\.?\d*`` made a long run that is not a number take quadratic time to refuse)
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: more than six fractional digits (Teams and other .NET sources send 100 ns ticks)
_FINER_THAN_MICROS = re.compile(r"[.,]\d{6}\d*[1-9]")
#: hour 24 (ISO 8601's "end of the day"), which pydantic refuses with a misleading message
_HOUR_24 = re.compile(r"^\s*\d{4}-\d{2}-\d{2}[Tt ]24:")
#: a leap second (RFC 3339 allows second 60): held as the last microsecond of the minute before
_LEAP_SECOND = re.compile(r"([Tt ]\d{2}:\d{2}):60(?:[.,]\d+)?(?=Z|z|[+-]\d{2}(?::?\d{2})?$|$)")


def _at_utc_minute_end(value: str, leap: re.Match[str]) -> bool:
    """Whether the minute a second 60 ends is 23:59 UTC, the only minute a leap second is added to
    (a time that cannot be read is left for the field's own check to name)."""
    text = value[: leap.start()] + "T" + leap.group(1)[1:] + ":59" + value[leap.end() :]
    try:
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return True
    if moment.tzinfo is None:
        return True
    try:
        utc = moment.astimezone(dt.UTC)
    except OverflowError:  # past year 9999 (or before year 1) in UTC: the field's check says so
        return True
    return (utc.hour, utc.minute) == (23, 59)


def es(**mapping: Any) -> dict[str, Any]:
    """Elasticsearch mapping override for a field (read by ``exporters.elasticsearch.mapping``)."""
    return {"es": mapping}


#: The analyzer of the text fields' CJK sub-field: Elasticsearch's ``cjk`` (bigrams) with the
#: iteration marks read as the Han character they repeat, defined in the index settings
#: (``exporters.elasticsearch.mapping.ANALYSIS``).
CJK_ANALYZER = "vigil_cjk"

# Text fields get the stock ``standard`` analyzer plus a CJK sub-field (bigrams).
TEXT_ES = es(
    type="text",
    analyzer="standard",
    fields={
        "cjk": {"type": "text", "analyzer": CJK_ANALYZER},
        "raw": {"type": "keyword", "ignore_above": 256},
    },
)

# Organisation ids are searched ignoring case (``org:ACME`` finds ``acme``, ``org:société`` finds
# ``SOCIÉTÉ``): a lower-cased sub-field, because ``case_insensitive`` on a term is ASCII-only.
FOLDED_ES = es(type="keyword", fields={"folded": {"type": "keyword", "normalizer": "lowercase"}})


def is_plain_id(value: str) -> bool:
    """Whether ``value`` passes :func:`_plain_id` (for code that only needs to know)."""
    try:
        _plain_id(value)
    except ValueError:
        return False
    return True


def _plain_id(value: str | None, what: str = "ids") -> str | None:
    """``value`` if it reads as one id only: none of the characters that would make a second id
    look like the first, which a search for the visible one never finds. For the event's ids,
    its conversation and thread ids, and a party's id and handle (``what`` says which in the
    error)."""
    if value is None:
        return None
    if value.isascii() and value.isprintable() and value[:1] != " " and value[-1:] != " ":
        return value  # what almost every id is: none of the checks below can fail on it
    # ids are joined into the record id; a control character could make two ids collide
    if not _CONTROL.isdisjoint(value):
        raise ValueError(f"control characters (U+0000 to U+001F) are not allowed in {what}")
    # and an invisible one would make a second tenant or event that looks like the first
    # ("meridian" + U+200B), which a search for the visible name never finds
    if hidden := next((ch for ch in value if ch in INVISIBLE), None):
        raise ValueError(
            f"invisible characters (U+{ord(hidden):04X}: zero-width, bidi, blank and other "
            f"format characters) are not allowed in {what}"
        )
    # likewise white space that is not a plain space, or a space at either end ("meridian "),
    # and a name spelled with combining marks where it has composed letters (e + U+0301 for é);
    # a plain space inside stays ("+1 212 555 0101")
    if odd := next((ch for ch in value if ch.isspace() and ch != " "), None):
        raise ValueError(
            f"white space other than a plain space (U+{ord(odd):04X}) is not allowed in {what}: "
            "it would make a second id that looks like the first"
        )
    if value != value.strip(" "):
        raise ValueError(
            f"spaces at the start or end are not allowed in {what}: it would make a second id "
            "that looks like the first; remove them"
        )
    # characters no keyboard gives and no font agrees on: private use, the object replacement
    # character, noncharacters; and a combining mark with nothing to combine with
    if odd := next((ch for ch in value if _unshowable_in_id(ch)), None):
        raise ValueError(
            f"U+{ord(odd):04X} ({unicodedata.name(odd, 'private use or noncharacter')}) is not allowed "
            f"in {what}: it shows as nothing, a box or a placeholder, so two ids could look alike"
        )
    if value and unicodedata.category(value[0]).startswith("M"):
        raise ValueError(
            f"{what} may not start with a combining mark (U+{ord(value[0]):04X}): it has nothing "
            "to combine with and shows on whatever is printed before it"
        )
    if not unicodedata.is_normalized("NFC", value):
        raise ValueError(
            f"{what} must be in composed Unicode form (NFC): 'e' followed by U+0301 looks like 'é' "
            "but is another id; normalise it to NFC before sending"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)


class Party(_Strict):
    """Someone in a conversation: an employee, a customer (contact), a bot or the system."""

    id: str = Field(min_length=1, max_length=256, description="Stable id of the party within the org.")
    name: str | None = Field(None, max_length=256, description="Display name at the time of the event.")
    role: Role = Field(description="employee, customer, bot or system.")
    handle: str | None = Field(
        None, max_length=256, description="Phone number (E.164) or channel handle (WeChat openid, LINE id)."
    )
    groups: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list, description="Employee groups (desks, teams); DLP rules can be scoped to them."
    )

    @field_validator("id", "handle")
    @classmethod
    def _plain_id_or_handle(cls, value: str | None, info: ValidationInfo) -> str | None:
        # participant search looks parties up by id and handle: "c1" + U+200B would never be found.
        # Not the display name: a zero-width joiner belongs in emoji and in Persian or Indic names
        return _plain_id(value, "handles" if info.field_name == "handle" else "ids")


class Attachment(_Strict):
    """A file sent with a message. The bytes live elsewhere; the archive keeps their hash."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the attachment bytes.")
    media_type: str = Field(min_length=3, max_length=128, description="MIME type, e.g. image/jpeg.")
    size: int = Field(ge=0, le=MAX_INT64, strict=True, description="Size in bytes.")
    uri: str = Field(min_length=1, max_length=2048, description="Where the bytes are kept.")
    name: str | None = Field(None, max_length=512, description="Original file name, if any.")


class Finding(_Strict):
    """One DLP detection. Offsets refer to the original body; the matched value is never stored."""

    rule_id: str = Field(json_schema_extra=es(type="keyword"))
    entity: str = Field(json_schema_extra=es(type="keyword"))
    detector: str = Field(json_schema_extra=es(type="keyword"))
    start: Annotated[int, "int32"] = Field(ge=0)
    end: Annotated[int, "int32"] = Field(ge=0)
    score: Annotated[float, "float32"] = Field(ge=0, le=1)
    action: DlpAction = Field(json_schema_extra=es(type="keyword"))


class Event(_Strict):
    """One event as a channel delivers it (one JSON object per line in an input file)."""

    event_id: str = Field(
        min_length=1,
        max_length=256,
        description="Id the source gave the event; with org and channel it makes the record id.",
    )
    org: str = Field(
        min_length=1, max_length=128, description="Tenant / organisation.", json_schema_extra=FOLDED_ES
    )
    sub_org: str | None = Field(
        None, max_length=128, description="Sub-organisation (desk, region).", json_schema_extra=FOLDED_ES
    )
    channel: Channel = Field(description="sms, mms, voicemail, whatsapp, wechat, line or teams.")
    kind: Kind = Field(description="message, auto_message or event.")
    event_type: EventType | None = Field(
        None, description="What an auto-message or event is about; empty for plain messages."
    )
    audience: Audience | None = Field(
        None, description="Who an auto-message was shown to: employee, customer or both."
    )
    direction: Direction
    event_time: dt.datetime = Field(description="When it happened, per the source (timezone required).")
    received_time: dt.datetime = Field(description="When the connector received it (timezone required).")
    conversation_id: str = Field(min_length=1, max_length=256)
    thread_id: str = Field(
        min_length=1, max_length=256, description="A user can have several threads with one contact."
    )
    is_group: bool = Field(False, strict=True)
    participants: list[Party] = Field(
        default_factory=list, max_length=MAX_PARTICIPANTS, description="Who was present at this moment."
    )
    sender: Party
    recipients: list[Party] = Field(default_factory=list, max_length=MAX_PARTICIPANTS)
    body: str | None = Field(
        None, description="Message text (voicemail: transcript).", json_schema_extra=TEXT_ES
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    template_id: str | None = Field(None, max_length=256, description="Approved template used, if any.")
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Channel specifics as strings (validated phone, queue position, bot intent, ...).",
        # a term over 32,766 bytes is refused by Lucene: longer values stay in _source, unindexed
        json_schema_extra=es(type="flattened", ignore_above=8191),
    )

    @field_validator("event_id", "org", "sub_org", "conversation_id", "thread_id")
    @classmethod
    def _no_control_characters(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "" and info.field_name == "sub_org":
            # "" would be a sub-organisation no policy scope or search filter names: not "none"
            raise ValueError("sub_org is empty: leave it out (or null) when there is no sub-organisation")
        return _plain_id(value)

    @model_validator(mode="before")
    @classmethod
    def _keep_finer_times(cls, data: Any) -> Any:
        # timestamps are held to the microsecond; when the source wrote finer, its exact text goes
        # into attributes (source_event_time, source_received_time) rather than being dropped
        if not isinstance(data, dict):
            return data
        exact: dict[str, str] = {}
        for name in ("event_time", "received_time"):
            value = data.get(name)
            if not isinstance(value, str):
                continue
            leap = _LEAP_SECOND.search(value)
            if leap and not _at_utc_minute_end(value, leap):
                continue  # not a leap second: the field's check refuses it, naming why
            if leap or _FINER_THAN_MICROS.search(value):
                exact[f"source_{name}"] = value
            if leap:  # 23:59:60Z is held as 23:59:59.999999Z: in order, and the text kept
                data = {
                    **data,
                    name: value[: leap.start()] + leap.group(1) + ":59.999999" + value[leap.end() :],
                }
        if exact and isinstance(attributes := data.get("attributes", {}), dict):
            data = {**data, "attributes": {**exact, **attributes}}  # a source's own key is kept as sent
        return data

    @field_validator("event_time", "received_time", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        # pydantic would read a number, or a number written as text, as seconds or milliseconds
        # since 1970 by guessing from its size; a source that sends one is misconfigured
        if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
            raise ValueError("timestamp must be ISO 8601 text with a timezone, not a number")
        if isinstance(value, str) and _HOUR_24.search(value):
            raise ValueError(
                "hour 24 is not a time of day here; write 00:00 of the next day (24:00 of a day is "
                "00:00 of the next)"
            )
        if isinstance(value, str) and _LEAP_SECOND.search(value):
            raise ValueError(
                "second 60 is a leap second, which is only ever added at 23:59:60 UTC, and this time "
                "is not that minute; check the source's clock or its time zone"
            )
        return value

    @field_validator("event_time", "received_time")
    @classmethod
    def _aware_utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp needs a timezone, e.g. 2026-01-05T09:30:00Z")
        offset = value.utcoffset()
        if offset is not None and not MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET:
            shown = value.isoformat()[19:].lstrip(".0123456789")
            raise ValueError(
                f"UTC offset {shown} is not one any time zone uses (they run from -12:00 to "
                "+14:00), so the moment it names is uncertain; check the source's time zone setting"
            )
        if value < EARLIEST_TIME:
            raise ValueError(f"timestamp is before {EARLIEST_TIME:%Y-%m-%d}; check the source's clock")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("timestamp is out of range (after year 9999 in UTC)") from None

    @field_validator("attributes")
    @classmethod
    def _storable_names(cls, value: dict[str, str]) -> dict[str, str]:
        # values are checked by the string type; names are dict keys, which pydantic passes as is
        for name in value:
            if not name.isascii() and _SURROGATE.search(name):
                raise ValueError(f"attribute name {name[:64]!r} holds an unpaired surrogate")
            # Elasticsearch stores a flattened field as name, NUL, value, refusing a NUL in a name
            # and a name that leaves the value no room: the record would never be searchable there
            if len(name) > MAX_ATTRIBUTE_NAME:
                raise ValueError(
                    f"attribute name {name[:64]!r}... has {len(name)} characters, the limit is "
                    f"{MAX_ATTRIBUTE_NAME}"
                )
            if not _CONTROL.isdisjoint(name):
                raise ValueError(f"attribute name {name[:64]!r} holds a control character")
            if len(value[name]) > MAX_ATTRIBUTE_VALUE:
                raise ValueError(
                    f"attribute {name[:64]!r} holds {len(value[name]):,} characters, the limit is "
                    f"{MAX_ATTRIBUTE_VALUE:,}: attributes are channel details, not text (DLP does not "
                    "scan them); send message text as the body"
                )
        # kept in name order: a JSON object's key order carries no meaning, so a re-delivery whose
        # connector wrote the same attributes in another order is the same content (and hash)
        return dict(sorted(value.items()))

    @field_validator("body")
    @classmethod
    def _body_size(cls, value: str | None, info: ValidationInfo) -> str | None:
        limit = (info.context or {}).get("max_body_chars", MAX_BODY_CHARS)
        if value is not None and len(value) > limit:
            raise ValueError(f"body has {len(value)} characters, the limit is {limit}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Event:
        # an auto-message is text the system sent someone: with nothing to read it is as empty
        # as a message (an event, such as a participant added, may have no text at all)
        text = bool(self.body and visible(self.body))
        if self.kind in (Kind.MESSAGE, Kind.AUTO_MESSAGE) and not text and not self.attachments:
            hidden = len(self.body or "")
            shown = f" (its body holds only {hidden} blank or invisible character(s))" if hidden else ""
            raise ValueError(f"empty message: {self.kind} with no body text and no attachments{shown}")
        if self.kind == Kind.MESSAGE:
            if self.event_type is not None:
                raise ValueError("a plain message has no event_type; use kind auto_message or event")
        else:
            if self.event_type is None:
                raise ValueError(f"kind {self.kind} needs an event_type")
        if self.kind == Kind.AUTO_MESSAGE and self.audience is None:
            raise ValueError("an auto_message needs an audience: employee, customer or both")
        return self


class Record(Event):
    """An :class:`Event` as archived: identity, provenance and DLP verdict added."""

    record_id: str = Field(description="Stable id derived from org, channel and event_id.")
    schema_version: Annotated[int, "int16"] = SCHEMA_VERSION
    source_name: str = Field(description="File (or stream) the event was read from.")
    source_offset: int = Field(ge=0, description="Byte offset of the event's line in its source.")
    ingest_time: dt.datetime = Field(description="When Vigil archived it.")
    content_sha256: str = Field(
        description="SHA-256 of the event content, used to tell re-deliveries from conflicts.",
        # not indexed: a hash over the original body would let anyone who can read the index but
        # not the body test a guess at a redacted value offline
        json_schema_extra=es(omit=True),
    )
    parties: list[str] = Field(
        default_factory=list,
        description="Everyone on the record (sender, recipients, participants) as search keys: ids, "
        "handles and names, lower-cased, phone numbers compacted (see party_key). Derived, so that "
        "participant search reads one flat column instead of three nested ones.",
    )
    # DLP verdict (schema 2). The original body stays in ``body``; findings never repeat the values.
    dlp_action: DlpAction = Field(
        DlpAction.NONE,
        description="Strongest action of all rules that hit.",
        json_schema_extra=es(type="keyword"),
    )
    dlp_rule_ids: list[str] = Field(default_factory=list, description="Rules that hit, sorted.")
    dlp_findings: list[Finding] = Field(
        default_factory=list,
        description="What was found where (offsets into the original body), by which rule.",
        json_schema_extra=es(type="nested"),
    )
    dlp_policy: str | None = Field(None, description="Policy set id and digest that produced the verdict.")
    blocked: bool = Field(False, description="DLP blocked it: never delivered to its recipients.")
    body_redacted: str | None = Field(
        None,
        description="The body as redacted views show it (equal to body when nothing was redacted).",
        json_schema_extra=TEXT_ES,
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_parties(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("parties") and data.get("sender") is not None:
            as_dict = {
                key: _plain(data.get(key)) for key in ("sender", "recipients", "participants") if key in data
            }
            data = {**data, "parties": parties_of(as_dict)}
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class DeadLetterStage(StrEnum):
    INGEST = "ingest"  # the event could not be read or validated
    DEDUP = "dedup"  # same record id as an archived record but different content
    DLP = "dlp"  # the policy engine failed on this record
    INDEX = "index"  # Elasticsearch refused the document after retries


class DeadLetter(_Strict):
    """Something Vigil could not archive or index, kept with its raw bytes and the reason."""

    dead_letter_id: str = Field(description="Stable id: the same bad input always gets the same id.")
    stage: DeadLetterStage
    reason_code: str = Field(description="Short machine-readable reason, e.g. malformed_json.")
    reason: str = Field(description="What is wrong and what to do about it.")
    source_name: str
    source_offset: int = Field(ge=0)
    record_id: str | None = Field(None, description="Set when the event got far enough to have one.")
    raw: bytes = Field(description="The payload as received (capped; see raw_size and raw_sha256).")
    raw_size: int = Field(ge=0, description="Size of the whole payload in bytes.")
    raw_sha256: str = Field(description="SHA-256 of the whole payload.")
    dead_letter_time: dt.datetime


def no_verdict(body: str | None) -> dict[str, Any]:
    """DLP fields of a record no policy has looked at (or that nothing matched)."""
    return {
        "dlp_action": DlpAction.NONE.value,
        "dlp_rule_ids": [],
        "dlp_findings": [],
        "dlp_policy": None,
        "blocked": False,
        "body_redacted": body,
    }


# ---------------------------------------------------------------------------------------------
# identity


def record_id_for(org: str, channel: str, event_id: str, *, origin: str | None = None) -> str:
    """The record id: the same source event always gets the same id, across runs and machines.
    Records Vigil makes itself (``origin``, e.g. its DLP notices) get ids in their own space: ids
    cannot hold control characters, so no input event can take one, whatever its ``event_id``."""
    key = f"{org}\x1f{channel}\x1f{event_id}" + (f"\x1f{origin}" if origin else "")
    return hashlib.sha256(key.encode()).hexdigest()[:32]


#: The fields the content hash covered when it was defined (schema 2), by model. A field added to
#: one of these models later is hashed only while it holds something other than its default, so
#: the same input keeps its hash and a re-delivery of an event archived before the field existed
#: is still a duplicate, not a conflict. Never edit these sets: hashes in archives depend on them.
HASHED_FIELDS: dict[type[BaseModel], frozenset[str]] = {
    Event: frozenset(
        {
            *("event_id", "org", "sub_org", "channel", "kind", "event_type", "audience", "direction"),
            *("event_time", "received_time", "conversation_id", "thread_id", "is_group"),
            *("participants", "sender", "recipients", "body", "attachments", "template_id", "attributes"),
        }
    ),
    Party: frozenset({"id", "name", "role", "handle", "groups"}),
    Attachment: frozenset({"sha256", "media_type", "size", "uri", "name"}),
}
#: what the hash never covers: when the connector happened to receive the event (also the exact
#: text of a finer-than-microsecond receive time kept in attributes)
_NOT_HASHED: dict[str, Any] = {"received_time": True, "attributes": {"source_received_time": True}}


@functools.cache
def _added_since_hashed(model: type[BaseModel]) -> frozenset[str]:
    hashed = next((fields for cls, fields in HASHED_FIELDS.items() if issubclass(model, cls)), None)
    return frozenset() if hashed is None else frozenset(model.model_fields) - hashed


def _at_defaults(model: BaseModel) -> dict[Any, Any]:
    """The pydantic ``exclude`` of ``model``'s fields added since :data:`HASHED_FIELDS` that hold
    their default, through the models it holds."""
    exclude: dict[Any, Any] = {}
    added = _added_since_hashed(type(model))
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if name in added:
            if value == info.get_default(call_default_factory=True):
                exclude[name] = True
        elif isinstance(value, BaseModel):
            if inner := _at_defaults(value):
                exclude[name] = inner
        elif isinstance(value, list):
            items = {
                i: inner
                for i, v in enumerate(value)
                if isinstance(v, BaseModel) and (inner := _at_defaults(v))
            }
            if items:
                exclude[name] = items
    return exclude


def content_sha256(event: Event) -> str:
    """Hash of what the event says. Excludes when the connector happened to receive it, so a
    re-delivery of the same event is a duplicate while a different event under the same id is a
    conflict; and fields added since the hash was defined while they hold their default
    (:data:`HASHED_FIELDS`)."""
    exclude: dict[Any, Any] = _NOT_HASHED
    if any(_added_since_hashed(model) for model in (type(event), Party, Attachment)):
        exclude = {**_at_defaults(event), **_NOT_HASHED}
    payload = event.model_dump_json(exclude=exclude)
    return hashlib.sha256(payload.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Arrow schema, derived from the models


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def arrow_type(annotation: Any) -> pa.DataType:
    """Arrow type for a model field annotation."""
    annotation, _ = _unwrap_optional(annotation)
    if get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        narrowed = [_WIDTHS[m] for m in meta if isinstance(m, str) and m in _WIDTHS]
        return narrowed[0] if narrowed else arrow_type(base)
    origin = get_origin(annotation)
    if origin is list:
        (item,) = get_args(annotation)
        return pa.list_(arrow_type(item))
    if origin is dict:
        key, value = get_args(annotation)
        return pa.map_(arrow_type(key), arrow_type(value))
    if origin is Literal:
        return pa.string()
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return pa.struct([arrow_field(n, f) for n, f in annotation.model_fields.items()])
        if issubclass(annotation, StrEnum | str):
            return pa.string()
        if issubclass(annotation, bytes):
            return pa.binary()
        if issubclass(annotation, bool):
            return pa.bool_()
        if issubclass(annotation, int):
            return pa.int64()
        if issubclass(annotation, float):
            return pa.float64()
        if issubclass(annotation, dt.datetime):
            return pa.timestamp("us", tz="UTC")
        if issubclass(annotation, dt.date):
            return pa.date32()
    raise TypeError(f"no Arrow type for annotation {annotation!r}")


_WIDTHS = {"int16": pa.int16(), "int32": pa.int32(), "float32": pa.float32()}


def arrow_field(name: str, info: Any) -> pa.Field:
    """Arrow field for a pydantic field; ``Annotated[int, "int32"]`` narrows the stored width."""
    _, optional = _unwrap_optional(info.annotation)
    narrowed = [_WIDTHS[m] for m in info.metadata if isinstance(m, str) and m in _WIDTHS]
    kind = narrowed[0] if narrowed else arrow_type(info.annotation)
    description = info.description or ""
    metadata = {"description": description} if description else None
    return pa.field(name, kind, nullable=optional, metadata=metadata)


def _arrow_schema(model: type[BaseModel]) -> pa.Schema:
    # identity first so a human reading a file with parquet-tools sees the id before the payload
    names = list(model.model_fields)
    first = ["record_id", "schema_version"]
    ordered = first + [n for n in names if n not in first]
    return pa.schema(
        [arrow_field(n, model.model_fields[n]) for n in ordered],
        metadata={"vigil.schema_version": str(SCHEMA_VERSION), "vigil.record": model.__name__},
    )


ARROW_SCHEMA: pa.Schema = _arrow_schema(Record)
DEAD_LETTER_SCHEMA: pa.Schema = pa.schema(
    [arrow_field(n, f) for n, f in DeadLetter.model_fields.items()],
    metadata={"vigil.schema_version": str(SCHEMA_VERSION), "vigil.record": "DeadLetter"},
)
TIMESTAMP_FIELDS: tuple[str, ...] = tuple(f.name for f in ARROW_SCHEMA if pa.types.is_timestamp(f.type))


# ---------------------------------------------------------------------------------------------
# rows: the dict form records take inside Beam and in Arrow


def to_micros(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=value)


def record_to_row(record: Record) -> dict[str, Any]:
    row = record.model_dump(mode="python")
    for name in TIMESTAMP_FIELDS:
        row[name] = to_micros(row[name])
    return row


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Arrow table in the archive schema, for a batch of rows."""
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


def event_month(row: dict[str, Any]) -> str:
    """Archive partition of a row: the UTC month of its event time, ``YYYY-MM``."""
    return _month_of_day(row["event_time"] // _MICROS_PER_DAY)


_MICROS_PER_DAY = 86_400 * 1_000_000


def _unshowable_in_id(ch: str) -> bool:
    code = ord(ch)
    return (
        unicodedata.category(ch) == "Co"  # private use
        or ch in "\ufffc\ufffd"  # object replacement, replacement character
        or 0xFDD0 <= code <= 0xFDEF
        or (code & 0xFFFE) == 0xFFFE
    )


@functools.lru_cache(maxsize=4096)  # called for every row; a run covers a few days or months
def _month_of_day(day: int) -> str:
    """``YYYY-MM`` of the UTC day ``day`` days after 1970-01-01 (negative: before)."""
    when = from_micros(day * _MICROS_PER_DAY)
    return f"{when.year:04d}-{when.month:02d}"  # strftime drops the leading zeros of years < 1000


_PHONE_PUNCTUATION = str.maketrans("", "", " -().")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


@functools.lru_cache(maxsize=1 << 16)  # the same people appear on record after record
def party_key(value: str) -> str:
    """How a party id, handle or name is compared in participant search: lower-cased, runs of
    spaces collapsed to one (and none kept between two CJK characters), and a phone number written
    with spaces, dashes, dots or brackets in its compact E.164-like form.

    Lower case is Python's, but for ``İ``, which is ``i`` (``İLKER`` = ``ilker``), as for
    Elasticsearch's ``lowercase`` filter: Python's full mapping makes it ``i`` and a combining dot
    (U+0307), which nobody types. Keys archived before this hold that dot
    (:func:`pipelines.search.query.participant_keys` still finds them). The word-final ``ς`` that
    Python gives an upper-case ``Σ`` is kept (``ΝΙΚΟΣ`` = ``νικος``, as Greek is typed), which a
    character-by-character lower case (``νικοσ``) would lose."""
    compact = value.translate(_PHONE_PUNCTUATION)
    if len(compact) >= 6 and compact.lstrip("+").isdigit():
        return compact
    # one space between words; none between two CJK characters (佐藤 大輔 and 佐藤大輔 are one name)
    return _CJK_GAP.sub("", " ".join(value.split())).replace("\u0130", "i").lower()


def parties_of(row: dict[str, Any]) -> list[str]:
    """The ``parties`` search keys of a row (or event dict): every id, handle and name on it."""
    keys: set[str] = set()
    for party in [row["sender"], *(row.get("recipients") or ()), *(row.get("participants") or ())]:
        for value in (party.get("id"), party.get("handle"), party.get("name")):
            if value:
                keys.add(party_key(value))
    return sorted(keys)
