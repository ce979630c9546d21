"""Checksum validators for identifiers that carry one, found by name.

A regex alone cannot tell a card number from an order number; the check digit can. Policies name a
validator (``validator: luhn``) and the loader looks it up in :data:`VALIDATORS`; an unknown name is
a policy error listing the valid ones. python-stdnum provides the algorithm wherever it has it; the
Hong Kong identity card and Singapore NRIC/FIN check characters are small functions here because
stdnum has neither.

Every validator takes the matched text as written (spaces, dashes, parentheses included) and
returns ``True`` only for a well-formed identifier with a correct check character.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

from stdnum import ean as _ean
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.cn import ric as _cn_ric
from stdnum.jp import in_ as _jp_in
from stdnum.us import rtn as _us_rtn

from pipelines.dlp.normalize import normalize

Validator = Callable[[str], bool]

#: name -> validator; filled by :func:`validator`.
VALIDATORS: dict[str, Validator] = {}

#: what people put between the groups of an identifier: spaces, dashes, dots, brackets, slashes,
#: underscores, commas
_SEPARATORS = re.compile(r"[\s\-.()/_,]+")
#: ... and what a validator also skips between the groups a pattern matched: bars, bullets and the
#: chat formatting marks around a group (``*4012* *8888*``). Kept out of :func:`compact`: in a
#: password or a name they are part of the value (:func:`canonical` drops them only in numbers).
_GROUP_SEPARATORS = re.compile(r"[\s\-.()/_,|•·*~]+")


def validator(name: str) -> Callable[[Validator], Validator]:
    """Register a validator under ``name`` (the name policies use)."""

    def register(func: Validator) -> Validator:
        if name in VALIDATORS:
            raise ValueError(f"validator {name!r} registered twice")
        VALIDATORS[name] = func
        return func

    return register


def compact(value: str) -> str:
    """The value without the separators people put inside identifiers."""
    return _SEPARATORS.sub("", value)


def _ungrouped(value: str) -> str:
    """What a validator checks: the matched value without anything between its groups."""
    return _GROUP_SEPARATORS.sub("", value)


def canonical(value: str) -> str:
    """The form in which allow-lists compare a value and a keyed hash digests it: normalised as for
    detection (NFKC, ASCII digits, invisible characters removed), without the separators people put
    inside identifiers, case-folded. A number (all digits once everything between its groups is
    gone: a card, an account, a phone) also loses the bars, bullets and chat marks the card patterns
    accept between groups: ``4012 | 8888 | 8888 | 1881`` is ``4012888888881881``, as its validator
    saw it. Anything else keeps them (``*`` in a password is part of it). Letters of other scripts
    drawn like Latin ones inside a Latin word are read as the Latin letters (``DЕ89 …`` with a
    Cyrillic ``Е`` is ``DE89 …``), and of the readings normalisation makes only the first counts,
    so one value written two ways has one form."""
    norm = normalize(value)
    lo, hi = norm.copies()[0]
    text = norm.text[lo:hi]
    digits = _ungrouped(text)
    if digits.isascii() and digits.isdigit():
        return digits
    return compact(text).casefold()


@validator("luhn")
def luhn(value: str) -> bool:
    """Payment cards and other Luhn (mod-10) numbers: 12 to 19 digits."""
    digits = _ungrouped(value)
    return digits.isdigit() and digits.isascii() and 12 <= len(digits) <= 19 and _luhn.is_valid(digits)


#: Card schemes whose numbers have fixed lengths, by leading digits. A Luhn-valid number of another
#: length under these prefixes is something else: a phone's IMEI (15 digits, Luhn, mostly "35...")
#: is not a JCB card (16 to 19). Under 2 and 3 only the listed schemes issue cards; prefixes not
#: listed under 4, 5 and 6 (Maestro, RuPay, ...) keep 12 to 19.
_CARD_LENGTHS: tuple[tuple[tuple[str, ...], tuple[int, ...]], ...] = (
    (("34", "37"), (15,)),  # American Express
    (("4",), (13, 16, 19)),  # Visa
    (("51", "52", "53", "54", "55", *map(str, range(2221, 2721))), (16,)),  # Mastercard
    (tuple(map(str, range(2200, 2205))), (16, 17, 18, 19)),  # Mir
    (tuple(map(str, range(3528, 3590))), (16, 17, 18, 19)),  # JCB
    (("300", "301", "302", "303", "304", "305", "3095", "36", "38", "39"), tuple(range(14, 20))),  # Diners
    (("6011", "644", "645", "646", "647", "648", "649", "65", "62"), (16, 17, 18, 19)),  # Discover, UnionPay
    (("2", "3"), ()),  # the rest of the 2s and 3s is no card scheme's
)


@validator("payment_card")
def payment_card(value: str) -> bool:
    """Payment cards: Luhn, and a length the scheme of the leading digits issues (Visa 13, 16 or 19,
    Amex 15, Mastercard 16, Mir, JCB, Discover and UnionPay 16 to 19, Diners 14 to 19; no other
    number starting with 2 or 3; other prefixes 12 to 19). A 13-digit number that is also a valid
    EAN-13, or a 12-digit one that is also a valid UPC-A, is read as the product barcode it far
    more likely is (a JAN code "4901234567894", a UPC "614141000081"): 12 and 13 digits are lengths
    only old Visa and Maestro cards have. Likewise an 18-digit number that is a valid Chinese
    resident id (province, birth date and its own check digit) is read as the id: about one id in
    ten from provinces whose code starts 36, 50 or 61 to 65 also passes Luhn, while an 18-digit
    card must also hold a date and a mod 11-2 check by chance (well under one in a thousand)."""
    if not luhn(value):
        return False
    digits = _ungrouped(value)
    if len(digits) in (12, 13) and _ean.is_valid(digits.zfill(13)):
        return False
    if len(digits) == 18 and cn_resident_id(digits):
        return False
    for prefixes, lengths in _CARD_LENGTHS:
        if digits.startswith(prefixes):
            return len(digits) in lengths
    return True


@validator("iban")
def iban(value: str) -> bool:
    """International bank account numbers: country format and the mod-97 check."""
    return bool(_iban.is_valid(_ungrouped(value)))


#: The first two digits a routing number can start with: 00 (the US government), 01-12 (the
#: Federal Reserve districts), 21-32 (thrift institutions), 61-72 (electronic transactions) and
#: 80 (traveller's cheques). Nine digits with any other start pass the 3-7-1 check one time in ten.
_ABA_PREFIXES = frozenset([0, *range(1, 13), *range(21, 33), *range(61, 73), 80])


@validator("aba_routing")
def aba_routing(value: str) -> bool:
    """US ABA routing transit numbers (9 digits, weights 3-7-1, a prefix in use)."""
    digits = _ungrouped(value)
    return digits.isascii() and bool(_us_rtn.is_valid(digits)) and int(digits[:2]) in _ABA_PREFIXES


#: The first two digits of a resident id: the province-level division (GB/T 2260), and 81, 82 and
#: 83 for the residence permits of Hong Kong, Macao and Taiwan residents.
_CN_PROVINCES = frozenset(
    [
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        *(71, 81, 82, 83),
    ]
)


@validator("cn_resident_id")
def cn_resident_id(value: str) -> bool:
    """Chinese resident identity card numbers: 18 characters, a province code, a birth date that
    exists and is not in the future, and the ISO 7064 mod 11-2 check character.

    The county part of the area code is not checked against a year: it is the county where the card
    was issued, often created after the holder's birth (Pudong, 310115, dates from 1992 and is on
    the cards of people born long before), and newer than any code list shipped with a library.
    stdnum's ``is_valid`` rejects both, so it is not used whole."""
    number = _ungrouped(value).upper()
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return False
    if int(number[:2]) not in _CN_PROVINCES or _cn_ric.calc_check_digit(number) != number[17]:
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return datetime.date(1880, 1, 1) <= born <= datetime.date.today()


