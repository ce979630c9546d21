"""What a search word means, defined once for both engines.

Elasticsearch indexes ``body`` with the ``standard`` analyzer (Unicode word segmentation, UAX #29,
then lower-casing) and ``body.cjk`` with the ``cjk`` analyzer (overlapping bigrams of Chinese,
Japanese and Korean characters). The embedded engine has no index: it scans the Parquet files
with RE2 regular expressions (DuckDB's ``regexp_matches``). This module turns a query word or
phrase into *segments* and then into patterns that reproduce the analyzers' behaviour:

* a **Latin segment** is one token as the standard tokenizer would cut it: letters, digits and
  connectors (``_``), where ``.`` ``'`` ``’`` ``:`` ``·`` (and their full-width and small forms)
  join two letters and ``.`` ``,`` ``;`` ``'`` ``’`` (likewise) join two digits (``don't``,
  ``example.com``, ``1,000.50`` are single tokens, ``hello,world`` and ``10:30`` are two); a
  Hebrew letter also keeps an apostrophe after it and a ``"`` before another Hebrew letter
  (``פרופ'``, ``צה"ל``: UAX #29 WB7a-c). Which character is which comes from Unicode
  (:mod:`pipelines.search.wordbreak`). It matches a whole token, ignoring case as
  Elasticsearch's ``lowercase`` filter does (each letter becomes the class of the letters with
  the same simple lower case, in both dialects), never part of one. A run of connectors alone
  (``____``) is no token, as for the tokenizer, which drops it;
* a **CJK segment** is a run of Han, kana or Hangul characters. It matches as a substring, which
  is what a ``match_phrase`` over bigrams amounts to. A word or phrase with CJK is matched on the
  folded text (:func:`width_fold`: width forms, and an iteration mark after a Han character as
  that character, ``佐々木`` = ``佐佐木``), as the index's CJK analyzer folds both sides;
* a phrase is its segments in order: two Latin tokens with only separators between them (no
  other token, no joiner that would glue them into one), CJK runs likewise, and a Latin token next
  to a CJK run with or without separators; runs of connectors alone may stand between them too,
  so long as none touches a Latin token (``Name: ____ Date`` has the phrase ``name date``,
  ``Name: ____Date`` does not);
* a prefix (``settl*``) is a Latin token start: it matches the beginning of any token.

The same segments give Python patterns (lookarounds instead of consumed context) for highlighting
hits and for re-checking a text that only exists in Python (the CRM view of a body).

Known differences, documented for users: a single CJK character matches anywhere on the embedded
engine but on Elasticsearch only where it stands alone (bigrams hide it); emoji are separators, and marks
that UAX #29 attaches to whatever precedes them have a fixed class; an invisible format character
inside a word
(soft hyphen, zero-width joiner) stays part of the word in Elasticsearch (``pass<SHY>word`` is
one token, matched by neither ``pass`` nor ``password``) but splits it on the embedded engine
(``pass`` finds it). Hangul is a letter to UAX #29: written against Latin letters, digits,
connectors or a joiner between letters (``iPhone을``, ``3개``, ``삼성Galaxy``, ``삼성.전자``) it
makes one word with them in Elasticsearch, which the ``cjk`` analyzer does not cut into bigrams,
so neither ``iphone``, ``3``, ``galaxy`` nor ``삼성`` finds that word there; the embedded engine
reads the Hangul as a CJK run and the rest as a word of its own, and finds all of them. (Whether
Hangul is a word's letter or a CJK run depends on the whole run of Hangul around a match, which
needs a look back of any length: RE2 has no look-behind, and Python's ``re``, which highlights,
only a fixed one.) The same holds for katakana written against ``_``
(``カード_番号``: ``カード_`` is one word there).
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
#: Hebrew letters keep an apostrophe after them in the word (``פרופ'``) and a ``"`` between two
#: of them (``צה"ל``): UAX #29 WB7a-c.
HEBREW_RANGES = _tables.HEBREW_RANGES
SINGLE_QUOTE = "'"
DOUBLE_QUOTE = '"'
#: Han characters: a Japanese iteration mark after one stands for it (:func:`width_fold`).
HAN_RANGES = _tables.HAN_RANGES
#: The Japanese iteration marks (``々``, and the vertical ``〻``).
ITERATION_MARKS = "\u3005\u303b"

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
    connector: str
    gap: str  # may stand between two tokens of a phrase: a separator, or a run of connectors
    hebrew: str
    not_hebrew: str
    sep_no_sq: str  # after a Hebrew letter, an apostrophe belongs to the word
    lj_no_sq: str
    not_word_no_lj_dq: str
    sep_no_lj_dq: str


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
        connector=render(CONNECTOR_RANGES),
        gap=render(sep, CONNECTOR_RANGES),
        hebrew=render(HEBREW_RANGES),
        not_hebrew=render(HEBREW_RANGES, negate=True),
        sep_no_sq=render(_minus(sep, SINGLE_QUOTE)),
        lj_no_sq=render(_minus(_chars(LETTER_JOINERS), SINGLE_QUOTE)),
        not_word_no_lj_dq=render(_minus(sep, LETTER_JOINERS + DOUBLE_QUOTE), cjk),
        sep_no_lj_dq=render(_minus(sep, LETTER_JOINERS + DOUBLE_QUOTE)),
    )


R2 = _classes(_re2_class)
PY = _classes(_py_class)
_CJK_CHAR = re.compile(PY.cjk)
_DIGIT_CHAR = re.compile(PY.digit)
_LETTER_CHAR = re.compile(PY.letter)
_HEBREW_CHAR = re.compile(PY.hebrew)
_HAN_CHAR = re.compile(_py_class(HAN_RANGES))
_CONNECTORS_ONLY = re.compile(f"{PY.connector}+")
_JOIN = (
    f"(?:(?<={PY.letter}){PY.lj}(?={PY.letter})|(?<={PY.digit}){PY.dj}(?={PY.digit})"
    f'|(?<={PY.hebrew})"(?={PY.hebrew}))'
)
# a word, and the apostrophe a Hebrew letter keeps after it (WB7a)
_TOKEN = f"{PY.word}+(?:{_JOIN}{PY.word}+)*(?:(?<={PY.hebrew})')?"
_SEGMENTS = re.compile(f"(?P<cjk>{PY.cjk}+)|(?P<latin>{_TOKEN})")


@dataclass(frozen=True)
class Segment:
    """A piece of a query word or phrase: one Latin token, or a run of CJK characters."""

    text: str
    cjk: bool


def segments(text: str) -> list[Segment]:
    """Latin tokens and CJK runs of ``text``, in order; separators dropped, and runs of connectors
    alone (``____``), which are no token to the tokenizer either."""
    return [
        Segment(m.group(), cjk=m.lastgroup == "cjk")
        for m in _SEGMENTS.finditer(text)
        if m.lastgroup == "cjk" or not _CONNECTORS_ONLY.fullmatch(m.group())
    ]


def has_cjk(text: str) -> bool:
    return _CJK_CHAR.search(text) is not None


def is_single_token(text: str) -> bool:
    """True when ``text`` is exactly one Latin token (what a prefix may be)."""
    segs = segments(text)
    return len(segs) == 1 and not segs[0].cjk and segs[0].text == text


def _kind(ch: str) -> str:
    if _DIGIT_CHAR.match(ch):
        return "digit"
    if _HEBREW_CHAR.match(ch):
        return "hebrew"  # a letter that also keeps ' after it, and " before another (WB7a-c)
    if _LETTER_CHAR.match(ch):
        return "letter"
    return "other"  # a connector (``_``), or the apostrophe ending a Hebrew word


def _is_letter(kind: str) -> bool:
    return kind in ("letter", "hebrew")


def _left(c: Classes, first: str, *, lookaround: bool) -> str:
    """What may precede a token: not a word character, nor a joiner glued to one."""
    kind = _kind(first)
    if lookaround:  # Python: assert without consuming, so spans are exact
        extra = {
            "letter": f"(?<!{c.letter}{c.lj})",
            "hebrew": f'(?<!{c.letter}{c.lj})(?<!{c.hebrew}")',
            "digit": f"(?<!{c.digit}{c.dj})",
        }.get(kind, "")
        return f"(?<!{c.word}){extra}"
    if kind == "letter":
        return f"(?:^|{c.not_word_no_lj}|(?:^|{c.not_letter}){c.lj})"
    if kind == "hebrew":
        return f'(?:^|{c.not_word_no_lj_dq}|(?:^|{c.not_letter}){c.lj}|(?:^|{c.not_hebrew})")'
    if kind == "digit":
        return f"(?:^|{c.not_word_no_dj}|(?:^|{c.not_digit}){c.dj})"
    return f"(?:^|{c.not_word})"


def _right(c: Classes, last: str, *, lookaround: bool) -> str:
    kind = _kind(last)
    if lookaround:
        extra = {
            "letter": f"(?!{c.lj}{c.letter})",
            "hebrew": f"(?!{c.lj}{c.letter})(?!')(?!\"{c.hebrew})",
            "digit": f"(?!{c.dj}{c.digit})",
        }.get(kind, "")
        return f"(?!{c.word}){extra}"
    if kind == "letter":
        return f"(?:$|{c.not_word_no_lj}|{c.lj}(?:$|{c.not_letter}))"
    if kind == "hebrew":  # an apostrophe after it is part of the word, a " before another Hebrew letter too
        return f'(?:$|{c.not_word_no_lj_dq}|{c.lj_no_sq}(?:$|{c.not_letter})|"(?:$|{c.not_hebrew}))'
    if kind == "digit":
        return f"(?:$|{c.not_word_no_dj}|{c.dj}(?:$|{c.not_digit}))"
    return f"(?:$|{c.not_word})"


def _gap(c: Classes, a: Segment, b: Segment) -> str:
    """What may stand between two consecutive segments of a phrase: separators, and runs of
    connectors alone (``Name: ____ Date``), which the tokenizer drops, so long as no connector
    touches a Latin token (``name_`` and ``_date`` are tokens of their own)."""
    first = c.gap  # the character after ``a``
    if not a.cjk:
        first = c.sep_no_sq if _kind(a.text[-1]) == "hebrew" else c.sep
    last = c.gap if b.cjk else c.sep  # the character before ``b``
    if a.cjk and b.cjk:
        return f"{c.gap}+"
    if b.cjk:
        return f"(?:{first}{c.gap}*)?"
    if a.cjk:
        return f"(?:{c.gap}*{last})?"
    return f"(?:{_one_char_gap(c, a, b)}|{first}{c.gap}*{last})"


def _one_char_gap(c: Classes, a: Segment, b: Segment) -> str:
    """The characters that alone separate two Latin tokens: a separator but a joiner that would
    glue the two into one token (``settlement.date``, ``1,000``, ``צה"ל``, ``פרופ'``)."""
    left, right = _kind(a.text[-1]), _kind(b.text[0])
    if left == right == "hebrew":
        return c.sep_no_lj_dq
    if _is_letter(left) and _is_letter(right):
        return c.sep_no_lj  # the apostrophe is a letter joiner too
    if left == right == "digit":
        return c.sep_no_dj
    return c.sep_no_sq if left == "hebrew" else c.sep


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
            joiner = f'(?:{c.lj}|{c.dj}|(?<={c.hebrew})"(?={c.hebrew}))'
            parts.append(f"{c.word}*(?:{joiner}{c.word}+)*(?:(?<={c.hebrew})')?")
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
# width folding (what Elasticsearch's cjk_width filter does in the ``cjk`` analyzer), and the
# iteration marks (what the character filter in front of that analyzer does)


def _width_table() -> dict[int, str]:
    table = {code: chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)}  # full-width ASCII
    for code in range(0xFF65, 0xFFA0):  # half-width katakana and its sound marks
        table[code] = unicodedata.normalize("NFKC", chr(code))
    return table


