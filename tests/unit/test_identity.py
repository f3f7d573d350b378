"""Caller identity from what the dialplan passes: withheld caller IDs, carrier verstat, and
STIR/SHAKEN PASSporTs checked field by field (the signature is the edge's job)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening.core.identity import (
    CarrierVerdict,
    Passport,
    Result,
    Status,
    Verstat,
    destination,
    parse_passport,
    verdict,
    verstat,
    withheld,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CALLER = "+15551234567"
X5U = "https://cert.example.net/shaken.pem"


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def identity(
    header: dict[str, Any] | None = None, payload: dict[str, Any] | None = None, params: str = ""
) -> str:
    h = {"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": X5U, **(header or {})}
    p = {
        "attest": "A",
        "dest": {"tn": ["12025550100"]},
        "iat": int(NOW.timestamp()),
        "orig": {"tn": "15551234567"},
        "origid": "123e4567-e89b-12d3-a456-426614174000",
        **(payload or {}),
    }
    token = f"{b64(h)}.{b64(p)}.{b64(bytes(64))}"
    return token + (params or f";info=<{X5U}>;alg=ES256;ppt=shaken")


DATE = format_datetime(NOW, usegmt=True)


@pytest.mark.parametrize(
    ("caller", "pres", "expected"),
    [
        ("anonymous", "", True),
        ("Anonymous", "", True),
        (" UNKNOWN ", "", True),
        ("", "", True),
        ("Restricted", "", True),
        ("+15551234567", "prohib_not_screened", True),
        ("+15551234567", "allowed_not_screened", False),
        ("+15551234567", "", False),
        ("anonymousX", "", False),
    ],
)
def test_withheld_caller_ids(caller: str, pres: str, expected: bool) -> None:
    assert withheld(caller, pres) is expected


def test_a_good_passport_checks_out_field_by_field() -> None:
    got = parse_passport(identity(), CALLER, DATE, NOW)
    assert isinstance(got, Passport)
    assert (got.attest, got.orig_tn, got.x5u, len(got.signature)) == ("A", "15551234567", X5U, 64)
    assert got.signing_input.count(b".") == 1


@pytest.mark.parametrize(
    ("header", "payload", "result"),
    [
        ({"alg": "RS256"}, {}, Result.INVALID_ALG),
        ({"ppt": "div"}, {}, Result.INVALID_PPT),
        ({"typ": "JWT"}, {}, Result.INVALID_TYP),
        ({"x5u": ""}, {}, Result.NO_X5U),
        ({}, {"attest": "D"}, Result.INVALID_ATTEST),
        ({}, {"iat": "soon"}, Result.NO_IAT),
        ({}, {"iat": True}, Result.NO_IAT),
        ({}, {"orig": {}}, Result.NO_ORIG_TN),
        ({}, {"dest": {"tn": []}}, Result.NO_DEST_TN),
        ({}, {"origid": ""}, Result.NO_ORIGID),
        ({}, {"orig": {"tn": "15559999999"}}, Result.CID_MISMATCH),
        ({}, {"iat": int((NOW - timedelta(seconds=60)).timestamp())}, Result.IAT_RANGE),
        # Too big for a float: the comparison raised, and a raise continues a call
        # unscreened, past an unverified policy.
        ({}, {"iat": 10**400}, Result.IAT_RANGE),
        ({}, {"iat": -(10**400)}, Result.IAT_RANGE),
    ],
)
def test_each_bad_field_is_named_as_asterisk_names_it(
    header: dict[str, Any], payload: dict[str, Any], result: Result
) -> None:
    assert parse_passport(identity(header, payload), CALLER, DATE, NOW) is result


def test_dates() -> None:
    token = identity()
    assert parse_passport(token, CALLER, "", NOW) is Result.NO_DATE
    assert parse_passport(token, CALLER, "yesterday", NOW) is Result.DATE_PARSE
    # A year past a C long raised OverflowError: a traceback in the log for each such call.
    huge = "Mon, 01 Jan 99999999999 00:00:00 GMT"
    assert parse_passport(token, CALLER, huge, NOW) is Result.DATE_PARSE
    old = format_datetime(NOW - timedelta(minutes=10), usegmt=True)
    assert parse_passport(token, CALLER, old, NOW) is Result.DATE_RANGE


def test_no_header_and_broken_headers() -> None:
    assert parse_passport("", CALLER, DATE, NOW) is Result.NO_IDENTITY
    assert parse_passport("notaurl", CALLER, DATE, NOW) is Result.INVALID_HEADER
    assert parse_passport("a.b.c;info=<notaurl>", CALLER, DATE, NOW) is Result.INVALID_HEADER
    assert parse_passport("x" * 10_000, CALLER, DATE, NOW) is Result.INVALID_HEADER
    # An info parameter that disagrees with the header's x5u is not trusted.
    other = identity(params=";info=<https://elsewhere.example/x.pem>")
    assert parse_passport(other, CALLER, DATE, NOW) is Result.NO_X5U


def test_the_caller_id_matches_by_its_digits() -> None:
    assert isinstance(parse_passport(identity(), "15551234567", DATE, NOW), Passport)
    assert parse_passport(identity(), "anonymous", DATE, NOW) is Result.CID_MISMATCH


@pytest.mark.parametrize(
    ("dialled", "own", "dest", "ok"),
    [
        # The trunk delivers the DID: dest must name it, however it is written.
        ("+12025550100", (), "12025550100", True),
        ("2025550100", (), "12025550100", True),  # national form, read in region US
        ("12025550100", (), "12025550100", True),
        ("+12025550100", (), "12025550199", False),  # signed for a call to someone else
        # The trunk delivers an extension: only the PBX's own numbers can say.
        ("201", ("12025550100",), "12025550100", True),
        ("201", ("12025550100",), "12025550199", False),
        ("201", (), "201", True),  # the dest names the extension itself
        ("201", (), "12025550199", True),  # nothing to compare with: not checked
        # Forwarded to us from another of our numbers.
        ("+12025550100", ("12025550101",), "12025550101", True),
    ],
)
def test_a_passport_must_be_for_this_calls_destination(
    dialled: str, own: tuple[str, ...], dest: str, ok: bool
) -> None:
    to = destination(dialled, "US", frozenset(own))
    got = parse_passport(identity(payload={"dest": {"tn": [dest]}}), CALLER, DATE, NOW, to)
    assert isinstance(got, Passport) if ok else got is Result.DEST_MISMATCH


def test_a_passport_for_another_call_proves_nothing_but_says_no_lie() -> None:
    # Unverified, not failed: a forwarded call arrives with another dest legitimately
    # (RFC 8224 s.12.1.1), and a replayer gains nothing over sending no PASSporT.
    for result in (Result.DEST_MISMATCH, Result.REPLAYED):
        v = verdict(result, "A", None)
        assert (v.status, v.result) == (Status.NONE, result.value)


@given(st.text(max_size=400), st.text(max_size=40), st.text(max_size=40))
def test_any_identity_header_gets_a_result(identity_header: str, caller: str, date: str) -> None:
    got = parse_passport(identity_header, caller, date, NOW)
    assert isinstance(got, (Passport, Result))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '"Bob" <sip:+15551234567;verstat=TN-Validation-Passed@carrier.example;user=phone>',
            CarrierVerdict(Verstat.PASSED, None),
        ),
        (
            "<sip:+15551234567@x;verstat=TN-Validation-Passed-A>",
            CarrierVerdict(Verstat.PASSED, "A"),
        ),
        ("<tel:+15551234567;verstat=tn-validation-failed-b>", CarrierVerdict(Verstat.FAILED, "B")),
        ("<sip:+15551234567@x;verstat=No-TN-Validation>", CarrierVerdict(Verstat.NONE, None)),
        ("TN-Validation-Passed-C", CarrierVerdict(Verstat.PASSED, "C")),  # X-Twilio-VerStat
        ("<sip:+15551234567@x>", None),
        ("<sip:+15551234567@x;verstat=Maybe>", None),
        ("", None),
        # The caller's display name comes first and is never read: it used to supply a
        # "Passed A" of its own ahead of the carrier's "Failed".
        (
            '"Bob;verstat=TN-Validation-Passed-A" '
            "<sip:+15551234567@x;verstat=TN-Validation-Failed>",
            CarrierVerdict(Verstat.FAILED, None),
        ),
        (
            '"x <sip:1;verstat=TN-Validation-Passed-A@h> y" '
            "<sip:+15551234567@x;verstat=TN-Validation-Failed>",
            CarrierVerdict(Verstat.FAILED, None),
        ),
        ('"Bob;verstat=TN-Validation-Passed-A" <sip:+15551234567@x>', None),
        # Two that disagree in the URI itself: no verdict.
        (
            "<sip:+1555;verstat=TN-Validation-Passed-A@x;verstat=TN-Validation-Failed>",
            None,
        ),
        # A header cut short before its URI began: nothing read.
        (
            'A" <sip:+15551234567@x;verstat=TN-Validation-Passed-A>',
            CarrierVerdict(Verstat.PASSED, "A"),
        ),
        ("verstat=TN-Validation-Passed-A@x>", None),
        # A quoted header parameter after the URI (a proxy passing the caller's on) holds
        # a URI of its own: the real one is the last ">" outside quotes.
        (
            "<sip:+15551234567@x;verstat=TN-Validation-Failed>;tag=1;"
            'x="<sip:1;verstat=TN-Validation-Passed-A@h>"',
            CarrierVerdict(Verstat.FAILED, None),
        ),
        (
            '<sip:+15551234567@x;verstat=TN-Validation-Failed>;x="a\\"<sip:1;verstat=TN-Validation-Passed-A@h>"',
            CarrierVerdict(Verstat.FAILED, None),
        ),
    ],
)
def test_verstat(header: str, expected: CarrierVerdict | None) -> None:
    assert verstat(header) == expected


@given(st.text(max_size=300))
def test_any_header_gives_a_verdict_or_none(header: str) -> None:
    got = verstat(header)
    assert got is None or isinstance(got, CarrierVerdict)
