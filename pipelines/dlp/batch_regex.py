"""Run one compiled regex over many short texts at once, with the same results as one by one.

Per-message overhead is what makes naive DLP slow on chat traffic: thousands of texts of a few
dozen characters, each paying Python call overhead for every pattern. :class:`BatchRegex` joins a
batch of texts with a one-character separator and runs each pattern once over the joined string.

Results are exact, not approximate:

* a match that crosses a separator is discarded and the texts it touched are re-matched alone;
* ``^``/``$`` are matched in multi-line mode on the batch, which only adds candidates; a text whose
  batch result could differ from its own is re-matched alone, and every other text's matches are
  those the pattern finds in it alone (finditer resumes at each text start with nothing consumed);
* patterns whose meaning changes at a text boundary in a way a re-check cannot catch (``\\A``,
  ``\\Z``, or any lookaround, positive or negative, that could read the separator or test a line
  anchor) are classified as such by parsing them, and always run text by text.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from typing import Any

from pipelines.errors import PolicyError

try:  # the stdlib parser, used only to classify patterns
    import re._constants as _c  # type: ignore[import-not-found]
    import re._parser as _parser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]

SEPARATOR = "\n"
_SEP = ord(SEPARATOR)

Span = tuple[int, int]


def _category_matches(category: Any, code: int) -> bool:
    ch = chr(code)
    table = {
        _c.CATEGORY_DIGIT: ch.isdigit(),
        _c.CATEGORY_NOT_DIGIT: not ch.isdigit(),
        _c.CATEGORY_SPACE: ch.isspace(),
        _c.CATEGORY_NOT_SPACE: not ch.isspace(),
        _c.CATEGORY_WORD: ch.isalnum() or ch == "_",
        _c.CATEGORY_NOT_WORD: not (ch.isalnum() or ch == "_"),
        _c.CATEGORY_LINEBREAK: ch == "\n",
        _c.CATEGORY_NOT_LINEBREAK: ch != "\n",
    }
    return table.get(category, True)


def _may_match(items: Any, code: int, dotall: bool) -> bool:
    """Conservative: can any single-character atom in this parsed pattern match ``chr(code)``?"""
    for op, arg in items:
        if op is _c.LITERAL:
            if arg == code:
                return True
        elif op is _c.NOT_LITERAL:
            if arg != code:
                return True
        elif op is _c.ANY:
            if dotall or code != _SEP:
                return True
        elif op is _c.IN:
            negate = any(o is _c.NEGATE for o, _ in arg)
            hit = False
            for o, a in arg:
                if (
                    (o is _c.LITERAL and a == code)
                    or (o is _c.RANGE and a[0] <= code <= a[1])
                    or (o is _c.CATEGORY and _category_matches(a, code))
                ):
                    hit = True
            if hit != negate:
                return True
        elif op is _c.CATEGORY:
            if _category_matches(arg, code):
                return True
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            if _may_match(arg[2], code, dotall):
                return True
        elif op is _c.SUBPATTERN:
            if _may_match(arg[-1], code, dotall):
                return True
        elif op is _c.BRANCH:
            if any(_may_match(branch, code, dotall) for branch in arg[1]):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if _may_match(arg[1], code, dotall):
                return True
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            if _may_match(arg, code, dotall):
                return True
        elif op in (_c.AT, _c.GROUPREF):
            continue
        else:
            return True  # unknown construct: assume the worst
    return False


def _boundary_safe(items: Any, dotall: bool) -> bool:
    """False when the pattern holds an assertion a separator could silently turn false."""
    for op, arg in items:
        if op is _c.AT and arg in (_c.AT_BEGINNING_STRING, _c.AT_END_STRING):
            return False
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            # a lookaround that can read the separator (positive or negative) may decide
            # differently at a text boundary than at the end of a text alone: ``(?<=\s)`` sees
            # whitespace where a lone text has nothing; so may one testing a line anchor
            if _may_match(arg[1], _SEP, dotall) or _has_line_anchors(arg[1]):
                return False
            if not _boundary_safe(arg[1], dotall):
                return False
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            if not _boundary_safe(arg[2], dotall):
                return False
        elif op is _c.SUBPATTERN:
            if not _boundary_safe(arg[-1], dotall):
                return False
        elif op is _c.BRANCH:
            if not all(_boundary_safe(b, dotall) for b in arg[1]):
                return False
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            if not _boundary_safe(arg, dotall):
                return False
        elif op is getattr(_c, "GROUPREF_EXISTS", None):
            return False
    return True


def _has_line_anchors(items: Any) -> bool:
    for op, arg in items:
        if op is _c.AT and arg in (_c.AT_BEGINNING, _c.AT_END):
            return True
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            if _has_line_anchors(arg[2]):
                return True
        elif op is _c.SUBPATTERN or op is getattr(_c, "ATOMIC_GROUP", None):
            if _has_line_anchors(arg[-1] if op is _c.SUBPATTERN else arg):
                return True
        elif op is _c.BRANCH:
            if any(_has_line_anchors(b) for b in arg[1]):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT) and _has_line_anchors(arg[1]):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# required characters: a text without any of them cannot contain a match, so it is not scanned
#
# A requirement is a set of *probes* (tiny regexes: one character class, or a punctuation mark
# followed by a class), at least one of which occurs in every match. Texts where no probe occurs are
# skipped. The analysis is sound (never skips a text that could match) but not complete.

DIGIT = "\\d"
# rough frequency of a character in chat text; a rare requirement skips more texts
_COST = {"@": 1, "#": 1, "+": 3, ":": 3, "/": 4, "_": 4, DIGIT: 5, "-": 6, ",": 8, ".": 9, " ": 10}
_BIGRAM_COST = 2  # punctuation glued to a character class, e.g. ".com": rare in prose
_MAX_USEFUL_COST = 9
_REPEATS = tuple(
    op for op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)) if op is not None
)
_ZERO_WIDTH = (_c.AT, _c.ASSERT, _c.ASSERT_NOT)

Requirement = tuple[frozenset[str], int]  # (probes, cost)


def _single(ch: str) -> Requirement | None:
    if ch.isdigit():
        return frozenset([DIGIT]), _COST[DIGIT]
    if ch.isalpha() or ch.isspace():
        return None
    return frozenset([re.escape(ch)]), _COST.get(ch, 5)


def _union(reqs: list[Requirement]) -> Requirement:
    probes = frozenset().union(*(r[0] for r in reqs))
    return probes, sum(_probe_cost(p) for p in probes)


def _probe_cost(probe: str) -> int:
    if probe == DIGIT:
        return _COST[DIGIT]
    if len(probe) > 2 and probe.endswith("]") and "[" in probe:
        return _BIGRAM_COST
    return _COST.get(probe.replace("\\", ""), 5)


def _render_class(atoms: list[tuple[Any, Any]]) -> str | None:
    """Regex text for a union of single-character atoms, or None when one cannot be rendered."""
    parts: list[str] = []
    categories = {
        _c.CATEGORY_DIGIT: r"\d",
        _c.CATEGORY_NOT_DIGIT: r"\D",
        _c.CATEGORY_WORD: r"\w",
        _c.CATEGORY_NOT_WORD: r"\W",
        _c.CATEGORY_SPACE: r"\s",
        _c.CATEGORY_NOT_SPACE: r"\S",
    }
    for op, arg in atoms:
        members = arg if op is _c.IN else [(op, arg)]
        for o, a in members:
            if o is _c.LITERAL:
                parts.append(re.escape(chr(a)))
            elif o is _c.RANGE:
                parts.append(f"{re.escape(chr(a[0]))}-{re.escape(chr(a[1]))}")
            elif o is _c.CATEGORY and a in categories:
                parts.append(categories[a])
            else:
                return None
    return "[" + "".join(dict.fromkeys(parts)) + "]" if parts else None


def _first_atoms(items: Any) -> list[tuple[Any, Any]] | None:
    """The single-character atoms a match of this sequence can start with (None: unknown)."""
    for op, arg in items:
        if op in _ZERO_WIDTH:
            continue
        if op in (_c.LITERAL, _c.IN, _c.CATEGORY):
            return [(op, arg)]
        if op is _c.SUBPATTERN:
            return _first_atoms(arg[-1])
        if op is _c.BRANCH:
            out: list[tuple[Any, Any]] = []
            for branch in arg[1]:
                first = _first_atoms(branch)
                if first is None:
                    return None
                out.extend(first)
            return out
        if op in _REPEATS and arg[0] >= 1:
            return _first_atoms(arg[2])
        return None
    return None


def _required_item(op: Any, arg: Any) -> Requirement | None:
    if op is _c.LITERAL:
        return _single(chr(arg))
    if op is _c.CATEGORY:
        return (frozenset([DIGIT]), _COST[DIGIT]) if arg is _c.CATEGORY_DIGIT else None
    if op is _c.IN:
        reqs: list[Requirement] = []
        for o, a in arg:
            if (o is _c.CATEGORY and a is _c.CATEGORY_DIGIT) or (
                o is _c.RANGE and ord("0") <= a[0] <= a[1] <= ord("9")
            ):
                reqs.append((frozenset([DIGIT]), _COST[DIGIT]))
            elif o is _c.LITERAL and (single := _single(chr(a))) is not None:
                reqs.append(single)
            else:
                return None  # NEGATE, letters, other categories: too common or unknown
        return _union(reqs) if reqs else None
    if op in _REPEATS:
        return _required(arg[2]) if arg[0] >= 1 else None
    if op is _c.SUBPATTERN:
        return _required(arg[-1])
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _required(arg)
    if op is _c.BRANCH:
        found = [_required(b) for b in arg[1]]
        if any(f is None for f in found):
            return None
        return _union(found)  # type: ignore[arg-type]
    return None


def _punctuation_literal(op: Any, arg: Any) -> str | None:
    if op is _c.IN and len(arg) == 1:
        op, arg = arg[0]
    if op is _c.LITERAL:
        ch = chr(arg)
        if not (ch.isalnum() or ch.isspace()):
            return ch
    return None


def _required(items: Any) -> Requirement | None:
    """The cheapest requirement of a sequence (sound, not complete)."""
    items = list(items)
    options: list[Requirement] = []
    for i, (op, arg) in enumerate(items):
        found = _required_item(op, arg)
        if found is not None:
            options.append(found)
        mark = _punctuation_literal(op, arg)
        if mark is not None and i + 1 < len(items):
            nxt = items[i + 1]
            first = _first_atoms([nxt]) if not (nxt[0] in _REPEATS and nxt[1][0] == 0) else None
            rendered = _render_class(first) if first else None
            if rendered is not None and r"\s" not in rendered and r"\W" not in rendered:
                options.append((frozenset([re.escape(mark) + rendered]), _BIGRAM_COST))
    if not options:
        return None
    # cheapest; on a tie prefer digits, which other branches of an alternation usually share
    return min(options, key=lambda r: (r[1], r[0] != frozenset([DIGIT])))


def required_probe(pattern: str, flags: int = 0) -> str | None:
    """A regex every match contains a match of, when one is worth checking (else ``None``)."""
    try:
        parsed = list(_parser.parse(pattern, flags))
    except Exception:
        return None
    found = _required(parsed)
    if found is None or found[1] > _MAX_USEFUL_COST:
        return None
    # always case-insensitive: a pattern can switch IGNORECASE on inline, and a looser probe only
    # lets more texts through
    return "(?i)" + "|".join(sorted(found[0]))


#: Seconds one policy regex may spend on one text (``(a|aa)+$`` on a long run of ``a``s would
#: otherwise backtrack for hours). Over a whole batch the budget is :data:`BATCH_BUDGET_SECONDS`;
#: a batch that runs out is re-matched text by text, and a text that runs out raises
#: :class:`RegexTimeout` (the pipeline turns it into a ``dlp_failed`` dead letter).
TEXT_BUDGET_SECONDS = 1.0
BATCH_BUDGET_SECONDS = 2.0


class RegexTimeout(PolicyError):
    """A policy regex ran out of its time budget on one text."""

    def __init__(self, pattern: str, seconds: float, rules: Sequence[str] = ()):
        of = f" of rule{'s' if len(rules) > 1 else ''} {', '.join(rules)}" if rules else ""
        super().__init__(
            f"policy regex {pattern!r}{of} ran longer than {seconds:g} s on one text; rewrite it "
            "without nested or overlapping repeats such as (a+)+ or (a|aa)+"
        )
        self.pattern = pattern
        self.seconds = seconds
        self.rules = tuple(rules)


_REGEX_FLAGS = (
    (re.IGNORECASE, "IGNORECASE"),
    (re.MULTILINE, "MULTILINE"),
    (re.DOTALL, "DOTALL"),
    (re.VERBOSE, "VERBOSE"),
    (re.ASCII, "ASCII"),
)


def _regex_module_flags(flags: int) -> int:
    """``re`` flag bits as the ``regex`` module's (the ASCII bit differs between the two)."""
    import regex

    out = 0
    for bit, name in _REGEX_FLAGS:
        if flags & bit:
            out |= getattr(regex, name)
    return out