_WIDTH = _width_table()
#: RE2 classes of the characters :func:`width_fold` may change (a cheap test before folding a
#: body): the width forms, and the iteration marks (:func:`fold_forms` says which matter).
WIDTH_FORMS = "[\\x{FF01}-\\x{FF5E}\\x{FF65}-\\x{FF9F}]"
MARK_FORMS = "[\\x{3005}\\x{303B}]"
_WIDTH_FORM = re.compile(f"[\uff01-\uff5e\uff65-\uff9f{ITERATION_MARKS}]")
_MARK = re.compile(f"[{ITERATION_MARKS}]")
_HALF_SOUND_MARKS = "\uff9e\uff9f"


def width_fold(text: str) -> str:
    """Full-width ASCII as ASCII (``ＴＳＭＣ`` → ``TSMC``) and half-width katakana as full-width
    kana, a half-width sound mark joined to the kana before it (``ｶｰﾄﾞ`` → ``カード``), like
    Elasticsearch's ``cjk_width`` filter; and an iteration mark after a Han character as that
    character (``佐々木`` → ``佐佐木``, ``人々`` → ``人人``), like the ``pattern_replace``
    character filter in front of the index's CJK analyzer
    (:data:`exporters.elasticsearch.mapping.ITERATION_MARK_FILTER`): Elasticsearch's tokenizer makes
    a mark a word of its own, so without it ``佐々木`` would not be found in ``佐々木さん``."""
    return width_fold_offsets(text)[0]


