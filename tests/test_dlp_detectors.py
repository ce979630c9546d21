"""Detectors: one parametrized table each, positive and negative rows, with score ranges."""

from __future__ import annotations

import pytest
from dlp_helpers import engine_for, rule
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.dlp import Scope

# (entity, text, value that must be found or None, min score, max score)
PRESIDIO = [
    ("CREDIT_CARD", "pay with 4012 8888 8888 1881 today", "4012 8888 8888 1881", 1.0, 1.0),
    (
        "CREDIT_CARD",
        "pay with ４０１２８８８８８８８８１８８１",
        "４０１２８８８８８８８８１８８１",
        1.0,
        1.0,
    ),
    ("CREDIT_CARD", "ref 4012 8888 8888 1882", None, 0, 0),  # fails Luhn
    ("EMAIL_ADDRESS", "write to ops@example.com", "ops@example.com", 1.0, 1.0),
    ("EMAIL_ADDRESS", "write to ops@localhost", None, 0, 0),  # no public suffix
    ("IBAN_CODE", "IBAN DE89370400440532013000", "DE89370400440532013000", 1.0, 1.0),
    ("IBAN_CODE", "IBAN DE89370400440532013001", None, 0, 0),
    ("US_SSN", "ssn 536-22-1234", "536-22-1234", 0.5, 1.0),
    ("US_SSN", "ssn 000-22-1234", None, 0, 0),  # invalid area number
    ("IP_ADDRESS", "host 10.20.30.40 is down", "10.20.30.40", 0.6, 1.0),
    ("IP_ADDRESS", "version 1.2.3 is out", None, 0, 0),
    ("PHONE_NUMBER", "call +44 20 7946 0958", "+44 20 7946 0958", 0.4, 1.0),
    ("PHONE_NUMBER", "room 12", None, 0, 0),
    ("ABA_ROUTING_NUMBER", "routing 011000015", "011000015", 0.5, 1.0),
    ("ABA_ROUTING_NUMBER", "routing 011000016", None, 0, 0),
]


@pytest.mark.parametrize(("entity", "text", "value", "low", "high"), PRESIDIO)
def test_presidio_entity(tmp_path, entity, text, value, low, high) -> None:
    engine = engine_for(tmp_path, [rule("t.r", [{"type": "presidio", "entity": entity, "min_score": 0.3}])])
    found = [f for f in engine.inspect(text).findings if f.entity == entity]
    if value is None:
        assert found == []
        return
    start = text.index(value)
    assert [(f.start, f.end) for f in found] == [(start, start + len(value))]
    assert low <= found[0].score <= high
    assert found[0].detector == f"presidio:{entity}"


