"""Normalisation before detection and the map back to original offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.dlp.normalize import BIDI_CONTROLS, REMOVED, ZERO_WIDTH, normalize


@pytest.mark.parametrize(
    ("original", "normalised"),
    [
        ("plain ascii 4111", "plain ascii 4111"),
        ("４１１１ １１１１", "4111 1111"),  # full-width digits, ideographic space
        ("4111\u200b1111\u200c2222\u200d3333", "4111111122223333"),  # zero-width characters
        ("41\u206011\ufeff1111", "41111111"),  # word joiner, BOM
        ("\u202e1234\u202c 5678\u2066\u2069", "1234 5678"),  # bidi controls
        ("ｃａｒｄ：４１１１", "card:4111"),  # full-width letters and colon
        ("卡号４１１１", "卡号4111"),  # mixed CJK, CJK kept as is
        ("ﬁle", "file"),  # compatibility ligature expands
        ("e\u0301", "é"),  # combining accent composes
        ("e\u200b\u0301", "é"),  # a zero-width space cannot block composition
    ],
)
def test_normalised_text(original: str, normalised: str) -> None:
    assert normalize(original).text == normalised


@pytest.mark.parametrize(
    ("original", "value"),
    [
        ("card ４１１１ １１１１ １１１１ １１１１ ok", "4111 1111 1111 1111"),
        ("x 4111\u200b1111\u200b1111\u200b1111 y", "4111111111111111"),
        ("\u202d4111-1111-1111-1111\u202c", "4111-1111-1111-1111"),
        ("卡号：４１１１１１１１１１１１１１１１。", "4111111111111111"),
    ],
)
def test_span_maps_back_onto_the_original(original: str, value: str) -> None:
    norm = normalize(original)
    start = norm.text.index(value)
    o_start, o_end = norm.to_original(start, start + len(value))
    covered = original[o_start:o_end]
    # the original span holds the whole value (with the invisible characters inside it) and nothing
    # visible around it
    assert normalize(covered).text == value
    assert not original[o_start].isspace() and not original[o_end - 1].isspace()


def test_plain_text_takes_the_identity_path() -> None:
    norm = normalize("nothing to fold here")
    assert norm.identity and norm.to_original(3, 7) == (3, 7)


def test_empty_span_is_refused() -> None:
    with pytest.raises(ValueError):
        normalize("４１").to_original(1, 1)


def test_removed_sets_are_what_the_policy_language_promises() -> None:
    assert {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"} == ZERO_WIDTH
    assert {chr(c) for c in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))} == BIDI_CONTROLS


_SPECIAL = ["\u200b", "\u200d", "\u202e", "\u2066", "\ufeff", "ﬁ", "\u0301", "é", "卡", "号", "\n"]
_ALPHABET = st.sampled_from([*"ab4 ９１８\u3000-", *_SPECIAL])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=30).map("".join), st.data())
def test_offset_mapping_properties(original: str, data: st.DataObject) -> None:
    norm = normalize(original)
    n = len(norm.text)
    if norm.identity:
        assert norm.text == original
        return
    assert len(norm.starts) == len(norm.ends) == n
    # monotonic, within bounds, every normalised character comes from a non-empty original span
    for i in range(n):
        assert 0 <= norm.starts[i] < norm.ends[i] <= len(original)
        if i:
            assert norm.starts[i - 1] <= norm.starts[i] and norm.ends[i - 1] <= norm.ends[i]
    # no removed character survives
    assert not (set(norm.text) & REMOVED)
    if n == 0:
        return
    start = data.draw(st.integers(0, n - 1))
    end = data.draw(st.integers(start + 1, n))
    o_start, o_end = norm.to_original(start, end)
    # the original span, normalised again, contains the normalised span
    assert norm.text[start:end] in normalize(original[o_start:o_end]).text
