"""Detectors compiled from policy specs: what finds candidate spans in normalised text.

Three kinds, found by the ``type`` a policy gives (see :data:`COMPILERS`):

* ``presidio``: one of Presidio's entities. Pattern recognizers run their own ``PATTERNS`` through
  the batched matcher and confirm each match with their own ``validate_result`` /
  ``invalidate_result``; recognizers with a custom ``analyze`` (phone numbers, IBAN) are called per
  text, but only on texts a necessary-condition pre-filter lets through; NER entities read the
  spaCy entities the engine computed for the batch.
* ``pattern``: a policy's own regex, optionally confirmed by a checksum validator.
* ``lexicon``: terms and phrases. Latin-script terms match whole words, where only a Latin letter,
  digit or underscore next to the term breaks the word (``这个产品是guaranteed return的`` matches
  ``guaranteed return``); Chinese and Japanese terms match as substrings (those scripts do not put
  spaces between words), a Chinese term in Simplified and Traditional characters alike (OpenCC
  converts it). Matching is case-insensitive on the normalised text, and spaces inside a phrase
  match any run of spaces.

Pattern and Presidio detectors read a second detection copy in which every CJK character is a space
(same length, so offsets do not move): mixed-script chat such as ``SSN是536-22-1234`` or
``邮箱是maria@example.org谢谢`` has no word boundary next to the CJK characters otherwise, and ``\\b``
or ``(?<![A-Za-z0-9])`` would never match. Lexicons, context words and a pattern whose regex itself
contains CJK characters (``密码\\s*：``) read the normalised text.

Context words near a match raise (or lower) its score; allow-listed values are never reported. The
rule for the two together: a raise word wins (when one hits, lower words are not applied), and a
lower word never touches a finding whose checksum was validated (Luhn, mod-97, ...): the check digit
is stronger evidence than a nearby "order" or "ref".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pipelines.dlp import checksums, presidio_entities
from pipelines.dlp.batch_regex import (
    TEXT_BUDGET_SECONDS,
    BatchRegex,
    RegexKey,
    RegexTimeout,
    Span,
    compile_pattern,
)
from pipelines.dlp.normalize import Normalized, may_reorder, normalize
from pipelines.dlp.policy import (
    AllowSpec,
    ContextSpec,
    LexiconDetector,
    PatternDetector,
    PresidioDetector,
)

# Presidio's context enhancer: a context word adds 0.35 and lifts the score to at least 0.4.
MIN_SCORE_WITH_CONTEXT = 0.4
_CJK_RANGES = (
    "\u2e80-\u2fff\u3000-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK = re.compile(f"[{_CJK_RANGES}]")
#: a character that continues a Latin-script word: a word character that is not CJK
_LATIN_WORD = f"[^\\W{_CJK_RANGES}]"


def blank_cjk(text: str) -> str:
    """``text`` with every CJK character (ideographs, kana, hangul, CJK punctuation) replaced by a
    space: the copy pattern and Presidio detectors read. Same length, same offsets."""
    if text.isascii() or not _CJK.search(text):
        return text
    return _CJK.sub(" ", text)


@dataclass(frozen=True, slots=True)
class Candidate:
    start: int  # offsets in the normalised text, or in the original one when ``original``
    end: int
    entity: str
    score: float
    detector: str
    original: bool = False
    validated: bool = False  # a checksum confirmed the value


@dataclass(slots=True)
class Item:
    """One text of a batch, as detectors see it."""

    text: str  # normalised
    original: str = ""
    matches: dict[RegexKey, list[Span]] = field(default_factory=dict)
    # (start, end, presidio entity), offsets in the original text
    ner: list[tuple[int, int, str]] | None = None
    blanked: str = ""  # ``text`` with CJK characters as spaces (see :func:`blank_cjk`)
    norm: Normalized | None = None  # how ``text`` maps to ``original``

    @property
    def detect(self) -> str:
        """The copy pattern and Presidio detectors read."""
        return self.blanked or self.text


#: Apostrophes as typed and as phones and word processors turn them ("let’s", "don‘t", the prime
#: "′", the modifier letter "ʼ", the backtick "don`t"; an acute accent "don´t" is read as "'" by
#: normalisation): one in a term matches any of them in the text.
APOSTROPHES = "'`\u2018\u2019\u2032\u02bc"


def _term_part(part: str) -> str:
    return "".join(f"[{APOSTROPHES}]" if ch in APOSTROPHES else re.escape(ch) for ch in part)


_STARTS_WORD = re.compile(_LATIN_WORD)


def term_regex(terms: Sequence[str]) -> str:
    """One alternation for a word list: whole words for Latin script (bounded by Latin letters,
    digits and underscores only, so a CJK character next to the term is a boundary), substrings for
    CJK. A boundary applies where the term has a word to end: ``?!`` or ``#winning`` start with
    punctuation, so ``really?!`` and ``we are#winning`` match them, as ``\\b`` would."""
    word_start: list[str] = []  # these share one look-behind, so each branch starts with a literal
    other_start: list[str] = []
    cjk: list[str] = []
    # every reading detection makes of a term (one, or two when a look-alike letter was read as a
    # digit: see normalize), in the forms Chinese is written in; not its screen-order copy, which
    # reverses a word written right to left (the text's own screen-order copy is left to other
    # terms, see LexiconDetectorC)
    cleaned = {
        form
        for t in terms
        for norm in (normalize(t),)
        for lo, hi in norm.reading_copies()
        for form in chinese_forms(norm.text[lo:hi].strip())
    }
    for term in sorted((t for t in cleaned if t), key=lambda t: (-len(t), t)):
        body = r"\s+".join(map(_term_part, term.split()))
        if _CJK.search(term):
            cjk.append(body)
            continue
        body += f"(?!{_LATIN_WORD})" if _STARTS_WORD.match(term[-1]) else ""
        (word_start if _STARTS_WORD.match(term[0]) else other_start).append(body)
    # a term starting with a word character and one starting with another never match at the same
    # place, so the longest-first order holds across the two groups
    parts = []
    if word_start:
        parts.append(f"(?<!{_LATIN_WORD})(?:" + "|".join(word_start) + ")")
    if other_start:
        parts.append("(?:" + "|".join(other_start) + ")")
    if cjk:
        parts.append("(?:" + "|".join(cjk) + ")")
    return "|".join(parts) if parts else r"(?!x)x"


