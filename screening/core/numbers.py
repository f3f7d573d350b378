"""Phone numbers to one canonical form (E.164 where possible) so one caller is one string."""

from __future__ import annotations

import re

import phonenumbers

from screening.core.errors import InvalidNumber

# Caller IDs and list entries are digits with optional formatting; anything with letters
# ("anonymous", "Unknown", "555-CALL-NOW") is not a number we can match on.
_NUMBERISH = re.compile(r"\+?[0-9 \t\-().]+")
_NOT_DIGIT = re.compile(r"[^0-9]")
_MAX_DIGITS = 15  # E.164's limit; longer strings are not telephone numbers
_MAX_INPUT = 64


def _clean(raw: str) -> str | None:
    s = raw.strip()
    if s[:4].lower() == "tel:":
        s = s[4:]
    if len(s) > _MAX_INPUT or not _NUMBERISH.fullmatch(s):
        return None
    digits = _NOT_DIGIT.sub("", s)
    if not 1 <= len(digits) <= _MAX_DIGITS:
        return None
    return ("+" if s.startswith("+") else "") + digits


def normalise(raw: str, region: str) -> str | None:
    """E.164 for anything phonenumbers can read; the bare digits for numeric IDs it cannot
    (short codes, internal extensions); None when there is no usable caller ID."""
    return classify(raw, region)[0]


def classify(raw: str, region: str) -> tuple[str | None, bool]:
    """(normalise(raw), whether it is a possible number) from one parse: both run per call.
    Possible means digits of a possible length for its country (phonenumbers'
    is_possible_number); allocation is not checked, so a number from a new range is never
    called invalid."""
    cleaned = _clean(raw)
    if cleaned is None:
        return None, False
    try:
        parsed = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException:
        return cleaned, False
    if phonenumbers.is_possible_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), True
    return cleaned, False


def normalise_prefix(raw: str, region: str) -> str:
    """A prefix written like a number (`+1900`, `1900`, `0900` in DE) as the start of an E.164
    string. The trailing `*` is optional here; the caller decides what is a prefix."""
    cleaned = _clean(raw.rstrip("*"))
    if cleaned is None:
        raise InvalidNumber("number", f"expected a prefix of digits like +1900*, got {raw!r}")
    if cleaned.startswith("+"):
        return cleaned
    country = str(phonenumbers.country_code_for_region(region))
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    intl = None
    if meta is not None:
        intl = meta.preferred_international_prefix or meta.international_prefix
    if intl and intl.isdigit() and cleaned.startswith(intl):
        return "+" + cleaned[len(intl) :]
    national = phonenumbers.ndd_prefix_for_region(region, True) or ""
    if national and cleaned.startswith(national):
        cleaned = cleaned[len(national) :]
    return "+" + country + cleaned


def parse_entry(raw: str, region: str) -> tuple[str, bool]:
    """A list entry as the admin typed it -> (normalised value, is_prefix)."""
    text = raw.strip()
    if text.endswith("*"):
        return normalise_prefix(text, region), True
    value = normalise(text, region)
    if value is None:
        raise InvalidNumber(
            "number",
            f"expected a phone number like +15551234567 or a prefix like +1900*, got {raw!r}",
        )
    return value, False


def possible(raw: str, region: str) -> bool:
    """A caller ID that could be a real number (see classify)."""
    return classify(raw, region)[1]