@validator("jp_my_number")
def jp_my_number(value: str) -> bool:
    """Japanese individual numbers (My Number, 12 digits, check digit)."""
    digits = _ungrouped(value)
    return digits.isascii() and bool(_jp_in.is_valid(digits))


_HK_ID = re.compile(r"([A-Z]{1,2})([0-9]{6})\(?([0-9A])\)?")


@validator("hk_id")
def hk_id(value: str) -> bool:
    """Hong Kong identity card numbers: one or two letters, six digits, check digit (0-9 or A)."""
    match = _HK_ID.fullmatch(re.sub(r"\s+", "", value).upper())
    if not match:
        return False
    letters, digits, check = match.groups()
    # a one-letter prefix is padded with a space, which counts as 36
    values = [36] if len(letters) == 1 else []
    values += [ord(c) - ord("A") + 10 for c in letters]
    values += [int(d) for d in digits]
    total = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True))
    expected = (11 - total % 11) % 11
    return check == ("A" if expected == 10 else str(expected))


_SG_WEIGHTS = (2, 7, 6, 5, 4, 3, 2)
_SG_TABLES = {
    "S": "JZIHGFEDCBA",
    "T": "JZIHGFEDCBA",
    "F": "XWUTRQPNMLK",
    "G": "XWUTRQPNMLK",
    "M": "XWUTRQPNJLK",
}
_SG_OFFSETS = {"S": 0, "T": 4, "F": 0, "G": 4, "M": 3}
_SG_NRIC = re.compile(r"([STFGM])([0-9]{7})[ -]?([A-Z])")  # "S1234567-D", "S1234567 D" are written too


@validator("sg_nric")
def sg_nric(value: str) -> bool:
    """Singapore NRIC and FIN: prefix S/T/F/G/M, seven digits, check letter."""
    match = _SG_NRIC.fullmatch(value.strip().upper())
    if not match:
        return False
    prefix, digits, check = match.groups()
    total = sum(int(d) * w for d, w in zip(digits, _SG_WEIGHTS, strict=True)) + _SG_OFFSETS[prefix]
    return _SG_TABLES[prefix][total % 11] == check


_KEY_PIECES = re.compile(r"[\s.\-]+")
_KEY = re.compile(r"[A-Za-z0-9/+]{40}")
#: how many characters of each kind a random 40-character base64 key has at the least, all but
#: about once in a few hundred keys (on average 16 upper-case letters, 16 lower-case, 8 others):
#: upper-case letters not at the start of a piece (a sentence's words start with one), lower-case
#: letters, and digits, "/" or "+"
_KEY_MIX = (4, 8, 2)


@validator("aws_secret_key")
def aws_secret_key(value: str) -> bool:
    """An AWS secret access key broken into pieces (spaces, dots, dashes, line breaks between them):
    40 base64 characters once joined, mixing upper-case letters inside the pieces, lower-case
    letters and digits or ``/`` ``+`` the way a random key does, so words that add up to 40
    letters are not one."""
    pieces = [piece for piece in _KEY_PIECES.split(value) if piece]
    key = "".join(pieces)
    if not _KEY.fullmatch(key):
        return False
    inner_upper = sum(ch.isupper() for piece in pieces for ch in piece[1:])
    lower = sum(ch.islower() for ch in key)
    other = sum(not ch.isalpha() for ch in key)
    return all(count >= least for count, least in zip((inner_upper, lower, other), _KEY_MIX, strict=True))
