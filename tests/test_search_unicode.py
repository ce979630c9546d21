"""The tokenizer's character classes, case and width folding, checked against Unicode and DuckDB.

* the tables (:mod:`pipelines.search.unicode_tables`) are what the Unicode properties give
  (:mod:`pipelines.search.wordbreak` derives them again), for every assigned code point;
* the RE2 classes (DuckDB) and the Python classes hold the same characters;
* a letter matches the same characters in DuckDB and in Python, those Elasticsearch's
  ``lowercase`` filter makes equal (simple lower case);
* on a real archive, DuckDB's answer and the Python re-check (the CRM view's test) agree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import duckdb
import pytest
from search_support import at, row, write_archive

from pipelines.search import embedded, match, text, unicode_tables, wordbreak
from pipelines.search.access import AccessRole, Identity
from pipelines.search.parse import parse_query
from pipelines.search.results import Page

OFFICER = Identity("olivia", AccessRole.OFFICER)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@pytest.fixture(scope="module")
def derived() -> tuple[bytearray, bytearray]:
    return wordbreak.classify()


def test_tables_are_what_the_unicode_properties_give(derived: tuple[bytearray, bytearray]) -> None:
    kinds, unassigned = derived
    stored = bytearray(b"w" * (sys.maxunicode + 1))
    for letter, ranges in (
        ("s", unicode_tables.SEPARATOR_RANGES),
        ("c", unicode_tables.CJK_RANGES),
        ("d", unicode_tables.DIGIT_RANGES),
        ("n", unicode_tables.CONNECTOR_RANGES),
    ):
        for lo, hi in ranges:
            stored[lo : hi + 1] = letter.encode() * (hi - lo + 1)
    wrong = [
        f"U+{cp:04X} {chr(kinds[cp])}≠{chr(stored[cp])}"
        for cp in range(sys.maxunicode + 1)
        if not unassigned[cp] and kinds[cp] != stored[cp]
    ]
    assert not wrong, f"regenerate with python -m pipelines.search.wordbreak: {wrong[:20]}"
    assert wordbreak.joiners(wordbreak.LETTER_JOINER) == unicode_tables.LETTER_JOINERS
    assert wordbreak.joiners(wordbreak.DIGIT_JOINER) == unicode_tables.DIGIT_JOINERS
    assert wordbreak.case_extras() == unicode_tables.CASE_EXTRAS
    assert wordbreak.assigned_ranges(wordbreak.HAN) == unicode_tables.HAN_RANGES
    assert wordbreak.assigned_ranges(wordbreak.HEBREW_LETTER) == unicode_tables.HEBREW_RANGES


def _kind(ch: str) -> str:
    if re.fullmatch(text.PY.cjk, ch):
        return "cjk"
    return "sep" if re.fullmatch(text.PY.sep, ch) else "word"


@pytest.mark.parametrize(
    ("chars", "kind"),
    [
        # letterlike symbols, super/subscripts, number forms, enclosed alphanumerics and CJK,
        # full-width currency and symbols, Arabic punctuation, °, ©: UAX #29 "Other"
        ("™℃№℉℠", "sep"),
        ("²³¹⁰⁴₀₁⁺", "sep"),
        ("½¼⅓↉", "sep"),
        ("①⑳⑴⒈", "sep"),
        ("㈱㈲㊤㍿", "sep"),
        ("￠￡￢￣￤￥￦￨￮", "sep"),
        ("،؛؟٪٭", "sep"),
        ("°©®", "sep"),
        # the katakana middle dot (and its half-width form) separates katakana words
        ("・･", "sep"),
        # emoji, their components and format characters
        ("😀\u200d\ufe0f\U0001f3fb\u00ad", "sep"),
        # connectors and letters that look like symbols (UAX #29 ExtendNumLet, ALetter)
        ("_＿‿", "word"),
        ("ⅫⓐⒶℂK", "word"),
        ("١٢٣", "word"),
        ("\u0301", "word"),  # a combining mark continues a word
        # CJK: Han (with the marks written with Han characters: 々 〻 〇), kana (with ー and the
        # sound marks), Hangul, circled and squared katakana
        ("漢々〻〇〡", "cjk"),
        # ... but not the closing mark 〆 (Script=Common, Word_Break=Other): the tokenizer drops it
        ("〆〃〄", "sep"),
        ("かゝカーヾ゛ｶﾞ", "cjk"),
        ("한ᄀㄱ", "cjk"),
        ("㋐㌀", "cjk"),
    ],
)
def test_character_classes(chars: str, kind: str) -> None:
    assert {ch: _kind(ch) for ch in chars} == dict.fromkeys(chars, kind)


def _plane(first: int, last: int) -> str:
    return "".join(chr(cp) for cp in range(first, last + 1) if not 0xD800 <= cp <= 0xDFFF)


@pytest.mark.parametrize(
    "name",
    ["sep", "cjk", "word", "not_word", "letter", "digit", "lj", "dj", "gap", "hebrew", "not_word_no_lj_dq"],
)
def test_re2_and_python_classes_hold_the_same_characters(con, name: str) -> None:
    chars = _plane(0, 0x2FFFF)
    py = "".join(re.findall(getattr(text.PY, name), chars))
    re2 = con.execute(
        "SELECT array_to_string(regexp_extract_all($t, $p), '')",
        {"t": chars, "p": getattr(text.R2, name)},
    ).fetchone()
    assert re2 is not None
    assert re2[0] == py


def _cased() -> str:
    chars = _plane(0, 0x1FFFF)
    return "".join(ch for ch in chars if ch.lower() != ch or ch.upper() != ch or ch in "ſı")


def test_letters_match_what_the_lowercase_filter_makes_equal(con) -> None:
    cased = _cased()
    letters = list(cased)
    rows = con.execute(
        "SELECT q, array_to_string(regexp_extract_all($t, p), '') "
        "FROM (SELECT unnest($q) AS q, unnest($p) AS p)",
        {"t": cased, "q": letters, "p": [text.literal_hint([text.Segment(q, False)]) for q in letters]},
    ).fetchall()
    engine = dict(rows)
    for q in letters:
        same = "".join(ch for ch in cased if wordbreak.simple_lower(ch) == wordbreak.simple_lower(q))
        python = "".join(re.findall(text._py_literal(q), cased))
        assert engine[q] == same, q
        assert python == same, q


@pytest.mark.parametrize(
    ("query", "body", "expected"),
    [
        ("istanbul", "Meet in İSTANBUL", True),  # İ lower-cases to i, in Elasticsearch too
        ("İstanbul", "istanbul", True),
        ("kiz", "kız", False),  # ı is its own lower case
        ("KIZ", "kız", False),
        ("kız", "KIZ", False),
        ("settlement", "ſettlement", False),
        ("kelvin", "KELVIN", True),  # K KELVIN SIGN lower-cases to k
        ("straße", "STRAẞE", True),
        ("σοφία", "ΣΟΦΊΑ", True),
        ("σοφός", "σοφόσ", False),  # final sigma is its own lower case
        ("école", "ÉCOLE", True),
    ],
)
def test_case_as_elasticsearch_lowercases(con, query: str, body: str, expected: bool) -> None:
    node = parse_query(query).text
    assert match.evaluate(node, body) is expected
    pattern = text.re2_pattern(node.segments)  # type: ignore[union-attr]
    assert con.execute("SELECT regexp_matches($t, $p)", {"t": body, "p": pattern}).fetchone() == (expected,)
    literal = text.literal_hint(node.segments)  # type: ignore[union-attr]
    passes = con.execute("SELECT regexp_matches($t, $p)", {"t": body, "p": literal}).fetchone()
    assert passes == (True,) or not expected  # the prefilter never drops a match


def test_width_fold_offsets_map_spans_back() -> None:
    folded, starts = text.width_fold_offsets("ｶｰﾄﾞ･ﾅﾝﾊﾞｰ ＡＢＣ")
    assert folded == "カード・ナンバー ABC"
    assert len(starts) == len(folded) + 1
    assert [starts[i] for i in (0, 2, 3, 4, 8, 9, 12)] == [0, 2, 4, 5, 10, 11, 14]


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        # an iteration mark after a Han character is that character, as the index's character
        # filter (pattern_replace (\p{IsHan})[々〻] → $1$1) makes it, in one pass left to right
        ("佐々木さん", "佐佐木さん"),
        ("様々な人々", "様様な人人"),
        ("時〻", "時時"),
        ("佐々々", "佐佐々"),  # the second mark follows a replaced one: Java leaves it
        ("さ々 々木 A々", "さ々 々木 A々"),  # after no Han character: kept
        ("ｶｰﾄﾞ々 佐々ｶ", "カード々 佐佐カ"),
    ],
)
def test_iteration_marks_fold_to_the_han_character_before_them(raw: str, folded: str) -> None:
    assert text.width_fold(raw) == folded
    assert text.has_width_forms(raw)
    got, starts = text.width_fold_offsets(raw)
    assert got == folded
    if len(raw) == len(folded):  # a mark keeps its place: offsets are one to one
        assert starts == list(range(len(raw) + 1))


# ---------------------------------------------------------------------------------------------
# on a real archive: DuckDB decides, and the Python twin must say the same for every record

BODIES = {
    "tm": "Our Acme™ fund is open",
    "yen": "price ￥10,000 today",
    "deg": "it is 25℃ outside",
    "kk": "order from ㈱ABC please",
    "sq": "area 100m² office",
    "no": "Item №5 shipped",
    "gbp": "the amount ￡250 is due",
    "fw": "code ＡＢＣ＿ＤＥＦ here",
    "ar": "السعر،100 دولار",
    "dot": "カード・ナンバーを確認",
    "sp": "カード ナンバーを確認",
    "half": "ｶｰﾄﾞ ﾅﾝﾊﾞｰ半角",
    "halfdot": "ｶｰﾄﾞ･ﾅﾝﾊﾞｰ半角点",
    "name": "ジョン・スミス様",
    "mix": "ＴＳＭＣの株価を確認",
    "mixhalf": "TSMCのｶｰﾄﾞ確認",
    "tr": "Meet in İSTANBUL tomorrow",
    "kiz": "kız tomorrow",
    "long-s": "ſettlement",
    "sasaki": "佐々木さんに連絡します",
    "sasaki2": "佐佐木です",
    "samazama": "様々な商品があります",
    "hito": "人々が集まる",
    "ki": "木々が揺れる",
    "sa": "さ々です",
    "de": "てﾞの支払いです",  # a hiragana letter and a half-width voiced mark: での支払い once folded
}

QUERIES = [
    ("acme", {"tm"}),
    ("10,000", {"yen"}),
    ("25", {"deg"}),
    ("abc", {"kk"}),
    ("100m", {"sq"}),
    ("5", {"no"}),
    ("250", {"gbp"}),
    ("100", {"ar"}),
    ("ＡＢＣ", set()),  # ＡＢＣ＿ＤＥＦ is one token: ＿ is a connector like _
    ("ＡＢＣ＿ＤＥＦ", {"fw"}),
    ("abc＿def", set()),  # the standard analyzer does not fold widths
    # the middle dot separates katakana words; widths fold in text with CJK, also in phrases
    ("ナンバー", {"dot", "sp", "half", "halfdot"}),
    ('"カード ナンバー"', {"dot", "sp", "half", "halfdot"}),
    ("カード・ナンバー", {"dot", "sp", "half", "halfdot"}),
    ('"ｶｰﾄﾞ ﾅﾝﾊﾞｰ"', {"dot", "sp", "half", "halfdot"}),
    ('"ｶｰﾄﾞ ﾅﾝﾊﾞｰ半角"', {"half", "halfdot"}),  # CJK: a substring
    ('"ナンバー 半角点"', set()),  # two CJK runs want a separator between them
    ("ジョン・スミス", {"name"}),
    ("スミス様", {"name"}),
    ("TSMCの株価", {"mix"}),
    ('"ＴＳＭＣ の株価"', {"mix"}),
    ('"TSMC 株価"', set()),  # の stands between them
    ("TSMCのカード", {"mixhalf"}),
    ("istanbul", {"tr"}),
    ("kiz", set()),
    ("kız", {"kiz"}),
    ("settlement", set()),
    # an iteration mark after a Han character reads as that character, in text and query alike
    ("佐々木", {"sasaki", "sasaki2"}),
    ("佐佐木", {"sasaki", "sasaki2"}),
    ("佐木", {"sasaki", "sasaki2"}),  # the 佐 the mark stands for
    ("木さん", {"sasaki"}),
    ("様々な", {"samazama"}),
    ("人人", {"hito"}),
    ("木が", {"ki"}),
    ("々", {"sa"}),  # a mark after no Han character stays one
    ("さ々", {"sa"}),
    ("々木", set()),  # in 佐々木 the mark is 佐
    ("での支払い", {"de"}),  # folding composes で, as Elasticsearch's cjk_width does
]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [row(name, at(5, 9, i), body=body) for i, (name, body) in enumerate(BODIES.items())]
    return write_archive(tmp_path_factory.mktemp("unicode") / "archive", rows)


@pytest.fixture(scope="module")
def names(archive: Path) -> dict[str, str]:
    result = embedded.search(archive, parse_query("from:2026-01-01"), OFFICER, Page(size=100))
    return {h.record_id: next(k for k, v in BODIES.items() if v == h.text) for h in result.hits}


@pytest.mark.parametrize(("query", "expected"), QUERIES, ids=[q for q, _ in QUERIES])
def test_duckdb_and_the_python_twin_agree_on_archived_text(
    archive: Path, names: dict[str, str], query: str, expected: set[str]
) -> None:
    parsed = parse_query(query)
    result = embedded.search(archive, parsed, OFFICER, Page(size=100))
    assert {names[h.record_id] for h in result.hits} == expected
    assert {name for name, body in BODIES.items() if match.evaluate(parsed.text, body)} == expected
    for hit in result.hits:  # and every hit has something highlighted
        assert hit.highlights, hit.text


@pytest.mark.parametrize(
    ("query", "forms", "raw"),
    [
        ("人", None, ["人"]),  # a lone Han character: a mark standing for it follows it in the body
        # 风 may be a mark after a 风 before the match, but a 风 is in the body all the same
        ("风险等级", text.MARK_FORMS, ["险等级", "风"]),
        ("佐々木", text.MARK_FORMS, ["木", "佐"]),  # searched as 佐佐木
        ("十時", text.MARK_FORMS, ["時", "十"]),
        ('"様々 商品"', text.MARK_FORMS, ["品", "様", "商"]),  # every run of the phrase
        ("々", text.MARK_FORMS, []),
        ("カード", text.WIDTH_FORMS, []),
        ("での支払い", text.WIDTH_FORMS, ["の支払い"]),  # で may be て and a half-width voiced mark
        ("TSMCの株価", text.WIDTH_FORMS, ["の株価"]),
        ("の株価", None, ["の株価"]),  # nothing a width form or a mark can stand for
        ("会議X", "[" + text.WIDTH_FORMS[1:-1] + text.MARK_FORMS[1:-1] + "]", ["議", "会"]),
    ],
)
def test_bodies_are_folded_only_where_folding_can_change_the_answer(
    query: str, forms: str | None, raw: list[str]
) -> None:
    from pipelines.search import sql

    segs, folds = text.search_segments(query)
    assert folds
    assert text.fold_forms(segs) == forms
    assert text.raw_hints(segs) == raw
    compiled = sql.compile_query(parse_query(query))
    assert (sql.WIDTH_FOLD in compiled.where) is (forms is not None)
