"""Right-to-left text and bidi controls: detection reads a text in the order a screen shows it too
(the Unicode Bidirectional Algorithm), and redacts in place in the text as sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.dlp import Engine, load_policy_set
from pipelines.dlp.engine import Scope
from pipelines.dlp.normalize import REMOVED, REORDERING

RULES = Path(__file__).parent.parent / "dlp_rules"


@pytest.fixture(scope="module")
def shipped() -> Engine:
    return Engine(load_policy_set(RULES))


@pytest.mark.parametrize(
    ("text", "value", "redacted"),
    [
        # each is shown as "... 4012 8888 8888 1881 ...", the card, while sent as 1881 ... 4012:
        # a right-to-left embedding
        (
            "My card is \u202b1881 8888 8888 4012\u202c thanks",
            "1881 8888 8888 4012",
            "My card is \u202b***************4012\u202c thanks",
        ),
        # a right-to-left isolate
        (
            "My card is \u20671881 8888 8888 4012\u2069 thanks",
            "1881 8888 8888 4012",
            "My card is \u2067***************4012\u2069 thanks",
        ),
        # right-to-left marks after the groups (the marks inside the number are masked with it)
        (
            "card \u200f1881\u200f 8888\u200f 8888\u200f 4012",
            "1881\u200f 8888\u200f 8888\u200f 4012",
            "card \u200f******************4012",
        ),
        # an Arabic paragraph, no control at all: the groups of a number run right to left
        (
            "رقم البطاقة 1881 8888 8888 4012 شكرا",
            "1881 8888 8888 4012",
            "رقم البطاقة ***************4012 شكرا",
        ),
        # ...and a Hebrew one
        (
            "מספר הכרטיס 1881 8888 8888 4012 תודה",
            "1881 8888 8888 4012",
            "מספר הכרטיס ***************4012 תודה",
        ),
        # Arabic-Indic digits are Arabic numbers: their groups run right to left in any line
        ("card ١٨٨١ ٨٨٨٨ ٨٨٨٨ ٤٠١٢ ok", "١٨٨١ ٨٨٨٨ ٨٨٨٨ ٤٠١٢", "card ***************٤٠١٢ ok"),
        # a right-to-left override reverses every character (shown 4012 8888 8888 1881)
        (
            "card \u202e1881 8888 8888 2104\u202c ok",
            "1881 8888 8888 2104",
            "card \u202e***************2104\u202c ok",
        ),
    ],
)
def test_a_card_a_reader_sees_is_caught_and_redacted_in_place(shipped, text, value, redacted) -> None:
    verdict = shipped.inspect(text)
    cards = [f for f in verdict.findings if f.entity == "CREDIT_CARD"]
    assert [text[f.start : f.end] for f in cards] == [value]
    assert verdict.redacted_text == redacted


@pytest.mark.parametrize(
    "text",
    [
        "رقم البطاقة 4012 8888 8888 1881 شكرا",
        "מספר הכרטיס 4012 8888 8888 1881 תודה",
        "card \u202b4012 8888 8888 1881\u202c ok",
        "card \u20674012 8888 8888 1881\u2069 ok",
        "card ٤٠١٢ ٨٨٨٨ ٨٨٨٨ ١٨٨١ ok",
        # valid in both orders (4111 1111 1111 1111 reversed is 1111 1111 1111 4111, not valid:
        # this one reads 5500 0000 0000 0004 and 0004 0000 0000 5500, of which only the first)
        "بطاقة 5500 0000 0000 0004",
    ],
)
def test_a_card_written_in_logical_order_is_caught_once(shipped, text) -> None:
    verdict = shipped.inspect(text)
    cards = [f for f in verdict.findings if f.entity == "CREDIT_CARD"]
    assert len(cards) == 1, verdict.findings
    assert cards[0].rule_id == "pii.card-number"
    assert "*" * 10 in verdict.redacted_text


def test_the_same_card_in_both_orders_is_one_finding(shipped) -> None:
    # 1881 8888 8888 4012 reversed by group is 4012 8888 8888 1881: sent twice, once in each order,
    # in an Arabic line both copies find both numbers, each mapped back to its own place
    text = "بطاقة 4012 8888 8888 1881 و 1881 8888 8888 4012"
    verdict = shipped.inspect(text)
    spans = sorted((f.start, f.end) for f in verdict.findings if f.entity == "CREDIT_CARD")
    assert [text[s:e] for s, e in spans] == ["4012 8888 8888 1881", "1881 8888 8888 4012"]


_PIECES = st.sampled_from(
    [
        "4012 8888 8888 1881",
        "1881 8888 8888 4012",
        "1881 8888 8888 2104",
        "٤٠١٢ ٨٨٨٨",
        "card",
        "رقم البطاقة",
        "شكرا",
        "כרטיס",
        "maria@example.com",
        "+4915119496276",
        " ",
        "  ",
        "\n",
        "\t",
        "(",
        ")",
        "-",
        *"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\u0301",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join))
def test_every_finding_maps_back_to_a_visible_span_of_the_original(shipped, text) -> None:
    verdict = shipped.inspect(text)
    for f in verdict.findings:
        assert 0 <= f.start < f.end <= len(text)
        # a finding starts and ends on a visible character, in either copy
        assert text[f.start] not in REMOVED and text[f.end - 1] not in REMOVED
    if verdict.redacted_text is not None and not any(ch in REORDERING for ch in text):
        assert all(ch not in REORDERING for ch in verdict.redacted_text)


@pytest.mark.parametrize(
    "text",
    [
        # the end of the text as sent meets the start of the screen-order copy: "4012 8888 8888"
        # then "1881 ok ..." would read as a card wrapped over a line break
        "1881 ok \u200f 4012 8888 8888",
        # ...a risky phrase ("guaranteed" then "return")
        "return it tomorrow. שלום, that is guaranteed",
        # ...a password after its context word
        ": x9!kk22 is the new one, שלום my password",
    ],
)
def test_no_finding_joins_the_text_as_sent_and_its_screen_order_copy(shipped, text) -> None:
    verdict = shipped.inspect(text)
    assert verdict.findings == []
    assert verdict.redacted_text == text


@pytest.mark.parametrize("hebrew", ["", "שלום "])
def test_context_words_are_looked_for_in_the_same_copy_only(shipped, hebrew) -> None:
    # マイナンバー ("My Number") is ninety characters before the number, beyond the 40-character
    # window; in the screen-order copy the number comes right before the start of the text again
    text = (
        "マイナンバー is not needed for this one, we only need the signed form back before the "
        f"quarterly review. {hebrew}meeting id 1234 5678 9018"
    )
    verdict = shipped.inspect(text, Scope(direction="outbound"))
    assert [f.entity for f in verdict.findings if f.entity == "JP_MY_NUMBER"] == []
    assert verdict.action.value != "block"


def test_a_context_word_next_to_the_number_still_counts_in_a_right_to_left_text(shipped) -> None:
    text = "שלום, マイナンバー 1234 5678 9018"
    verdict = shipped.inspect(text, Scope(direction="outbound"))
    found = [f for f in verdict.findings if f.entity == "JP_MY_NUMBER"]
    assert [text[f.start : f.end] for f in found] == ["1234 5678 9018"]
