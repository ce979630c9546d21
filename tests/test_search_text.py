"""Word semantics: what a query word matches, the same in RE2 (DuckDB), Python, and the prefilter.

Each row says whether a query matches a text the way Elasticsearch's analyzers decide it
(``standard`` for Latin words: whole tokens, case-insensitive; ``cjk`` bigrams for Chinese and
Japanese: substrings). The three implementations must all give that answer; the prefilters
(the longest word as a bare case-insensitive literal, a CJK run as a substring) may let more
through but never fewer.
"""

from __future__ import annotations

import duckdb
import pytest

from pipelines.search import match
from pipelines.search.parse import parse_query
from pipelines.search.text import cjk_hint, literal_hint, re2_pattern, segments

CASES = [
    # whole tokens, case-insensitive, no stemming
    ("settlement", "Please confirm the SETTLEMENT date.", True),
    ("settlement", "settlements are due", False),
    ("settle", "settlement", False),
    ("café", "CAFÉ au lait", True),
    # tokens that UAX #29 keeps whole: a part does not match, the whole does
    ("example", "visit example.com today", False),
    ("example.com", "visit example.com today", True),
    ("don't", "I don't know", True),
    ("don", "I don't know", False),
    ("1,000.50", "pay 1,000.50 now", True),
    ("000", "pay 1,000.50 now", False),
    # ... also with the full-width and small forms of the joiners, and the middle dot
    ("example", "visit example．com today", False),
    ("example．com", "visit example．com today", True),
    ("ll", "col·legi", False),
    ("col·legi", "el col·legi", True),
    ("000", "pay 1，000 now", False),
    ("abc", "x：abc", False),
    ("abc", "数：abc", True),  # CJK is not a letter: nothing is glued
    ("4", "3⁄4 cup", False),
    # ... and the separators that do split
    ("hello", "hello,world", True),
    ("30", "meet at 10:30", True),
    ("mail", "send an e-mail", True),
    ("e-mail", "send an e-mail", True),
    ("e-mail", "send an email", False),
    ("foo_bar", "foo_bar baz", True),
    ("foo", "foo_bar baz", False),
    ("abc", "see .abc", True),  # a joiner with nothing glued before it
    ("abc", "x.abc", False),  # letter.letter: one token
    ("abc", "1.abc", True),  # letter after digit: not glued
    ("abc", "d.abc", False),
    # phrases: consecutive tokens, any separators between, none glued
    ('"settlement date"', "the settlement  date", True),
    ('"settlement date"', "settlement—date", True),
    ('"settlement date"', "settlement, value date", False),
    ('"settlement date"', "settlement.date", False),  # one token in ES
    ('"settlement date"', "settlement..date", True),
    ('"date settlement"', "settlement date", False),
    # prefixes: the start of any token
    ("settl*", "Settlement done", True),
    ("settl*", "resettle now", False),
    ("exam*", "see example.com", True),
    # CJK: substrings, inside runs, next to Latin
    ("结算日期", "请确认结算日期。", True),
    ("结算日期", "结算 日期", False),
    ('"结算 日期"', "结算 日期 下周一", True),
    ("价格", "iPhone价格", True),
    ("iPhone价格", "iPhone 价格", True),
    ("iPhone", "价格iPhone很好", True),
    ("確認", "決済日を確認してください。", True),
    ("カード", "カード番号", True),
    ("確認", "确认", False),  # simplified and Japanese forms differ
    # Latin words sit next to CJK without a separator
    ("iphone", "买iPhone", True),
    # a run of connectors alone is no token: a phrase reads across it, but a connector touching a
    # word is part of that word
    ('"name date"', "Name: ____ Date: ____", True),
    ('"name date"', "name.____.date", True),
    ('"name date"', "Name: ____Date", False),  # ____Date is one token
    ('"name date"', "Name_ Date", False),
    ("date", "Name: ____date", False),
    ("name_date", "fill in name_date", True),
    ('"结算 日期"', "结算＿＿日期", True),
    ('"iPhone 价格"', "iPhone ＿＿ 价格", True),
    # a Hebrew letter keeps an apostrophe after it, and " between two of them (UAX #29 WB7a-c)
    ("פרופ", "פרופ' כהן", False),
    ("פרופ'", "פרופ' כהן", True),
    ('"פרופ\' כהן"', "פרופ' כהן", True),
    ('"פרופ כהן"', "פרופ' כהן", False),
    ("כהן", "פרופ'כהן", False),
    ("צה", 'צה"ל הודיע', False),
    ('"צה ל"', 'צה"ל הודיע', False),
    ("הודיע", 'צה"ל הודיע', True),
    ('"צה ל"', 'צה" ל', True),  # a " before no Hebrew letter separates
    ("dogs", "the dogs' bowl", True),  # ... the apostrophe after a Latin letter too
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@pytest.mark.parametrize(("query", "text", "expected"), CASES)
def test_re2_python_and_prefilter_agree(con, query: str, text: str, expected: bool) -> None:
    node = parse_query(query).text
    assert match.evaluate(node, text) is expected
    segs = node.segments
    prefix = type(node).__name__ == "Prefix"
    re2 = con.execute("SELECT regexp_matches($t, $p)", {"t": text, "p": re2_pattern(segs, prefix=prefix)})
    assert re2.fetchall()[0][0] is expected
    literal, cjk = literal_hint(segs), cjk_hint(segs)
    passes = (
        [con.execute("SELECT regexp_matches($t, $p)", {"t": text, "p": literal}).fetchall()[0][0]]
        if literal
        else []
    )
    passes += [cjk in text] if cjk else []
    assert passes  # every text leaf has a prefilter
    assert all(passes) or not expected  # the prefilters never drop a match


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("card", None, False),
        ("NOT card", None, True),  # a missing text is an empty one
        ("card OR iban", "an IBAN here", True),
        ("card NOT test", "test card", False),
        ("(card OR iban) NOT test", "card", True),
    ],
)
def test_boolean_evaluation(query: str, text: str | None, expected: bool) -> None:
    assert match.evaluate(parse_query(query).text, text) is expected


