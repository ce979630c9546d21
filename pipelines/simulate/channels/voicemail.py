"""Voicemail: a contact calls an employee's business number and leaves a message.

Archived as ``kind=message`` (not as a ``voicemail_left`` event) so the transcript is searchable
and scanned by DLP like any other message: ``body`` is the transcript, the recording is an
``audio/amr`` attachment, and ``attributes`` carry the duration and the transcription engine's
confidence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from pipelines.simulate import text as texts
from pipelines.simulate.channels.base import Script
from pipelines.simulate.factory import Emitted


class VoicemailScript(Script):
    def session(self, at: dt.datetime) -> Iterator[Emitted]:
        assert self.contact is not None
        rng = self.rng
        caller = self.contact.party(self.spec.channel)
        transcript = texts.voicemail(rng, self.voices(caller))
        seconds = max(4, int(len(transcript.body) / 14 + rng.gauss(3, 2)))
        attributes = {
            "duration_seconds": str(seconds),
            "transcript_confidence": f"{rng.uniform(0.72, 0.98):.2f}",
            "delivery": "delivered",
        }
        yield self.out.message(
            at, caller, transcript, attachments=[texts.audio(rng, seconds)], attributes=attributes
        )

    def say(self, at: dt.datetime, who: str, topic: str, opener: bool) -> Iterator[Emitted]:
        return iter(())
