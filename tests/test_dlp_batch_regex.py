"""Batched regex matching gives exactly the per-text results."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.dlp.batch_regex import BatchRegex, join, required_probe, run_all


@pytest.mark.parametrize(
    ("pattern", "flags", "batched"),
    [
        (r"\b\d{4}\b", 0, True),
        (r"(?<!\S)\d+", 0, True),  # the separator is whitespace: same as a text start
        (r"(?<![\w-])x", 0, True),
        (r"(?<!.)x", 0, True),  # '.' does not match the separator without DOTALL
        (r"^\d+$", 0, True),  # anchors: batched in multi-line mode, matches re-checked
        (r"(?<!\s)\d+", 0, False),  # a negative look-behind that could see the separator
        (r"(?<!.)x", re.DOTALL, False),
        (r"\A\d", 0, False),
        (r"\d\Z", 0, False),
        (r"(a)?(?(1)b|c)", 0, False),
    ],
)
def test_batch_safety_classification(pattern, flags, batched) -> None:
    assert BatchRegex(pattern, flags).safe is batched


@pytest.mark.parametrize(
    ("pattern", "required"),
    [
        (r"\b[0-9]{8,17}\b", r"(?i)\d"),
        (r"(bc1|[13])[a-z0-9]{25,59}", r"(?i)\d"),
        (r"[\w.]+@[\w.]+", r"(?i)@"),
        (r"\d{3}-\d{4}", r"(?i)\-[\d]"),
        (r"abc|\d", None),  # one branch needs no digit
        (r"x\d?", None),  # optional
        (r"[^a]\d", r"(?i)\d"),
        (r"[a-z]+[.](?:com|org)", r"(?i)\.[co]"),  # punctuation glued to what follows
        (r"(?:a\d|[a-z]\d)", r"(?i)\d"),  # both branches need a digit
        (r"\w+:\s*\d", r"(?i):"),  # ':' followed by an optional space makes no pair
        (r"(?i)x-(?:ab|cd)", r"(?i)\-[ac]"),  # inline flags: probes never depend on case
    ],
)
def test_required_characters(pattern, required) -> None:
    assert required_probe(pattern) == required


PATTERNS = [
    r"\d+",
    r"\d+\s\d+",
    r"^\w+",
    r"\w+$",
    r"(?<!\S)[a-z]+(?!\S)",
    r"(?<!\s)b+",
    r"a\nb",
    r"\bab\b",
    r"(?i)[ab]{2,}",
    r"\Ab",
    r"[^a]+",
    r"1-(?:a|b2)",
    r"(?i)[ab][.-][ab]+",
    # lookarounds, positive and negative, some of which can read the separator
    r"(?<=\s)\d+(?=\s)",
    r"(?<=\n)a",
    r"a(?=\n)",
    r"(?<=[ab])1",
    r"1(?![ab])",
    r"(?<![\w-])a+",
    r"(?<=\W)b",
    r"b(?=\W)",
    r"(?<=a)(?=b)|ab",
    r"(?<!^)a",
    r"(?=\S)\d",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab1 2\n-", max_size=12), min_size=1, max_size=8), st.booleans())
def test_batch_equals_one_by_one(texts: list[str], budgeted: bool) -> None:
    # budgeted: policy regexes, run on the regex module with a time budget
    regexes = [BatchRegex(p, budgeted=budgeted) for p in PATTERNS]
    batched = run_all(regexes, texts)
    for regex in regexes:
        expected = {
            i: [m.span() for m in re.finditer(regex.pattern, t) if m.end() > m.start()]
            for i, t in enumerate(texts)
        }
        expected = {i: spans for i, spans in expected.items() if spans}
        assert batched.get(regex.key, {}) == expected, regex.pattern


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab1 2\n-", max_size=12), min_size=1, max_size=8))
def test_overlapped_batch_equals_one_by_one(texts: list[str]) -> None:
    # overlapped: every start position is tried, also inside an earlier match
    import regex as regex_module

    regexes = [BatchRegex(p, budgeted=True, overlapped=True) for p in PATTERNS]
    batched = run_all(regexes, texts)
    for compiled in regexes:
        expected = {
            i: [
                m.span()
                for m in regex_module.finditer(compiled.pattern, t, overlapped=True)
                if m.end() > m.start()
            ]
            for i, t in enumerate(texts)
        }
        expected = {i: spans for i, spans in expected.items() if spans}
        assert batched.get(compiled.key, {}) == expected, compiled.pattern


def test_overlapped_finds_a_match_starting_inside_an_earlier_one() -> None:
    pattern = r"(?<!\d)[2-6]\d{3}( )\d{4}(?!\d)"
    plain = BatchRegex(pattern, budgeted=True)
    overlapped = BatchRegex(pattern, budgeted=True, overlapped=True)
    assert plain.key != overlapped.key
    found = run_all([plain, overlapped], ["2231 4539 1488"])
    assert found[plain.key] == {0: [(0, 9)]}
    assert found[overlapped.key] == {0: [(0, 9), (5, 14)]}
    with pytest.raises(ValueError, match="budgeted"):
        BatchRegex(pattern, overlapped=True)


def test_join_offsets() -> None:
    joined, starts = join(["ab", "", "cde"])
    assert joined == "ab\n\ncde" and starts == [0, 3, 4]