def has_width_forms(text: str) -> bool:
    """May :func:`width_fold` change ``text`` (does it hold a width form or an iteration mark)?"""
    return _WIDTH_FORM.search(text) is not None


def has_iteration_mark(text: str) -> bool:
    return _MARK.search(text) is not None


def width_fold_offsets(text: str) -> tuple[str, list[int]]:
    """:func:`width_fold`, and where each folded character starts in ``text`` (plus ``len(text)``
    at the end), so a span ``(s, e)`` of the folded text is ``(starts[s], starts[e])`` of ``text``.

    The marks are replaced as Java's ``replaceAll`` of ``(\\p{IsHan})[々〻]`` by ``$1$1`` does:
    left to right, a match never overlapping the one before (``佐々々`` → ``佐佐々``); a
    replacement has the mark's length, so offsets stay one to one."""
    if not has_width_forms(text):
        return text, list(range(len(text) + 1))
    out: list[str] = []
    starts: list[int] = []
    after_han = False  # the character before is Han, and not the mark of a replacement
    for i, ch in enumerate(text):
        if after_han and ch in ITERATION_MARKS:
            out.append(text[i - 1])
            starts.append(i)
            after_han = False
            continue
        after_han = _HAN_CHAR.match(ch) is not None
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


def _width_foldable(ch: str) -> bool:
    """Is ``ch`` what a width form folds to (ASCII letters, digits and punctuation, katakana), or
    what a half-width sound mark joins with the letter before it (``てﾞ`` → ``で``)?"""
    return (
        "!" <= ch <= "~"
        or "\u3099" <= ch <= "\u30ff"
        or unicodedata.decomposition(ch).endswith((" 3099", " 309A"))
    )