# (regex, validator, text, value or None)
PATTERNS = [
    (
        r"(?<!\d)\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}(?!\d)",
        "luhn",
        "card 5500-0000-0000-0004",
        "5500-0000-0000-0004",
    ),
    (r"(?<!\d)\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}(?!\d)", "luhn", "card 5500-0000-0000-0005", None),
    (r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", "iban", "to GB82WEST12345698765432", "GB82WEST12345698765432"),
    (r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", "iban", "to GB83WEST12345698765432", None),
    (r"\b\d{9}\b", "aba_routing", "aba 021000021", "021000021"),
    (r"\b\d{9}\b", "aba_routing", "aba 021000022", None),
    (r"\d{17}[\dX]", "cn_resident_id", "身份证11010519491231002X", "11010519491231002X"),
    (r"\d{17}[\dX]", "cn_resident_id", "身份证110105194912310021", None),
    (r"\d{12}", "jp_my_number", "番号123456789018です", "123456789018"),
    (r"\d{12}", "jp_my_number", "番号123456789012です", None),
    (r"[A-Z]{1,2}\d{6}\(?[0-9A]\)?", "hk_id", "id A123456(3).", "A123456(3)"),
    (r"[A-Z]{1,2}\d{6}\(?[0-9A]\)?", "hk_id", "id A123456(5).", None),
    (r"[STFGM]\d{7}[A-Z]", "sg_nric", "nric S1234567D ok", "S1234567D"),
    (r"[STFGM]\d{7}[A-Z]", "sg_nric", "nric S1234567E ok", None),
    (r"EMP-\d{6}", None, "ask EMP-004211", "EMP-004211"),
    (r"EMP-\d{6}", None, "ask EMP-0042", None),
]


@pytest.mark.parametrize(("regex", "validator", "text", "value"), PATTERNS)
def test_pattern_detector(tmp_path, regex, validator, text, value) -> None:
    detector = {"type": "pattern", "entity": "THING", "regex": regex, "score": 0.6}
    if validator:
        detector["validator"] = validator
    found = engine_for(tmp_path, [rule("t.r", [detector])]).inspect(text).findings
    if value is None:
        assert found == []
    else:
        assert [text[f.start : f.end] for f in found] == [value]
        # a checksum that passes is certainty; an unvalidated pattern keeps its own score
        assert found[0].score == (1.0 if validator else 0.6)


# (terms, text, values)
LEXICON = [
    (["guaranteed return"], "A guaranteed return!", ["guaranteed return"]),
    (["guaranteed return"], "a GUARANTEED\tRETURN", ["GUARANTEED\tRETURN"]),  # case, any spacing
    (["guaranteed return"], "unguaranteed returns", []),  # whole words for Latin script
    (["risk"], "asterisk risky risk.", ["risk"]),
    (["保证收益"], "这个产品保证收益很高", ["保证收益"]),  # substring for Chinese
    (["元本保証"], "元本保証の商品", ["元本保証"]),  # and Japanese
    (["ｇｕａｒａｎｔｅｅ"], "guarantee", ["guarantee"]),  # terms are normalised like texts
    (["off the record"], "this is off-the-record", []),
    (["between us", "keep this between us"], "keep this between us", ["keep this between us"]),  # longest
    # a Chinese term matches in Simplified and Traditional characters, whichever it is written in
    (["稳赚不赔"], "穩賺不賠，相信我", ["穩賺不賠"]),
    (["刪除聊天記錄"], "记得删除聊天记录", ["删除聊天记录"]),
    (["私下聯繫"], "我们私下联系吧", ["私下联系"]),  # the Hong Kong / Taiwan form
    # a Cyrillic letter drawn like a Latin one, inside a Latin word, reads as the Latin letter
    (["guaranteed return"], "gu\u0430ranteed return", ["gu\u0430ranteed return"]),
    # a term in another script keeps its own letters, even in a word that mixes in Latin or digits
    (["пароль"], "пароль:hunter22", ["пароль"]),
    (["пароль"], "parol", []),
    # a term written mixing scripts is one term, not two words to be found together
    (["p\u0430ssword"], "my password", ["password"]),
    # a term written right to left matches as written, never spelt backwards (the text's
    # screen-order copy reverses its words): "לא" (no) is not "אל" (don't)
    (["לא"], "זה לא נכון", ["לא"]),
    (["לא"], "אל תדאג", []),
    (["שוחד"], "he said שוחד yesterday", ["שוחד"]),
    (["שוחד"], "he said דחוש yesterday", []),
    (["رشوة"], "هذه رشوة كبيرة", ["رشوة"]),
]


@pytest.mark.parametrize(("terms", "text", "values"), LEXICON)
def test_lexicon_detector(tmp_path, terms, text, values) -> None:
    engine = engine_for(tmp_path, [rule("t.r", [{"type": "lexicon", "terms": terms}], action="flag")])
    found = engine.inspect(text).findings
    assert [text[f.start : f.end] for f in found] == values
    assert all(f.entity == "RISKY_PHRASE" and f.score == 0.8 for f in found)


# (context, text, found?, score)
CONTEXT = [
    ({"raise_words": ["employee"]}, "employee EMP-004211", True, 0.75),
    ({"raise_words": ["employee"]}, "see EMP-004211", False, None),
    ({"raise_words": ["员工"]}, "员工编号EMP-004211", True, 0.75),
    ({"lower_words": ["example"], "lower_by": 0.3}, "for example EMP-004211", False, None),
    ({"raise_words": ["employee"], "window": 5}, "employee number is EMP-004211", False, None),
    # required: no raise word, no finding, even with a base score above min_score
    ({"raise_words": ["employee"], "required": True}, "see EMP-004211", False, None),
    ({"raise_words": ["employee"], "required": True}, "EMP-004211 employee", True, 0.95),
    # the window's edge is no word boundary: before, "employees" cut after eight letters, or
    # "subemployee" cut before the "e", read as "employee"
    ({"raise_words": ["employee"], "required": True, "window": 12}, "EMP-004211 xx employees", False, None),
    ({"raise_words": ["employee"], "required": True, "window": 11}, "subemployee x EMP-004211", False, None),
    ({"raise_words": ["employee"], "required": True, "window": 12}, "EMP-004211 xx employee.", True, 0.95),
    ({"raise_words": ["employee"], "required": True, "window": 12}, "employee xx EMP-004211", True, 0.95),
    ({"lower_words": ["example"], "lower_by": 0.3, "window": 10}, "EMP-004211 x examples", True, 0.6),
    # the finding's own edges are boundaries on both sides (a word typed on against it counts)
    ({"raise_words": ["employee"], "required": True}, "EMP-004211employee", True, 0.95),
    ({"raise_words": ["employee"], "required": True}, "employeeEMP-004211", True, 0.95),
]


@pytest.mark.parametrize(("context", "text", "found", "score"), CONTEXT)
def test_context_words(tmp_path, context, text, found, score) -> None:
    # below min_score 0.5 where a raise word must lift it, above it where one is required or none
    # is given (a detector that could never reach min_score is refused by lint)
    base = 0.4 if context.get("raise_words") and not context.get("required") else 0.6
    detector = {"type": "pattern", "entity": "EMP", "regex": r"EMP-\d{6}", "score": base, "context": context}
    findings = engine_for(tmp_path, [rule("t.r", [detector])]).inspect(text).findings
    assert bool(findings) is found
    if found:
        assert findings[0].score == pytest.approx(score)


@pytest.mark.parametrize(
    ("allow", "text", "found"),
    [
        ({"values": ["4012 8888 8888 1881"]}, "card 4012888888881881", False),  # spacing ignored
        ({"values": ["4012 8888 8888 1881"]}, "card 5500 0000 0000 0004", True),
        ({"regexes": [r"5500.*"]}, "card 5500 0000 0000 0004", False),
        ({"regexes": [r"0004"]}, "card 5500 0000 0000 0004", True),  # regexes match the whole value
        (
            {"regexes": [r"5500.*"]},
            "card ５５００ ００００ ００００ ０００４",
            False,
        ),  # as detection reads it
    ],
)
def test_allow_list(tmp_path, allow, text, found) -> None:
    engine = engine_for(tmp_path, [rule("t.r", [{"type": "presidio", "entity": "CREDIT_CARD"}], allow=allow)])
    assert bool(engine.inspect(text, Scope()).findings) is found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("mail maria@example.com", False),
        ("mail maria@example。com", False),  # "。" typed by a Chinese input method for "."
        ("mail maria@ｅｘａｍｐｌｅ.com", False),  # full-width letters
        ("mail mar\u200bia@example.com", False),  # a zero-width space inside
        ("mail MARIA@EXAMPLE.COM", True),  # case is the regex's own
        ("mail MARIA@EXAMPLE.ORG", False),  # ...and (?i) takes any
        ("mail maria@evil.com", True),
    ],
)
def test_an_allow_regex_matches_the_value_as_written_and_as_detection_reads_it(tmp_path, text, found) -> None:
    allow = {"regexes": [r".*@example\.com", r"(?i).*@example\.org"]}
    engine = engine_for(
        tmp_path, [rule("t.r", [{"type": "presidio", "entity": "EMAIL_ADDRESS"}], allow=allow)]
    )
    assert bool(engine.inspect(text, Scope()).findings) is found


