"""Sensitive values with valid checksums, and the ways people write them.

DLP detectors validate check digits to stay precise, so injected values must pass them: Luhn for
card numbers, ISO 7064 mod 97 for IBANs, the 3-7-1 weights of ABA routing numbers, the ISO 7064
mod 11-2 digit of Chinese resident ids, the Japanese My Number check digit, the Hong Kong identity
card and Singapore NRIC/FIN check characters. python-stdnum computes the ones it knows; Hong Kong
and Singapore are small functions here.

People do not write numbers the canonical way, so each value can be *rendered* in a variant:
``plain`` (no separators), ``spaced`` / ``dashed`` (grouped), ``fullwidth`` (the full-width forms
East Asian keyboards produce, e.g. ４１１１) and ``zerowidth`` (zero-width spaces hidden inside,
as copy-paste from some apps leaves them). NFKC plus removing zero-width characters turns every
variant back into the canonical value.
"""

from __future__ import annotations

import random
import string
import unicodedata

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.cn import ric
from stdnum.jp import in_ as my_number
from stdnum.us import rtn, ssn

from pipelines.simulate.world import phone_number

VARIANTS = ("plain", "spaced", "dashed", "fullwidth", "zerowidth")
ZERO_WIDTH = "\u200b"

# ---------------------------------------------------------------------------------------------
# generators (return the canonical compact form)

CARD_BRANDS: dict[str, tuple[tuple[str, ...], int]] = {
    "visa": (("4",), 16),
    "mastercard": (("51", "52", "53", "54", "55", "2221", "2500", "2720"), 16),
    "amex": (("34", "37"), 15),
    "discover": (("6011", "644", "65"), 16),
    "jcb": (("3528", "3540", "3589"), 16),
    "unionpay": (("62",), 16),
}


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def card_number(rng: random.Random, brand: str | None = None) -> str:
    brand = brand or rng.choice(sorted(CARD_BRANDS))
    prefixes, length = CARD_BRANDS[brand]
    prefix = rng.choice(prefixes)
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def luhn_invalid_16(rng: random.Random) -> str:
    """16 digits with a card-like prefix whose Luhn check fails (a near-miss)."""
    body = "4" + _digits(rng, 14)
    good = luhn.calc_check_digit(body)
    return body + str((int(good) + rng.randrange(1, 10)) % 10)


# country: (letters after the check digits, then digits) -- structures kept simple on purpose
_IBAN_LAYOUT: dict[str, tuple[int, int]] = {
    "GB": (4, 14),
    "DE": (0, 18),
    "NL": (4, 10),
    "CH": (0, 17),
    "IE": (4, 14),
}


def iban(rng: random.Random, country: str | None = None) -> str:
    country = country or rng.choice(sorted(_IBAN_LAYOUT))
    letters, digits = _IBAN_LAYOUT[country]
    while True:
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters)) + _digits(rng, digits)
        candidate = country + std_iban.calc_check_digits(country + "00" + bban) + bban
        if std_iban.is_valid(candidate):  # NL and others add national checks; retry until valid
            return candidate


def aba_routing(rng: random.Random) -> str:
    prefix = rng.choice(
        [*(f"{n:02d}" for n in range(1, 13)), *(f"{n:02d}" for n in range(21, 33)), "61", "67", "72"]
    )
    body = prefix + _digits(rng, 6)
    return body + rtn.calc_check_digit(body)


def us_ssn(rng: random.Random) -> str:
    while True:
        area = rng.choice([n for n in range(1, 900) if n != 666])
        value = f"{area:03d}{rng.randrange(1, 100):02d}{rng.randrange(1, 10000):04d}"
        if ssn.is_valid(value) and len(set(value)) > 2:
            return value


