"""Text normalisation before detection, with a map back to the original offsets.

People (and evasive senders) write the same card number in many ways: full-width digits from a CJK
input method (``４１１１ １１１１ …``), zero-width spaces pasted inside a number, bidi controls that
reorder what a reader sees, a soft hyphen or an invisible operator between digits, Arabic-Indic
digits. Detection runs on a normalised copy: NFKC (which folds full-width forms and compatibility
characters), every Unicode decimal digit folded to its ASCII digit, and every invisible character
removed: all of general category Cf (format) and all Default_Ignorable_Code_Point characters
(soft hyphen, combining grapheme joiner, Mongolian vowel separator, variation selectors, Hangul
fillers, tags, ...). A zero-width joiner inside an emoji sequence goes too: detection does not need
it, and offsets map back to the original, where it stays. Every finding is then
mapped back to the ORIGINAL text, so redaction happens in place and the archive's offsets refer to
what was actually sent.

NFKC is applied per cluster (a starter character plus the combining marks that follow it). Each
output character of a cluster maps to the whole cluster in the original; removed characters map to
nothing, so a span over ``4111<ZWSP>1111`` in the normalised text covers the zero-width space too.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Zero-width characters: invisible, and used to break up numbers so naive patterns miss them.
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
#: Bidirectional controls: change display order without being seen.
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

#: Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt; Python's unicodedata does not
#: expose the property). Ranges are inclusive.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
# Format (Cf) characters live in planes 0-1 and 14 only (a test checks the whole code space).
_CF_PLANES = (range(0x20000), range(0xE0000, 0xE1000))


def _tables() -> tuple[frozenset[str], dict[int, str]]:
    removed = {chr(c) for lo, hi in DEFAULT_IGNORABLE for c in range(lo, hi + 1)}
    digits: dict[int, str] = {}
    for plane in _CF_PLANES:
        for code in plane:
            ch = chr(code)
            category = unicodedata.category(ch)
            if category == "Cf":
                removed.add(ch)
            elif category == "Nd" and code > 0x7F:
                digits[code] = str(unicodedata.decimal(ch))
    return frozenset(removed), digits


#: Every character detection ignores: general category Cf plus Default_Ignorable_Code_Point.
REMOVED, _ASCII_DIGITS = _tables()
assert ZERO_WIDTH | BIDI_CONTROLS <= REMOVED


def _char_class(chars: frozenset[str]) -> str:
    """A regex character class for ``chars``, as ranges (a class of single characters is slow)."""
    codes = sorted(ord(ch) for ch in chars)
    parts: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], -1]:
        if code == prev + 1:
            prev = code
            continue
        parts.append(re.escape(chr(start)) + ("" if start == prev else "-" + re.escape(chr(prev))))
        start = prev = code
    return "[" + "".join(parts) + "]"


_NEEDS_WORK = re.compile(_char_class(REMOVED) + "|[^\\D\x00-\x7f]")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised text and, per normalised character, the original span it came from.

    ``starts``/``ends`` are ``None`` when the normalised text is the original (the common case),
    which keeps the fast path free of per-character lists.
    """

    original: str
    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    @property
    def identity(self) -> bool:
        return self.starts is None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` covering the normalised ``[start, end)`` (end > start)."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            raise ValueError(f"empty span [{start}, {end})")
        return self.starts[start], self.ends[end - 1]


def _needs_work(text: str) -> bool:
    if text.isascii():
        return False
    if _NEEDS_WORK.search(text):  # an invisible character or a non-ASCII decimal digit
        return True
    return not unicodedata.is_normalized("NFKC", text)


def normalize(text: str) -> Normalized:
    """Normalise ``text`` for detection and keep the map back to it."""
    if not _needs_work(text):
        return Normalized(text, text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in REMOVED:
            i += 1
            continue
        j = i + 1
        # a cluster: the starter plus the combining marks after it (skipping removed characters
        # inside, so a zero-width space cannot block composition either)
        while j < n and (unicodedata.combining(text[j]) or text[j] in REMOVED):
            j += 1
        while text[j - 1] in REMOVED:  # ...but not the removed characters after it: a finding
            j -= 1  # ending here must not swallow a bidi control closing the number
        cluster = "".join(c for c in text[i:j] if c not in REMOVED)
        folded = unicodedata.normalize("NFKC", cluster).translate(_ASCII_DIGITS)
        out.append(folded)
        starts.extend([i] * len(folded))
        ends.extend([j] * len(folded))
        i = j
    return Normalized(text, "".join(out), tuple(starts), tuple(ends))


def strip_invisible(text: str) -> Normalized:
    """Only the invisible characters removed (no NFKC): the input for language models, which read
    punctuation and width as written."""
    if text.isascii() or not any(ch in REMOVED for ch in text):
        return Normalized(text, text)
    kept = [i for i, ch in enumerate(text) if ch not in REMOVED]
    return Normalized(text, "".join(text[i] for i in kept), tuple(kept), tuple(i + 1 for i in kept))