def _mark_foldable(run: str, k: int) -> bool:
    """Can an iteration mark stand for the ``k``-th character of ``run``: a Han character that
    starts the run (in the body, the character it repeats stands just before the match) or
    repeats the one before it?"""
    ch = run[k]
    return _HAN_CHAR.match(ch) is not None and (k == 0 or run[k - 1] == ch)


def _foldable(run: str, k: int) -> bool:
    return _width_foldable(run[k]) or _mark_foldable(run, k)


def fold_forms(segs: list[Segment]) -> str | None:
    """The RE2 class of the body characters whose folding may decide whether a body matches
    ``segs`` (folded already), or None when a body matches as it is exactly when it matches
    folded: the width forms when the text holds a character one folds to (ASCII, katakana), the
    iteration marks when it holds a mark, or a Han character a mark can stand for (``佐木`` is in
    ``佐々木``, folded). A lone Han character searched alone needs no folding: a mark that stands
    for it follows it in the body."""
    width = any(_width_foldable(ch) for s in segs for ch in s.text)
    lone_han = len(segs) == 1 and len(segs[0].text) == 1
    marks = any(has_iteration_mark(s.text) for s in segs) or (
        not lone_han and any(_mark_foldable(s.text, k) for s in segs for k in range(len(s.text)))
    )
    if width and marks:
        return f"[{WIDTH_FORMS[1:-1]}{MARK_FORMS[1:-1]}]"
    return WIDTH_FORMS if width else MARK_FORMS if marks else None


#: Most single characters :func:`raw_hints` adds to its longest piece.
MAX_RAW_CHARS = 8


def raw_hints(segs: list[Segment]) -> list[str]:
    """Substrings that every body matching ``segs`` on its folded text holds before folding too,
    longest first: the longest piece of a CJK run without a character folding can produce (``险等级``
    of ``风险等级``, ``の株价`` of ``TSMCの株価``), then each other character of the CJK runs that no
    width form folds to (up to :data:`MAX_RAW_CHARS`). A Han character stands in the body as it is
    even where a mark stands for it in the query's place, since the mark repeats it just before
    (``佐佐木`` needs 佐 and 木 in ``佐々木``). Testing them on the body as it is spares folding (a
    Python function) the bodies that cannot match."""
    best = ""
    for run in (s.text for s in segs if s.cjk):
        start = 0
        for k in range(len(run) + 1):
            if k == len(run) or _foldable(run, k):
                if k - start > len(best):
                    best = run[start:k]
                start = k + 1
    chars = [
        ch
        for ch in dict.fromkeys(ch for s in segs if s.cjk for ch in s.text)
        if ch not in best and not _width_foldable(ch) and ch not in ITERATION_MARKS
    ]
    return ([best] if best else []) + chars[:MAX_RAW_CHARS]


def search_segments(text: str) -> tuple[list[Segment], bool]:
    """The segments a word or phrase is matched with, and whether bodies are width-folded for it:
    text with CJK is searched on Elasticsearch's ``cjk`` field, whose analyzer folds widths
    (``cjk_width``) on both sides, so its segments are those of the folded text."""
    segs = segments(text)
    if not any(s.cjk for s in segs):
        return segs, False
    folded = width_fold(text)
    return (segments(folded) if folded != text else segs), True