def us_bank_account(rng: random.Random) -> str:
    """An account number: no checksum exists, so avoid lengths and values other ids use (9 = ABA,
    12 = My Number, 15/16 = cards) and make sure it is not Luhn-valid."""
    while True:
        value = str(rng.randrange(1, 10)) + _digits(rng, rng.choice((9, 10, 12, 13)))
        if not luhn.is_valid(value):
            return value


# 6-digit administrative division codes that stdnum knows (Beijing, Shanghai, Guangzhou, Shenzhen, ...)
_CN_REGIONS = ("110101", "110105", "310101", "310115", "440106", "440305", "330106", "510104", "320102")


def cn_resident_id(rng: random.Random) -> str:
    while True:
        year, month, day = rng.randrange(1950, 2005), rng.randrange(1, 13), rng.randrange(1, 29)
        body = f"{rng.choice(_CN_REGIONS)}{year:04d}{month:02d}{day:02d}{_digits(rng, 3)}"
        value = body + ric.calc_check_digit(body)
        if ric.is_valid(value):
            return value


def jp_my_number(rng: random.Random) -> str:
    body = str(rng.randrange(1, 10)) + _digits(rng, 10)
    return body + my_number.calc_check_digit(body)


_HK_VALUES = {**{c: 10 + i for i, c in enumerate(string.ascii_uppercase)}, " ": 36}


def hk_id_check(prefix: str, digits: str) -> str:
    """Check character of a Hong Kong identity card number (prefix of 1 or 2 letters, 6 digits)."""
    chars = prefix.rjust(2)
    total = sum(w * _HK_VALUES[c] for w, c in zip((9, 8), chars, strict=True))
    total += sum(w * int(d) for w, d in zip(range(7, 1, -1), digits, strict=True))
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def hk_id(rng: random.Random) -> str:
    prefix = rng.choice("ACDEGHKMPRVZ") if rng.random() < 0.9 else rng.choice(("WX", "XA", "XD"))
    digits = _digits(rng, 6)
    return f"{prefix}{digits}({hk_id_check(prefix, digits)})"


def is_valid_hk_id(value: str) -> bool:
    compact = value.replace("(", "").replace(")", "").replace(" ", "").upper()
    if not (8 <= len(compact) <= 9) or not compact[-7:-1].isdigit() or not compact[:-7].isalpha():
        return False
    return hk_id_check(compact[:-7], compact[-7:-1]) == compact[-1]


_SG_WEIGHTS = (2, 7, 6, 5, 4, 3, 2)
_SG_LETTERS = {"S": "JZIHGFEDCBA", "T": "JZIHGFEDCBA", "F": "XWUTRQPNMLK", "G": "XWUTRQPNMLK"}
_SG_OFFSET = {"S": 0, "T": 4, "F": 0, "G": 4}


def sg_nric_check(prefix: str, digits: str) -> str:
    total = sum(w * int(d) for w, d in zip(_SG_WEIGHTS, digits, strict=True)) + _SG_OFFSET[prefix]
    return _SG_LETTERS[prefix][total % 11]


def sg_nric(rng: random.Random) -> str:
    prefix = rng.choice("STFG")
    digits = _digits(rng, 7)
    return prefix + digits + sg_nric_check(prefix, digits)


def is_valid_sg_nric(value: str) -> bool:
    value = value.upper()
    if len(value) != 9 or value[0] not in _SG_LETTERS or not value[1:8].isdigit():
        return False
    return sg_nric_check(value[0], value[1:8]) == value[8]


def ip_address(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return "2a02:" + ":".join(f"{rng.randrange(0x10000):x}" for _ in range(7))
    while True:
        first = rng.randrange(1, 224)
        if first not in (10, 100, 127, 169, 172, 192, 198, 203):
            return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


EMAIL_DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.co.jp",
    "qq.com",
    "163.com",
    "icloud.com",
    "proton.me",
    "hotmail.co.uk",
)


def email(rng: random.Random, given: str, family: str) -> str:
    local = unicodedata.normalize("NFKD", f"{given}.{family}").encode("ascii", "ignore").decode().lower()
    local = local.replace("'", "").replace(" ", "")
    if rng.random() < 0.4:
        local += str(rng.randrange(1, 99))
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


