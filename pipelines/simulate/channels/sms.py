"""SMS: plain text between an employee's business number and a contact's mobile.

No platform rules beyond delivery: either side may start, bodies are text only (pictures go by MMS).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import ClassVar

from pipelines.record import Channel
from pipelines.simulate.channels.base import Script
from pipelines.simulate.factory import Emitted
from pipelines.simulate.rules import DELIVERED


class SmsScript(Script):
    channel = Channel.SMS
    #: extra attributes on every message (the Teams app reuses this script)
    extra: ClassVar[Mapping[str, str]] = {}

    def session(self, at: dt.datetime) -> Iterator[Emitted]:
        first = "employee" if self.rng.random() < 0.55 else "customer"
        self.exchange(at, first, self.steps(), self.topic())
        return iter(())

    def say(self, at: dt.datetime, who: str, topic: str, opener: bool) -> Iterator[Emitted]:
        assert self.contact is not None
        attributes = {**DELIVERED, **self.extra}
        if who == "customer":
            body = self.customer_text(topic, opener)
            yield self.out.message(at, self.contact.party(self.spec.channel), body, attributes=attributes)
        else:
            sender = self.speaker()
            yield self.out.message(
                at, sender, self.employee_text(sender, topic, opener), attributes=attributes
            )
