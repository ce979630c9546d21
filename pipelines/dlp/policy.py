"""DLP policies as data: the models, the loader and the lint.

A policy is a YAML file in ``dlp_rules/`` written by the security team. It is parsed with the safe
YAML loader into the pydantic models below (every field documented) and then linted. Any mistake is
reported as a :class:`~pipelines.errors.PolicyError` naming the file, the line, what is wrong and an
example of what to write instead; never a stack trace. Line numbers come from the YAML node tree
(``yaml.compose``): a pydantic error location such as ``rules.2.detectors.0.regex`` is walked down
the nodes to the offending one.

Names that refer to code (detector types, Presidio entities, checksum validators, redaction
operators) are looked up in registries; an unknown name is an error that lists the valid ones.

A *policy set* is what the pipeline applies: several policy files, or a set file such as
``dlp_rules/active.yaml`` listing them. Its digest (SHA-256 over the files' bytes) goes into every
archived verdict so a reviewer can tell which rules produced it.
"""

from __future__ import annotations

import codecs
import datetime as dt
import difflib
import hashlib
import re
import stat
import textwrap
import types
import typing
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipelines.dlp import checksums
from pipelines.errors import PolicyError
from pipelines.record import Channel, Direction, DlpAction, Kind

# ---------------------------------------------------------------------------------------------
# models


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ViewMode(StrEnum):
    """What a destination sees of a message body."""

    ORIGINAL = "original"
    REDACTED = "redacted"
    WITHHELD = "withheld"


DESTINATIONS = ("delivery", "export", "crm")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
    #: a correct YAML snippet, shown when this part of a policy is wrong
    EXAMPLE: ClassVar[str] = ""


#: "{6" or "{2," not closed by "}", where a repeat count may start (see :func:`_unclosed_repeat`)
_UNCLOSED_REPEAT = re.compile(r"\{\d+(?:,\d*)?(?![\d,}])")


def _unclosed_repeat(pattern: str) -> re.Match[str] | None:
    """The first repeat count left open (``\\d{6``), skipping escaped characters (``\\{6``) and
    character classes (``[{0-9]``), where a brace is an ordinary character."""
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):  # a "]" first in a class is one of its characters
                i += 1
            continue
        elif ch == "{" and (found := _UNCLOSED_REPEAT.match(pattern, i)):
            return found
        i += 1
    return None


def _blank_word(word: str) -> str | None:
    """What makes ``word`` (a lexicon term, a context word) match nothing, if anything: it is empty,
    or nothing is left of it once detection's normalisation removes invisible characters."""
    if not word.strip():
        return "is empty"
    from pipelines.dlp.normalize import normalize

    if not normalize(word).text.strip():
        shown = " ".join(f"U+{ord(ch):04X}" for ch in dict.fromkeys(word))[:60]
        return (
            f"is only invisible characters ({shown}), which detection removes before matching, so it "
            "matches nothing"
        )
    return None


def _never_reports(score: float, min_score: float, validator: str | None, context: Any) -> str | None:
    """Why a pattern or lexicon detector can never report a finding, if it cannot: the best score
    it can reach (a validated match scores 1.0; a raise word adds ``raise_by`` and lifts the score
    to at least 0.4) is below its ``min_score``, or 0 (a finding needs a score above 0)."""
    from pipelines.dlp.detectors import MIN_SCORE_WITH_CONTEXT

    best = 1.0 if validator else score
    how = "a validated match scores 1" if validator else f"score {score:g}"
    if context is not None and context.raise_words:
        best = min(1.0, max(best + context.raise_by, MIN_SCORE_WITH_CONTEXT))
        how += f", {best:g} with a raise word nearby"
    else:
        how += ", and no context raise_words to lift it"
    if best > 0 and best >= min_score:
        return None
    if best <= 0:
        fix = "give it a score above 0 (a finding scoring 0 is never reported), or context raise_words"
    else:
        fix = (
            f"raise score to {min_score:g} or more, lower min_score to {best:g} or less, or add "
            "context raise_words that lift it"
        )
    return (
        f"this detector can never report anything: min_score {min_score:g} is above its best score "
        f"({how}); {fix}"
    )


def _max_width(pattern: str) -> int | None:
    """Longest text ``pattern`` can match, or None when its repeats are unbounded."""
    from pipelines.dlp.batch_regex import _c, _parser

    longest = int(_parser.parse(pattern).getwidth()[1])
    return None if longest >= _c.MAXREPEAT else longest


def _removed_needed(pattern: str) -> str | None:
    """A character every match of ``pattern`` must hold that normalisation removes before any
    pattern runs (a zero-width space, a NUL), or None: such a pattern can never match."""
    from pipelines.dlp.batch_regex import _c, _parser
    from pipelines.dlp.normalize import REMOVED

    def needed(items: Any) -> str | None:
        for op, av in items:
            if op is _c.LITERAL and chr(av) in REMOVED:
                return chr(av)
            if op is _c.IN and av and (gone := _all_removed(av)):
                return gone
            if op is _c.BRANCH and all(each := [needed(alt) for alt in av[1]]):
                return each[0]  # every alternative needs one
            inner = None
            if op is _c.SUBPATTERN:
                inner = av[-1]
            elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
                inner = av[2]
            elif op is getattr(_c, "ATOMIC_GROUP", None):
                inner = av
            if inner is not None and (within := needed(inner)):
                return within
        return None

    def _all_removed(items: Any) -> str | None:
        """The first character of a class made only of removed characters (literals and ranges)."""
        chars: list[str] = []
        for o, a in items:
            if o is _c.LITERAL:
                chars.append(chr(a))
            elif o is _c.RANGE and a[1] - a[0] < 0x1000:
                chars.extend(map(chr, range(a[0], a[1] + 1)))
            else:
                return None
        return chars[0] if chars and all(ch in REMOVED for ch in chars) else None

    return needed(_parser.parse(pattern))


#: A POSIX character class (``[[:digit:]]``), which Python's re reads as a set of the characters
#: ``[``, ``:``, ``d``, ... (a rule that silently never matches what its author meant).
_POSIX_CLASS = re.compile(
    r"(?<!\\)\[:(alpha|digit|alnum|space|upper|lower|punct|xdigit|word|blank|cntrl|graph|print):\]"
)
_POSIX_WRITE = {
    "alpha": "[A-Za-z]",
    "digit": "[0-9]",
    "alnum": "[A-Za-z0-9]",
    "space": "\\s",
    "upper": "[A-Z]",
    "lower": "[a-z]",
    "xdigit": "[0-9A-Fa-f]",
    "word": "\\w",
    "blank": "[ \\t]",
}


