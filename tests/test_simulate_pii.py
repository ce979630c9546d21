"""--inject-pii ground truth: labels point at valid values as written; nothing sensitive goes unlabelled."""

from __future__ import annotations

import ipaddress
import itertools
import json
import random
import re
import unicodedata
from collections import Counter, defaultdict
from functools import cache

import phonenumbers
import pytest
from _simulate_support import WEEK, good_lines, written
from stdnum import iban, luhn
from stdnum.cn import ric
from stdnum.jp import in_ as my_number
from stdnum.us import rtn, ssn

from pipelines.record import Event, record_id_for
from pipelines.simulate import ENTITIES, LABELS_FILE
from pipelines.simulate import identifiers as ids
from pipelines.simulate.pii import RISKY, near_miss

# ---------------------------------------------------------------------------------------------
# the two check-digit schemes stdnum lacks, against published examples


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("A123456(3)", True),
        ("A1234563", True),
        ("A123456(4)", False),
        ("A12345(3)", False),
        ("1234567(3)", False),
    ],
)
def test_hong_kong_id_check_digit(value: str, valid: bool) -> None:
    assert ids.is_valid_hk_id(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("S1234567D", True),
        ("T1234567J", True),
        ("F1234567N", True),
        ("G1234567X", True),
        ("S1234567A", False),
        ("X1234567D", False),
        ("S123456D", False),
    ],
)
def test_singapore_nric_check_letter(value: str, valid: bool) -> None:
    assert ids.is_valid_sg_nric(value) is valid


# ---------------------------------------------------------------------------------------------
# labels against the bodies


def _canonical(text: str) -> str:
    return ids.canonical(text)


def _valid(entity: str, text: str) -> bool:
    value = _canonical(text)
    if entity == "CREDIT_CARD":
        return value.isdigit() and len(value) in (15, 16) and luhn.is_valid(value)
    if entity == "IBAN_CODE":
        return iban.is_valid(value)
    if entity == "ABA_ROUTING_NUMBER":
        return len(value) == 9 and rtn.is_valid(value)
    if entity == "US_SSN":
        return ssn.is_valid(value)
    if entity == "CN_RESIDENT_ID":
        return ric.is_valid(value)
    if entity == "JP_MY_NUMBER":
        return my_number.is_valid(value)
    if entity == "HK_ID_CARD":
        return ids.is_valid_hk_id(value)
    if entity == "SG_NRIC_FIN":
        return ids.is_valid_sg_nric(value)
    if entity == "US_BANK_NUMBER":
        return value.isdigit() and 10 <= len(value) <= 14 and not luhn.is_valid(value)
    if entity == "PHONE_NUMBER":
        return phonenumbers.is_valid_number(phonenumbers.parse(value))
    if entity == "EMAIL_ADDRESS":
        return re.fullmatch(r"[a-z0-9.]+@[a-z0-9.-]+\.[a-z]{2,}", text) is not None
    if entity == "IP_ADDRESS":
        return ipaddress.ip_address(text) is not None
    if entity == "PERSON":
        return bool(text.strip()) and not any(c.isdigit() for c in text) and text == text.strip()
    if entity == "RISKY_PHRASE":
        return any(text in (p, p[0].upper() + p[1:]) for phrases in RISKY.values() for p in phrases)
    raise AssertionError(f"unknown entity {entity}")


@cache
def _labelled() -> tuple[dict[str, Event], dict[str, list[dict]]]:
    out = written(WEEK)
    bodies = {}
    for _, _, raw in good_lines(out):
        event = Event.model_validate_json(raw)
        bodies[record_id_for(event.org, event.channel, event.event_id)] = event
    labels: dict[str, list[dict]] = defaultdict(list)
    for row in map(json.loads, (out / LABELS_FILE).read_text().splitlines()):
        labels[row["record_id"]].append(row)
    return bodies, labels


def test_labels_use_the_agreed_fields_and_entity_names() -> None:
    _, labels = _labelled()
    rows = [row for rows in labels.values() for row in rows]
    assert {tuple(sorted(r)) for r in rows} == {
        ("channel", "end", "entity", "event_id", "record_id", "start", "variant")
    }
    assert {r["entity"] for r in rows} == set(ENTITIES)
    assert {r["variant"] for r in rows} == set(ids.VARIANTS)
    assert {r["channel"] for r in rows} >= {"sms", "whatsapp", "wechat", "line", "teams", "voicemail"}