def compile_pattern(pattern: str, flags: int = 0, *, budgeted: bool = False) -> tuple[Any, bool, bool]:
    """Compile with ``re`` (fast) or, for syntax only it knows or when the pattern must run with a
    time budget, the ``regex`` module; and say whether the pattern can be batched and whether it
    uses ``^``/``$``."""
    try:
        compiled: Any = re.compile(pattern, flags)
    except re.error:
        import regex

        return regex.compile(pattern, _regex_module_flags(flags)), False, True
    if budgeted:
        import regex

        compiled = regex.compile(pattern, _regex_module_flags(flags))
    try:
        parsed = list(_parser.parse(pattern, flags))
    except Exception:  # the stdlib parser refuses what the compiler accepted: do not batch
        return compiled, False, True
    return compiled, _boundary_safe(parsed, bool(flags & re.DOTALL)), _has_line_anchors(parsed)


#: what identifies a compiled regex: (pattern, flags, variant); the variant says which copy of the
#: text it reads ("" normalised, "blank-cjk" normalised with CJK characters as spaces) and whether it
#: runs with a time budget ("+budget")
RegexKey = tuple[str, int, str]


class BatchRegex:
    """A pattern compiled once, matched over a batch of texts.

    ``blank_cjk``: the pattern reads the detection copy in which CJK characters are spaces (so
    ``\\b`` and ``(?<![A-Za-z0-9])`` see a boundary between ``是`` and ``536-22-1234``).
    ``budgeted``: the pattern is the policy author's and runs on the ``regex`` module with a time
    budget (see :data:`TEXT_BUDGET_SECONDS`); Presidio's and Vigil's own patterns run on ``re``.
    ``overlapped``: also report matches that start inside an earlier one (budgeted patterns only:
    the ``regex`` module does this); a card number inside a longer run of digit groups is found
    even when the group before it starts a failed candidate.
    """

    __slots__ = (
        "anchored",
        "batch",
        "blank_cjk",
        "budgeted",
        "exact",
        "flags",
        "overlapped",
        "pattern",
        "required",
        "safe",
    )

    def __init__(
        self,
        pattern: str,
        flags: int = 0,
        *,
        blank_cjk: bool = False,
        budgeted: bool = False,
        overlapped: bool = False,
    ):
        if overlapped and not budgeted:
            raise ValueError("overlapped matching needs the regex module: pass budgeted=True")
        self.pattern = pattern
        self.overlapped = overlapped
        self.flags = flags
        self.blank_cjk = blank_cjk
        self.budgeted = budgeted
        self.exact, self.safe, anchored = compile_pattern(pattern, flags, budgeted=budgeted)
        # ^/$ in single-line mode also match inside a text once batched in multi-line mode
        self.anchored = anchored and not flags & re.MULTILINE
        self.batch: Any = None
        if self.safe:
            if budgeted:
                import regex

                self.batch = regex.compile(pattern, _regex_module_flags(flags | re.MULTILINE))
            else:
                self.batch = re.compile(pattern, flags | re.MULTILINE)
        self.required = required_probe(pattern, flags)

    @property
    def key(self) -> RegexKey:
        variant = (
            ("blank-cjk" if self.blank_cjk else "")
            + ("+budget" if self.budgeted else "")
            + ("+overlapped" if self.overlapped else "")
        )
        return (self.pattern, self.flags, variant)

    def spans(self, text: str) -> list[Span]:
        if not self.budgeted:
            return [m.span() for m in self.exact.finditer(text) if m.end() > m.start()]
        try:
            return [
                m.span()
                for m in self.exact.finditer(text, overlapped=self.overlapped, timeout=TEXT_BUDGET_SECONDS)
                if m.end() > m.start()
            ]
        except TimeoutError:
            raise RegexTimeout(self.pattern, TEXT_BUDGET_SECONDS) from None

    def fullmatch_at(self, text: str, start: int, end: int) -> bool:
        """Whether the pattern matches exactly ``text[start:end]`` (look-behinds see ``text``)."""
        if self.budgeted:
            try:
                return self.exact.fullmatch(text, start, end, timeout=TEXT_BUDGET_SECONDS) is not None
            except TimeoutError:
                raise RegexTimeout(self.pattern, TEXT_BUDGET_SECONDS) from None
        return self.exact.fullmatch(text, start, end) is not None

    def _batch_matches(self, joined: str) -> list[Span] | None:
        """Spans over the joined batch, or None when a budgeted pattern ran out of time."""
        assert self.batch is not None
        if not self.budgeted:
            return [m.span() for m in self.batch.finditer(joined)]
        try:
            return [
                m.span()
                for m in self.batch.finditer(joined, overlapped=self.overlapped, timeout=BATCH_BUDGET_SECONDS)
            ]
        except TimeoutError:
            return None

    def run(self, texts: Sequence[str], joined: str, starts: Sequence[int]) -> dict[int, list[Span]]:
        """Matches per text index (only texts with matches appear), offsets local to each text.

        ``joined`` is ``SEPARATOR.join(texts)`` and ``starts`` the offset of each text in it.
        """
        out: dict[int, list[Span]] = {}
        found_in_batch = self._batch_matches(joined) if self.batch is not None else None
        if found_in_batch is None:
            for i, text in enumerate(texts):
                found = self.spans(text)
                if found:
                    out[i] = found
            return out
        recheck: set[int] = set()
        for start, end in found_in_batch:
            if end <= start:
                continue
            i = bisect.bisect_right(starts, start) - 1
            text_end = starts[i] + len(texts[i])
            if end > text_end:  # crosses into the next text (or more)
                j = bisect.bisect_right(starts, end - 1) - 1
                recheck.update(range(i, j + 1))
                continue
            out.setdefault(i, []).append((start - starts[i], end - starts[i]))
        if self.anchored:
            # ^ and $ may have matched at inner line starts/ends: keep only what each text says
            recheck.update(out)
        for i in recheck:
            found = self.spans(texts[i])
            if found:
                out[i] = found
            else:
                out.pop(i, None)
        return out