def _named_char(ch: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: a character named so that an invisible one can be seen."""
    import unicodedata

    name = unicodedata.name(ch, "") or {"\x00": "NUL"}.get(ch, "a control character")
    return f"U+{ord(ch):04X} {name}"


def _compile_user_regex(value: str, ignore_case: bool = False) -> re.Pattern[str]:
    flags = re.IGNORECASE if ignore_case else 0
    if posix := _POSIX_CLASS.search(value):
        instead = _POSIX_WRITE.get(posix.group(1), "a range such as [0-9]")
        raise ValueError(
            f"regex '{value}' uses the POSIX class '{posix.group()}', which Python's re does not know "
            f"(it would match the characters '[', ':', ... instead): write {instead}"
        )
    try:
        with warnings.catch_warnings():
            # "possible nested set" and the like: re would read the pattern otherwise than written
            warnings.simplefilter("error", FutureWarning)
            compiled = re.compile(value, flags)
    except FutureWarning as exc:
        raise ValueError(
            f"regex '{value}' is ambiguous to Python's re ({exc}): escape a literal '[' as '\\[' "
            "and write '--', '&&', '~~' or '||' inside a set escaped as well"
        ) from None
    except OverflowError:
        raise ValueError(
            f"regex '{value}' repeats more times than a regex can count; the most a policy regex may "
            f"name is {MAX_REPEAT_COUNT:,}: write a smaller count, or '+' / '{{n,}}' for no limit"
        ) from None
    except RecursionError:
        raise ValueError(f"regex '{value[:200]}' nests its groups too deeply; flatten the groups") from None
    except re.error as exc:
        hint = ""
        if any(f"bad escape \\{letter}" in str(exc) for letter in "pPX"):
            hint = (
                "; policy regexes use Python's re syntax, without Unicode property classes: write a "
                "range instead, e.g. [\\u4e00-\\u9fff] for Han, [\\u3040-\\u30ff] for kana"
            )
        # quoted as written: repr() would double every backslash
        raise ValueError(f"regex '{value}' does not compile: {exc}{hint}") from None
    if (count := _huge_repeat(value)) is not None:
        # the regex module (which runs policy regexes with a time budget) allocates memory for
        # every repeat a count allows: a{100000000} ends the process
        raise ValueError(
            f"regex '{value}' repeats up to {count:,} times (counts inside counts multiply); the most a "
            f"policy regex may name is {MAX_REPEAT_COUNT:,}: write smaller counts, or '+' / '{{n,}}' for "
            "no limit"
        )
    try:
        # as the engine compiles it: with the regex module, which recurses deeper per level of
        # nested groups than re does
        from pipelines.dlp.batch_regex import compile_pattern

        compile_pattern(value, flags, budgeted=True)
    except RecursionError:
        raise ValueError(f"regex '{value[:200]}' nests its groups too deeply; flatten the groups") from None
    except Exception as exc:
        raise ValueError(
            f"regex '{value}' does not compile with the regex module the engine uses: {exc}"
        ) from None
    if unclosed := _unclosed_repeat(value):
        # re reads "\d{6" as a digit, "{" and "6": the rule would silently never match
        raise ValueError(
            f"regex '{value}' has a repeat count without its closing brace ('{unclosed.group()}' at "
            f"position {unclosed.start()}): write '{unclosed.group()}}}', or '\\{{' for a literal brace"
        )
    nested = _nested_repeat(value)
    if nested:
        raise ValueError(
            f"regex '{value}' repeats a repeat ({nested}): on a long run of matching characters "
            "it backtracks exponentially; repeat the inner part once, e.g. 'a+' instead of '(a+)+'"
        )
    return compiled


#: The largest repeat count (``{n}``, ``{m,n}``) a policy regex may name.
MAX_REPEAT_COUNT = 10_000


def _huge_repeat(pattern: str) -> int | None:
    """How many times ``pattern`` may repeat something, counting repeats inside repeats as their
    product (``(?:\\d{100}){300}`` is 30,000), when that passes :data:`MAX_REPEAT_COUNT`; else None.
    An unbounded repeat counts its minimum (``{n,}``: what it must unroll)."""
    from pipelines.dlp.batch_regex import _REPEATS, _c, _parser

    try:
        parsed = _parser.parse(pattern)
    except Exception:
        return None
    atomic = getattr(_c, "ATOMIC_GROUP", None)

    def walk(items: Any, times: int) -> int | None:
        for op, arg in items:
            children: list[Any] = []
            within = times
            if op in _REPEATS:
                low, high = arg[0], arg[1]
                within = times * max(1, high if high != _c.MAXREPEAT else low)
                if within > MAX_REPEAT_COUNT:
                    return within
                children = [arg[2]]
            elif op is _c.SUBPATTERN:
                children = [arg[-1]]
            elif op is _c.BRANCH:
                children = list(arg[1])
            elif op in (_c.ASSERT, _c.ASSERT_NOT):
                children = [arg[1]]
            elif atomic is not None and op is atomic:
                children = [arg]
            elif op is _c.GROUPREF_EXISTS:
                children = [branch for branch in arg[1:] if branch is not None]
            for child in children:
                if (found := walk(child, within)) is not None:
                    return found
        return None

    return walk(parsed, 1)


def _nested_repeat(pattern: str) -> str | None:
    """Describe the first unbounded repeat whose body is itself an unbounded repeat plus only
    optional items (``(a+)+``, ``(\\w+\\s?)*``): it can split a run of characters in exponentially
    many ways, so a near-miss backtracks for ever. None when there is none. A repeat with a required
    separator (``(?:\\d+,)+``) is fine. Subtler cases (``(a|aa)+``) are bounded at run time by the
    per-text regex time budget (:mod:`pipelines.dlp.batch_regex`)."""
    from pipelines.dlp.batch_regex import _REPEATS, _c, _parser

    try:
        parsed = _parser.parse(pattern)
    except Exception:
        return None

    def unbounded(op: Any, arg: Any) -> bool:
        return op in _REPEATS and arg[1] == _c.MAXREPEAT

    def flat(items: Any) -> list[Any]:
        items = list(items)
        while len(items) == 1 and items[0][0] is _c.SUBPATTERN:
            items = list(items[0][1][-1])
        return items

    def optional(op: Any, arg: Any) -> bool:
        return (op in _REPEATS and arg[0] == 0) or op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT)

    def ambiguous(body: Any) -> bool:
        items = flat(body)
        inner = [k for k, (op, arg) in enumerate(items) if unbounded(op, arg)]
        return any(all(optional(*it) for k, it in enumerate(items) if k != i) for i in inner)

    def walk(items: Any) -> str | None:
        for op, arg in items:
            if unbounded(op, arg) and ambiguous(arg[2]):
                return "a '+', '*' or '{n,}' directly inside another"
            if op in _REPEATS:
                found = walk(arg[2])
            elif op is _c.SUBPATTERN:
                found = walk(arg[-1])
            elif op is _c.BRANCH:
                found = next((f for b in arg[1] if (f := walk(b))), None)
            elif op in (_c.ASSERT, _c.ASSERT_NOT):
                found = walk(arg[1])
            else:
                found = None  # an atomic group does not backtrack into itself
            if found:
                return found
        return None

    return walk(parsed)


class OperatorSpec(_Model):
    """How a finding is rewritten where the policy says the body is shown redacted."""

    EXAMPLE: ClassVar[str] = """\
        operator: {type: mask, masking_char: "*", keep_last: 4}
        # or: {type: replace}            -> <CREDIT_CARD>
        # or: {type: hash, key_env: VIGIL_DLP_HASH_KEY}"""

    type: str = Field(description="mask, replace (with the entity label) or hash (keyed HMAC-SHA256).")
    masking_char: str = Field(
        default="*", min_length=1, max_length=1, description="mask: character to mask with."
    )
    keep_last: int = Field(
        strict=True,
        default=0,
        ge=0,
        le=8,
        description="mask: letters or digits left visible at the end (never all of them).",
    )
    label: str | None = Field(default=None, description="replace: text to put instead of <ENTITY>.")
    key_env: str | None = Field(
        default=None,
        description="hash: environment variable holding the HMAC key (required for hash; at least 32 "
        "bytes). The hash is taken over the canonical value, so equal values written differently "
        "hash alike.",
    )
    length: int = Field(
        strict=True, default=16, ge=8, le=64, description="hash: hex characters of the digest to keep."
    )

    @field_validator("type")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        from pipelines.dlp.redact import OPERATORS

        if value not in OPERATORS:
            raise ValueError(f"unknown operator {value!r}; valid operators: {', '.join(sorted(OPERATORS))}")
        return value

    #: the options each operator reads; any other one given would be ignored without a word
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "mask": ("masking_char", "keep_last"),
        "replace": ("label",),
        "hash": ("key_env", "length"),
    }

    @model_validator(mode="after")
    def _options_that_apply(self) -> OperatorSpec:
        stray = sorted(self.model_fields_set - {"type", *self.OPTIONS.get(self.type, ())})
        if stray:
            owners = {o: t for t, opts in self.OPTIONS.items() for o in opts}
            said = ", ".join(f"{o} ({owners[o]} only)" for o in stray)
            raise ValueError(f"{said} does nothing with type: {self.type}; remove it or change the type")
        return self


