"""MMS: picture (and short video) messages, usually with a short caption or none at all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from pipelines.simulate import text as texts
from pipelines.simulate.channels.base import Script
from pipelines.simulate.factory import Emitted
from pipelines.simulate.rules import DELIVERED


class MmsScript(Script):
    def session(self, at: dt.datetime) -> Iterator[Emitted]:
        first = "customer" if self.rng.random() < 0.6 else "employee"
        self.exchange(at, first, min(4, self.steps()), self.topic())
        return iter(())

    def say(self, at: dt.datetime, who: str, topic: str, opener: bool) -> Iterator[Emitted]:
        assert self.contact is not None
        rng = self.rng
        media = [texts.mms_media(rng) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
        if who == "customer":
            sender = self.contact.party(self.spec.channel)
            body = texts.caption(rng, "en") if rng.random() < 0.7 else self.customer_text(topic, opener)
        else:
            sender = self.speaker()
            body = (
                texts.caption(rng, "en") if rng.random() < 0.5 else self.employee_text(sender, topic, opener)
            )
        yield self.out.message(at, sender, body, attachments=media, attributes=dict(DELIVERED))