@pytest.mark.parametrize(
    ("query", "text", "spans"),
    [
        ("settlement", "Settlement of the settlement", [(0, 10), (18, 28)]),
        ('"settlement date"', "the settlement date", [(4, 19)]),
        ("settl*", "settlement.date", [(0, 15)]),  # the whole token the prefix starts
        ("card NOT test", "test card", [(5, 9)]),  # negated words are not emphasised
        ("结算 日期", "结算日期", [(0, 4)]),  # adjacent spans merge
        ("card", "no match here", []),
    ],
)
def test_highlight_spans(query: str, text: str, spans: list[tuple[int, int]]) -> None:
    assert match.spans(parse_query(query).text, text) == spans


def test_marked_text_from_elasticsearch_gives_plain_text_and_spans() -> None:
    plain, spans = match.marked_spans("a \ue000card\ue001 and \ue000iban\ue001", "\ue000", "\ue001")
    assert plain == "a card and iban"
    assert spans == [(2, 6), (11, 15)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("don't stop", [("don't", False), ("stop", False)]),
        ("iPhone价格很好", [("iPhone", False), ("价格很好", True)]),
        ("1,000.50 hello,world", [("1,000.50", False), ("hello", False), ("world", False)]),
        ("カード番号", [("カード番号", True)]),
        ("Name: ____ Date: ____", [("Name", False), ("Date", False)]),
        ("name_date ____date", [("name_date", False), ("____date", False)]),
        ("פרופ' כהן", [("פרופ'", False), ("כהן", False)]),
        ("〆切は", [("切は", True)]),  # 〆 is dropped by the tokenizer, a separator here
    ],
)
def test_segments(text: str, expected: list[tuple[str, bool]]) -> None:
    assert [(s.text, s.cjk) for s in segments(text)] == expected