class ContextSpec(_Model):
    """Words near a match that make it more (or less) likely to be what the detector thinks.

    Precedence: when a raise word is within the window, lower words are not applied at all; and a
    lower word never applies to a value a checksum validator accepted (Luhn, mod-97, ...), so
    "ref", "order" or "注文" next to a valid card number or My Number cannot release it.

    ``required: true`` keeps a match only when a raise word is within the window, validated or not:
    for identifiers whose check digit alone proves little (one random 12-digit number in eleven
    passes the My Number check, so meeting ids and reference numbers would)."""

    EXAMPLE: ClassVar[str] = """\
        context:
          window: 40            # characters either side of the match
          raise_words: [card, visa, 信用卡]
          raise_by: 0.35
          lower_words: [order, tracking]
          lower_by: 0.4
          required: false       # true: no raise word nearby, no finding"""

    window: int = Field(
        strict=True, default=40, ge=1, le=400, description="Characters looked at on each side of a match."
    )
    raise_words: list[str] = Field(default_factory=list, description="Words that raise the score.")
    raise_by: float = Field(
        strict=True, default=0.35, ge=0, le=1, description="How much a raising word adds."
    )
    lower_words: list[str] = Field(
        default_factory=list,
        description="Words that lower the score; ignored when a raise word hit, and never applied to a "
        "checksum-validated value.",
    )
    lower_by: float = Field(
        strict=True, default=0.35, ge=0, le=1, description="How much a lowering word takes away."
    )
    required: bool = Field(
        default=False, strict=True, description="Keep a match only when a raise word is within the window."
    )

    @field_validator("raise_words", "lower_words")
    @classmethod
    def _no_blank_words(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for i, word in enumerate(value):
            if problem := _blank_word(word):
                raise ValueError(
                    f"{info.field_name} #{i + 1} {problem}; remove it or write the word to look for"
                )
        return value

    @model_validator(mode="after")
    def _required_needs_words(self) -> ContextSpec:
        if self.required and not self.raise_words:
            raise ValueError("required: true needs raise_words to look for; add them or remove required")
        return self


class PresidioDetector(_Model):
    """One of Presidio's entities, detected with its own patterns and validation (or NER)."""

    EXAMPLE: ClassVar[str] = """\
        - type: presidio
          entity: CREDIT_CARD      # any Presidio entity, e.g. EMAIL_ADDRESS, US_SSN, PERSON
          min_score: 0.5"""

    type: Literal["presidio"]
    entity: str = Field(description="Presidio entity name, e.g. CREDIT_CARD, IBAN_CODE, PERSON.")
    min_score: float = Field(
        strict=True, default=0.5, ge=0, le=1, description="Findings scoring below this are dropped."
    )
    context: ContextSpec | None = Field(
        None, description="Context words; default: the context words of Presidio's recognizer."
    )
    regions: list[str] | None = Field(
        default=None,
        min_length=1,
        description="PHONE_NUMBER only: the countries whose national formats count, as "
        "libphonenumber's region codes (US, GB, CN, JP, ...); default: Presidio's list. A number "
        "written with + and its country code is found whatever the list.",
    )

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        import phonenumbers

        known = sorted(phonenumbers.SUPPORTED_REGIONS)
        for region in value:
            if region not in phonenumbers.SUPPORTED_REGIONS:
                aliases = {"UK": "GB", "EN": "GB"}
                close = [aliases[region.upper()]] if region.upper() in aliases else []
                close += [c for c in difflib.get_close_matches(region.upper(), known, n=3) if c not in close]
                hint = f"did you mean {', '.join(close)}? " if close else ""
                raise ValueError(
                    f"unknown phone region {region!r}; {hint}write ISO 3166 country codes in capitals "
                    "as libphonenumber knows them (the United Kingdom is GB)"
                )
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _regions_only_for_phones(self) -> PresidioDetector:
        if self.regions is not None and self.entity != "PHONE_NUMBER":
            raise ValueError(f"regions: applies to PHONE_NUMBER only, not {self.entity}; remove it")
        return self

    @field_validator("entity")
    @classmethod
    def _known_entity(cls, value: str) -> str:
        from pipelines.dlp.presidio_entities import known_entities

        names = known_entities()
        if value not in names:
            close = difflib.get_close_matches(value.upper(), names, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ValueError(
                f"unknown Presidio entity {value!r}; {hint}"
                "`vigil dlp lint --entities` lists every valid entity"
            )
        return value


class PatternDetector(_Model):
    """A custom regular expression, optionally confirmed by a checksum validator."""

    EXAMPLE: ClassVar[str] = r"""
        - type: pattern
          entity: CN_RESIDENT_ID
          regex: '(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9])'
          score: 0.6
          validator: cn_resident_id   # optional checksum check"""

    type: Literal["pattern"]
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="Entity name reported, UPPER_SNAKE.")
    regex: str = Field(
        min_length=1,
        description="Python regular expression, matched on normalised text (CJK characters read as "
        "spaces unless the regex itself contains CJK characters); at most 1 s per text.",
    )
    ignore_case: bool = Field(strict=True, default=False, description="Match the regex case-insensitively.")
    score: float = Field(
        strict=True,
        default=0.6,
        ge=0,
        le=1,
        description="Score of a match (1.0 once a validator accepts it).",
    )
    min_score: float = Field(
        strict=True, default=0.5, ge=0, le=1, description="Findings scoring below this are dropped."
    )
    validator: str | None = Field(
        default=None, description="Checksum validator name, e.g. luhn, iban, sg_nric."
    )
    overlapped: bool = Field(
        strict=True,
        default=False,
        description="Also try matches that start inside an earlier match, so a card number after "
        "another group of digits is still found; the regex must be bounded in length.",
    )
    context: ContextSpec | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        _compile_user_regex(value)
        if _max_width(value) == 0:
            raise ValueError(
                f"regex '{value}' can match only empty text (anchors and lookarounds such as ^, \\b or "
                "(?=...) take no characters), and a finding is never empty, so the rule could never "
                "fire: write the characters the finding is, e.g. (?<=EMP-)\\d{6} for the digits after EMP-"
            )
        if (gone := _removed_needed(value)) is not None:
            raise ValueError(
                f"regex '{value}' needs {_named_char(gone)}, which detection removes from the text before "
                "any pattern runs (invisible and control characters go, so 'EMP-\\u200b0042' reads "
                "'EMP-0042'), so the rule could never fire: leave the character out of the regex"
            )
        return value

    @model_validator(mode="after")
    def _can_report(self) -> PatternDetector:
        if problem := _never_reports(self.score, self.min_score, self.validator, self.context):
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _overlapped_is_bounded(self) -> PatternDetector:
        # every start of a long text is tried, and each try may run to the end of an unbounded match
        if self.overlapped and _max_width(self.regex) is None:
            raise ValueError(
                "overlapped: true needs a regex of bounded length (no *, + or {n,}), else every start "
                "in a long text is matched to its end; bound the repeats, e.g. \\d{13,19} for \\d+"
            )
        return self

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, value: str | None) -> str | None:
        if value is not None and value not in checksums.VALIDATORS:
            raise ValueError(
                f"unknown validator {value!r}; valid validators: {', '.join(sorted(checksums.VALIDATORS))}"
            )
        return value


