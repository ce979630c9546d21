"""Message bodies and attachments, with the position of every piece of personal data they contain.

A :class:`Text` is a body plus :class:`Label` spans (Python ``str`` offsets) for the personal data
in it: names put into greetings and sentences, phone numbers typed during phone validation, values
injected by ``--inject-pii``. Keeping offsets while composing (rather than searching afterwards)
is what makes the ground truth exact.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pipelines.record import Attachment
from pipelines.simulate import phrases


@dataclass(frozen=True, slots=True)
class Label:
    """A span of personal data in a body: ``body[start:end]`` is the value as written."""

    start: int
    end: int
    entity: str
    variant: str = "plain"


@dataclass(frozen=True, slots=True)
class Text:
    body: str
    labels: tuple[Label, ...] = ()

    def join(self, other: Text, sep: str = " ") -> Text:
        if not self.body:
            return other
        if not other.body:
            return self
        offset = len(self.body) + len(sep)
        shifted = tuple(
            Label(lb.start + offset, lb.end + offset, lb.entity, lb.variant) for lb in other.labels
        )
        return Text(self.body + sep + other.body, self.labels + shifted)


def sep_for(lang: str) -> str:
    """Chinese and Japanese sentences follow each other without a space."""
    return "" if lang in ("zh", "ja") else " "


_SLOT = re.compile(r"\{(\w+)\}")
#: slots whose values are people's names
PERSON_SLOTS = frozenset({"first", "me", "colleague"})


def fill(rng: random.Random, lang: str, template: str, values: Mapping[str, str]) -> Text:
    """Fill ``template``'s slots from ``values`` (names, firm) or the pools; label the names."""
    out: list[str] = []
    labels: list[Label] = []
    length, last = 0, 0
    for match in _SLOT.finditer(template):
        literal = template[last : match.start()]
        out.append(literal)
        length += len(literal)
        slot = match.group(1)
        value = values[slot] if slot in values else _pool(rng, lang, slot)
        if slot in PERSON_SLOTS and value:
            labels.append(Label(length, length + len(value), "PERSON"))
        out.append(value)
        length += len(value)
        last = match.end()
    out.append(template[last:])
    return Text("".join(out), tuple(labels))


def _pool(rng: random.Random, lang: str, slot: str) -> str:
    if slot == "day":
        return rng.choice(phrases.DAYS.get(lang, phrases.DAYS["en"]))
    if slot == "doc":
        return rng.choice(phrases.DOCS.get(lang, phrases.DOCS["en"]))
    pool = {
        "time": phrases.TIMES,
        "ticker": phrases.TICKERS,
        "pct": phrases.PCTS,
        "amount": phrases.AMOUNTS,
        "city": phrases.CITIES,
    }.get(slot)
    if pool is None:
        raise KeyError(f"phrase slot {{{slot}}} has no value and no pool")
    return rng.choice(pool)


@dataclass(frozen=True, slots=True)
class Voices:
    """Who is talking: names used to fill the person slots of a phrase."""

    first: str  # the recipient's short name
    me: str  # the sender's short name
    colleague: str  # another employee of the firm
    firm: str

    def values(self) -> dict[str, str]:
        return {"first": self.first, "me": self.me, "colleague": self.colleague, "firm": self.firm}


def chat_line(
    rng: random.Random, lang: str, role: str, topic: str, voices: Voices, *, opener: bool = False
) -> Text:
    """One chat message from an employee or a customer on ``topic``; openers may greet."""
    if lang not in phrases.EMPLOYEE:
        lang = "en"
    if not opener and rng.random() < 0.22:
        return fill(rng, lang, rng.choice(phrases.ACKS[lang]), voices.values())
    if role == "employee" and rng.random() < 0.04:
        return long_message(rng, lang, voices)
    bank = phrases.EMPLOYEE if role == "employee" else phrases.CONTACT
    text = fill(rng, lang, rng.choice(bank[lang][topic]), voices.values())
    if rng.random() < 0.25:
        text = text.join(
            fill(rng, lang, rng.choice(bank[lang][rng.choice(phrases.TOPICS)]), voices.values()),
            sep_for(lang),
        )
    if opener and role == "employee" and rng.random() < 0.6:
        text = fill(rng, lang, rng.choice(phrases.GREETINGS[lang]), voices.values()).join(text, sep_for(lang))
    return text


