"""What a search word means, defined once for both engines.

Elasticsearch indexes ``body`` with the ``standard`` analyzer (Unicode word segmentation, UAX #29,
then lower-casing) and ``body.cjk`` with the ``cjk`` analyzer (overlapping bigrams of Chinese,
Japanese and Korean characters). The embedded engine has no index: it scans the Parquet files
with RE2 regular expressions (DuckDB's ``regexp_matches``). This module turns a query word or
phrase into *segments* and then into patterns that reproduce the analyzers' behaviour:

* a **Latin segment** is one token as the standard tokenizer would cut it: letters, digits and
  connectors (``_``), where ``.`` ``'`` ``’`` ``:`` ``·`` (and their full-width and small forms)
  join two letters and ``.`` ``,`` ``;`` ``'`` ``’`` (likewise) join two digits (``don't``,
  ``example.com``, ``1,000.50`` are single tokens, ``hello,world`` and ``10:30`` are two). Which
  character is which comes from Unicode (:mod:`pipelines.search.wordbreak`). It matches a whole
  token, ignoring case as Elasticsearch's ``lowercase`` filter does (each letter becomes the class
  of the letters with the same simple lower case, in both dialects), never part of one;
* a **CJK segment** is a run of Han, kana or Hangul characters. It matches as a substring, which
  is what a ``match_phrase`` over bigrams amounts to. A word or phrase with CJK is matched on the
  width-folded text (:func:`width_fold`), as the ``cjk`` analyzer folds both sides;
* a phrase is its segments in order: two Latin tokens with only separators between them (no
  other token, no joiner that would glue them into one), CJK runs likewise, and a Latin token next
  to a CJK run with or without separators;
* a prefix (``settl*``) is a Latin token start: it matches the beginning of any token.

The same segments give Python patterns (lookarounds instead of consumed context) for highlighting
hits and for re-checking a text that only exists in Python (the CRM view of a body).

Known differences, documented for users: a single CJK character matches anywhere on the embedded
engine but on Elasticsearch only where it stands alone (bigrams hide it); the ``cjk`` analyzer
drops English stop words, so in a phrase that mixes CJK and Latin words, ``the``/``and``/… are
ignored by Elasticsearch but required by the embedded engine; emoji are separators, and marks
that UAX #29 attaches to whatever precedes them have a fixed class; an invisible format character
inside a word
(soft hyphen, zero-width joiner) stays part of the word in Elasticsearch (``pass<SHY>word`` is
one token, matched by neither ``pass`` nor ``password``) but splits it on the embedded engine
(``pass`` finds it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from pipelines.search import unicode_tables as _tables
from pipelines.search.wordbreak import simple_lower

#: The character classes, derived from Unicode properties (UAX #29 word break, scripts) by
#: :mod:`pipelines.search.wordbreak`, which documents the rules; a test checks the tables against
#: them. Characters that are neither separators nor CJK are word characters (letters of any
#: script, digits, connectors such as ``_``, combining marks). Explicit ranges rather than Unicode
#: properties in the patterns: Python and RE2 then agree on every character.
CJK_RANGES = _tables.CJK_RANGES
SEPARATOR_RANGES = _tables.SEPARATOR_RANGES
DIGIT_RANGES = _tables.DIGIT_RANGES
#: ExtendNumLet (``_``, ``＿``, ``‿``): word characters that are neither letters nor digits.
CONNECTOR_RANGES = _tables.CONNECTOR_RANGES

#: UAX #29 MidLetter, MidNumLet and Single_Quote: glue letter to letter (``don't``,
#: ``example．com``, ``l·l``).
LETTER_JOINERS = _tables.LETTER_JOINERS
#: MidNum, MidNumLet and Single_Quote: glue digit to digit (``1,000.50``, ``1，000``, ``3⁄4``).
DIGIT_JOINERS = _tables.DIGIT_JOINERS

Ranges = tuple[tuple[int, int], ...]


def _minus(ranges: Ranges, chars: str) -> Ranges:
    out: list[tuple[int, int]] = []
    drop = sorted(ord(c) for c in chars)
    for lo, hi in ranges:
        start = lo
        for cp in drop:
            if start <= cp <= hi:
                if cp > start:
                    out.append((start, cp - 1))
                start = cp + 1
        if start <= hi:
            out.append((start, hi))
    return tuple(out)


def _chars(chars: str) -> Ranges:
    return tuple((ord(c), ord(c)) for c in chars)


def _re2_class(*groups: Ranges, negate: bool = False) -> str:
    def one(cp: int) -> str:
        return f"\\x{{{cp:X}}}"

    body = "".join(one(lo) if lo == hi else f"{one(lo)}-{one(hi)}" for g in groups for lo, hi in g)
    return f"[{'^' if negate else ''}{body}]"


def _py_class(*groups: Ranges, negate: bool = False) -> str:
    def one(cp: int) -> str:
        return re.escape(chr(cp))

    body = "".join(one(lo) if lo == hi else f"{one(lo)}-{one(hi)}" for g in groups for lo, hi in g)
    return f"[{'^' if negate else ''}{body}]"


@dataclass(frozen=True)
class Classes:
    """The character classes both regex dialects are built from."""

    sep: str  # separates tokens
    cjk: str
    word: str  # continues a Latin token
    not_word: str
    letter: str
    not_letter: str
    digit: str
    not_digit: str
    lj: str  # letter joiners
    dj: str  # digit joiners
    sep_no_lj: str
    sep_no_dj: str
    not_word_no_lj: str
    not_word_no_dj: str


def _classes(render: Callable[..., str]) -> Classes:
    sep, cjk, dig = SEPARATOR_RANGES, CJK_RANGES, DIGIT_RANGES
    return Classes(
        sep=render(sep),
        cjk=render(cjk),
        word=render(sep, cjk, negate=True),
        not_word=render(sep, cjk),
        letter=render(sep, cjk, dig, CONNECTOR_RANGES, negate=True),
        not_letter=render(sep, cjk, dig, CONNECTOR_RANGES),
        digit=render(dig),
        not_digit=render(dig, negate=True),
        lj=render(_chars(LETTER_JOINERS)),
        dj=render(_chars(DIGIT_JOINERS)),
        sep_no_lj=render(_minus(sep, LETTER_JOINERS)),
        sep_no_dj=render(_minus(sep, DIGIT_JOINERS)),
        not_word_no_lj=render(_minus(sep, LETTER_JOINERS), cjk),
        not_word_no_dj=render(_minus(sep, DIGIT_JOINERS), cjk),
    )


R2 = _classes(_re2_class)
PY = _classes(_py_class)
_CJK_CHAR = re.compile(PY.cjk)
_DIGIT_CHAR = re.compile(PY.digit)
_LETTER_CHAR = re.compile(PY.letter)
_JOIN = f"(?:(?<={PY.letter}){PY.lj}(?={PY.letter})|(?<={PY.digit}){PY.dj}(?={PY.digit}))"
_TOKEN = f"{PY.word}+(?:{_JOIN}{PY.word}+)*"
_SEGMENTS = re.compile(f"(?P<cjk>{PY.cjk}+)|(?P<latin>{_TOKEN})")


@dataclass(frozen=True)
class Segment:
    """A piece of a query word or phrase: one Latin token, or a run of CJK characters."""

    text: str
    cjk: bool


def segments(text: str) -> list[Segment]:
    """Latin tokens and CJK runs of ``text``, in order; separators dropped."""
    return [Segment(m.group(), cjk=m.lastgroup == "cjk") for m in _SEGMENTS.finditer(text)]


def has_cjk(text: str) -> bool:
    return _CJK_CHAR.search(text) is not None


def is_single_token(text: str) -> bool:
    """True when ``text`` is exactly one Latin token (what a prefix may be)."""
    segs = segments(text)
    return len(segs) == 1 and not segs[0].cjk and segs[0].text == text


def _kind(ch: str) -> str:
    if _DIGIT_CHAR.match(ch):
        return "digit"
    if _LETTER_CHAR.match(ch):
        return "letter"
    return "other"  # a connector (``_``)


def _left(c: Classes, first: str, *, lookaround: bool) -> str:
    """What may precede a token: not a word character, nor a joiner glued to one."""
    kind = _kind(first)
    if lookaround:  # Python: assert without consuming, so spans are exact
        extra = {"letter": f"(?<!{c.letter}{c.lj})", "digit": f"(?<!{c.digit}{c.dj})"}.get(kind, "")
        return f"(?<!{c.word}){extra}"
    if kind == "letter":
        return f"(?:^|{c.not_word_no_lj}|(?:^|{c.not_letter}){c.lj})"
    if kind == "digit":
        return f"(?:^|{c.not_word_no_dj}|(?:^|{c.not_digit}){c.dj})"
    return f"(?:^|{c.not_word})"


def _right(c: Classes, last: str, *, lookaround: bool) -> str:
    kind = _kind(last)
    if lookaround:
        extra = {"letter": f"(?!{c.lj}{c.letter})", "digit": f"(?!{c.dj}{c.digit})"}.get(kind, "")
        return f"(?!{c.word}){extra}"
    if kind == "letter":
        return f"(?:$|{c.not_word_no_lj}|{c.lj}(?:$|{c.not_letter}))"
    if kind == "digit":
        return f"(?:$|{c.not_word_no_dj}|{c.dj}(?:$|{c.not_digit}))"
    return f"(?:$|{c.not_word})"


def _gap(c: Classes, a: Segment, b: Segment) -> str:
    """What may stand between two consecutive segments of a phrase."""
    if a.cjk and b.cjk:
        return f"{c.sep}+"
    if a.cjk or b.cjk:
        return f"{c.sep}*"
    left, right = _kind(a.text[-1]), _kind(b.text[0])
    if left == right == "letter":  # one joiner alone would glue the two into one token
        return f"(?:{c.sep_no_lj}|{c.sep}{{2,}})"
    if left == right == "digit":
        return f"(?:{c.sep_no_dj}|{c.sep}{{2,}})"
    return f"{c.sep}+"


def _pattern(c: Classes, segs: list[Segment], prefix: bool, literal: Callable[[str], str], py: bool) -> str:
    if not segs:
        raise ValueError("nothing to search for")
    parts: list[str] = []
    if not segs[0].cjk:
        parts.append(_left(c, segs[0].text[0], lookaround=py))
    for i, seg in enumerate(segs):
        if i:
            parts.append(_gap(c, segs[i - 1], seg))
        parts.append(literal(seg.text))
    if prefix:
        if py:  # highlight the whole token the prefix starts
            parts.append(f"{c.word}*(?:(?:{c.lj}|{c.dj}){c.word}+)*")
    elif not segs[-1].cjk:
        parts.append(_right(c, segs[-1].text[-1], lookaround=py))
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# case: what Elasticsearch's ``lowercase`` filter makes equal


def case_variants(ch: str) -> str:
    """Every character whose simple lower case is that of ``ch``: what Elasticsearch's
    ``lowercase`` filter treats as ``ch``. ``i``: ``iIİ`` (not ``ı``); ``k``: ``kKK`` (Kelvin
    sign); ``s``: ``sS`` (not ``ſ``, which is its own lower case)."""
    return _case_variants(simple_lower(ch))


@lru_cache(maxsize=4096)
def _case_variants(low: str) -> str:
    found = [low]
    for other in (low.upper(), low.title(), *_tables.CASE_EXTRAS.get(low, "")):
        if len(other) == 1 and other not in found and simple_lower(other) == low:
            found.append(other)
    return "".join(found)


def _literal(text: str, escape: Callable[[str], str], klass: Callable[[str], str]) -> str:
    """``text`` matched ignoring case: each character with other cases becomes a class of them.
    The same classes in both dialects (no ``(?i)``/``re.IGNORECASE``, whose case folding differs
    between RE2 and Python, and from Elasticsearch's: ``ı``, ``İ``, ``ſ``, ``ς``)."""
    out = []
    for ch in text:
        variants = case_variants(ch)
        out.append(escape(ch) if len(variants) == 1 else klass(variants))
    return "".join(out)


def _re2_escape(text: str) -> str:
    return "".join("\\" + ch if ch in r"\.^$|?*+()[]{}-/" else ch for ch in text)


def _re2_literal(text: str) -> str:
    return _literal(text, _re2_escape, lambda chars: "[" + "".join(f"\\x{{{ord(c):X}}}" for c in chars) + "]")


def _py_literal(text: str) -> str:
    return _literal(text, re.escape, lambda chars: "[" + "".join(re.escape(c) for c in chars) + "]")


def re2_pattern(segs: list[Segment], *, prefix: bool = False) -> str:
    """RE2 pattern for a word or phrase (or, with ``prefix``, a token start), ignoring case."""
    return _pattern(R2, segs, prefix, _re2_literal, py=False)


def py_pattern(segs: list[Segment], *, prefix: bool = False) -> re.Pattern[str]:
    """The Python twin of :func:`re2_pattern` (context as lookarounds, so spans are exact)."""
    return re.compile(_pattern(PY, segs, prefix, _py_literal, py=True))


def literal_hint(segs: list[Segment]) -> str | None:
    """An RE2 pattern for the longest Latin segment alone, ignoring case as the full pattern does:
    every match of the full pattern contains it, so it is a safe prefilter; RE2 runs a bare literal
    several times faster than the full pattern (and faster than ``ILIKE``, measured on a million
    bodies), and the full pattern then only sees the rows it lets through."""
    latin = [s.text for s in segs if not s.cjk]
    return _re2_literal(max(latin, key=len)) if latin else None


def cjk_hint(segs: list[Segment]) -> str | None:
    """The longest CJK run of a phrase: a case-free substring every match contains, checked with a
    plain ``contains`` (the cheapest test) before anything else."""
    cjk = [s.text for s in segs if s.cjk]
    return max(cjk, key=len) if cjk else None


# ---------------------------------------------------------------------------------------------
# width folding (what Elasticsearch's cjk_width filter does in the ``cjk`` analyzer)


def _width_table() -> dict[int, str]:
    table = {code: chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)}  # full-width ASCII
    for code in range(0xFF65, 0xFFA0):  # half-width katakana and its sound marks
        table[code] = unicodedata.normalize("NFKC", chr(code))
    return table