class LexiconDetector(_Model):
    """Terms and phrases (any language); whole words for Latin text, substrings for CJK."""

    EXAMPLE: ClassVar[str] = """\
        - type: lexicon
          entity: RISKY_PHRASE
          terms: ["guaranteed return", "保证收益", "元本保証"]
          score: 0.8"""

    type: Literal["lexicon"]
    entity: str = Field(
        default="RISKY_PHRASE", pattern=r"^[A-Z][A-Z0-9_]*$", description="Entity name reported."
    )
    terms: list[str] = Field(min_length=1, description="Terms or phrases; matched case-insensitively.")
    score: float = Field(strict=True, default=0.8, ge=0, le=1, description="Score of a match.")
    min_score: float = Field(
        strict=True, default=0.5, ge=0, le=1, description="Findings scoring below this are dropped."
    )
    context: ContextSpec | None = None

    @field_validator("terms")
    @classmethod
    def _no_blank_terms(cls, value: list[str]) -> list[str]:
        for i, term in enumerate(value):
            if problem := _blank_word(term):
                raise ValueError(f"term #{i + 1} {problem}; remove it or write the word to look for")
        return value

    @model_validator(mode="after")
    def _can_report(self) -> LexiconDetector:
        if problem := _never_reports(self.score, self.min_score, None, self.context):
            raise ValueError(problem)
        return self


Detector = Annotated[PresidioDetector | PatternDetector | LexiconDetector, Field(discriminator="type")]
DETECTOR_TYPES: dict[str, type[_Model]] = {
    "presidio": PresidioDetector,
    "pattern": PatternDetector,
    "lexicon": LexiconDetector,
}


class AllowSpec(_Model):
    """Values never reported (test numbers, the firm's own published phone number, ...)."""

    EXAMPLE: ClassVar[str] = """\
        allow:
          values: ["4111 1111 1111 1111"]
          regexes: ['.*@example\\.com']"""

    values: list[str] = Field(default_factory=list, description="Exact values (compared without spaces).")
    regexes: list[str] = Field(default_factory=list, description="Regexes a whole value must match.")

    @field_validator("values")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        for i, item in enumerate(value):
            if not checksums.canonical(item):
                raise ValueError(
                    f"allow value #{i + 1} {item!r} is empty once spaces, separators and invisible "
                    "characters are left out (values are compared so), so it lets nothing through: "
                    "remove it or write the value to allow, e.g. '4111 1111 1111 1111'"
                )
        return value

    @field_validator("regexes")
    @classmethod
    def _compile(cls, value: list[str]) -> list[str]:
        for regex in value:
            _compile_user_regex(regex)
            compiled = re.compile(regex)
            if all(compiled.fullmatch(probe) for probe in _ALLOW_PROBES):
                raise ValueError(
                    f"allow regex '{regex}' matches any value (a card number, an e-mail address, "
                    "a word alike), so no rule it applies to could ever report anything: write the "
                    "values it should let through, e.g. '.*@example\\.com'"
                )
        return value


#: Unlike values an allow-list regex that matches them all would let every finding through.
_ALLOW_PROBES = ("4012 8888 8888 1881", "maria@example.com", "+44 20 7946 0958", "EMP-004211", "x", "张伟")


_SCOPE_EXAMPLES = {
    "channels": "whatsapp",
    "directions": "outbound",
    "kinds": "message",
    "orgs": "acme",
    "sub_orgs": "hong-kong",
    "employee_groups": "traders",
}


class ScopeSpec(_Model):
    """Which messages a rule applies to. An absent list means all."""

    EXAMPLE: ClassVar[str] = """\
        scope:
          channels: [sms, whatsapp]
          directions: [outbound]
          kinds: [message]
          orgs: [acme]
          sub_orgs: [hong-kong]
          employee_groups: [traders]"""

    channels: list[Channel] | None = Field(default=None, description="sms, mms, voicemail, whatsapp, ...")
    directions: list[Direction] | None = Field(
        default=None, description="inbound, outbound, internal, system."
    )
    kinds: list[Kind] | None = Field(default=None, description="message, auto_message, event.")
    orgs: list[str] | None = Field(
        default=None, description="Organisations (tenants), compared ignoring case."
    )
    sub_orgs: list[str] | None = Field(
        default=None, description="Sub-organisations (desks, regions), compared ignoring case."
    )
    employee_groups: list[str] | None = Field(
        default=None,
        description="Employee groups, compared ignoring case; any one is enough. Where the groups are "
        "not known (dlp scan or a test case without them) the rule applies, as for every other unknown "
        "scope field.",
    )

    @field_validator("channels", "directions", "kinds", "orgs", "sub_orgs", "employee_groups")
    @classmethod
    def _not_empty(cls, value: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        if value is None:  # only a value given is validated: `directions:` with nothing after it
            raise ValueError(
                f"`{info.field_name}:` is given without a list, which YAML reads as nothing; list "
                f"the values (e.g. `{info.field_name}: [{_SCOPE_EXAMPLES[info.field_name or '']}]`) "
                "or leave the key out to mean all"
            )
        if not value:
            raise ValueError(
                f"an empty list matches nothing, so the rule would never apply in the pipeline; leave "
                f"`{info.field_name}` out to mean all"
            )
        if value and any(isinstance(v, str) and not v.strip() for v in value):
            raise ValueError("an empty name matches nothing; remove it")
        return value


class RuleSpec(_Model):
    """One rule: what to look for, where, and what to do when found."""

    EXAMPLE: ClassVar[str] = """\
        - id: pii.card-number
          description: Payment card numbers must not leave the firm in clear text.
          severity: high
          action: redact               # flag, redact or block
          detectors:
            - type: presidio
              entity: CREDIT_CARD"""

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Unique rule id: lower case, digits, . _ -"
    )
    description: str = Field(description="What the rule protects; shown to employees when it blocks.")
    severity: Severity
    action: Literal["flag", "redact", "block"] = Field(
        description="flag: alert only; redact: rewrite the finding; block: withhold the message."
    )
    scope: ScopeSpec = Field(default_factory=ScopeSpec)
    detectors: list[Detector] = Field(min_length=1)
    allow: AllowSpec = Field(default_factory=AllowSpec)
    operator: OperatorSpec | None = Field(
        default=None, description="Redaction operator; default: the policy's."
    )

    @field_validator("description")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("description is empty; say in one sentence what the rule protects")
        return value.strip()

    @property
    def dlp_action(self) -> DlpAction:
        return DlpAction(self.action)


