"""Where the search's character classes come from: Unicode properties, not hand-made lists.

:mod:`pipelines.search.unicode_tables` holds the tables the tokenizer classes are built from; this
module derives them from the Unicode Character Database (through the ``regex`` module's
``\\p{Word_Break=...}``, ``\\p{Script=...}`` and ``\\p{Line_Break=...}`` properties) and writes
that file: ``python -m pipelines.search.wordbreak``. A test derives them again and compares, so
the tables cannot drift from the rules below (nor from a newer Unicode version of ``regex``
without the file being regenerated).

The rules follow Lucene's ``StandardTokenizer`` (UAX #29 word boundaries), which Elasticsearch's
``standard`` and ``cjk`` analyzers use:

* **CJK** (bigrammed by the ``cjk`` analyzer): Han (which includes the marks of the CJK
  symbols block written with Han characters: the iteration marks ``々`` ``〻``, ``〇``, the
  Hangzhou numerals), Hiragana, ``Word_Break=Katakana`` (with ``ー`` and the circled and squared
  katakana), Hangul letters, and the combining marks of those blocks and of the half-width forms
  (sound marks ``゙`` ``ﾞ``), which UAX #29 attaches to the kana before them, and the ideographic
  variation selectors. The closing mark ``〆`` is not Han (Script=Common, ``Word_Break=Other``):
  the tokenizer drops it, so it separates, like ``〃`` and the other marks of that block;
* **word** characters (a Latin token is a run of them): ``Word_Break`` ALetter, Hebrew_Letter,
  Numeric, ExtendNumLet (``_``, ``＿``, ``‿``), Extend (combining marks) but for emoji components
  and variation selectors, and the Southeast Asian scripts (``Line_Break=Complex_Context``),
  which the tokenizer keeps whole;
* every other character **separates** tokens: punctuation and symbols (``™`` ``℃`` ``№`` ``²``
  ``½`` ``①`` ``㈱`` ``￥`` ``،``), spaces, emoji and their components, format characters
  (``Word_Break=Format``: soft hyphen, zero-width joiner), private use, and the joiners below when
  they do not join.
* **digits** are ``Word_Break=Numeric`` (every script's decimal digits), **connectors** are
  ExtendNumLet; the other word characters are **letters**;
* **letter joiners** are ``Word_Break`` MidLetter, MidNumLet and Single_Quote (``.`` ``'`` ``:``
  ``·`` and their full-width and small forms), **digit joiners** MidNum, MidNumLet and
  Single_Quote (``.`` ``,`` ``;`` ``،`` ``٬`` ``⁄``).

Two more tables (assigned code points only) name characters the rules above treat specially:
**Han** (``Script=Han``), after which an iteration mark stands for the same character (the
index's CJK analyzer replaces it by a character filter, ``佐々木`` is indexed as ``佐佐木``; the
embedded engine folds alike, :func:`pipelines.search.text.width_fold`), and **Hebrew letters**
(``Word_Break=Hebrew_Letter``), which keep an apostrophe after them and a ``"`` between two of them
inside the word (UAX #29 WB7a-c: ``פרופ'``, ``צה"ל``).

Unassigned code points take the class of the code point before them (so the classes stay a few
hundred ranges, which RE2 compiles quickly); the test ignores them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

Ranges = tuple[tuple[int, int], ...]

CJK = (
    r"[\p{Script=Han}\p{Script=Hiragana}\p{Word_Break=Katakana}"
    r"[\p{Script=Hangul}&&\p{Word_Break=ALetter}]"
    r"[\p{Word_Break=Extend}&&[\p{Block=CJK_Symbols_And_Punctuation}\p{Block=Hiragana}"
    r"\p{Block=Katakana}\p{Block=Halfwidth_And_Fullwidth_Forms}]]"
    r"\p{Block=Variation_Selectors_Supplement}]"
)
WORD = (
    r"[\p{Word_Break=ALetter}\p{Word_Break=Hebrew_Letter}\p{Word_Break=Numeric}"
    r"\p{Word_Break=ExtendNumLet}\p{Line_Break=Complex_Context}"
    r"[\p{Word_Break=Extend}--\p{Emoji_Component}--\p{Variation_Selector}]]"
)
DIGIT = r"\p{Word_Break=Numeric}"
CONNECTOR = r"\p{Word_Break=ExtendNumLet}"
LETTER_JOINER = r"[\p{Word_Break=MidLetter}\p{Word_Break=MidNumLet}\p{Word_Break=Single_Quote}]"
DIGIT_JOINER = r"[\p{Word_Break=MidNum}\p{Word_Break=MidNumLet}\p{Word_Break=Single_Quote}]"
UNASSIGNED = r"\p{General_Category=Unassigned}"
#: Han characters (a Japanese iteration mark after one stands for it) and Hebrew letters (WB7a-c).
HAN = r"\p{Script=Han}"
HEBREW_LETTER = r"\p{Word_Break=Hebrew_Letter}"

#: One letter per class, in the order they take precedence.
KINDS = {"c": CJK, "d": DIGIT, "n": CONNECTOR, "w": WORD}
SEP, LETTER = "s", "w"


def _all_chars() -> str:
    return "".join(chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF)


def _ranges(pattern: str, chars: str) -> Iterator[tuple[int, int]]:
    import regex

    for m in regex.finditer(f"{pattern}+", chars, flags=regex.V1):
        yield ord(m.group()[0]), ord(m.group()[-1])


def classify() -> tuple[bytearray, bytearray]:
    """Per code point: its class letter (``s`` separator, ``c`` CJK, ``d`` digit, ``n``
    connector, ``w`` other word character), and a mask of the unassigned code points."""
    chars = _all_chars()
    kinds = bytearray(SEP.encode() * (sys.maxunicode + 1))
    for letter, pattern in reversed(KINDS.items()):  # the first kind wins
        for lo, hi in _ranges(pattern, chars):
            kinds[lo : hi + 1] = letter.encode() * (hi - lo + 1)
    unassigned = bytearray(sys.maxunicode + 1)
    for lo, hi in _ranges(UNASSIGNED, chars):
        unassigned[lo : hi + 1] = b"\x01" * (hi - lo + 1)
    return kinds, unassigned


def assigned_ranges(pattern: str) -> Ranges:
    """The ranges of the (assigned) code points ``pattern`` matches."""
    return tuple(_ranges(pattern, _all_chars()))


def joiners(pattern: str) -> str:
    return "".join(chr(c) for lo, hi in _ranges(pattern, _all_chars()) for c in range(lo, hi + 1))


def compact(kinds: bytearray, unassigned: bytearray) -> bytearray:
    """``kinds`` with every unassigned code point given the class of the one before it."""
    out = bytearray(kinds)
    prev = ord(SEP)
    for cp in range(len(out)):
        if unassigned[cp]:
            out[cp] = prev
        else:
            prev = out[cp]
    return out


def runs(kinds: bytearray, letters: str) -> Ranges:
    """The ranges of code points whose class is one of ``letters``."""
    wanted = bytearray(256)
    for letter in letters:
        wanted[ord(letter)] = 1
    out: list[tuple[int, int]] = []
    start = None
    for cp, kind in enumerate(kinds):
        if wanted[kind]:
            if start is None:
                start = cp
        elif start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, len(kinds) - 1))
    return tuple(out)


def case_extras() -> dict[str, str]:
    """Characters whose lower case is ``l`` but that are neither ``l`` nor ``l.upper()`` nor
    ``l.title()`` (``K`` KELVIN SIGN for ``k``, ``İ`` for ``i``), by ``l``."""
    extras: dict[str, str] = {}
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        low = simple_lower(ch)
        if low != ch and ch not in (low.upper(), low.title()):
            extras[low] = extras.get(low, "") + ch
    return extras


def simple_lower(ch: str) -> str:
    """The simple (one character) lower case of ``ch``, as Java's ``Character.toLowerCase`` and so
    Lucene's ``lowercase`` filter give it: ``İ`` is ``i`` (Python's full mapping says ``i̇``)."""
    low = ch.lower()
    return low if len(low) == 1 else "i" if ch == "\u0130" else ch


def simple_fold(text: str) -> str:
    """``text`` lower-cased one character at a time (:func:`simple_lower`), as DuckDB's ``lower()``
    and Elasticsearch's ``lowercase`` filter and normalizer do: a final ``Σ`` is ``σ``, not ``ς``."""
    return "".join(simple_lower(ch) for ch in text)