_WIDTH = _width_table()
#: RE2 class of the characters :func:`width_fold` changes (a cheap test before folding a body).
WIDTH_FORMS = "[\\x{FF01}-\\x{FF5E}\\x{FF65}-\\x{FF9F}]"
_WIDTH_FORM = re.compile("[\uff01-\uff5e\uff65-\uff9f]")
_HALF_SOUND_MARKS = "\uff9e\uff9f"


def width_fold(text: str) -> str:
    """Full-width ASCII as ASCII (``ＴＳＭＣ`` → ``TSMC``) and half-width katakana as full-width
    kana, a half-width sound mark joined to the kana before it (``ｶｰﾄﾞ`` → ``カード``), like
    Elasticsearch's ``cjk_width`` filter."""
    return width_fold_offsets(text)[0]


def has_width_forms(text: str) -> bool:
    """Does :func:`width_fold` change ``text``?"""
    return _WIDTH_FORM.search(text) is not None


def width_fold_offsets(text: str) -> tuple[str, list[int]]:
    """:func:`width_fold`, and where each folded character starts in ``text`` (plus ``len(text)``
    at the end), so a span ``(s, e)`` of the folded text is ``(starts[s], starts[e])`` of ``text``."""
    if not has_width_forms(text):
        return text, list(range(len(text) + 1))
    out: list[str] = []
    starts: list[int] = []
    for i, ch in enumerate(text):
        mapped = _WIDTH.get(ord(ch), ch)
        if ch in _HALF_SOUND_MARKS and out:
            joined = unicodedata.normalize("NFC", out[-1] + mapped)
            if len(joined) == 1:
                out[-1] = joined
                continue
        out.append(mapped)
        starts.append(i)
    starts.append(len(text))
    return "".join(out), starts


def width_sensitive(text: str) -> bool:
    """Can a body spell ``text`` (already folded) with width forms: does it hold ASCII letters,
    digits or punctuation, or katakana?"""
    return any("!" <= c <= "~" or "\u3099" <= c <= "\u30ff" for c in text)


def search_segments(text: str) -> tuple[list[Segment], bool]:
    """The segments a word or phrase is matched with, and whether bodies are width-folded for it:
    text with CJK is searched on Elasticsearch's ``cjk`` field, whose analyzer folds widths
    (``cjk_width``) on both sides, so its segments are those of the folded text."""
    segs = segments(text)
    if not any(s.cjk for s in segs):
        return segs, False
    folded = width_fold(text)
    return (segments(folded) if folded != text else segs), True