class ViewSpec(_Model):
    """What one destination gets of a message body."""

    EXAMPLE: ClassVar[str] = """\
        views:
          delivery: redacted       # original, redacted or withheld
          export: {show: redacted, operator: {type: hash, key_env: VIGIL_DLP_HASH_KEY}}
          crm: withheld"""

    show: ViewMode = Field(description="original, redacted or withheld.")
    operator: OperatorSpec | None = Field(
        default=None, description="Operator for this destination (default: rule's)."
    )


def _view(show: ViewMode) -> Any:
    return Field(default_factory=lambda: ViewSpec(show=show))


class ViewsSpec(_Model):
    """Per destination, how bodies with findings are shown. Blocked messages are never delivered."""

    EXAMPLE: ClassVar[str] = ViewSpec.EXAMPLE

    delivery: ViewSpec = _view(ViewMode.REDACTED)
    export: ViewSpec = _view(ViewMode.REDACTED)
    crm: ViewSpec = _view(ViewMode.REDACTED)
    # No `reviewer` view: what people see in search is the role model's business (officers see the
    # original and the redacted text, reviewers only the redacted text), not a policy's.

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `delivery: redacted` is short for `delivery: {show: redacted}`
        if isinstance(data, dict):
            return {k: ({"show": v} if isinstance(v, str) else v) for k, v in data.items()}
        return data


class PolicySpec(_Model):
    """A policy file."""

    EXAMPLE: ClassVar[str] = """\
        id: pii
        description: Personal data that must not leave the firm in clear text.
        rules:
          - id: pii.card-number
            description: Payment card numbers.
            severity: high
            action: redact
            detectors:
              - type: presidio
                entity: CREDIT_CARD"""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Policy id (lower case).")
    description: str = Field(min_length=1, description="What the policy is for.")
    operator: OperatorSpec = Field(
        default_factory=lambda: OperatorSpec(type="replace"), description="Default redaction operator."
    )
    views: ViewsSpec = Field(default_factory=ViewsSpec)
    allow: AllowSpec = Field(default_factory=AllowSpec, description="Allow-list for every rule.")
    rules: list[RuleSpec] = Field(min_length=1)

    @field_validator("description")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("description is empty; say what the policy is for")
        return value.strip()


class PolicySetSpec(_Model):
    """A policy-set file: which policies apply together."""

    EXAMPLE: ClassVar[str] = """\
        policy_set: active
        description: What `vigil run` applies by default.
        policies: [pii.yaml, secrets.yaml, conduct.yaml]"""

    policy_set: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Name of the set.")
    description: str = ""
    policies: list[str] = Field(min_length=1, description="Policy files, relative to this file.")


# ---------------------------------------------------------------------------------------------
# loaded objects


@dataclass(frozen=True)
class Policy:
    """A validated policy file."""

    spec: PolicySpec
    path: Path
    digest: str
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # rule id -> line
    id_line: int = field(default=1, compare=False)  # line of `id:`

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def rules(self) -> list[RuleSpec]:
        return self.spec.rules

    @property
    def needs_ner(self) -> bool:
        from pipelines.dlp.presidio_entities import is_ner_entity

        return any(
            isinstance(d, PresidioDetector) and is_ner_entity(d.entity)
            for r in self.rules
            for d in r.detectors
        )


@dataclass(frozen=True)
class PolicySet:
    """Policies applied together; what :class:`~pipelines.dlp.engine.Engine` compiles."""

    id: str
    policies: tuple[Policy, ...]
    digest: str

    @property
    def needs_ner(self) -> bool:
        return any(p.needs_ner for p in self.policies)

    @property
    def label(self) -> str:
        """``id@digest-prefix``: what an archived verdict records as its policy."""
        return f"{self.id}@{self.digest[:12]}"

    @cached_property
    def rules(self) -> dict[str, tuple[Policy, RuleSpec]]:
        return {r.id: (p, r) for p in self.policies for r in p.rules}

    def rule(self, rule_id: str) -> RuleSpec:
        return self.rules[rule_id][1]

    def policy_of(self, rule_id: str) -> Policy:
        return self.rules[rule_id][0]


# ---------------------------------------------------------------------------------------------
# loading with line numbers


#: the largest policy, set or case file read (the shipped ones are under 40 KiB): loading and
#: compiling a lexicon takes about 12 s a MiB, in every process that loads it, so a 10 MB paste
#: would keep every `vigil` command busy for minutes
MAX_FILE_BYTES = 1 << 20


def _read(path: Path) -> tuple[bytes, str]:
    kind = "case" if ".tests." in path.name else "policy"
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            # a pipe (`<(...)`, a piped /dev/stdin) drains on the first of the two reads a policy
            # gets, and a FIFO with no writer would hang the command: both must be saved first
            raise PolicyError(
                f"{path}: not a regular file (a pipe, device or socket); save the {kind} file and "
                "pass its path (a file redirected to /dev/stdin with < works too)"
            )
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        if ".tests." in path.name:
            raise PolicyError(
                f"{path}: no such test case file; write it beside its policy "
                f"({path.name.replace('.tests.', '.', 1)}), or pass the policy itself"
            ) from None
        raise PolicyError(f"{path}: no such policy file") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        cases = kind == "case"
        raise PolicyError(
            f"{path}: larger than {MAX_FILE_BYTES // (1 << 20)} MiB, the most a "
            f"{'case' if cases else 'policy'} file may hold (loading grows with the size: a 10 MB one "
            "takes minutes in every process); "
            + (
                "keep the cases that each show something new, or split them over several policies"
                if cases
                else "keep a lexicon to the terms that matter, a few thousand at most"
            )
        )
    # with or without its byte-order mark: an ASCII first character is one NUL byte and one other
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (raw[:1] == b"\0") != (
        raw[1:2] == b"\0"
    ):
        raise PolicyError(f"{path}:1: saved as UTF-16 (or another wide encoding); save the file as UTF-8")
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyError(
            f"{path}:{line}: not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
            "save the file as UTF-8"
        ) from None


def _duplicate_keys(path: Path, node: yaml.Node | None) -> None:
    """A key given twice in one mapping is an error (YAML loaders silently keep the last one, so a
    policy could weaken itself unseen). Merge keys (``<<: *anchor``) may be overridden; that is what
    they are for."""
    problems: list[str] = []
    seen_nodes: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first: dict[str, int] = {}
            merges = [k for k, _ in current.value if k.tag == "tag:yaml.org,2002:merge"]
            for again in merges[1:]:  # the later one would silently win over the earlier
                problems.append(
                    f"{path}:{again.start_mark.line + 1}: merge key '<<' given twice (first at line "
                    f"{merges[0].start_mark.line + 1}); merge several in one: <<: [*first, *second]"
                )
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if key.value in first:
                        where = f"{path}:{line}: key {key.value!r} given twice"
                        problems.append(f"{where} (first at line {first[key.value]}); keep one of them")
                    else:
                        first[key.value] = line
                stack.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    if problems:  # by line: the number after the path (which may hold a colon itself)
        prefix = f"{path}:"
        raise PolicyError("\n".join(sorted(problems, key=lambda p: int(p[len(prefix) :].split(":")[0]))))


#: nesting of mappings and lists named as too deep when the YAML reader, which recurses once per
#: level, runs out of stack (a policy needs fewer than ten)
MAX_YAML_DEPTH = 100