PHONE_COUNTRIES = ("US", "GB", "HK", "SG", "JP", "CN", "DE")


def phone(rng: random.Random) -> phonenumbers.PhoneNumber:
    return phone_number(rng, rng.choice(PHONE_COUNTRIES))


# ---------------------------------------------------------------------------------------------
# variants: how a value is written in a message

_GROUPS = {
    "CREDIT_CARD": lambda v: (4, 6, 5) if len(v) == 15 else (4, 4, 4, 4),
    "IBAN_CODE": lambda v: tuple([4] * (len(v) // 4) + ([len(v) % 4] if len(v) % 4 else [])),
    "US_SSN": lambda v: (3, 2, 4),
    "JP_MY_NUMBER": lambda v: (4, 4, 4),
    "CN_RESIDENT_ID": lambda v: (6, 8, 4),
}

#: variants each entity is written in (names, e-mails and addresses are only ever plain)
ENTITY_VARIANTS: dict[str, tuple[str, ...]] = {
    "CREDIT_CARD": VARIANTS,
    "IBAN_CODE": ("plain", "spaced", "fullwidth", "zerowidth"),
    "US_SSN": ("dashed", "plain", "spaced", "fullwidth", "zerowidth"),
    "ABA_ROUTING_NUMBER": ("plain", "fullwidth", "zerowidth"),
    "US_BANK_NUMBER": ("plain", "zerowidth"),
    "CN_RESIDENT_ID": ("plain", "spaced", "fullwidth", "zerowidth"),
    "JP_MY_NUMBER": VARIANTS,
    "HK_ID_CARD": ("plain", "fullwidth", "zerowidth"),
    "SG_NRIC_FIN": ("plain", "fullwidth", "zerowidth"),
    "PHONE_NUMBER": VARIANTS,
}


def group(value: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, start = [], 0
    for size in sizes:
        parts.append(value[start : start + size])
        start += size
    return sep.join(p for p in parts if p)


def fullwidth(text: str) -> str:
    """ASCII letters, digits and brackets to their full-width forms (U+FF01..U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and (c.isalnum() or c in "()") else c for c in text)


def with_zero_width(rng: random.Random, text: str) -> str:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randrange(1, 4))))
    out, last = [], 0
    for cut in cuts:
        out.append(text[last:cut])
        last = cut
    out.append(text[last:])
    return ZERO_WIDTH.join(out)


def render(rng: random.Random, entity: str, value: str, variant: str) -> str:
    """``value`` (canonical) as written in ``variant``."""
    if entity == "PHONE_NUMBER":
        return _render_phone(rng, value, variant)
    sizes = _GROUPS.get(entity, lambda v: ())(value)
    if variant == "plain":
        return value
    if variant == "spaced":
        return group(value, sizes, " ")
    if variant == "dashed":
        return group(value, sizes, "-")
    if variant == "fullwidth":
        return fullwidth(group(value, sizes, " ") if sizes and rng.random() < 0.5 else value)
    if variant == "zerowidth":
        return with_zero_width(rng, value)
    raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")


def _render_phone(rng: random.Random, value: str, variant: str) -> str:
    parsed = phonenumbers.parse(value)
    international = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if variant == "plain":
        return value
    if variant == "spaced":
        return international.replace("-", " ")
    if variant == "dashed":
        code, _, rest = international.partition(" ")
        return code + " " + rest.replace(" ", "-")
    if variant == "fullwidth":
        return fullwidth(international.replace("-", " ") if rng.random() < 0.5 else value)
    if variant == "zerowidth":
        return with_zero_width(rng, value)
    raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")


def canonical(text: str) -> str:
    """What a detector sees after normalisation: NFKC, zero-width removed, separators removed."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if c not in "\u200b\u200c\u200d\u2060\ufeff -()")
