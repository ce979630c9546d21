"""What a search word means, defined once for both engines.

Elasticsearch indexes ``body`` with the ``standard`` analyzer (Unicode word segmentation, UAX #29,
then lower-casing) and ``body.cjk`` with the ``cjk`` analyzer (overlapping bigrams of Chinese,
Japanese and Korean characters). The embedded engine has no index: it scans the Parquet files
with RE2 regular expressions (DuckDB's ``regexp_matches``). This module turns a query word or
phrase into *segments* and then into patterns that reproduce the analyzers' behaviour:

* a **Latin segment** is one token as the standard tokenizer would cut it: letters, digits and
  ``_``, where ``.`` ``'`` ``’`` ``:`` ``·`` (and their full-width and small forms) join two
  letters and ``.`` ``,`` ``;`` ``'`` ``’`` (likewise) join two digits (``don't``, ``example.com``,
  ``1,000.50`` are single tokens, ``hello,world`` and ``10:30`` are two). It matches a whole
  token, case-insensitively, never part of one;
* a **CJK segment** is a run of Han, kana or Hangul characters. It matches as a substring, which
  is what a ``match_phrase`` over bigrams amounts to;
* a phrase is its segments in order: two Latin tokens with only separators between them (no
  other token, no joiner that would glue them into one), CJK runs likewise, and a Latin token next
  to a CJK run with or without separators;
* a prefix (``settl*``) is a Latin token start: it matches the beginning of any token.

The same segments give Python patterns (lookarounds instead of consumed context) for highlighting
hits and for re-checking a text that only exists in Python (the CRM view of a body).

Known differences, documented for users: a single CJK character matches anywhere on the embedded
engine but on Elasticsearch only where it stands alone (bigrams hide it); the ``cjk`` analyzer
drops English stop words, so in a phrase that mixes CJK and Latin words, ``the``/``and``/… are
ignored by Elasticsearch but required by the embedded engine; emoji, and joiners other than the
ones listed above, follow the simpler embedded rule; an invisible format character inside a word
(soft hyphen, zero-width joiner) stays part of the word in Elasticsearch (``pass<SHY>word`` is
one token, matched by neither ``pass`` nor ``password``) but splits it on the embedded engine
(``pass`` finds it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

#: Scripts the ``cjk`` analyzer bigrams (Han with its marks, kana, Hangul), as code point ranges.
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # Hiragana, Katakana (with ー)
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x2FA1F),  # CJK extensions B..F, compatibility supplement
)

#: Characters that separate tokens: ASCII and Latin-1 punctuation and symbols, general and CJK
#: punctuation, full-width punctuation, arrows, maths, box drawing, emoji. Every other character
#: that is not CJK is a word character (letters of any script, digits, ``_``, marks). An explicit
#: list rather than Unicode properties: RE2 runs small classes several times faster, and Python
#: and RE2 then agree on every character.
SEPARATOR_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x2F),
    (0x3A, 0x40),
    (0x5B, 0x5E),
    (0x60, 0x60),
    (0x7B, 0xA9),
    (0xAB, 0xB1),
    (0xB4, 0xB4),
    (0xB6, 0xB8),
    (0xBB, 0xBB),
    (0xBF, 0xBF),
    (0xD7, 0xD7),
    (0xF7, 0xF7),
    (0x2000, 0x206F),  # general punctuation (spaces, dashes, quotes, ellipsis)
    (0x20A0, 0x20CF),  # currency
    (0x2190, 0x23FF),  # arrows, maths, technical
    (0x2500, 0x27BF),  # box drawing, shapes, dingbats
    (0x2900, 0x2BFF),  # arrows, maths, symbols
    (0x2E00, 0x2E7F),  # supplemental punctuation
    (0x3000, 0x3004),  # ideographic space, 、。
    (0x3008, 0x3020),  # CJK brackets 「」『』【】
    (0x3030, 0x3030),
    (0xFE30, 0xFE6F),  # CJK compatibility and small forms
    (0xFF00, 0xFF0F),  # full-width punctuation
    (0xFF1A, 0xFF20),
    (0xFF3B, 0xFF40),
    (0xFF5B, 0xFF65),
    (0x1F000, 0x1FAFF),  # emoji and pictographs
)
DIGIT_RANGES: tuple[tuple[int, int], ...] = ((0x30, 0x39), (0xFF10, 0xFF19))
UNDERSCORE: tuple[tuple[int, int], ...] = ((0x5F, 0x5F),)

#: UAX #29 MidLetter and MidNumLet (and the apostrophe): glue letter to letter. With their
#: full-width and small forms, the middle dot and the hyphenation point (``l·l``, ``example．com``).
LETTER_JOINERS = ":.'’‘․·‧﹒﹕＇．："
#: MidNum and MidNumLet: glue digit to digit (``1,000.50``, ``1，000``, ``3⁄4``).
DIGIT_JOINERS = ".,;'’‘․⁄﹐﹒﹔＇，．；"

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
        letter=render(sep, cjk, dig, UNDERSCORE, negate=True),
        not_letter=render(sep, cjk, dig, UNDERSCORE),
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
    if ch == "_":
        return "other"
    return "letter"


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


def _pattern(c: Classes, segs: list[Segment], prefix: bool, escape: Callable[[str], str], py: bool) -> str:
    if not segs:
        raise ValueError("nothing to search for")
    parts: list[str] = []
    if not segs[0].cjk:
        parts.append(_left(c, segs[0].text[0], lookaround=py))
    for i, seg in enumerate(segs):
        if i:
            parts.append(_gap(c, segs[i - 1], seg))
        parts.append(escape(seg.text))
    if prefix:
        if py:  # highlight the whole token the prefix starts
            parts.append(f"{c.word}*(?:(?:{c.lj}|{c.dj}){c.word}+)*")
    elif not segs[-1].cjk:
        parts.append(_right(c, segs[-1].text[-1], lookaround=py))
    return "".join(parts)


def _re2_escape(text: str) -> str:
    return "".join("\\" + ch if ch in r"\.^$|?*+()[]{}-/" else ch for ch in text)


def re2_pattern(segs: list[Segment], *, prefix: bool = False) -> str:
    """Case-insensitive RE2 pattern for a word or phrase (or, with ``prefix``, a token start)."""
    return "(?i)" + _pattern(R2, segs, prefix, _re2_escape, py=False)


def py_pattern(segs: list[Segment], *, prefix: bool = False) -> re.Pattern[str]:
    """The Python twin of :func:`re2_pattern` (context as lookarounds, so spans are exact)."""
    return re.compile(_pattern(PY, segs, prefix, re.escape, py=True), re.IGNORECASE)


def literal_hint(segs: list[Segment]) -> str | None:
    """A case-insensitive RE2 pattern for the longest Latin segment alone: every match of the full
    pattern contains it, folded the same way by the same engine, so it is a safe prefilter; RE2 runs
    a bare literal several times faster than the full pattern (and faster than ``ILIKE``, measured
    on a million bodies), and the full pattern then only sees the rows it lets through."""
    latin = [s.text for s in segs if not s.cjk]
    return "(?i)" + _re2_escape(max(latin, key=len)) if latin else None


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


def width_fold(text: str) -> str:
    """Full-width ASCII as ASCII (``ＴＳＭＣ`` → ``TSMC``) and half-width katakana as full-width
    kana, sound marks joined (``ｶｰﾄﾞ`` → ``カード``), like Elasticsearch's ``cjk_width`` filter."""
    folded = text.translate(_WIDTH)
    return unicodedata.normalize("NFC", folded) if folded != text else text