def _compose(path: Path, text: str) -> tuple[Any, yaml.Node | None]:
    try:
        node, data = _parse(path, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or str(exc)
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            # "while scanning a quoted scalar" started on another line: that is where to look
            what += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        hint = "check the indentation and quote values containing ': ', '#', '{' or a leading '*'"
        if "'\\t'" in what or "tab character" in what:
            column = f" (column {mark.column + 1})" if mark else ""
            hint = (
                f"YAML indents with spaces, never tabs: replace the tab on line {line}{column} with "
                "spaces, and set your editor to insert spaces for the Tab key"
            )
        elif "could not determine a constructor for the tag" in what:
            # !!python/object and friends: the safe loader builds plain data only, by design
            hint = (
                "a policy is plain data: YAML tags such as !!python/object are not read; remove the "
                "tag and write the value itself"
            )
        elif "unknown escape character" in what:
            # "foo\d+" in double quotes: YAML reads the backslash escapes itself
            hint = (
                "in double quotes YAML reads a backslash as the start of its own escape; write a "
                "regex in single quotes, which keep every backslash as written: regex: 'foo\\d+'"
            )
        raise PolicyError(f"{path}:{line}: not valid YAML: {what}\n  {hint}") from None
    except yaml.reader.ReaderError as exc:
        # a character YAML does not allow (a control character, U+FFFE): the reader gives its
        # position in the text, not a line
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise PolicyError(
            f"{path}:{line}: not valid YAML: character U+{ord(char):04X} at column {column} is not "
            "allowed in YAML; delete it (in a double-quoted string it can be written as an escape, "
            f'e.g. "{_yaml_escape(char)}")'
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        _check_depth(path, text)  # names the line
        raise PolicyError(f"{path}: not valid YAML: nesting too deep to read") from None
    return data, node


def _parse(path: Path, text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data of ``text``, read once: what
    ``yaml.compose`` and ``yaml.safe_load`` would each give, at half the cost of calling both."""
    loader = yaml.SafeLoader(text)  # checks every character first (a ReaderError names the bad one)
    try:
        node = loader.get_single_node()
        _duplicate_keys(path, node)
        _not_too_large_expanded(path, node)
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _not_too_large_expanded(path: Path, node: yaml.Node | None) -> None:
    """Refuse a file whose aliases (``*anchor``) make it larger than :data:`MAX_FILE_BYTES` once
    each is read as what it stands for: the size cap would otherwise not bound the work (one long
    string, or a list of them, named thousands of times)."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:  # each node measured once, aliases counted every time
        known = sizes.get(id(current))
        if known is not None:
            return known
        sizes[id(current)] = 0  # a node inside itself (a recursive alias) counts once
        if isinstance(current, yaml.ScalarNode):
            total = len(current.value) + 1
        elif isinstance(current, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in current.value)
        else:
            total = 1 + sum(size(k) + size(v) for k, v in current.value)
        sizes[id(current)] = total
        return total

    if node is not None and size(node) > MAX_FILE_BYTES:
        raise PolicyError(
            f"{path}: its aliases (*name) make it larger than {MAX_FILE_BYTES // (1 << 20)} MiB once "
            "each is read as what it stands for, the most a policy file may hold; name each anchor "
            "fewer times, or write the value once"
        )


def _yaml_escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


_OPENS = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken)
_FLOW_OPENS = (yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _check_depth(path: Path, text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_YAML_DEPTH` at the line where it gets that deep (the
    token scanner, unlike the reader, does not recurse): called once the reader ran out of stack."""
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):  # stops where it gets too deep
            if isinstance(token, _OPENS + _FLOW_OPENS):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    break
            elif isinstance(token, _CLOSES):
                depth -= 1
        else:
            return
    except yaml.YAMLError:
        return
    raise PolicyError(
        f"{path}:{token.start_mark.line + 1}: nesting too deep: more than {MAX_YAML_DEPTH} lists and "
        "mappings inside one another (a policy needs fewer than ten); check for a run of '[' or '{'"
    )


def _node_at(node: yaml.Node | None, loc: Sequence[int | str]) -> tuple[yaml.Node | None, bool]:
    """Deepest node along ``loc``; the flag says whether the last step named a key (not a value)."""
    key_hit = False
    for step in loc:
        key_hit = False
        if isinstance(node, yaml.MappingNode):
            # the last key of that name: the value that applies (a mapping's own keys come after
            # the ones a merge key ``<<: *anchor`` brought in, and win over them)
            for key, value in reversed(node.value):
                if key.value == step:
                    node = value
                    break
            else:
                # a discriminator tag or a validator name in the pydantic location: not a YAML step
                continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step < len(node.value):
                node = node.value[step]
        else:
            continue
    return node, key_hit


def _key_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if k.value == key:
                return k
    return None


def _unwrap(annotation: Any) -> list[Any]:
    """Concrete types inside Optional / list / Annotated / unions."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list):
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_at(root: type[_Model], loc: Sequence[int | str]) -> tuple[type[_Model], list[str]]:
    """The model class a location ends in, and the YAML path of it for humans."""
    model: type[_Model] = root
    path: list[str] = []
    candidates: list[type[_Model]] = [root]
    for step in loc:
        if isinstance(step, int):
            if path:
                path[-1] += f"[{step}]"
            continue
        tagged = [
            c for c in candidates if c is not root and step in DETECTOR_TYPES and c is DETECTOR_TYPES[step]
        ]
        if tagged:
            model, candidates = tagged[0], tagged
            continue
        fields = {n: f for c in candidates for n, f in c.model_fields.items()}
        if step not in fields:
            break
        path.append(step)
        inner = [t for t in _unwrap(fields[step].annotation) if isinstance(t, type) and issubclass(t, _Model)]
        if inner:
            candidates = inner
            model = inner[0]
        else:
            candidates = []
    return model, path


def _fitting(model: type[_Model], names: list[str], error: Any) -> list[str]:
    """``names`` (close matches for a misspelt key, best first) with the fields that can hold the
    value given moved to the front: in a set file ``policy: [pii.yaml]`` means ``policies``, not
    ``policy_set``, which is a name."""

    def takes_list(name: str) -> bool:
        annotation = model.model_fields[name].annotation
        return any(get_origin(a) is list for a in (annotation, *get_args(annotation)))

    value = error.get("input")
    if isinstance(value, list):
        return sorted(names, key=lambda n: not takes_list(n))
    if isinstance(value, str):
        return sorted(names, key=takes_list)
    return names


def _all_field_names(model: type[_Model], seen: set[type] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for t in _unwrap(info.annotation):
            if isinstance(t, type) and issubclass(t, _Model):
                names |= _all_field_names(t, seen)
    return names


def _yaml_kind(value: Any) -> str:
    """What a YAML value is, in the words of someone writing YAML (not Python's)."""
    if value is None:
        return "nothing (no value after the key, which YAML reads as empty)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping (key: value)"
    if isinstance(value, str):
        return f"the text {value!r}"
    return repr(value)


#: what an id or entity pattern asks for, in words, and how to turn a value into one that fits
_NAME_RULES: dict[str, tuple[str, Any]] = {
    r"^[a-z0-9][a-z0-9_.-]*$": (
        "lower-case letters, digits, '.', '_' and '-' only (no spaces), starting with a letter or digit",
        lambda v: re.sub(r"[^a-z0-9_.-]+", "-", v.strip().lower()).strip("-_."),
    ),
    r"^[A-Z][A-Z0-9_]*$": (
        "capital letters, digits and '_' only (no spaces), starting with a letter",
        lambda v: re.sub(r"[^A-Z0-9_]+", "_", v.strip().upper()).strip("_"),
    ),
}

#: pydantic error types whose message reads as Python, not YAML
_TYPE_WORDS = {
    "dict_type": "a mapping (`key: value` lines indented under it, or `{key: value}`)",
    "model_type": "a mapping (`key: value` lines indented under it, or `{key: value}`)",
    "model_attributes_type": "a mapping (`key: value` lines indented under it, or `{key: value}`)",
    "list_type": "a list (`[a, b]`, or one `- item` per line indented under it)",
    "tuple_type": "a list (`[a, b]`)",
    "string_type": "text",
    "float_type": "a number such as 0.6",
    "float_parsing": "a number such as 0.6",
    "int_type": "a whole number such as 4",
    "int_parsing": "a whole number such as 4",
    "int_from_float": "a whole number such as 4",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def _in_yaml_terms(kind: str, error: Any, key: str) -> str | None:
    """A pydantic error message said in the terms of YAML and of the policy format, with the value
    given and what to write instead; None to keep pydantic's own message."""
    got = error.get("input")
    ctx = error.get("ctx") or {}
    if kind in _TYPE_WORDS:
        text = f"expected {_TYPE_WORDS[kind]}, got {_yaml_kind(got)}"
        if kind == "list_type" and isinstance(got, str) and key:
            text += f"; write `{key}: [{got}]`"
        return text
    if kind == "too_long":
        return f"too many items: at most {ctx.get('max_length')}, got {ctx.get('actual_length')}"
    if kind in ("too_short", "string_too_short") and not got:
        return "is empty; give at least one" + (" item" if kind == "too_short" else " character")
    if kind == "string_pattern_mismatch" and (rules := _NAME_RULES.get(ctx.get("pattern", ""))):
        words, fix = rules
        suggestion = fix(got) if isinstance(got, str) else ""
        text = f"{got!r} is not a valid name: use {words}"
        if suggestion and re.fullmatch(ctx["pattern"], suggestion):
            text += f", e.g. {suggestion}"
        return text
    if kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        text = f"{error['msg']} (got {got!r})"
        if ctx.get("le") == 1 and isinstance(got, int | float) and got > 1:
            text += "; scores run from 0 to 1: write 0.5 for 50%"
        return text
    return None


def _describe(path: Path, root: type[_Model], node: yaml.Node | None, error: Any) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    target, _ = _node_at(node, loc[:-1] if kind == "extra_forbidden" else loc)
    model, human = _model_at(root, loc)
    where = ".".join(human) or "top level"
    line_node = target
    message = error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        line_node = _key_node(target, key) or target
        parent_model, _ = _model_at(root, loc[:-1])
        elsewhere = _all_field_names(root)
        given = {k.value for k, _ in target.value} if isinstance(target, yaml.MappingNode) else set()
        close = _fitting(
            parent_model,
            difflib.get_close_matches(key, sorted(set(parent_model.model_fields) - given), n=3),
            error,
        )
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        elif key in elsewhere:  # e.g. `terms:` on a pattern detector: right word, wrong place
            hint = " (that key belongs to another part of a policy, not here: check the indentation and type)"
        else:
            close = difflib.get_close_matches(key, sorted(elsewhere), n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = ".".join(_model_at(root, loc[:-1])[1]) or "top level"
        message = f"unknown key {key!r}{hint}"
        model = parent_model
    elif kind == "missing":
        if isinstance(loc[-1], int):  # an item short: span: [8] for [start, end]
            message = f"too few items: item {loc[-1] + 1} is missing"
        else:
            message = f"missing required key {loc[-1]!r}"
        where = ".".join(_model_at(root, loc[:-1])[1]) or "top level"
        model, _ = _model_at(root, loc[:-1])
    elif kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", error.get("input"))
        message = f"unknown detector type {tag!r}; valid types: {', '.join(sorted(DETECTOR_TYPES))}"
    elif kind == "union_tag_not_found":
        message = f"a detector needs a type: {', '.join(sorted(DETECTOR_TYPES))}"
    elif kind == "enum" or kind == "literal_error":
        message = f"{message} (got {error.get('input')!r})"
    elif kind == "string_type" and isinstance(error.get("input"), bool | int | float | dt.date):
        # YAML 1.1 reads yes/no/on/off as booleans, 0123 as a number, 2026-01-05 as a date
        got = error["input"]
        message = f"{message} (YAML read this as {type(got).__name__} {got!r}: put the word in quotes)"
    elif plain := _in_yaml_terms(kind, error, str(loc[-1]) if loc else ""):
        message = plain
    line = (line_node.start_mark.line + 1) if line_node is not None else 1
    example = textwrap.indent(textwrap.dedent(model.EXAMPLE).strip("\n"), "    ") if model.EXAMPLE else ""
    text = f"{path}:{line}: {where}: {message}"
    if example:
        text += f"\n  write it like this:\n{example}"
    return text


def _validate(path: Path, root: type[_Model], data: Any, node: yaml.Node | None) -> Any:
    if not isinstance(data, dict):
        what = (
            "the file is empty (or only comments)"
            if data is None
            else "expected a mapping at the top of the file"
        )
        raise PolicyError(
            f"{path}:1: {what}\n  write it like this:\n"
            + textwrap.indent(textwrap.dedent(root.EXAMPLE).strip("\n"), "    ")
        )
    try:
        return root.model_validate(data)
    except ValidationError as exc:
        # unknown keys first: a misspelt key usually also causes a "missing key" error
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        # ... and then it is said once: of the keys missing beside an unknown one, the one it is
        # spelt most like (one per unknown key: another key missing there is still named)
        missing: dict[tuple[Any, ...], list[str]] = {}
        for e in errors:
            if e["type"] == "missing" and not isinstance(e["loc"][-1], int):
                missing.setdefault(tuple(e["loc"][:-1]), []).append(str(e["loc"][-1]))
        explained: set[tuple[Any, ...]] = set()
        for e in errors:
            level = tuple(e["loc"][:-1])
            if e["type"] == "extra_forbidden" and level in missing:
                left = [k for k in missing[level] if (*level, k) not in explained]
                for key in difflib.get_close_matches(str(e["loc"][-1]), left, n=1):
                    explained.add((*level, key))
        errors = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in explained)]
        described = [_describe(path, root, node, e) for e in errors[:10]]
        more = f"\n(and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise PolicyError("\n".join(described) + more) from None


def _rule_lines(node: yaml.Node | None) -> list[int]:
    rules, _ = _node_at(node, ("rules",))
    if isinstance(rules, yaml.SequenceNode):
        return [item.start_mark.line + 1 for item in rules.value]
    return []


def _lint(path: Path, spec: PolicySpec, node: yaml.Node | None) -> dict[str, int]:
    lines = _rule_lines(node)
    seen: dict[str, int] = {}
    problems: list[str] = []
    for i, rule in enumerate(spec.rules):
        line = lines[i] if i < len(lines) else 1
        if rule.id in seen:
            problems.append(
                f"{path}:{line}: rules[{i}]: duplicate rule id {rule.id!r} (first at line {seen[rule.id]}); "
                "give each rule its own id, e.g. add a suffix such as '-2'"
            )
        else:
            seen[rule.id] = line
    # each operator named where it is written: the policy's, a rule's own, a view's
    operators: list[tuple[tuple[int | str, ...], OperatorSpec | None]] = [(("operator",), spec.operator)]
    operators += [(("rules", i, "operator"), rule.operator) for i, rule in enumerate(spec.rules)]
    operators += [(("views", d, "operator"), getattr(spec.views, d).operator) for d in DESTINATIONS]
    for loc, op in operators:
        if op is not None and op.type == "hash" and not op.key_env:
            found, _ = _node_at(node, loc)
            line = found.start_mark.line + 1 if found is not None else 1
            where = ".".join(_model_at(PolicySpec, loc)[1])
            problems.append(
                f"{path}:{line}: {where}: the hash operator needs key_env, the environment "
                "variable holding the HMAC key\n  write it like this:\n"
                "    operator: {type: hash, key_env: VIGIL_DLP_HASH_KEY}"
            )
    if problems:
        raise PolicyError("\n".join(dict.fromkeys(problems)))
    return seen


def load_policy(path: str | Path) -> Policy:
    """Load, validate and lint one policy file."""
    path = Path(path)
    raw, text = _read(path)
    data, node = _compose(path, text)
    if isinstance(data, dict) and "cases" in data and "rules" not in data:
        if ".tests." not in path.name:
            raise PolicyError(
                f"{path}: this is a file of test cases, not a policy; name a case file after the "
                "policy it tests, <policy>.tests.yaml next to <policy>.yaml (pii.tests.yaml for "
                "pii.yaml): `vigil dlp test` runs those, and `vigil dlp lint` leaves them out"
            )
        policy = path.name.replace(".tests.", ".")
        raise PolicyError(
            f"{path}: this is a file of test cases, not a policy; pass the policy ({policy}) instead, "
            f"or run its cases with `vigil dlp test --policy {path}`"
        )
    if isinstance(data, dict) and "policies" in data and "rules" not in data:
        raise PolicyError(
            f"{path}: it lists `policies:` but has no `rules:`; a policy-set file names itself with "
            "`policy_set: <name>` (see dlp_rules/active.yaml), a policy file has `id:` and `rules:`"
        )
    spec = _validate(path, PolicySpec, data, node)
    lines = _lint(path, spec, node)
    id_node, _ = _node_at(node, ("id",))
    id_line = id_node.start_mark.line + 1 if id_node is not None and id_node is not node else 1
    return Policy(spec=spec, path=path, digest=hashlib.sha256(raw).hexdigest(), lines=lines, id_line=id_line)


def is_policy_file(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml") and not path.name.endswith((".tests.yaml", ".tests.yml"))


def _policy_files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and is_policy_file(p))


def _is_set_file(path: Path) -> bool:
    try:
        data = yaml.safe_load(_read(path)[1])  # size and encoding checked as for any policy file
    except (PolicyError, yaml.YAMLError, RecursionError):
        return False
    return isinstance(data, dict) and "policy_set" in data


def unlisted_policy_files(directory: Path) -> list[Path]:
    """Policy files in ``directory`` that its ``active.yaml`` does not list: loading the directory
    loads the set, so these are neither applied nor checked (empty without an ``active.yaml``)."""
    active = directory / "active.yaml"
    if not directory.is_dir() or not active.is_file():
        return []
    _, members = _expand(active)
    listed = {m.resolve() for m in members}
    return [
        p
        for p in _policy_files_in(directory)
        if p.resolve() not in listed and p.name != active.name and not _is_set_file(p)
    ]


def _expand(path: Path) -> tuple[str, list[Path]]:
    """A set name and its policy files, for a file, a set file or a directory."""
    if path.is_dir():
        active = path / "active.yaml"
        if active.is_file():
            return _expand(active)
        files = [p for p in _policy_files_in(path) if not _is_set_file(p)]
        if not files:
            raise PolicyError(f"{path}: no policy files (*.yaml) in this directory")
        return path.name, files
    if not path.exists():
        raise PolicyError(f"{path}: no such policy file or directory")
    _, text = _read(path)
    data, node = _compose(path, text)
    if isinstance(data, dict) and "policy_set" in data:
        spec = _validate(path, PolicySetSpec, data, node)
        files = []
        missing = []
        for i, name in enumerate(spec.policies):
            member = (path.parent / name).resolve()
            listed, _ = _node_at(node, ("policies", i))
            where = f"{path}:{listed.start_mark.line + 1 if listed is not None else 1}: policies: {name!r}"
            if member.is_dir():
                missing.append(f"{where} is a folder; a set lists policy files (name each one)")
            elif not member.is_file():
                missing.append(f"{where} does not exist next to {path.name}")
            elif member.name.endswith((".tests.yaml", ".tests.yml")):
                missing.append(f"{where} is a file of test cases; list the policy it tests")
            elif not is_policy_file(member):
                missing.append(
                    f"{where} is not a policy file: a set lists policy files, YAML files ending in "
                    ".yaml or .yml (a policy has `id:` and `rules:`); remove it from the list"
                )
            elif member == path.resolve() or _is_set_file(member):
                missing.append(f"{where} is a policy set itself; sets do not nest: list its policies here")
            elif member in files:
                missing.append(f"{where} is listed twice")
            files.append(member)
        if missing:  # every one, each at its own line
            raise PolicyError("\n".join(missing))
        return spec.policy_set, files
    return path.stem, [path]


def load_policy_set(paths_or_dir: str | Path | Iterable[str | Path]) -> PolicySet:
    """Load the policies applied together: a directory (its ``active.yaml`` when present, else every
    policy file), a policy-set file, one policy file, or a list of any of these."""
    given = [paths_or_dir] if isinstance(paths_or_dir, str | Path) else list(paths_or_dir)
    items = [Path(p) for p in given]
    if not items:
        raise PolicyError("no policy given; pass a policy file, a policy-set file or a directory")
    names: list[str] = []
    files: list[Path] = []
    for item in items:
        name, found = _expand(item)
        names.append(name)
        files.extend(f for f in found if f not in files)
    loaded: list[Policy] = []
    errors: list[str] = []
    for f in files:  # every bad file is reported, not only the first
        try:
            loaded.append(load_policy(f))
        except PolicyError as exc:
            errors.append(str(exc))
    if errors:
        raise PolicyError("\n".join(errors))
    policies = tuple(loaded)
    seen: dict[str, Policy] = {}
    for policy in policies:
        for rule in policy.rules:
            if rule.id in seen:
                first = seen[rule.id]
                raise PolicyError(
                    f"{policy.path}:{policy.lines.get(rule.id, 1)}: duplicate rule id {rule.id!r}, "
                    f"already defined in {first.path}:{first.lines.get(rule.id, 1)}; rule ids must be "
                    "unique across a policy set"
                )
            seen[rule.id] = policy
    owners: dict[str, Policy] = {}
    problems = []
    for policy in policies:
        first = owners.setdefault(policy.id, policy)
        if first is not policy:
            problems.append(
                f"{policy.path}:{policy.id_line}: policy id {policy.id!r} is already the id of "
                f"{first.path}:{first.id_line}; policy ids must be unique across a policy set: give "
                "this file its own id, e.g. its file name"
            )
    if problems:
        raise PolicyError("\n".join(problems))
    digest = hashlib.sha256()
    for policy in policies:
        digest.update(f"{policy.path.name}\0{policy.digest}\n".encode())
    return PolicySet(id="+".join(names), policies=policies, digest=digest.hexdigest())