def long_message(rng: random.Random, lang: str, voices: Voices) -> Text:
    """A written-out note of several sentences (some run to a thousand characters and more)."""
    sentences = phrases.LONG.get(lang, phrases.LONG["en"])
    count = rng.randrange(4, len(sentences) + 1)
    chosen = sorted(rng.sample(range(len(sentences)), count))
    text = fill(rng, lang, rng.choice(phrases.GREETINGS[lang]), voices.values())
    for index in chosen:
        text = text.join(fill(rng, lang, sentences[index], voices.values()), sep_for(lang))
    if rng.random() < 0.3:  # the occasional very long paste: a note repeated with an update
        text = text.join(text, "\n\n")
    if lang == "en":
        text = text.join(fill(rng, lang, "Best, {me}", voices.values()), "\n")
    return text


def internal_line(rng: random.Random, voices: Voices) -> Text:
    return fill(rng, "en", rng.choice(phrases.INTERNAL), voices.values())


def bot_line(rng: random.Random, lang: str, key: str, voices: Voices) -> Text:
    bank = phrases.BOT.get(lang, phrases.BOT["en"])
    return fill(rng, lang, bank[key], voices.values())


def to_bot(rng: random.Random, lang: str, voices: Voices) -> Text:
    bank = phrases.CONTACT_TO_BOT.get(lang, phrases.CONTACT_TO_BOT["en"])
    return fill(rng, lang, rng.choice(bank), voices.values())


def voicemail(rng: random.Random, voices: Voices) -> Text:
    return fill(rng, "en", rng.choice(phrases.VOICEMAIL["en"]), voices.values())


def template_message(rng: random.Random, voices: Voices) -> tuple[str, Text]:
    """An approved WhatsApp template: (template_id, rendered text)."""
    template_id, template = rng.choice(phrases.WHATSAPP_TEMPLATES)
    return template_id, fill(rng, "en", template, voices.values())


def caption(rng: random.Random, lang: str) -> Text:
    return Text(rng.choice(phrases.CAPTIONS.get(lang, phrases.CAPTIONS["en"])))


def plain(value: str) -> Text:
    return Text(value)


def labelled(value: str, entity: str, variant: str = "plain") -> Text:
    return Text(value, (Label(0, len(value), entity, variant),))


# ---------------------------------------------------------------------------------------------
# attachments: only the hash, type and size are archived, the bytes never existed

_PICTURES = (
    ("image/jpeg", "IMG_{n}.jpg", 180_000, 4_500_000),
    ("image/png", "Screenshot_{n}.png", 90_000, 2_000_000),
    ("image/heic", "IMG_{n}.HEIC", 900_000, 3_500_000),
)
_MMS_MEDIA = (
    ("image/jpeg", "image{n}.jpg", 40_000, 600_000),
    ("image/gif", "anim{n}.gif", 30_000, 500_000),
    ("video/3gpp", "video{n}.3gp", 150_000, 1_200_000),
)


def _attachment(rng: random.Random, media_type: str, name: str, low: int, high: int) -> Attachment:
    digest = hashlib.sha256(rng.getrandbits(256).to_bytes(32, "big")).hexdigest()
    return Attachment(
        sha256=digest,
        media_type=media_type,
        size=rng.randrange(low, high),
        uri=f"vigil-media://{digest}",
        name=name.format(n=rng.randrange(1000, 9999)),
    )


def picture(rng: random.Random) -> Attachment:
    return _attachment(rng, *rng.choice(_PICTURES))


def mms_media(rng: random.Random) -> Attachment:
    return _attachment(rng, *rng.choice(_MMS_MEDIA))


def audio(rng: random.Random, seconds: int) -> Attachment:
    # AMR-NB at 12.2 kbit/s is what voicemail platforms commonly store
    return _attachment(rng, "audio/amr", "voicemail.amr", seconds * 1500, seconds * 1600)
