"""The content hash that tells a re-delivery (duplicate) from a different event under the same
id (conflict). Archives hold these hashes, so they must not move: not when pydantic's output
changes, not when a later Vigil adds a field to the event."""

from __future__ import annotations

import hashlib

from factories import event

from pipelines.record import HASHED_FIELDS, Attachment, Event, Party, content_sha256

#: the hash of ``factories.event(0)`` as archives written since schema 2 hold it
PINNED = "10b86fa8786ce90a5d1a76e2a83d83df3d9e4dcb09479cf8b4e5bcb6ab55654a"


def test_the_hash_of_an_event_is_what_archives_already_hold() -> None:
    assert content_sha256(Event.model_validate(event(0))) == PINNED
    # ... which is the event as pydantic writes it, receive time left out
    payload = Event.model_validate(event(0)).model_dump_json(
        exclude={"received_time": True, "attributes": {"source_received_time": True}}
    )
    assert hashlib.sha256(payload.encode()).hexdigest() == PINNED


def test_every_field_the_hash_was_defined_with_is_still_there() -> None:
    # a field removed or renamed would change every archived hash. A field ADDED to a model must
    # not be added to HASHED_FIELDS: it is hashed only once it holds a value (see below)
    for model in (Event, Party, Attachment):
        assert HASHED_FIELDS[model] <= frozenset(model.model_fields), model.__name__


class LaterParty(Party):
    email: str | None = None


class LaterEvent(Event):
    """The event as a later Vigil might define it: a field of its own and one on every party."""

    retention_class: str | None = None
    sender: LaterParty
    participants: list[LaterParty]


def test_a_field_added_later_leaves_the_hash_alone_while_it_holds_its_default() -> None:
    data = event(0, attributes={"b": "2", "a": "1"})
    before = content_sha256(Event.model_validate(data))
    assert content_sha256(LaterEvent.model_validate(data)) == before
    # once it says something, it is part of what the event says
    assert content_sha256(LaterEvent.model_validate({**data, "retention_class": "7y"})) != before
    told = {**data, "sender": {**data["sender"], "email": "dana@example.com"}}
    assert content_sha256(LaterEvent.model_validate(told)) != before
    listed = {
        **data,
        "participants": [*data["participants"][:-1], {**data["participants"][-1], "email": "x@y.z"}],
    }
    assert content_sha256(LaterEvent.model_validate(listed)) != before


def test_what_the_event_says_is_hashed_and_when_it_was_received_is_not() -> None:
    base = content_sha256(Event.model_validate(event(0)))
    assert content_sha256(Event.model_validate(event(0, body="something else"))) != base
    later = event(0, received_time="2026-01-05T09:30:00Z")
    assert content_sha256(Event.model_validate(later)) == base