_PHONE_TEXT = st.lists(
    st.sampled_from(
        ["0", "1", "2", "4", "7", "9", " ", "-", "(", ")", "+", "call ", "ext ", "x", "020 ", "011 ", "00"]
    ),
    max_size=14,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(_PHONE_TEXT)
def test_phone_region_pruning_never_changes_presidio_results(text: str) -> None:
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from pipelines.dlp.detectors import PresidioPhoneDetector
    from pipelines.dlp.policy import PresidioDetector

    pruned = PresidioPhoneDetector(PresidioDetector(type="presidio", entity="PHONE_NUMBER"))
    full = PhoneRecognizer().analyze(text, ["PHONE_NUMBER"])
    assert [(r.start, r.end, r.score) for r in pruned._analyze(text)] == [
        (r.start, r.end, r.score) for r in full
    ]


@pytest.mark.parametrize(
    "text",
    [
        "call 030 1234567",
        "ring 0049 30 1234567",
        "us 011 44 20 7946 0958",
        "in 022 2345 6789",
        "otp 4821",
        "+44 20 7946 0958",
    ],
)
def test_phone_region_pruning_examples(text: str) -> None:
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from pipelines.dlp.detectors import PresidioPhoneDetector
    from pipelines.dlp.policy import PresidioDetector

    pruned = PresidioPhoneDetector(PresidioDetector(type="presidio", entity="PHONE_NUMBER"))
    full = PhoneRecognizer().analyze(text, ["PHONE_NUMBER"])
    assert [(r.start, r.end) for r in pruned._analyze(text)] == [(r.start, r.end) for r in full]


# -- Presidio's e-mail pattern, bounded where it was quadratic -----------------------------------

ADDRESSES = [
    "ops@example.com",
    "john.smith-jr+tag@mail.example.co.uk",
    "x" * 64 + "@example.com",  # the longest local part RFC 5321 allows
    "a" * 70 + "@example.com",  # longer than it allows: Presidio still finds it, and so must Vigil
    "first." * 40 + "last@example.com",  # 245 characters before the @
    "a.b-c_d'e@sub-domain.example.org",
    "first.last@x-y-z.example.net",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_bounded_email_pattern_finds_what_presidios_own_finds(tmp_path, address: str) -> None:
    """Presidio's local part is ``[...]{0,}``: on ``a-a-a-...@x`` every word start scanned to the
    ``@`` and back, 30 s for one body of the size `run` accepts. Vigil bounds it at the 254
    characters an address may have in all; Presidio's own analyzer and Vigil find the same."""
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    text = f"please write to {address} before noon"
    theirs = {(r.start, r.end) for r in EmailRecognizer().analyze(text, ["EMAIL_ADDRESS"])}
    engine = engine_for(tmp_path, [rule("t.r", [{"type": "presidio", "entity": "EMAIL_ADDRESS"}])])
    ours = {(f.start, f.end) for f in engine.inspect(text).findings}
    assert theirs == ours == {(16, 16 + len(address))}


def test_vigil_runs_no_unbounded_local_part_for_email() -> None:
    from pipelines.dlp import presidio_entities

    shipped = [p.regex for p in presidio_entities.recognizer("EMAIL_ADDRESS").patterns]
    unbounded, bounded = presidio_entities.LINEAR_PATTERNS["EMAIL_ADDRESS"]
    assert all(unbounded in regex for regex in shipped)  # else Presidio changed it: check it again
    ran = [presidio_entities.linear_pattern("EMAIL_ADDRESS", regex) for regex in shipped]
    assert all(unbounded not in regex and bounded in regex for regex in ran)
