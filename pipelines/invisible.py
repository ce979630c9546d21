"""Characters that take up no room on screen: one definition for the record model (ids, empty
bodies) and for DLP's normaliser (which removes them before detection)."""

from __future__ import annotations

import re
import unicodedata

#: Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt; Python's unicodedata does not
#: expose the property). Ranges are inclusive.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
#: Format (Cf) characters live in planes 0-1 and 14 only (a test checks the whole code space), and
#: so do dashes, marks and decimal digits.
CF_PLANES = (range(0x20000), range(0xE0000, 0xE1000))
#: Control characters that are not Unicode white space: invisible, and as good as a zero-width
#: space for splitting a number. Tab and the line breaks (LF, VT, FF, CR, NEL) stay: they separate.
#: The ASCII information separators U+001C-U+001F go: Python's ``isspace`` counts them as white
#: space, Unicode does not, and a screen shows nothing for them.
CONTROLS = frozenset(
    ch for ch in map(chr, [*range(0x20), *range(0x7F, 0xA0)]) if ch not in "\t\n\x0b\x0c\r\x85"
)
#: Characters that draw nothing although they are neither format characters nor white space: the
#: braille pattern blank, which "send an empty message" tricks and look-alike names use
BLANKS = frozenset({"\u2800"})
#: Every invisible character: general category Cf, Default_Ignorable_Code_Point, the control
#: characters that are not white space, and the blanks.
INVISIBLE = frozenset(
    {chr(c) for lo, hi in DEFAULT_IGNORABLE for c in range(lo, hi + 1)}
    | CONTROLS
    | BLANKS
    | {chr(c) for plane in CF_PLANES for c in plane if unicodedata.category(chr(c)) == "Cf"}
)


def visible(text: str) -> bool:
    """Whether ``text`` shows anything: a character that is neither white space nor invisible."""
    return any(not ch.isspace() and ch not in INVISIBLE for ch in text)


#: What the terminal must not be given as it is: C0 controls (line feed and tab too, unless kept),
#: DEL, C1 controls, the line and paragraph separators, the bidirectional controls that can make
#: text read in another order than it was typed, and lone surrogates.
_UNSHOWN = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def escaped(text: str, keep: str = "") -> str:
    """``text`` with every character of :data:`_UNSHOWN` but those in ``keep`` as an escape
    (``\\n``, ``\\x1b``, ``\\u202e``): a file name or query that holds an escape sequence cannot
    clear or recolour the screen, or reorder what is shown, when a message prints it."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep:
            return char
        named = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char)
        code = ord(char)
        return named or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")

    return _UNSHOWN.sub(escape, text)
