"""Checksum validators: one table per validator, valid identifiers and near misses."""

from __future__ import annotations

import pytest

from pipelines.dlp.checksums import VALIDATORS

CASES = [
    # (validator, value, valid)
    ("luhn", "4012 8888 8888 1881", True),
    ("luhn", "5500-0000-0000-0004", True),
    ("luhn", "378282246310005", True),
    ("luhn", "4012 8888 8888 1882", False),  # last digit off by one
    ("luhn", "1234", False),  # too short for a card
    ("luhn", "４０１２８８８８８８８８１８８１", False),  # full-width digits are normalised before, not here
    ("payment_card", "4012 8888 8888 1881", True),  # Visa, 16
    ("payment_card", "4222222222222", True),  # Visa, 13
    ("payment_card", "4901234567894", False),  # Luhn-valid, but a valid EAN-13 too: a JAN barcode
    ("payment_card", "4901 2345 6789 4", False),  # ...however it is grouped
    ("payment_card", "614141000081", False),  # Luhn-valid, but a valid UPC-A too: a product barcode
    ("payment_card", "614141000082", False),  # neither (Luhn fails)
    ("payment_card", "633110199997", True),  # 12 digits, Luhn-valid, no valid UPC-A: a card length
    ("payment_card", "378282246310005", True),  # Amex, 15
    ("payment_card", "3530 1113 3330 0000", True),  # JCB, 16
    ("payment_card", "6011111111111117", True),  # Discover
    ("payment_card", "5555 5555 5555 4444", True),  # Mastercard
    ("payment_card", "2223000048400011", True),  # Mastercard 2-series
    ("payment_card", "30569309025904", True),  # Diners, 14: not a fixed-length scheme
    ("payment_card", "6759649826438453", True),  # Maestro
    ("payment_card", "4012 8888 8888 1882", False),  # Luhn fails
    ("payment_card", "356938035643809", False),  # an IMEI: 35 and 15 digits is no JCB card
    ("payment_card", "490154203237518", False),  # an IMEI under Visa's 4: Visa has no 15-digit cards
    ("payment_card", "37828224631003", False),  # Amex prefix, 14 digits (Luhn-valid)
    ("payment_card", "5105105105102", False),  # Mastercard prefix, 13 digits (Luhn-valid)
    ("payment_card", "2200 0000 0000 0004", True),  # Mir
    ("payment_card", "4012_8888_8888_1881", True),  # underscores, commas and slashes separate too
    ("payment_card", "4012, 8888, 8888, 1881", True),
    ("payment_card", "4012 | 8888 | 8888 | 1881", True),  # what the grouped card pattern takes
    ("payment_card", "4012* *8888* *8888* *1881", True),  # each group in bold
    ("payment_card", "5500 • 0000 • 0000 • 0004", True),
    ("payment_card", "4012/8888/8888/1881", True),
    ("payment_card", "4012;8888;8888;1881", False),  # ...a semicolon does not
    ("payment_card", "2099 0017 6148 1239", False),  # 2099: between Mir and Mastercard, no scheme's
    ("payment_card", "3312 3456 7890 1238", False),  # 33: no scheme issues cards there
    ("payment_card", "3852 0000 0232 37", True),  # Diners 38, 14
    ("payment_card", "621483000000001239", True),  # UnionPay, 18
    ("payment_card", "620102196712262342", False),  # Luhn-valid, but a valid Chinese resident id too
    ("iban", "GB82 WEST 1234 5698 7654 32", True),
    ("iban", "DE89370400440532013000", True),
    ("iban", "FR1420041010050500013M02606", True),
    ("iban", "GB83WEST12345698765432", False),  # wrong check digits
    ("iban", "XX82WEST12345698765432", False),  # unknown country
    ("aba_routing", "011000015", True),
    ("aba_routing", "021000021", True),
    ("aba_routing", "011000016", False),
    ("aba_routing", "01100001", False),
    ("aba_routing", "500000005", False),  # passes 3-7-1, but no routing number starts with 50
    ("aba_routing", "322271627", True),  # a thrift institution (21-32)
    ("aba_routing", "800000006", True),  # traveller's cheques (80)
    ("cn_resident_id", "11010519491231002X", True),
    ("cn_resident_id", "110105 19491231 002X", True),
    ("cn_resident_id", "110105.19491231.002X", True),  # grouped by dots
    ("cn_resident_id", "110105194912310021", False),  # wrong check character
    # the county code is where the card was issued, often newer than the holder (Pudong, 1992;
    # Linping, 2021, which stdnum 2.2 does not know): stdnum's is_valid refused both
    ("cn_resident_id", "310115198501011234", True),
    ("cn_resident_id", "44030619880101123x", True),
    ("cn_resident_id", "330113199001011233", True),
    ("cn_resident_id", "990115198501011230", False),  # no such province
    ("cn_resident_id", "310115203001011231", False),  # born in the future
    ("cn_resident_id", "11010519491331002X", False),  # month 13
    ("cn_resident_id", "333798998012229246", False),  # area code with no county (stdnum raised KeyError)
    ("jp_my_number", "123456789018", True),
    ("jp_my_number", "1234 5678 9018", True),
    ("jp_my_number", "123456789012", False),
    ("jp_my_number", "12345678901", False),
    ("hk_id", "A123456(3)", True),
    ("hk_id", "A1234563", True),
    ("hk_id", "a123456(3)", True),
    ("hk_id", "A123456(4)", False),
    ("hk_id", "AB987654(3)", True),  # two-letter prefix
    ("hk_id", "AB987654(2)", False),
    ("hk_id", "A12345(3)", False),
    ("sg_nric", "S1234567D", True),
    ("sg_nric", "s1234567d", True),
    ("sg_nric", "T1234567J", True),
    ("sg_nric", "F1234567N", True),
    ("sg_nric", "G1234567X", True),
    ("sg_nric", "M5012345J", True),
    ("sg_nric", "S1234567A", False),
    ("sg_nric", "S1234567-D", True),  # the check letter set off by a hyphen
    ("sg_nric", "S1234567-A", False),
    ("sg_nric", "S1234567--D", False),
    ("sg_nric", "S1234567 D", True),  # ...or by a space
    ("sg_nric", "S1234567 A", False),
    ("sg_nric", "S1234567 -D", False),
    ("sg_nric", "X1234567D", False),
    ("sg_nric", "S123456D", False),
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/ bPxRfiCYEXAMPLEKEY", True),
    ("aws_secret_key", "wJal rXUt nFEM I/K7 MDEN G/bP xRfi CYEX AMPL EKEY", True),
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/\nbPxRfiCYEXAMPLEKEY", True),
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG bPxRfiCYEXAMPLEKEY", False),  # 39 characters
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/ bPxRfiCYEXAMPLEKEYZ", False),  # 41
    ("aws_secret_key", "wJalrXUtnFEMI/K7MDENG/ bPxRfiCYEXAMPLEKE!", False),  # not base64
    # 40 letters and digits in words (capitals only at the words' starts, too few lower-case ones)
    ("aws_secret_key", "Our AWS Secret Santa For 2024 Was Paid By Jim Anne", False),
    ("aws_secret_key", "bill for 2024 was paid by Jim and Ann on Monday at 9", False),
    ("aws_secret_key", "WJALRXUTNFEMI/K7MDENG/ BPXRFICYEXAMPLEKEY", False),  # no lower case
    ("aws_secret_key", "wjalrxutnfemi/k7mdeng/ bpxrficyexamplekey", False),  # no upper case inside
]


@pytest.mark.parametrize(("name", "value", "valid"), CASES)
def test_validator(name: str, value: str, valid: bool) -> None:
    assert VALIDATORS[name](value) is valid


def test_every_validator_has_positive_and_negative_rows() -> None:
    for name in VALIDATORS:
        outcomes = {valid for n, _, valid in CASES if n == name}
        assert outcomes == {True, False}, name


def test_the_canonical_form_keeps_what_only_validators_skip() -> None:
    # a keyed hash and the allow-list compare compact(): bars, bullets and chat formatting stay in
    # it, so changing what validators skip never changed an existing digest
    from pipelines.dlp.checksums import compact

    assert compact("4012-8888 8888.1881") == "4012888888881881"
    assert compact("p*ss|w•rd~") == "p*ss|w•rd~"
