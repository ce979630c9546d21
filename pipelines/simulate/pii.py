"""``--inject-pii``: sensitive values and risky phrases put into message bodies, with ground truth.

A share of message bodies (every channel, both directions) gets one realistic sentence carrying a
card number, an IBAN, a national id, contact details, a name, or a phrase a conduct-surveillance
team watches for (promised returns, moving the talk off-channel, secrecy). Each injected value is
labelled with its entity and the variant it was written in. A smaller share gets a *near-miss*:
something that looks like a number worth flagging but is not (order and tracking numbers, a
16-digit reference that fails the Luhn check, dates). Near-misses are deliberately not labelled:
a detector that reports them loses precision.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

import phonenumbers

from pipelines.simulate import identifiers as ids
from pipelines.simulate import names
from pipelines.simulate.text import Label, Text, sep_for
from pipelines.simulate.world import e164

ENTITIES = (
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_BANK_NUMBER",
    "ABA_ROUTING_NUMBER",
    "US_SSN",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "PERSON",
    "IP_ADDRESS",
    "CN_RESIDENT_ID",
    "JP_MY_NUMBER",
    "HK_ID_CARD",
    "SG_NRIC_FIN",
    "RISKY_PHRASE",
)

_WEIGHTS = {
    "CREDIT_CARD": 12,
    "IBAN_CODE": 8,
    "US_BANK_NUMBER": 6,
    "ABA_ROUTING_NUMBER": 5,
    "US_SSN": 8,
    "EMAIL_ADDRESS": 9,
    "PHONE_NUMBER": 9,
    "PERSON": 9,
    "IP_ADDRESS": 4,
    "CN_RESIDENT_ID": 6,
    "JP_MY_NUMBER": 5,
    "HK_ID_CARD": 5,
    "SG_NRIC_FIN": 5,
    "RISKY_PHRASE": 16,
}

# Sentences carrying a value ({v}); English everywhere, Chinese/Japanese where people would say it.
FRAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "CREDIT_CARD": {
        "en": (
            "Please charge the fee to my card {v}, expiry 09/28.",
            "Card number is {v}.",
            "Use the card ending... actually here's the full one: {v}",
        ),
        "zh": ("请从我的信用卡扣款，卡号{v}。", "卡号是 {v}，谢谢。"),
        "ja": ("カード番号は{v}です。", "手数料はこのカードでお願いします：{v}"),
    },
    "IBAN_CODE": {
        "en": (
            "Please wire it to IBAN {v}.",
            "My new account is {v}, can you update the standing instruction?",
        ),
        "zh": ("请汇到这个账户：IBAN {v}。",),
        "ja": ("送金先の IBAN は {v} です。",),
    },
    "US_BANK_NUMBER": {
        "en": ("My checking account number is {v}.", "Send it to account {v} at Chase please.")
    },
    "ABA_ROUTING_NUMBER": {"en": ("The routing number is {v}.", "ABA {v}, same bank as before.")},
    "US_SSN": {"en": ("My SSN is {v} if you need it for the form.", "Social security number: {v}")},
    "EMAIL_ADDRESS": {
        "en": (
            "You can email me at {v}.",
            "Please cc my wife, {v}.",
            "Send the statements to {v} from now on.",
        ),
        "zh": ("请发到我的邮箱 {v}。",),
        "ja": ("メールは {v} までお願いします。",),
    },
    "PHONE_NUMBER": {
        "en": ("My new number is {v}.", "You can reach my assistant on {v}.", "Call me on {v} after 6."),
        "zh": ("我的新号码是 {v}。", "可以打这个电话：{v}"),
        "ja": ("新しい電話番号は {v} です。",),
    },
    "PERSON": {
        "en": (
            "Please send it to {v}.",
            "{v} from my accountant's office will call you.",
            "I spoke to {v} about it yesterday.",
            "Could you add {v} as a second signatory?",
        ),
        "zh": ("请把文件交给{v}。", "我的会计{v}会联系您。"),
        "ja": ("書類は{v}に渡してください。", "税理士の{v}から連絡があります。"),
    },
    "IP_ADDRESS": {
        "en": ("The portal blocked me, my IP is {v}.", "Login alert came from {v}, was that you?")
    },
    "CN_RESIDENT_ID": {
        "en": ("My Chinese ID number is {v}.",),
        "zh": ("我的身份证号码是{v}。", "身份证号：{v}"),
    },
    "JP_MY_NUMBER": {
        "en": ("My Individual Number (My Number) is {v}.",),
        "ja": ("マイナンバーは{v}です。", "個人番号：{v}"),
    },
    "HK_ID_CARD": {
        "en": ("My HKID is {v}.", "HKID {v} for the account form."),
        "zh": ("我的香港身份证号码是{v}。",),
    },
    "SG_NRIC_FIN": {"en": ("My NRIC is {v}.", "FIN {v}, as on my pass.")},
}

RISKY: dict[str, tuple[str, ...]] = {
    "en": (
        "this fund has guaranteed returns",
        "you can't lose on this one",
        "I promise you'll double your money",
        "let's continue on my personal WhatsApp",
        "call my personal cell instead",
        "text me on my private number",
        "keep this between us",
        "delete this chat after you read it",
        "don't mention this to compliance",
        "we can talk off the record",
    ),
    "zh": (
        "这个产品保证收益",
        "稳赚不赔",
        "我们换到我的私人微信聊",
        "打我私人手机",
        "这事只有我们俩知道",
        "看完把聊天记录删掉",
        "别告诉合规部门",
    ),
    "ja": (
        "元本保証します",
        "絶対に損はしません",
        "個人のLINEで続きを話しましょう",
        "私の携帯に直接電話してください",
        "ここだけの話にしてください",
        "このトークは削除してください",
    ),
}
RISKY_FRAMES = {
    "en": ("{v}.", "Honestly, {v}.", "{v}, trust me.", "One more thing - {v}."),
    "zh": ("{v}。", "说实话，{v}。"),
    "ja": ("{v}。", "実は、{v}。"),
}

_VALUES: dict[str, Callable[[random.Random], str]] = {
    "CREDIT_CARD": ids.card_number,
    "IBAN_CODE": ids.iban,
    "US_BANK_NUMBER": ids.us_bank_account,
    "ABA_ROUTING_NUMBER": ids.aba_routing,
    "US_SSN": ids.us_ssn,
    "CN_RESIDENT_ID": ids.cn_resident_id,
    "JP_MY_NUMBER": ids.jp_my_number,
    "HK_ID_CARD": ids.hk_id,
    "SG_NRIC_FIN": ids.sg_nric,
    "IP_ADDRESS": ids.ip_address,
    "PHONE_NUMBER": lambda rng: e164(ids.phone(rng)),
}


#: regions whose phone rules a detector might apply (Presidio's defaults plus the simulated countries)
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR", "HK", "SG", "JP", "CN")


def phone_like(text: str) -> bool:
    """Whether a validating phone detector, in any region it might assume, finds a number in ``text``."""
    return any(True for region in _PHONE_REGIONS for _ in phonenumbers.PhoneNumberMatcher(text, region))


def one_time_code(rng: random.Random) -> str:
    """A six-digit one-time code as a contact types it. Codes are not labelled, so one that reads
    as a valid phone number somewhere (``392431`` does in Germany) is moved to the next one that
    does not; no extra random draw, so everything else in the conversation stays as it was."""
    code = rng.randrange(100000, 999999)
    while phone_like(str(code)):
        code = 100000 + (code - 100000 + 1) % 899999
    return str(code)


def near_miss(rng: random.Random) -> str:
    """A sentence with a number that looks sensitive but is not (not even a valid phone number
    anywhere a detector might look)."""
    while True:
        sentence = _near_miss(rng)
        if not phone_like(sentence):
            return sentence


def _near_miss(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return f"Your order ORD-{rng.randrange(100000, 999999)} has shipped."
    if kind == 1:
        code = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        return f"Tracking number 1Z{code}, should arrive tomorrow."
    if kind == 2:
        reference = ids.group(ids.luhn_invalid_16(rng), (4, 4, 4, 4), rng.choice(" -"))
        return f"Payment reference {reference} on the invoice."
    if kind == 3:
        day = rng.randrange(1, 29)
        return rng.choice(
            (
                f"See you on 2026-02-{day:02d}.",
                f"The deadline is {day:02d}/03/2026.",
                f"Statement dated {day} March 2026.",
            )
        )
    if kind == 4:
        return f"Invoice INV-2026-{rng.randrange(1, 9999):04d} attached."
    return f"My extension is {rng.randrange(1000, 9999)}."


class Injector:
    """Decides, per message body, whether and what to inject. Owns its RNG so conversations are the
    same with and without ``--inject-pii`` apart from the injected sentences."""

    def __init__(self, rng: random.Random, rate: float):
        self.rng = rng
        self.rate = rate
        self._entities = list(_WEIGHTS)
        self._weights = list(_WEIGHTS.values())

    def __call__(self, text: Text, lang: str) -> Text:
        roll = self.rng.random()
        if roll < self.rate:
            return self._inject(text, lang)
        if roll < self.rate * 1.35:
            return text.join(Text(near_miss(self.rng)), " ")
        return text

    def _inject(self, text: Text, lang: str) -> Text:
        rng = self.rng
        entity = rng.choices(self._entities, weights=self._weights)[0]
        if entity == "RISKY_PHRASE":
            lang = lang if lang in RISKY else "en"
            frame, phrase = rng.choice(RISKY_FRAMES[lang]), rng.choice(RISKY[lang])
            if frame.startswith("{v}"):
                phrase = phrase[0].upper() + phrase[1:]
            addition = _framed(frame, phrase, entity, "plain")
        else:
            frames = FRAMES[entity]
            lang = lang if lang in frames else "en"
            value, variant = self._value(entity)
            addition = _framed(rng.choice(frames[lang]), value, entity, variant)
        if not text.body or rng.random() < 0.25:
            return addition
        return text.join(addition, sep_for(lang) or " ")

    def _value(self, entity: str) -> tuple[str, str]:
        rng = self.rng
        if entity == "PERSON":
            return names.any_name(rng).display, "plain"
        if entity == "EMAIL_ADDRESS":
            person = names.latin(rng) if rng.random() < 0.7 else names.any_name(rng)
            return ids.email(rng, person.given, person.family), "plain"
        canonical = _VALUES[entity](rng)
        variant = rng.choice(ids.ENTITY_VARIANTS.get(entity, ("plain",)))
        return ids.render(rng, entity, canonical, variant), variant


def _framed(frame: str, value: str, entity: str, variant: str) -> Text:
    before, _, after = frame.partition("{v}")
    if before.endswith(tuple(string.ascii_letters)) or (after and after[0].isalnum() and after[0].isascii()):
        raise ValueError(f"frame {frame!r} glues the value to a word")
    start = len(before)
    return Text(before + value + after, (Label(start, start + len(value), entity, variant),))