#: OpenCC's conversions between Simplified Chinese and the Traditional forms written in Hong Kong,
#: Taiwan and elsewhere: a term written in one matches the others (one word can differ by place:
#: 裡/裏 for 里)
_CHINESE_CONVERSIONS = ("s2t", "s2hk", "s2tw", "t2s", "hk2s", "tw2s")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile("[\u3040-\u30ff\uff66-\uff9f]")


@functools.cache
def _opencc(conversion: str) -> Any:
    import opencc  # only for policies with Chinese terms

    return opencc.OpenCC(f"{conversion}.json")


def chinese_forms(term: str) -> set[str]:
    """``term`` and, when it is Chinese (Han characters, no kana: Japanese writes its own forms),
    the same term in Simplified and in Traditional characters."""
    if not _HAN.search(term) or _KANA.search(term):
        return {term}
    return {term} | {_opencc(c).convert(term) for c in _CHINESE_CONVERSIONS}


@functools.lru_cache(maxsize=512)
def _compiled_terms(terms: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(term_regex(terms), re.IGNORECASE)


class Context:
    """Raises or lowers scores by words found within ``window`` characters of a match."""

    __slots__ = ("lower", "lower_by", "raise_", "raise_by", "required", "window")

    def __init__(self, spec: ContextSpec):
        self.window = spec.window
        self.raise_ = _compiled_terms(tuple(spec.raise_words)) if spec.raise_words else None
        self.lower = _compiled_terms(tuple(spec.lower_words)) if spec.lower_words else None
        self.raise_by = spec.raise_by
        self.lower_by = spec.lower_by
        self.required = spec.required

    def adjust(
        self,
        text: str,
        start: int,
        end: int,
        score: float,
        validated: bool = False,
        lo: int = 0,
        hi: int | None = None,
    ) -> float:
        """The score after context: a raise word hit wins over any lower word, and a lower word
        never applies to a checksum-validated value. Without a raise word a ``required`` context
        scores 0. Words are looked for within ``text[lo:hi]`` only."""
        hi = len(text) if hi is None else hi
        if self.raise_ is not None and self._near(self.raise_, text, start, end, lo, hi):
            return min(1.0, max(score + self.raise_by, MIN_SCORE_WITH_CONTEXT))
        if self.required:
            return 0.0
        if validated:
            return score
        if self.lower is not None and self._near(self.lower, text, start, end, lo, hi):
            score = max(0.0, score - self.lower_by)
        return score

    def _near(self, words: re.Pattern[str], text: str, start: int, end: int, lo: int, hi: int) -> bool:
        """Whether one of ``words`` lies whole within the window before ``start`` or after ``end``.
        The text is not cut at the window's edges: a cut would make a boundary where there is none
        (``wireless`` cut after four letters reads as ``wire``). Its word boundaries are judged on
        the characters really next to it; only the finding's own edge counts as one."""
        if words.search(text, max(lo, start - self.window), start):
            return True
        # after it: a copy that starts at the finding's end (its edge is a boundary), with one
        # character past the window, so a word ending there sees whether the text goes on
        after = text[end : min(hi, end + self.window + 1)]
        return any(m.end() <= self.window for m in words.finditer(after))


class Allow:
    """Allow-list: exact values (compared in their canonical form: separators, case and width do not
    matter) or whole-value regexes."""

    __slots__ = ("regexes", "values")

    def __init__(self, *specs: AllowSpec):
        self.values = {self._key(v) for s in specs for v in s.values}
        # a policy's own regex: run with the same time budget as a detector's
        self.regexes = [(r, compile_pattern(r, budgeted=True)[0]) for s in specs for r in s.regexes]

    @staticmethod
    def _key(value: str) -> str:
        return checksums.canonical(value)  # as the keyed hash sees it

    def __bool__(self) -> bool:
        return bool(self.values or self.regexes)

    def allows(self, value: str) -> bool:
        value = value.strip()
        if self._key(value) in self.values:
            return True
        if not self.regexes:
            return False
        # the value as written, and as detection reads it (full-width letters, "。" typed for ".",
        # invisible characters gone): "ｍａｒｉａ@example。com" is the address an allow regex for
        # example.com lets through. Case is the regex's own: "(?i)" takes any.
        norm = normalize(value)
        lo, hi = norm.copies()[0]
        forms = dict.fromkeys((value, norm.text[lo:hi].strip()))
        for pattern, compiled in self.regexes:
            try:
                if any(compiled.fullmatch(form, timeout=TEXT_BUDGET_SECONDS) is not None for form in forms):
                    return True
            except TimeoutError:
                raise RegexTimeout(pattern, TEXT_BUDGET_SECONDS) from None
        return False


class Detector:
    """A compiled detector: the batch regexes it needs and how it turns their matches into
    candidates."""

    #: short name recorded in each finding
    name = "detector"
    entity: str
    min_score: float
    context: Context | None
    needs_ner = False

    def regexes(self) -> Sequence[BatchRegex]:
        return ()

    def triggered(self, item: Item) -> bool:
        """Whether this detector has anything to look at in the item (cheap)."""
        return any(r.key in item.matches for r in self.regexes())

    def candidates(self, item: Item) -> list[Candidate]:
        raise NotImplementedError

    def find(self, item: Item) -> list[Candidate]:
        found = []
        for cand in self.candidates(item):
            score = cand.score
            if self.context is not None:
                start, end = cand.start, cand.end
                if cand.original and item.norm is not None:  # context words are read in ``text``
                    start, end = item.norm.from_original(start, end)
                # ...within the copy the match is in (see Normalized.copies)
                lo, hi = item.norm.copy_around(start) if item.norm is not None else (0, len(item.text))
                score = self.context.adjust(item.text, start, end, score, cand.validated, lo, hi)
            if score >= self.min_score and score > 0:
                found.append(cand if score == cand.score else replace(cand, score=score))
        return found


class PresidioPatternDetector(Detector):
    """A Presidio pattern recognizer: its patterns, its validation."""

    def __init__(self, spec: PresidioDetector):
        self.entity = spec.entity
        self.name = f"presidio:{spec.entity}"
        self.min_score = spec.min_score
        self.recognizer = presidio_entities.recognizer(spec.entity)
        flags = self.recognizer.global_regex_flags or 0
        self._patterns = [
            (
                BatchRegex(presidio_entities.linear_pattern(spec.entity, p.regex), flags, blank_cjk=True),
                p.score,
            )
            for p in self.recognizer.patterns
        ]
        context = spec.context or ContextSpec(
            raise_words=[w.strip() for w in (self.recognizer.context or [])]
        )
        self.context = Context(context) if (context.raise_words or context.lower_words) else None

    def regexes(self) -> Sequence[BatchRegex]:
        return [r for r, _ in self._patterns]

    def candidates(self, item: Item) -> list[Candidate]:
        out: dict[tuple[int, int], Candidate] = {}
        rec = self.recognizer
        for regex, base in self._patterns:
            for start, end in item.matches.get(regex.key, ()):
                value = item.detect[start:end]
                valid = rec.validate_result(value)
                score = base if valid is None else (1.0 if valid else 0.0)
                if rec.invalidate_result(value):
                    score = 0.0
                if score <= 0:
                    continue
                known = out.get((start, end))
                if known is None or known.score < score:
                    out[(start, end)] = Candidate(
                        start, end, self.entity, score, self.name, validated=bool(valid)
                    )
        return _drop_contained(list(out.values()))


def _drop_contained(cands: list[Candidate]) -> list[Candidate]:
    """Presidio's duplicate removal: a result inside another (different span) of the same entity
    with a score no higher is dropped.

    Sort and sweep, O(n log n): in (start, -end) order every span that can contain a candidate comes
    before it; a Fenwick tree over end positions answers "best score among earlier spans ending at
    or after this end"."""
    if len(cands) < 2:
        return cands
    ends = sorted({c.end for c in cands}, reverse=True)  # rank 1 = largest end
    rank = {e: i + 1 for i, e in enumerate(ends)}
    tree = [-1.0] * (len(ends) + 1)
    keep_flags: dict[int, bool] = {}
    order = sorted(range(len(cands)), key=lambda i: (cands[i].start, -cands[i].end))
    pos = 0
    while pos < len(order):
        # spans with the same (start, end) cannot contain one another: query all, then insert all
        first = cands[order[pos]]
        group_end = pos
        while group_end < len(order) and (cands[order[group_end]].start, cands[order[group_end]].end) == (
            first.start,
            first.end,
        ):
            group_end += 1
        for i in order[pos:group_end]:
            best, r = -1.0, rank[cands[i].end]
            while r > 0:  # max over ranks 1..r: spans ending at or after this end
                best = max(best, tree[r])
                r -= r & -r
            keep_flags[i] = best < cands[i].score
        for i in order[pos:group_end]:
            r = rank[cands[i].end]
            while r <= len(ends):
                tree[r] = max(tree[r], cands[i].score)
                r += r & -r
        pos = group_end
    return [c for i, c in enumerate(cands) if keep_flags[i]]


@functools.cache
def _min_phone_digits() -> int:
    """Fewest digits any valid phone number has in any region (from libphonenumber's metadata)."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    lengths = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        meta = PhoneMetadata.metadata_for_region(region)
        desc = meta.general_desc if meta is not None else None
        if desc is not None and desc.possible_length:
            lengths.append(min(desc.possible_length))
    return max(1, min(lengths))


class PresidioAnalyzeDetector(Detector):
    """A Presidio recognizer with its own ``analyze`` (IBAN, ...), called per text on the texts a
    pre-filter lets through: the recognizer's own patterns, run batched (a text none of them
    matches cannot produce a result)."""

    def __init__(self, spec: PresidioDetector):
        self.entity = spec.entity
        self.name = f"presidio:{spec.entity}"
        self.min_score = spec.min_score
        self.recognizer = presidio_entities.recognizer(spec.entity)
        flags = getattr(self.recognizer, "global_regex_flags", 0) or 0
        self._filters = [
            BatchRegex(presidio_entities.linear_pattern(spec.entity, p.regex), flags, blank_cjk=True)
            for p in getattr(self.recognizer, "patterns", [])
        ]
        context = spec.context or ContextSpec(
            raise_words=[w.strip() for w in (self.recognizer.context or [])]
        )
        self.context = Context(context) if (context.raise_words or context.lower_words) else None

    def regexes(self) -> Sequence[BatchRegex]:
        return self._filters

    def triggered(self, item: Item) -> bool:
        return not self._filters or super().triggered(item)

    def _analyze(self, text: str) -> list[Any]:
        return self.recognizer.analyze(text, [self.entity], None)

    def candidates(self, item: Item) -> list[Candidate]:
        # a recognizer with its own analyze() scores 1.0 only once its checksum passed (IBAN)
        # copy by copy (see Normalized.copies): no result joins the two
        copies = item.norm.copies() if item.norm is not None else ((0, len(item.detect)),)
        return [
            Candidate(
                r.start + lo, r.end + lo, self.entity, float(r.score), self.name, validated=r.score >= 1.0
            )
            for lo, hi in copies
            for r in self._analyze(item.detect[lo:hi])
            if r.entity_type == self.entity and r.score > 0 and r.end > r.start
        ]


_DIGIT = re.compile(r"\d")
_CUT = re.compile(r"[ .\r\n-]+")


@functools.cache
def _region_min_digits(region: str) -> int:
    """Fewest digits a text needs before libphonenumber can find a valid number for ``region``.

    A number parsed with ``region`` as default is valid either as a national number of that region
    (at least the region's shortest possible length) or dialled through its international prefix
    (the prefix, a country code and the shortest national number anywhere). Numbers written with
    ``+`` do not depend on the region and are handled separately.
    """
    from phonenumbers import PhoneMetadata

    meta = PhoneMetadata.metadata_for_region(region)
    desc = meta.general_desc if meta is not None else None
    if meta is None or desc is None or not desc.possible_length:
        return 1
    national = min(desc.possible_length)
    prefix = meta.international_prefix
    try:
        prefix_width = int(_parser_min_width(prefix)) if prefix else 0
    except Exception:
        return 1
    international = prefix_width + 1 + _min_phone_digits() if prefix else national
    return max(1, min(national, international))


def _parser_min_width(pattern: str) -> int:
    from pipelines.dlp.batch_regex import _parser

    return _parser.parse(pattern).getwidth()[0]


class PresidioPhoneDetector(PresidioAnalyzeDetector):
    """Presidio's phone recognizer (libphonenumber, one matcher per supported region), with two
    pruning steps that cannot change its results:

    * a text is looked at only if it holds a run of at least as many digits as the shortest valid
      number anywhere, separated by no more than the matcher's four punctuation characters;
    * a region is skipped when the text has fewer digits in total than any valid number for that
      region needs (see :func:`_region_min_digits`), unless the text contains ``+`` (international
      numbers are found the same way in every region, so all regions run to keep the union exact).
    """

    def __init__(self, spec: PresidioDetector):
        super().__init__(spec)
        if spec.regions is not None:
            cls = type(self.recognizer)
            self.recognizer = cls(supported_regions=tuple(spec.regions), leniency=self.recognizer.leniency)
        n = _min_phone_digits()
        self._filters = [BatchRegex(rf"\d(?:\D{{0,4}}\d){{{n - 1}}}", blank_cjk=True)]
        self._regions = tuple(self.recognizer.supported_regions)
        self._needs = {r: _region_min_digits(r) for r in self._regions}
        self._pruned: dict[tuple[str, ...], Any] = {self._regions: self.recognizer}

    def _analyze(self, text: str) -> list[Any]:
        if "+" in text:
            return self.recognizer.analyze(text, [self.entity], None)
        digits = len(_DIGIT.findall(text))
        regions = tuple(r for r in self._regions if digits >= self._needs[r])
        if not regions:
            return []
        recognizer = self._pruned.get(regions)
        if recognizer is None:
            cls = type(self.recognizer)
            recognizer = cls(supported_regions=regions, leniency=self.recognizer.leniency)
            self._pruned[regions] = recognizer
        return recognizer.analyze(text, [self.entity], None)


class NerDetector(Detector):
    """A named entity from spaCy (PERSON, LOCATION, NRP, ...), scored like Presidio does."""

    needs_ner = True

    def __init__(self, spec: PresidioDetector):
        self.entity = spec.entity
        self.name = f"ner:{spec.entity}"
        self.min_score = spec.min_score
        self.score = float(presidio_entities.ner_configuration().default_score)
        self.context = Context(spec.context) if spec.context else None

    def triggered(self, item: Item) -> bool:
        return bool(item.ner)

    def candidates(self, item: Item) -> list[Candidate]:
        return [
            Candidate(s, e, self.entity, self.score, self.name, original=True)
            for s, e, ent in item.ner or ()
            if ent == self.entity
        ]


class PatternDetectorC(Detector):
    """A policy's own regex, confirmed by a checksum validator when it names one."""

    name = "pattern"

    def __init__(self, spec: PatternDetector):
        self.entity = spec.entity
        self.min_score = spec.min_score
        self.base = spec.score
        # a regex that spells out CJK characters itself reads them; any other reads the blanked copy
        self.regex = BatchRegex(
            spec.regex,
            re.IGNORECASE if spec.ignore_case else 0,
            blank_cjk=not _CJK.search(spec.regex),
            budgeted=True,
            overlapped=spec.overlapped,
        )
        self.validator = checksums.VALIDATORS[spec.validator] if spec.validator else None
        self.name = f"pattern:{spec.validator}" if spec.validator else "pattern"
        self.context = Context(spec.context) if spec.context else None

    def regexes(self) -> Sequence[BatchRegex]:
        return (self.regex,)

    def candidates(self, item: Item) -> list[Candidate]:
        out = []
        for start, end in item.matches.get(self.regex.key, ()):
            score = self.base
            if self.validator is not None:
                text = item.detect if self.regex.blank_cjk else item.text
                valid_end = self._validated_end(text, start, end)
                if valid_end is None:
                    continue
                end, score = valid_end, 1.0
            out.append(
                Candidate(start, end, self.entity, score, self.name, validated=self.validator is not None)
            )
        return out

    def _validated_end(self, text: str, start: int, end: int) -> int | None:
        """``end`` when the validator accepts the match; else the longest shorter match, cut before a
        space, dot, dash or line break inside it, that the regex still matches and the validator accepts (a
        case-insensitive IBAN pattern can take the word after the number in: ``... 7654 32 pls``)."""
        assert self.validator is not None
        if self.validator(text[start:end]):
            return end
        for sep in reversed(list(_CUT.finditer(text, start + 1, end))):
            cut = sep.start()
            if self.validator(text[start:cut]) and self.regex.fullmatch_at(text, start, cut):
                return cut
        return None


class LexiconDetectorC(Detector):
    name = "lexicon"

    def __init__(self, spec: LexiconDetector):
        self.entity = spec.entity
        self.min_score = spec.min_score
        self.score = spec.score
        self.regex = BatchRegex(term_regex(spec.terms), re.IGNORECASE)
        self.context = Context(spec.context) if spec.context else None

    def regexes(self) -> Sequence[BatchRegex]:
        return (self.regex,)

    def candidates(self, item: Item) -> list[Candidate]:
        screen = item.norm.screen_copy() if item.norm is not None else None
        return [
            Candidate(s, e, self.entity, self.score, self.name)
            for s, e in item.matches.get(self.regex.key, ())
            # in the screen-order copy a word written right to left is reversed: a term of such
            # words found there would be a different word spelt backwards ("לא" in "אל")
            if screen is None or not (screen[0] <= s < screen[1] and may_reorder(item.text[s:e]))
        ]


def _compile_presidio(spec: Any) -> Detector:
    from presidio_analyzer import PatternRecognizer

    if presidio_entities.is_ner_entity(spec.entity):
        return NerDetector(spec)
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    cls = presidio_entities.recognizer_classes()[spec.entity]
    if issubclass(cls, PatternRecognizer) and cls.analyze is PatternRecognizer.analyze:
        return PresidioPatternDetector(spec)
    if issubclass(cls, PhoneRecognizer):
        return PresidioPhoneDetector(spec)
    return PresidioAnalyzeDetector(spec)


#: detector ``type`` -> compiler from its spec
COMPILERS: dict[str, Callable[[Any], Detector]] = {
    "presidio": _compile_presidio,
    "pattern": PatternDetectorC,
    "lexicon": LexiconDetectorC,
}


def compile_detector(spec: Any) -> Detector:
    return COMPILERS[spec.type](spec)
