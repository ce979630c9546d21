"""The vocabulary channel rules speak: what a state machine says should happen after an action.

Each channel module (``pipelines.simulate.channels.*``) holds a small state machine: a frozen
``State``, a ``Policy`` with the limits a firm can set, and pure functions ``action(state, now,
...) -> (state, effects)``. Effects say *what* happens, never *how* it is written down:

* :class:`Deliver` - the attempted message is archived, with attributes such as
  ``delivery=queued`` and ``queue_position=2``;
* :class:`Notify` - an auto-message to the employee, the customer or both;
* :class:`Happen` - an event record (an opt-in, a participant leaving, ...).

:mod:`pipelines.simulate.factory` turns effects into :class:`pipelines.record.Event` objects. Keeping
the rules free of I/O and randomness is what makes them testable on their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.record import Audience, EventType


class RuleError(ValueError):
    """An action the channel does not allow in this state (a bug in whoever attempted it)."""


@dataclass(frozen=True, slots=True)
class Deliver:
    """Archive the attempted message with these channel attributes."""

    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notify:
    """An auto-message. ``at`` is set for timer notices; otherwise it follows the action.
    ``attributes`` are the notice's own channel attributes (a hold notice names the held message
    in ``queued_event_id``, as its release does; a notice that a message was not sent names it in
    ``refused_event_id``)."""

    event_type: EventType
    audience: Audience
    context: Mapping[str, Any] = field(default_factory=dict)
    at: dt.datetime | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Happen:
    """An event record. ``actor`` is who caused it: an employee id, "customer", "bot" or "system"."""

    event_type: EventType
    actor: str = "system"
    attributes: Mapping[str, str] = field(default_factory=dict)
    at: dt.datetime | None = None


Effect = Deliver | Notify | Happen

DELIVERED = {"delivery": "delivered"}


def delivered(**extra: str) -> Deliver:
    return Deliver({**DELIVERED, **extra})


def require(ok: bool, message: str) -> None:
    if not ok:
        raise RuleError(message)
