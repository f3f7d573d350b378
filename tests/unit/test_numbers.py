"""Number normalisation: one caller is one string, whatever the format; junk is no caller ID."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening.core.errors import InvalidNumber
from screening.core.numbers import normalise, parse_entry


@pytest.mark.parametrize(
    "raw",
    [
        "+1 (555) 123-4567",
        "15551234567",
        "5551234567",
        "+15551234567",
        "555.123.4567",
        "1-555-123-4567",
        "tel:+15551234567",
        " 5551234567 ",
        "01115551234567",
    ],
)
def test_us_formats_are_one_number(raw: str) -> None:
    assert normalise(raw, "US") == "+15551234567"


@pytest.mark.parametrize("raw", ["030 123456", "+49 30 123456", "004930123456", "(030) 123456"])
def test_german_formats_are_one_number(raw: str) -> None:
    assert normalise(raw, "DE") == "+4930123456"


def test_region_decides_how_national_numbers_are_read() -> None:
    assert normalise("5551234567", "US") == "+15551234567"
    assert normalise("5551234567", "DE") == "+495551234567"


@pytest.mark.parametrize(
    "raw",
    [
        "anonymous",
        "Anonymous",
        "",
        "   ",
        "Unknown",
        "Restricted",
        "unavailable",
        "555-CALL-NOW",
        "sip:+15551234567@example.com",
        "'; DROP TABLE block_entries; --",
        "+",
        "()",
        "1" * 16,
        "5" * 300,
        "٥٥٥١٢٣٤٥٦٧",
        "12\x003",
        "Ünknown",
    ],
)
def test_odd_caller_ids_have_no_usable_number(raw: str) -> None:
    assert normalise(raw, "US") is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("201", "201"), ("12345", "12345"), ("+999123", "+999123")]
)
def test_numeric_ids_that_are_not_e164_keep_their_digits(raw: str, expected: str) -> None:
    assert normalise(raw, "US") == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1900*", "US", ("+1900", True)),
        ("1900*", "US", ("+1900", True)),
        ("900*", "US", ("+1900", True)),
        ("011 44*", "US", ("+44", True)),
        ("0900*", "DE", ("+49900", True)),
        ("00441*", "DE", ("+441", True)),
        ("+1 (555) 123-4567", "US", ("+15551234567", False)),
    ],
)
def test_entries_normalise_like_callers(raw: str, region: str, expected: tuple[str, bool]) -> None:
    assert parse_entry(raw, region) == expected


def test_prefix_matches_numbers_in_any_format() -> None:
    prefix, _ = parse_entry("1900*", "US")
    assert (normalise("(900) 555-0000", "US") or "").startswith(prefix)


@pytest.mark.parametrize("raw", ["*", "abc*", "call me", "", "+", "1" * 20])
def test_bad_entries_name_the_field(raw: str) -> None:
    with pytest.raises(InvalidNumber, match=r"^number: expected"):
        parse_entry(raw, "US")


@given(st.text(max_size=400))
def test_normalise_never_raises_and_returns_digits(raw: str) -> None:
    for region in ("US", "DE", "GB"):
        out = normalise(raw, region)
        assert out is None or re.fullmatch(r"\+?[0-9]{1,15}", out)


@given(st.from_regex(r"\+?1?[2-9][0-9]{9}", fullmatch=True))
def test_normalise_is_idempotent(raw: str) -> None:
    once = normalise(raw, "US")
    assert once is not None and normalise(once, "US") == once


@pytest.mark.parametrize("raw", ["+4300000000", "+43000000000", "+390000000"])
def test_an_all_zero_national_number_stays_one_string(raw: str) -> None:
    # phonenumbers drops one zero per pass here (found by the property above).
    once = normalise(raw, "US")
    assert once is not None and normalise(once, "US") == once