def _fmt_ranges(name: str, ranges: Ranges, doc: str) -> str:
    lines = [f"#: {doc}", f"{name}: tuple[tuple[int, int], ...] = ("]
    row: list[str] = []
    for lo, hi in ranges:
        row.append(f"(0x{lo:X}, 0x{hi:X}),")
        if len(row) == 5:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append(")")
    return "\n".join(lines)


def _escape(chars: str) -> str:
    return "".join(ch if ch.isprintable() and ch not in "\"\\'" else f"\\u{ord(ch):04x}" for ch in chars)


def render() -> str:
    import regex

    kinds = compact(*classify())
    parts = [
        '"""Character tables of the search tokenizer, generated by ``python -m pipelines.search.wordbreak``',
        f"from the Unicode data of regex {regex.__version__}: do not edit by hand.",
        '"""',
        "",
        "# fmt: off",
        _fmt_ranges("SEPARATOR_RANGES", runs(kinds, SEP), "Characters that separate tokens."),
        _fmt_ranges("CJK_RANGES", runs(kinds, "c"), "Characters the ``cjk`` analyzer bigrams."),
        _fmt_ranges("DIGIT_RANGES", runs(kinds, "d"), "Word_Break=Numeric."),
        _fmt_ranges("CONNECTOR_RANGES", runs(kinds, "n"), "Word_Break=ExtendNumLet."),
        _fmt_ranges("HAN_RANGES", assigned_ranges(HAN), "Script=Han."),
        _fmt_ranges("HEBREW_RANGES", assigned_ranges(HEBREW_LETTER), "Word_Break=Hebrew_Letter."),
        "# fmt: on",
        "#: Join two letters (MidLetter, MidNumLet, Single_Quote).",
        f'LETTER_JOINERS = "{_escape(joiners(LETTER_JOINER))}"',
        "#: Join two digits (MidNum, MidNumLet, Single_Quote).",
        f'DIGIT_JOINERS = "{_escape(joiners(DIGIT_JOINER))}"',
        "#: Characters whose simple lower case is the key, beyond the key's upper and title case.",
        "CASE_EXTRAS: dict[str, str] = {",
        *(f'    "{_escape(k)}": "{_escape(v)}",' for k, v in sorted(case_extras().items())),
        "}",
        "",
    ]
    return "\n".join(parts)


def main() -> None:
    target = Path(__file__).with_name("unicode_tables.py")
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