def join(texts: Sequence[str]) -> tuple[str, list[int]]:
    """The batch string and the start offset of each text in it."""
    starts = []
    pos = 0
    for text in texts:
        starts.append(pos)
        pos += len(text) + 1
    return SEPARATOR.join(texts), starts


def run_all(
    regexes: Sequence[BatchRegex], texts: Sequence[str], blanked: Sequence[str] | None = None
) -> dict[RegexKey, dict[int, list[Span]]]:
    """Every regex over every text: ``{regex key: {text index: spans}}``.

    ``blanked`` is the CJK-blanked copy of ``texts`` (same lengths) read by ``blank_cjk`` regexes;
    default: ``texts`` themselves. Regexes are grouped by the character they require; each group
    runs over the sub-batch of texts that contain that character, so a text with no digit is never
    scanned by a digit pattern.
    """
    if blanked is not None and all(b is t for b, t in zip(blanked, texts, strict=True)):
        blanked = None  # no CJK anywhere (blank_cjk returns ASCII texts as they are): one copy
    copies = {False: texts, True: texts if blanked is None else blanked}
    groups: dict[tuple[str | None, bool], list[BatchRegex]] = {}
    for regex in regexes:
        # with one copy, both kinds of regex read the same texts: group them together
        groups.setdefault((regex.required, regex.blank_cjk and blanked is not None), []).append(regex)
    whole = join(texts)
    joined_copies = {False: whole, True: whole if blanked is None else join(blanked)}
    out: dict[RegexKey, dict[int, list[Span]]] = {}
    for (required, blank), members in groups.items():
        source = copies[blank]
        all_joined, all_starts = joined_copies[blank]
        if required is None:
            index = list(range(len(source)))
            sub = list(source)
        else:
            index = _texts_with(_probe(required), all_joined, all_starts)
            sub = [source[i] for i in index]
        if not sub:
            continue
        joined, starts = join(sub)
        for regex in members:
            found = regex.run(sub, joined, starts)
            if found:
                out[regex.key] = {index[i]: spans for i, spans in found.items()}
    return out


@functools.lru_cache(maxsize=1024)
def _probe(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _texts_with(probe: re.Pattern[str], joined: str, starts: list[int]) -> list[int]:
    """Indexes of the texts containing a probe match, one search per hit text (probes are one or
    two characters long and never contain the separator, so a hit lies within one text)."""
    found: list[int] = []
    pos = 0
    n = len(starts)
    while True:
        match = probe.search(joined, pos)
        if match is None:
            return found
        i = bisect.bisect_right(starts, match.start()) - 1
        found.append(i)
        if i + 1 >= n:
            return found
        pos = starts[i + 1]
