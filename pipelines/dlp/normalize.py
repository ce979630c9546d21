"""Text normalisation before detection, with a map back to the original offsets.

People (and evasive senders) write the same card number in many ways: full-width digits from a CJK
input method (``４１１１ １１１１ …``), zero-width spaces pasted inside a number, bidi controls that
reorder what a reader sees, a soft hyphen or an invisible operator between digits, Arabic-Indic
digits, keycap emoji (``4️⃣0️⃣…``), en dashes or doubled spaces between the groups. Detection runs on a
normalised copy:

* NFKC (which folds full-width forms and compatibility characters), with a kana's sound mark
  composed whether it was typed half-width (``ﾊﾟ``) or spacing (``ハ゜``), and an acute accent
  typed for an apostrophe (``don´t``) read as one;
* every Unicode decimal digit folded to its ASCII digit, and so every digit drawn as a symbol
  (circled ``④``, parenthesised ``⑷``, ``⒋`` with its full stop, the dingbats ``➍`` and ``❹``),
  every dash (general category Pd, and the minus sign) to ``-``;
* every invisible character removed: all of general category Cf (format), all
  Default_Ignorable_Code_Point characters (soft hyphen, combining grapheme joiner, Mongolian vowel
  separator, variation selectors, Hangul fillers, tags, ...) and the control characters that are
  not white space (NUL, escape, DEL, C1 controls);
* combining marks left on an ASCII letter, digit or space after NFKC (the keycap enclosure, an underline
  or strike-through stacked on each character) dropped: accents that compose (``e`` + acute) have
  become one character by then and stay;
* every space separator (general category Zs, the Ogham space mark too, which NFKC leaves as it
  is) read as a space, and a run of spaces shortened to one;
* an ideographic full stop (``。``, what a CJK input method types for ".") between two ASCII
  letters or digits read as ``.``, so ``maria@example。com`` is an e-mail address, and the
  katakana prolonged sound mark (``ー``, what a Japanese input method types for "-") between two
  of them read as ``-``, so ``０９０ー１２３４ー５６７８`` is a phone number.
* digits written some other way inside a run of digits (see :func:`read_digit_lookalikes`):
  Chinese and Japanese numerals (``四〇一二 八八八八 …``, the banker's ``肆``, ``幺`` as read
  aloud) and the letters O and l or I typed for 0 and 1 (``55OO OOOO OOOO OOO4``, ``l881``).
* a text that a screen may show in another order than it was sent, one with a right-to-left
  letter or number (Hebrew, Arabic, Arabic-Indic digits) or a bidi control, gets a second copy
  after a line break, in the order the Unicode Bidirectional Algorithm shows it (see
  :func:`display_order`): ``card <RLO>1881 8888 8888 2104``, ``card <RLE>1881 8888 8888
  4012<PDF>`` and ``رقم البطاقة 1881 8888 8888 4012`` are read both as sent and with
  ``4012 8888 8888 1881``, as a reader sees them.

A zero-width joiner inside an emoji sequence goes too: detection does not need it, and offsets map
back to the original, where it stays. Every finding is then mapped back to the ORIGINAL text, so
redaction happens in place and the archive's offsets refer to what was actually sent.

NFKC is applied per cluster (a starter character plus the marks that follow it). Each output
character of a cluster maps to the whole cluster in the original; removed characters map to
nothing, so a span over ``4111<ZWSP>1111`` in the normalised text covers the zero-width space too.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from itertools import accumulate

from bidi import get_display
from confusable_homoglyphs.confusables import confusables_data

from pipelines.invisible import BLANKS, CF_PLANES, CONTROLS, INVISIBLE

#: Zero-width characters: invisible, and used to break up numbers so naive patterns miss them.
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
#: Bidirectional controls: change display order without being seen.
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

MINUS_SIGN = "\u2212"


#: the names of the symbols that draw a number of two digits: circled (also negative, double),
#: parenthesised, or with a full stop
_NUMBER_SYMBOL = re.compile(
    r"\b(?:CIRCLED (?:SANS-SERIF )?|PARENTHESIZED )NUMBER\b|^NUMBER [A-Z ]+ FULL STOP$"
    # the dingbat zeros ("🄋", "🄌"), which Unicode gives a numeric value but no digit value,
    # unlike the other digits of their families ("➀", "➊")
    r"|^DINGBAT (?:NEGATIVE )?CIRCLED SANS-SERIF DIGIT ZERO$"
)
#: punctuation and symbols read as the ASCII sign they are drawn like (Unicode's confusables): a
#: colon ("꞉", "∶", "˸", "։", "׃"), so "password꞉ hunter22" still names a password; not the letters
#: and marks drawn like one (the length mark "ː", the visarga "ः"), which belong to their word,
#: nor the dashes drawn like an equals sign ("゠", "⹀"), which are read as dashes as every dash is
_SIGN_LOOKALIKES = ":="


def _tables() -> tuple[frozenset[str], dict[int, str], dict[int, str], frozenset[str]]:
    # a blank draws nothing but stands where a space would: read as one, so "my⠀card" keeps its
    # two words and "4012⠀8888⠀…" its groups
    removed = set(INVISIBLE) - BLANKS
    fold: dict[int, str] = {ord(MINUS_SIGN): "-", **{ord(ch): " " for ch in BLANKS}}
    digit_symbols: dict[int, str] = {}
    marks: set[str] = set()
    for plane in CF_PLANES:
        for code in plane:
            ch = chr(code)
            category = unicodedata.category(ch)
            if category == "Nd" and code > 0x7F:
                fold[code] = str(unicodedata.decimal(ch))
            elif category == "No" and unicodedata.digit(ch, None) is not None:
                digit_symbols[code] = str(unicodedata.digit(ch))
            elif category == "No" and _NUMBER_SYMBOL.search(unicodedata.name(ch, "")):
                # a number of two digits drawn as one symbol ("⒅", "⓲", "❿"): its digits
                digit_symbols[code] = str(int(unicodedata.numeric(ch)))
            elif category == "Pd" and code > 0x7F:
                fold[code] = "-"
            elif category == "Zs" and unicodedata.normalize("NFKC", ch) != " ":
                fold[code] = " "  # the Ogham space mark, which NFKC leaves as it is
            elif category[0] == "M" or unicodedata.combining(ch):
                marks.add(ch)
    for sign in _SIGN_LOOKALIKES:
        for entry in confusables_data.get(sign, ()):
            drawn = "".join(ch for ch in entry["c"] if ch not in removed)
            if (
                len(drawn) == 1
                and unicodedata.category(drawn)[0] not in "LM"  # a letter or a mark is part of a word
                and ord(drawn) not in fold  # a dash drawn like "=" ("゠") stays a dash, as every dash
                and unicodedata.normalize("NFKC", drawn) == drawn
            ):
                fold[ord(drawn)] = sign
    return frozenset(removed), fold, digit_symbols, frozenset(marks - removed)


#: Every character detection ignores: general category Cf, Default_Ignorable_Code_Point and the
#: control characters that are not white space. _DIGIT_SYMBOLS: a digit drawn as a symbol (circled,
#: parenthesised, with a full stop, negative-circled dingbats, superscript, subscript), read as the
#: digit before NFKC, which would write "⑴" as "(1)" and leave "➍" as it is.
REMOVED, _FOLD, _DIGIT_SYMBOLS, _MARKS = _tables()
#: The spacing katakana voiced and semi-voiced sound marks (゛ ゜), which a writer can type after a
#: kana instead of the kana that has them ("ハ゜スワート゛"): read as the combining marks, which
#: NFKC composes with the kana ("パスワード"); NFKC alone would make them a space and a mark.
SPACING_SOUND_MARKS = {"\u309b": "\u3099", "\u309c": "\u309a"}
#: An acute accent typed for an apostrophe ("don´t"): read as one (NFKC would make it a space
#: and a mark)
ACUTE_ACCENT = "\u00b4"
#: read before NFKC, one character for one (two digits for a symbol of a two-digit number, "⒅":
#: each maps back to the symbol, as NFKC's own expansions do)
_BEFORE_NFKC = {**_DIGIT_SYMBOLS, **str.maketrans({**SPACING_SOUND_MARKS, ACUTE_ACCENT: "'"})}
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


_REMOVED_RE = re.compile(_char_class(REMOVED))
#: what sends a text down the slow path besides NFKC and two spaces in a row: an invisible
#: character, a non-ASCII digit or dash, a mark
_WORK_CHARS = REMOVED | _MARKS | frozenset(map(chr, _FOLD)) | frozenset(map(chr, _BEFORE_NFKC))
# The regex engine looks a character up in one table for the Basic Multilingual Plane but tries
# ranges above it one by one, and the marks alone have hundreds: any character above the BMP
# (emoji, mostly) is matched here and looked up in the set instead.
_NEEDS_WORK = re.compile(
    _char_class(frozenset(ch for ch in _WORK_CHARS if ord(ch) <= 0xFFFF)) + "|[\U00010000-\U0010ffff]"
)
_ASCII_CONTROLS = re.compile(_char_class(frozenset(ch for ch in CONTROLS if ch.isascii())))
#: The half-width katakana voiced and semi-voiced sound marks: not marks to Unicode (they are
#: letters, Lm), but NFKC composes them with the kana before them ("ﾊﾟ" is "パ") when both are
#: in one cluster.
HALFWIDTH_SOUND_MARKS = frozenset("\uff9e\uff9f")
#: what joins the cluster before it: a mark, a half-width or spacing sound mark, or an invisible character
#: (so a zero-width space cannot block composition either)
_JOINERS = _MARKS | REMOVED | HALFWIDTH_SOUND_MARKS | frozenset(SPACING_SOUND_MARKS)
#: characters whose marks detection drops: ASCII letters and digits, and the space (a mark on a
#: space is a mark written on its own)
_BASES = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised text and, per normalised character, the original span it came from.

    ``starts``/``ends`` are ``None`` when the normalised text is the original (the common case),
    which keeps the fast path free of per-character lists. ``visual_from``: where a second copy
    of the text begins, appended after a line break: in the order a screen shows it (by the
    Unicode Bidirectional Algorithm, for a text with right-to-left characters or bidi controls),
    or, when look-alike letters were read as digits, as it was before (``later_copies``: where a
    third begins when both are made); ``starts`` and ``ends`` are sorted before it only.
    """

    original: str
    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None
    visual_from: int | None = None
    #: where each copy after the first extra one begins (the copy of the text as sent, before
    #: look-alike letters were read as digits, follows the screen-order copy when both are made)
    later_copies: tuple[int, ...] = ()
    #: whether the first extra copy (at ``visual_from``) is the text in screen order
    screen_order: bool = False

    @property
    def identity(self) -> bool:
        return self.starts is None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` covering the normalised ``[start, end)`` (end > start)."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            raise ValueError(f"empty span [{start}, {end})")
        if self.visual_from is not None and end > self.visual_from:
            return min(self.starts[start:end]), max(self.ends[start:end])
        return self.starts[start], self.ends[end - 1]

    def copies(self) -> tuple[tuple[int, int], ...]:
        """The ``[start, end)`` of each copy of the text in ``text``: one, or two when a copy in
        screen order follows (the line break between them belongs to neither). Detection reads
        each on its own, so no match or context window runs from one copy into the other."""
        if self.visual_from is None:
            return ((0, len(self.text)),)
        begins = (self.visual_from, *self.later_copies)
        ends = (*(b - 1 for b in begins[1:]), len(self.text))
        return ((0, self.visual_from - 1), *zip(begins, ends, strict=True))

    def screen_copy(self) -> tuple[int, int] | None:
        """The ``[start, end)`` of the copy in screen order, if there is one."""
        return self.copies()[1] if self.screen_order else None

    def reading_copies(self) -> tuple[tuple[int, int], ...]:
        """The :meth:`copies` but the one in screen order: the readings of the text in the order
        it was written (a word written right to left is reversed in the screen-order copy)."""
        return tuple(c for i, c in enumerate(self.copies()) if not (self.screen_order and i == 1))

    def copy_around(self, start: int) -> tuple[int, int]:
        """The copy (see :meth:`copies`) a match starting at ``start`` lies in."""
        return next((lo, hi) for lo, hi in reversed(self.copies()) if start >= lo)

    def from_original(self, start: int, end: int) -> tuple[int, int]:
        """Normalised ``[start, end)`` of the characters that came from the original ``[start, end)``
        (where context words are looked for around a finding made on the original text)."""
        if self.starts is None or self.ends is None:
            return start, end
        # in the first copy (the second holds the same characters again, in screen order)
        hi = len(self.starts) if self.visual_from is None else self.visual_from - 1
        return bisect.bisect_left(self.starts, start, 0, hi), bisect.bisect_right(self.ends, end, 0, hi)


#: a mark right after an ASCII letter, digit or space
_MARK_ON_BASE = re.compile(f"[0-9A-Za-z ]{_char_class(_MARKS)}")


def _needs_work(text: str) -> bool:
    if "  " in text:
        return True
    if text.isascii():  # isprintable() is quick, and False for tab and line breaks too
        return not text.isprintable() and _ASCII_CONTROLS.search(text) is not None
    for found in _NEEDS_WORK.finditer(text):
        if found.group() in _WORK_CHARS:
            return True
    return not unicodedata.is_normalized("NFKC", text)


#: What a Japanese or Chinese input method types for "." and "-" (the ideographic full stop, the
#: katakana prolonged sound mark), read as ASCII between two ASCII letters or digits.
_IME_PUNCTUATION = {"\u3002": ".", "\u30fc": "-"}
_IME_BETWEEN_ASCII = re.compile(r"(?<=[A-Za-z0-9])[\u3002\u30fc](?=[A-Za-z0-9])")


#: Chinese and Japanese numerals read as digits: the everyday ones (〇 and 零 for zero), the
#: banker's forms written on cheques (壹 贰 叁 ..., simplified and traditional) and 幺, how "one"
#: is read out in a phone number.
CJK_NUMERALS = {
    **dict.fromkeys("〇零", "0"),
    **dict.fromkeys("一壹幺", "1"),
    **dict.fromkeys("二贰貳", "2"),
    **dict.fromkeys("三叁參", "3"),
    **dict.fromkeys("四肆", "4"),
    **dict.fromkeys("五伍", "5"),
    **dict.fromkeys("六陆陸", "6"),
    **dict.fromkeys("七柒", "7"),
    **dict.fromkeys("八捌", "8"),
    **dict.fromkeys("九玖", "9"),
    # the Hangzhou (Suzhou) numerals 〡 to 〩, still written for prices in Hong Kong markets
    **{chr(0x3020 + n): str(n) for n in range(1, 10)},
}
#: Letters that look like a digit in most fonts.
LETTER_DIGITS = {"O": "0", "o": "0", "I": "1", "l": "1"}
#: A run counts as a number from this many digits (written either way) on: shorter ones are
#: words (一二三 "one, two, three", 唯一一次, "1O minutes"), and nothing Vigil detects is shorter.
MIN_LOOKALIKE_RUN = 4
#: How many times the two readings take turns at most. Each round after the first reads at least
#: two more characters of a number that switches between numerals and look-alike letters
#: ("1111O一O一...": the O, then 一 and the next O, ...), so ten rounds read every number up to
#: twenty characters long however it mixes them (a test tries both), and an endless chain of
#: switches, which would need one round per two characters, each over the whole text, costs ten
#: passes and no more.
MAX_READING_ROUNDS = 10
#: A word (a run of characters between white space) in which at most this many look-alike
#: letters were read as digits is also read with them as letters, in a copy of the text of its own
#: (see :func:`normalize`): an id holds a letter or two.
MAX_UNREAD_COPY_LETTERS = 4
_WORD_RUN = re.compile(r"\S+")
_NUMERAL = "".join(CJK_NUMERALS)
_LETTER = "".join(LETTER_DIGITS)
_NUMERAL_CHAR = re.compile(f"[{_NUMERAL}]")
#: a run of digits and numerals, one space, dot or dash (or the "ー" a Japanese input method types
#: for one) allowed between two
_NUMERAL_RUN = re.compile(f"[0-9{_NUMERAL}](?:[ .\\-\u30fc]?[0-9{_NUMERAL}])*")
#: Han, kana and the iteration marks (not "ー" or "・"): what a word a numeral begins goes on
#: with ("一直", "三天")
_CJK_LETTER = re.compile("[\u3005\u3041-\u30fa\u30fd-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: a word of digits (look-alike letters among them or not) or of O's alone, and a run of such
#: words with a separator between two: the ones the card patterns take between groups too
_WORD = f"(?>[0-9{_LETTER}]*\\d[0-9{_LETTER}]*+|[Oo]{{2,}}+)"
_WORD_SEPARATOR = r"(?:[ ./_-]|, ?| ?[|•·] ?| - |\* \*|_ _|~ ~)"
_LETTER_RUN = re.compile(f"(?<![A-Za-z0-9]){_WORD}(?:{_WORD_SEPARATOR}{_WORD})*(?![A-Za-z0-9])")
#: what sends a text through _LETTER_RUN at all: a word mixing digits and look-alike letters, or
#: of O's alone. At a word's start the lookahead checks the word is made of those characters only,
#: then: digits and a letter after them, letters and a digit after them, or O's to its end.
#: Possessive and atomic throughout (_WORD too): a long run of digits costs one pass, not one per
#: way of splitting it.
_LOOKALIKE_WORD = re.compile(
    f"(?<![A-Za-z0-9])(?=[0-9{_LETTER}]*+(?![A-Za-z0-9]))"
    f"(?:\\d++[{_LETTER}]|[{_LETTER}]++\\d|[Oo]{{2,}}+(?![A-Za-z0-9]))"
)


def _digit_count(run: str) -> int:
    return sum(ch.isdigit() or ch in CJK_NUMERALS or ch in LETTER_DIGITS for ch in run)


def read_digit_lookalikes(text: str) -> str:
    """``text`` with digits written another way read as ASCII digits, one character for one, inside
    runs of at least :data:`MIN_LOOKALIKE_RUN` digits: a run of Chinese or Japanese numerals and
    digits (one space, dot or dash allowed between two), and a run of words of digits where O
    stands for 0 and I or l for 1 (a word counts when it holds a digit or is all O's, and the run
    holds an ASCII digit). A word of other letters ends a run: ``Ill``, ``I 2``, ``1O minutes``
    stay as they are. Each reading can make a longer run for the other ("l一二三四"), so both are
    repeated until nothing changes, at most :data:`MAX_READING_ROUNDS` times. Numerals at the edge
    of a number that begin or end the next word are left as they are (see :func:`_word_edges`)."""
    for _ in range(MAX_READING_ROUNDS):
        read = text
        if _NUMERAL_CHAR.search(read) is not None:
            read = _NUMERAL_RUN.sub(_numerals_as_digits, read)
        if _LOOKALIKE_WORD.search(read) is not None:
            read = _LETTER_RUN.sub(_letters_as_digits, read)
        if read == text:
            break
        text = read
    return text


_NUMERAL_TABLE = str.maketrans(CJK_NUMERALS)
_LETTER_TABLE = str.maketrans(LETTER_DIGITS)
#: how many numerals at the end of a number can be the next word's ("三四点", "七八月")
MAX_WORD_NUMERALS = 2


def _numerals_as_digits(found: re.Match[str]) -> str:
    run = found.group()
    if _digit_count(run) < MIN_LOOKALIKE_RUN:
        return run
    head, body, tail = _word_edges(found)
    return head + body.translate(_NUMERAL_TABLE) + tail


def _word_edges(found: re.Match[str]) -> tuple[str, str, str]:
    """A numeral run cut into (head, body, tail), where the head and tail are numerals that begin
    or end the next CJK word and so are not part of the number. Only in a run that holds an ASCII
    digit (the writer used ASCII for the number), and only right next to a CJK letter: one or two
    numerals ending the run ("13800138000一直开机", "Order 462345678901235 一共两件",
    "13800138000三四点以后", "4012888888881881七八月份到期"), or a lone numeral beginning it
    ("唯一4012 ..."). Three or more numerals at an end are the number's ("卡号肆零壹貳8888 ..."),
    and a run of numerals alone keeps both ends: nothing tells where its number ends. The price:
    a number whose first or last digits are typed as numerals right against a CJK word
    ("信用卡四012 8888 8888 1881") is read without them."""
    run, text = found.group(), found.string
    if len(run) < 2 or not any("0" <= ch <= "9" for ch in run):
        return "", run, ""
    start, end = 0, len(run)
    trailing = len(run) - len(run.rstrip(_NUMERAL))
    if trailing <= MAX_WORD_NUMERALS and _CJK_LETTER.match(text, found.end()):
        end -= trailing
    lone_first = run[0] in CJK_NUMERALS and run[1] not in CJK_NUMERALS
    if lone_first and found.start() and _CJK_LETTER.match(text, found.start() - 1):
        start += 1
    return run[:start], run[start:end], run[end:]


def _letters_as_digits(found: re.Match[str]) -> str:
    run = found.group()
    if _digit_count(run) < MIN_LOOKALIKE_RUN or not any(ch.isdigit() for ch in run):
        return run  # short, or O's alone ("Oooo")
    return run.translate(_LETTER_TABLE)


def normalize(text: str) -> Normalized:
    """Normalise ``text`` for detection and keep the map back to it."""
    cleaned = Normalized(text, text) if not _needs_work(text) else _normalize_each_cluster(text)
    # Cyrillic, Greek, ... letters drawn like Latin ones, typed inside a word of Latin letters or
    # digits ("pаssword", "АKIA...", "DЕ89 ...", an id's check letter "...1002Х"): read as the
    # Latin letters, one for one, in each word they leave with no letter outside the Latin script
    # (so "пароль:hunter22" keeps its Cyrillic for a lexicon in that script)
    cleaned = Normalized(text, read_latin_lookalikes(cleaned.text), cleaned.starts, cleaned.ends)
    read = _ime_punctuation(read_digit_lookalikes(cleaned.text))  # one for one: the map back does not change
    # letters read as digits that may have been letters all along: an IBAN's bank code (the
    # Italian CIN "I" in "IT20 I030 6909 ...") or a Hong Kong id's prefix typed in lower case
    # ("l120152(5)"); the text as it was is read too, in a copy of its own
    # (in the words with a few letters read: a word of dozens read is no id)
    unread = _letters_restored(cleaned, read)
    done = _with_read(cleaned, read)
    if may_reorder(text):
        done = _with_screen_order_copy(done)
    if unread is not None:
        done = _with_copy(done, unread)
    return done


def _with_read(cleaned: Normalized, read: str) -> Normalized:
    """``cleaned`` with its text replaced by ``read``, a one-for-one reading of it (digits written
    another way read as digits), and a mark such a reading left on an ASCII character dropped."""
    if read == cleaned.text:
        return cleaned
    text = cleaned.original
    done = Normalized(text, read, cleaned.starts, cleaned.ends)
    if _MARK_ON_BASE.search(read):  # a numeral read as a digit had a mark on it ("一\u20e3")
        chars, kept_starts, kept_ends = _without_stray_marks(
            list(read),
            list(done.starts or range(len(text))),
            list(done.ends or range(1, len(text) + 1)),
        )
        done = Normalized(text, "".join(chars), tuple(kept_starts), tuple(kept_ends))
    return done


def _latin_lookalikes() -> dict[int, str]:
    """Letters of other scripts (Cyrillic, Greek, Armenian, Cherokee, ...) that Unicode's
    confusables data (UTS #39, as the confusable-homoglyphs package ships it) lists as drawn like
    one ASCII letter or digit, each with that character in its own case (capital letters stay
    capitals: the data maps both ``I`` and ``l`` to ``l``). Latin letters outside ASCII are not
    among them: Turkish ``ı`` in ``kırmızı`` is a letter of the word's own script."""
    table: dict[int, str] = {}
    for ch, alikes in confusables_data.items():
        if len(ch) != 1 or ch.isascii() or unicodedata.category(ch)[0] != "L":
            continue
        if unicodedata.name(ch, "LATIN").startswith("LATIN"):
            continue
        if unicodedata.normalize("NFKC", ch) != ch:
            continue  # full-width and mathematical letters: NFKC reads them already
        targets = [a["c"] for a in alikes if len(a["c"]) == 1 and a["c"].isascii() and a["c"].isalnum()]
        if not targets:
            continue
        target = targets[0]
        if ch.isupper() and target.islower():
            target = "I" if target == "l" else target.upper()
        elif ch.islower() and target.isupper():
            target = target.lower()
        table[ord(ch)] = target
    return table


#: A letter drawn like an ASCII letter or digit, and that letter or digit (see _latin_lookalikes).
LATIN_LOOKALIKES = _latin_lookalikes()
_LATIN_LOOKALIKE_CLASS = _char_class(frozenset(map(chr, LATIN_LOOKALIKES)))
#: the look-alikes of the Basic Multilingual Plane, and any character above it (a class of ranges
#: there is tried range by range): what sends a text to _MIXED_WORD at all
_ANY_LATIN_LOOKALIKE = re.compile(
    _char_class(frozenset(chr(c) for c in LATIN_LOOKALIKES if c <= 0xFFFF)) + "|[\U00010000-\U0010ffff]"
)
#: a word (between white space) holding both a look-alike letter and an ASCII letter or digit
_MIXED_WORD = re.compile(rf"(?<!\S)(?=\S*?[A-Za-z0-9])(?=\S*?{_LATIN_LOOKALIKE_CLASS})\S+")


def read_latin_lookalikes(text: str) -> str:
    """``text`` with each letter drawn like an ASCII letter or digit read as that character, one
    for one, in the words that mix them with ASCII letters or digits and hold no other letter
    outside the Latin script (a word in one script alone stays as it is: "Москва" is no disguised Latin word,
    "Моsсоw" is; so does one with a letter no Latin one looks like: "пароль:hunter22")."""
    if text.isascii() or _ANY_LATIN_LOOKALIKE.search(text) is None:
        return text
    return _MIXED_WORD.sub(_as_latin, text)


def _as_latin(found: re.Match[str]) -> str:
    word = found.group()
    read = word.translate(LATIN_LOOKALIKES)
    return word if any(ch.isalpha() and not ch.isascii() and not _is_latin(ch) for ch in read) else read


def _is_latin(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN")


def _letters_restored(done: Normalized, read: str) -> Normalized | None:
    """``read`` with the look-alike letters read as digits put back as they were, in each word
    where at most :data:`MAX_UNREAD_COPY_LETTERS` were read, mapped as ``done`` (the reading is
    one character for one); None when no word has any to put back."""
    before = done.text
    changed = [i for i, (a, b) in enumerate(zip(before, read, strict=True)) if a != b and a in LETTER_DIGITS]
    if not changed:
        return None
    words = list(_WORD_RUN.finditer(before))
    starts = [w.start() for w in words]
    by_word: dict[int, list[int]] = {}
    for i in changed:
        by_word.setdefault(bisect.bisect_right(starts, i) - 1, []).append(i)
    back = [
        i for positions in by_word.values() if len(positions) <= MAX_UNREAD_COPY_LETTERS for i in positions
    ]
    if not back:
        return None
    chars = list(read)
    for i in back:
        chars[i] = before[i]
    # as in the first copy, a mark a numeral read as a digit carried ("一\u20e3") is dropped
    return _with_read(done, "".join(chars))


def _with_copy(norm: Normalized, other: Normalized) -> Normalized:
    """``norm`` followed by a line break and ``other``, another reading of the same original, as a
    copy of its own (see :meth:`Normalized.copies`)."""
    n = len(norm.text)
    starts = norm.starts if norm.starts is not None else tuple(range(n))
    ends = norm.ends if norm.ends is not None else tuple(range(1, n + 1))
    m = len(other.text)
    other_starts = other.starts if other.starts is not None else tuple(range(m))
    other_ends = other.ends if other.ends is not None else tuple(range(1, m + 1))
    first = norm.visual_from is None
    return Normalized(
        norm.original,
        norm.text + "\n" + other.text,
        # the line break maps onto the last character before it, as between the other copies
        (*starts, starts[-1], *other_starts),
        (*ends, ends[-1], *other_ends),
        visual_from=n + 1 if first else norm.visual_from,
        later_copies=() if first else (*norm.later_copies, n + 1),
        screen_order=norm.screen_order,
    )


def _without_stray_marks(
    chars: list[str], starts: list[int], ends: list[int]
) -> tuple[list[str], list[int], list[int]]:
    """One space at a time and no mark on an ASCII letter, digit or space, as the cluster pass
    leaves them, after a step that moved or re-read characters; the map back kept in step."""
    kept: list[int] = []
    for k, ch in enumerate(chars):
        before = chars[kept[-1]] if kept else ""
        if not (ch == " " == before or (ch in _MARKS and before in _BASES and before)):
            kept.append(k)
    return [chars[k] for k in kept], [starts[k] for k in kept], [ends[k] for k in kept]


def _ime_punctuation(text: str) -> str:
    if "\u3002" in text or "\u30fc" in text:
        return _IME_BETWEEN_ASCII.sub(lambda m: _IME_PUNCTUATION[m.group()], text)
    return text


#: Bidi classes that put a character at an odd (right-to-left) level, or move digits around it:
#: strong right-to-left letters (Hebrew R, Arabic AL) and Arabic numbers (AN: Arabic-Indic digits
#: and the number signs, whose groups a screen shows in reverse order even in a left-to-right line).
_RTL_CLASSES = frozenset({"R", "AL", "AN"})
#: Unassigned code points in these blocks are right-to-left by default (DerivedBidiClass.txt):
#: a renderer with newer Unicode data than Python's treats letters added there as such.
_DEFAULT_RTL = (
    (0x0590, 0x08FF), (0xFB1D, 0xFDFF), (0xFE70, 0xFEFF), (0x10800, 0x10FFF), (0x1E800, 0x1EFFF),
)  # fmt: skip
#: Arabic letter mark: a bidi control as the others are, though not listed in BIDI_CONTROLS.
ALM = "\u061c"
#: What makes a screen show a text in another order than it was written: a right-to-left letter
#: or number, or a bidi control (marks, embeddings, overrides, isolates). A text with none of these
#: is shown in the order it was sent (every level even), and takes no bidi work.
REORDERING = (
    frozenset(ch for ch in map(chr, range(0x20000)) if unicodedata.bidirectional(ch) in _RTL_CLASSES)
    | frozenset(
        ch
        for lo, hi in _DEFAULT_RTL
        for ch in map(chr, range(lo, hi + 1))
        if not unicodedata.bidirectional(ch)  # unassigned
    )
    | BIDI_CONTROLS
    | {ALM}
)
#: Above the Basic Multilingual Plane, right-to-left letters and numbers live in two blocks only
#: (a test checks): the scan takes those blocks whole, a mark in them sends a text down the slow
#: path for nothing. One search, no loop in Python: a text with no such character pays this scan
#: and nothing else.
_ASTRAL_RTL = ((0x10800, 0x10FFF), (0x1E800, 0x1EFFF))
_REORDERING_SCAN = re.compile(
    _char_class(frozenset(ch for ch in REORDERING if ord(ch) <= 0xFFFF))[:-1]
    + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _ASTRAL_RTL)
    + "]"
)


def may_reorder(text: str) -> bool:
    """Whether a screen may show ``text`` in another order than it was written (see
    :data:`REORDERING`)."""
    return not text.isascii() and _REORDERING_SCAN.search(text) is not None


#: Bidi classes L1 resets to the paragraph level before a separator and at the end of a line:
#: white space and isolate controls.
_L1_TRAILING = frozenset({"WS", "FSI", "LRI", "RLI", "PDI"})
#: Bidi classes rule X9 removes before levels are resolved: embedding and override controls and
#: boundary neutrals (zero-width and other invisible characters). They have no place on screen.
X9_REMOVED = frozenset({"BN", "LRE", "RLE", "LRO", "RLO", "PDF"})
# python-bidi's get_display(debug=True) returns the unicode-bidi crate's BidiInfo, written with
# Rust's "{:#?}": the text (escaped, so no raw line break inside it), then per UTF-8 byte the
# original bidi class and the resolved embedding level, then each paragraph's byte range and level.
_DEBUG_CLASSES = "\n    original_classes: [\n"
_DEBUG_LEVELS = "\n    levels: [\n"
_DEBUG_PARAGRAPHS = "\n    paragraphs: [\n"
_DEBUG_CLASS = re.compile(r"^ +([A-Z]+),$", re.MULTILINE)
_DEBUG_LEVEL = re.compile(r"Level\(\s*(\d+),?\s*\)")
_DEBUG_PARAGRAPH = re.compile(r"range: (\d+)\.\.(\d+),\s*level: Level\(\s*(\d+),?\s*\)")
_SURROGATE = re.compile("[\ud800-\udfff]")


def bidi_levels(text: str) -> tuple[list[str], list[int], list[tuple[int, int, int]]]:
    """Per character of ``text``, its original bidi class and the embedding level the Unicode
    Bidirectional Algorithm resolves for it (rules P2 to I2: every paragraph's direction from its
    first strong character), and each paragraph as (start, end, level), in characters. By the
    unicode-bidi crate, through python-bidi, which gives the levels but no index map."""
    if not text:
        return [], [], []
    text = _SURROGATE.sub("\ufffd", text)  # one for one: a lone surrogate cannot go to Rust
    debug = get_display(text, debug=True)
    assert isinstance(debug, str)
    at_classes, at_levels = debug.find(_DEBUG_CLASSES), debug.find(_DEBUG_LEVELS)
    at_paragraphs = debug.find(_DEBUG_PARAGRAPHS)
    if not 0 < at_classes < at_levels < at_paragraphs:
        raise RuntimeError("python-bidi's debug output is not the BidiInfo this module reads")
    byte_classes = _DEBUG_CLASS.findall(debug, at_classes, at_levels)
    byte_levels = _DEBUG_LEVEL.findall(debug, at_levels, at_paragraphs)
    # the byte each character starts at, and a map back from byte offsets
    widths = [1 if c < 0x80 else 2 if c < 0x800 else 3 if c < 0x10000 else 4 for c in map(ord, text)]
    firsts = [0, *accumulate(widths)]
    if not len(byte_classes) == len(byte_levels) == firsts[-1]:
        raise RuntimeError("python-bidi's debug output does not give one level per byte of the text")
    char_at = {b: i for i, b in enumerate(firsts)}
    classes = [byte_classes[b] for b in firsts[:-1]]
    levels = [int(byte_levels[b]) for b in firsts[:-1]]
    paragraphs = [
        (char_at[int(a)], char_at[int(b)], int(level))
        for a, b, level in _DEBUG_PARAGRAPH.findall(debug, at_paragraphs)
    ]
    return classes, levels, paragraphs


def display_order(text: str) -> list[int]:
    """The indices of ``text`` in the order a screen shows them, left to right: per paragraph, the
    resolved levels of :func:`bidi_levels` reset by rule L1 (separators, and the white space and
    isolate or removed controls before one or at the end of the line, to the paragraph's level)
    and reordered by rule L2 (from the highest level down to the lowest odd one, every run at that
    level or higher reversed). Each paragraph is one line, its separator kept at its end (L2 would
    put it first in a right-to-left paragraph). Marks are not moved after their base (L3) and
    glyphs not mirrored (L4): the caller keeps a character and its marks together. The characters
    rule X9 removes (:data:`X9_REMOVED`), which are not shown, are reordered with nothing and put
    at the end of their line."""
    classes, levels, paragraphs = bidi_levels(text)
    order: list[int] = []
    for start, end, base in paragraphs:
        stop = end
        while stop > start and classes[stop - 1] == "B":
            stop -= 1
        line = [i for i in range(start, stop) if classes[i] not in X9_REMOVED]
        level = [levels[i] for i in line]
        trailing = True  # L1, from the end of the line back
        for k in reversed(range(len(line))):
            if classes[line[k]] == "S":
                level[k], trailing = base, True
            elif trailing and classes[line[k]] in _L1_TRAILING:
                level[k] = base
            else:
                trailing = False
        if level:
            lowest_odd = min(lv for lv in level) | 1
            for at_least in range(max(level), lowest_odd - 1, -1):  # L2
                k = 0
                while k < len(line):
                    if level[k] < at_least:
                        k += 1
                        continue
                    j = k
                    while j < len(line) and level[j] >= at_least:
                        j += 1
                    line[k:j], level[k:j] = line[k:j][::-1], level[k:j][::-1]
                    k = j
        order.extend(line)
        order.extend(i for i in range(start, stop) if classes[i] in X9_REMOVED)
        order.extend(range(stop, end))
    return order


def _with_screen_order_copy(norm: Normalized) -> Normalized:
    """``norm`` followed by a line break and a copy in the order a screen shows the text (see
    :func:`display_order`), cluster by cluster: a character and the marks on it stay together, as
    on screen. ``norm`` itself when that order is the order sent."""
    text = norm.original
    n = len(norm.text)
    if n < 2:
        return norm
    place = [0] * len(text)
    for p, i in enumerate(display_order(text)):
        place[i] = p
    starts = list(norm.starts) if norm.starts is not None else list(range(n))
    ends = list(norm.ends) if norm.ends is not None else list(range(1, n + 1))
    # stable: the characters NFKC made of one cluster keep their order
    order = sorted(range(n), key=lambda k: place[starts[k]])
    chars = [norm.text[k] for k in order]
    if "".join(chars) == norm.text:
        return norm
    # a space that ended a reversed stretch now meets the one before it, a mark that had nothing
    # under it now follows a letter: one space and no mark on an ASCII letter, as elsewhere
    chars, v_starts, v_ends = _without_stray_marks(
        chars, [starts[k] for k in order], [ends[k] for k in order]
    )
    # the line break between the copies maps onto the first copy's last character
    return Normalized(
        text,
        norm.text + "\n" + "".join(chars),
        (*starts, starts[-1], *v_starts),
        (*ends, ends[-1], *v_ends),
        visual_from=n + 1,
        screen_order=True,
    )


def _normalize_each_cluster(text: str) -> Normalized:
    """The work itself (``normalize`` skips it for texts it would not change)."""
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
        while j < n and text[j] in _JOINERS:  # the starter plus the marks after it
            j += 1
        while text[j - 1] in REMOVED:  # ...but not the removed characters after it: a finding
            j -= 1  # ending here must not swallow a bidi control closing the number
        cluster = "".join(c for c in text[i:j] if c not in REMOVED)
        folded = unicodedata.normalize("NFKC", cluster.translate(_BEFORE_NFKC)).translate(_FOLD)
        if len(folded) > 1 and folded[0] in _BASES:
            folded = "".join(c for c in folded if c not in _MARKS)
        if folded.startswith(" ") and out and out[-1].endswith(" "):
            folded = folded[1:]  # a space (of any width) after a space
            if not folded:
                i = j
                continue
        out.append(folded)
        starts.extend([i] * len(folded))
        ends.extend([j] * len(folded))
        i = j
    return Normalized(text, "".join(out), tuple(starts), tuple(ends))


def strip_invisible(text: str) -> Normalized:
    """Only the invisible characters removed (no NFKC): the input for language models, which read
    punctuation and width as written."""
    if _REMOVED_RE.search(text) is None:
        return Normalized(text, text)
    kept = [i for i, ch in enumerate(text) if ch not in REMOVED]
    return Normalized(text, "".join(text[i] for i in kept), tuple(kept), tuple(i + 1 for i in kept))
