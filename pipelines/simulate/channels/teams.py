"""Teams: messages employees send from the Teams messaging app, and internal chats.

Two kinds of conversation carry ``channel=teams``:

* ``app``: an employee texts a contact from the messaging app inside Microsoft Teams (delivered to
  the contact by SMS; ``attributes.client=teams``, ``attributes.delivered_via=sms``); replies show
  up in the same thread.
* ``internal``: employees chatting with each other (``direction=internal``), one-to-one or in a
  desk group.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import ClassVar

from pipelines.simulate import text as texts
from pipelines.simulate.channels.base import Script
from pipelines.simulate.channels.sms import SmsScript
from pipelines.simulate.clock import reply_gap, typing_gap
from pipelines.simulate.factory import Emitted
from pipelines.simulate.rules import DELIVERED


class TeamsAppScript(SmsScript):
    extra: ClassVar[Mapping[str, str]] = {"client": "teams", "delivered_via": "sms"}


class InternalChatScript(Script):
    def session(self, at: dt.datetime) -> Iterator[Emitted]:
        when, members = at, self.out.members
        speaker = self.rng.choice(members)
        for _ in range(self.steps()):
            self.agenda.at(when, self.say, speaker.id, "", False)
            if self.rng.random() < 0.6:
                speaker = self.rng.choice([m for m in members if m.id != speaker.id])
                when += reply_gap(self.rng)
            else:
                when += typing_gap(self.rng)
        return iter(())

    def say(self, at: dt.datetime, who: str, topic: str, opener: bool) -> Iterator[Emitted]:
        sender = self.out.member(who)
        others = [m for m in self.out.members if m.id != who]
        colleague = self.rng.choice(others).name or ""
        voices = texts.Voices(
            first=colleague.split()[0], me=(sender.name or "").split()[0], colleague=colleague, firm=""
        )
        yield self.out.message(at, sender, texts.internal_line(self.rng, voices), attributes=dict(DELIVERED))
