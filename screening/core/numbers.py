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
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        # phonenumbers drops a zero from an all-zero national number (+4300000000) on each
        # pass: such a number is kept as given, so that one caller stays one string.
        if parsed.italian_leading_zero and _e164(e164) != e164:
            return cleaned, False
        return e164, True
    return cleaned, False


def _e164(number: str) -> str:
    parsed = phonenumbers.parse(number, None)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


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


#: What an extension can be: the characters Asterisk extensions are made of, as an admin
#: types them for per-extension rules (service.parse.parse_extension).
EXTENSION = re.compile(r"[0-9A-Za-z*#+_-]{1,32}")
#: URI user options a carrier may append to the dialled number (";npdi;rn=+1...", RFC 4694).
_USER_OPTIONS = re.compile(r"(;[0-9A-Za-z*#+_=-]{0,64}){1,8}")


def dialled_extension(dialled: str) -> str | None:
    """The extension a dialled number reaches, without URI user options; None when it is not
    a plausible extension at all (a comma, a quote, a space, a newline: nothing an
    extension has, and everything an attacker would use to shift the dialplan's arguments)."""
    number, semi, options = dialled.partition(";")
    if not EXTENSION.fullmatch(number):
        return None
    if semi and not _USER_OPTIONS.fullmatch(semi + options):
        return None
    return number