def test_every_label_points_at_a_valid_value_written_as_its_variant() -> None:
    bodies, labels = _labelled()
    per_entity = Counter()
    for record_id, rows in labels.items():
        event = bodies[record_id]
        assert event.body is not None
        for row in rows:
            assert row["event_id"] == event.event_id and row["channel"] == event.channel
            text = event.body[row["start"] : row["end"]]
            assert _valid(row["entity"], text), (row, text)
            variant = row["variant"]
            if variant == "fullwidth":
                assert any(0xFF10 <= ord(c) <= 0xFF5A for c in text), text
            elif variant == "zerowidth":
                assert ids.ZERO_WIDTH in text, text
            elif variant == "spaced":
                assert " " in text.strip(), text
            elif variant == "dashed":
                assert "-" in text, text
            else:
                assert unicodedata.normalize("NFKC", text) == text and ids.ZERO_WIDTH not in text
            per_entity[row["entity"]] += 1
    assert min(per_entity.values()) >= 10


def test_labels_do_not_overlap_within_a_body() -> None:
    _, labels = _labelled()
    for rows in labels.values():
        spans = sorted((r["start"], r["end"]) for r in rows)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_no_unlabelled_card_numbers_or_phone_numbers_in_bodies() -> None:
    """Precision of the ground truth: whatever a validating detector could find is labelled."""
    bodies, labels = _labelled()
    near_misses = 0
    for record_id, event in bodies.items():
        body = event.body or ""
        if not re.search(r"\d{4}", body):
            continue
        spans = [(r["start"], r["end"]) for r in labels.get(record_id, [])]

        def covered(start: int, end: int, spans: list = spans) -> bool:
            return any(s < end and start < e for s, e in spans)

        for match in re.finditer(r"\d(?:[ -]?\d){12,18}", body):
            digits = re.sub(r"\D", "", match.group())
            if luhn.is_valid(digits):
                assert covered(match.start(), match.end()), match.group()
            elif not covered(match.start(), match.end()):
                near_misses += 1
        for region in ("US", "GB", "DE", "HK", "CN", "JP", "SG"):
            for found in phonenumbers.PhoneNumberMatcher(body, region):
                assert covered(found.start, found.end), (region, found.raw_string, body)
    assert near_misses > 10  # Luhn-invalid look-alikes are there, and unlabelled


def test_near_misses_are_not_valid_anything() -> None:
    rng = random.Random(5)
    for _ in range(200):
        sentence = near_miss(rng)
        for token in re.findall(r"[0-9A-Z][0-9A-Z -]{7,}[0-9A-Z]", sentence):
            compact = re.sub(r"[ -]", "", token)
            assert not (compact.isdigit() and len(compact) in (15, 16) and luhn.is_valid(compact)), sentence
            assert not iban.is_valid(compact) and not ric.is_valid(compact), sentence


def test_injection_does_not_change_the_conversations_themselves() -> None:
    """Same seed with and without --inject-pii: same events, only bodies differ (by additions)."""
    from pipelines.simulate import generate

    small = WEEK.replace(days=1, employees=4, contacts=30, inject_faults=0.0)
    plain = list(generate(small.replace(inject_pii=False)))
    injected = list(generate(small))
    assert [e.event.event_id for e in plain] == [e.event.event_id for e in injected]
    changed = [
        (a.event, b.event) for a, b in zip(plain, injected, strict=True) if a.event.body != b.event.body
    ]
    assert changed
    for before, after in changed:
        assert before.model_dump(exclude={"body"}) == after.model_dump(exclude={"body"})


#: a day with one-time codes that read as phone numbers (e.g. "392431" is a valid German number)
OTP_DAY = WEEK.replace(days=1, seed=1, inject_faults=0.0)


def test_one_time_codes_contacts_type_are_never_phone_numbers() -> None:
    """The codes typed during WeChat phone validation are not labelled, so no validating phone
    detector, in any region the ground truth promises, may find a number in them."""
    from pipelines.simulate.pii import phone_like

    out = written(OTP_DAY)
    labelled = {row["event_id"] for row in map(json.loads, (out / LABELS_FILE).read_text().splitlines())}
    codes = []
    for _, _, raw in good_lines(out):
        event = Event.model_validate_json(raw)
        body = event.body or ""
        if event.channel == "wechat" and event.kind == "message" and re.fullmatch(r"\d{6}", body):
            codes.append(body)
            assert not phone_like(body) or event.event_id in labelled, (event.event_id, body)
    assert len(codes) > 20
