"""What the dialplan tells the doors about a call, and what a caller can do to it: nothing.
The sandbox tests send the same attacks as real INVITEs through both doors."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening.asterisk.ari import StasisStart
from screening.asterisk.dialplan import Malformed, call_facts, fields, read_call
from screening.core.decision import Action, Policy, PolicyKind, Rules
from screening.core.numbers import dialled_extension
from screening.store.calllog import CallRecord
from tests.dialplan_strings import b64, call_text
from tests.unit.test_stasis import RecordingAri, RecordingLog, build

PASSED_A = "<sip:+15551234567@carrier;verstat=TN-Validation-Passed-A>"


def test_the_facts_are_read_whole() -> None:
    facts = call_facts(call_text("201", "+15551234567", "Bob (home)", "prohib", "a.b.c", "Tue"))
    assert (facts.dialled, facts.caller, facts.name) == ("201", "+15551234567", "Bob (home)")
    assert (facts.presentation, facts.identity, facts.date) == ("prohib", "a.b.c", "Tue")
    assert facts.carrier == () and facts.legacy is None


def test_carrier_headers_count_only_when_the_dialplan_says_the_trunk_is_trusted() -> None:
    trusted = call_facts(call_text(carrier=(PASSED_A, "", "")))
    assert trusted.carrier == (PASSED_A,)
    # The same header without the dialplan's own fact: never read.
    untrusted = call_text().replace("&end=1", f"&pai={b64(PASSED_A)}&end=1")
    assert call_facts(untrusted).carrier == ()
    assert call_facts(untrusted.replace("&pai=", "&trusted=no&pai=")).carrier == ()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "start with v=2"),
        ("ext=PTIwMQ==&end=1", "start with v=2"),
        ("v=2&ext=PTIwMQ==", "end with end=1"),  # cut short by Asterisk's 8 KB buffer
        ("v=2&ext=PTIwMQ==&ext=PTIwMg==&end=1", "ext given twice"),
        ("v=2&ext=PTIwMQ==&trusted&end=1", "not key=value"),
        ("v=2&" + "x=1&" * 5000 + "end=1", "longer than"),
    ],
)
def test_anything_but_the_dialplans_string_is_refused(text: str, why: str) -> None:
    with pytest.raises(Malformed, match=why):
        fields(text)


def test_unreadable_facts_are_screened_on_the_channel_alone() -> None:
    facts = read_call("v=2&ext=PTIwMQ==", (), "201")
    assert (facts.dialled, facts.identity, facts.carrier) == ("201", "", ())
    assert facts.legacy is not None and "cut short" in facts.legacy


@given(st.text(max_size=200))
def test_any_caller_id_name_or_header_arrives_exactly(value: str) -> None:
    # Whatever the far end sends (commas, quotes, "):", "%29", newlines): the app sees
    # what Asterisk has, and nothing moves.
    value = value.replace("\x00", "")
    facts = call_facts(call_text(cid=value, name=value, carrier=(value, value, "")))
    assert (facts.caller, facts.name) == (value, value)
    assert facts.carrier == ((value, value) if value else ())


@pytest.mark.parametrize(
    ("dialled", "extension"),
    [
        ("201", "201"),
        ("+15551234567", "+15551234567"),
        ("s", "s"),
        ("*60", "*60"),
        ("+15551234567;npdi;rn=+15559990000", "+15551234567"),  # RFC 4694 user options
        ("206,,,,PTxzaXA6MT4=", None),  # the argument shift
        ("201):0,lbl", None),
        ("201\nagi_arg_9: x", None),
        ('201"', None),
        ("2 01", None),
        ("", None),
        ("1" * 33, None),
    ],
)
def test_a_dialled_number_is_an_extension_or_refused(dialled: str, extension: str | None) -> None:
    assert dialled_extension(dialled) == extension


@given(st.text(max_size=40))
def test_no_extension_holds_a_character_that_can_shift_an_argument(dialled: str) -> None:
    extension = dialled_extension(dialled)
    if extension is not None:
        assert not set(extension) & set(',"\\()[]{}$:| \t\r\n\x00')


# -- through the ARI door -------------------------------------------------------------------


UNVERIFIED_REJECTED = Rules(policies=[Policy(1, PolicyKind.UNVERIFIED, Action.REJECT, 608)])


def screen(args: tuple[str, ...], exten: str) -> tuple[RecordingAri, CallRecord]:
    ari, log = RecordingAri(), RecordingLog()
    app = build(ari, lambda *a: UNVERIFIED_REJECTED, log)
    start = StasisStart("chan-1", "PJSIP/trunk-1", "+15550001111", "", exten, args)
    asyncio.run(app.screen(start))
    (row,) = log.rows
    return ari, row


def test_a_trusted_carriers_verstat_passes_an_unverified_policy() -> None:
    ari, row = screen(("call", call_text("206", carrier=(PASSED_A, "", ""))), "206")
    assert ari.calls == [("chan-1", None, None)]
    assert row.verification == "verstat TN-Validation-Passed-A"


def test_a_comma_in_the_dialled_number_cannot_forge_a_carrier_verdict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The INVITE, through an older dialplan: Stasis(screening,${EXTEN},...) with
    # EXTEN = 206,,,,<base64 of a verstat "Passed A"> from an untrusted trunk. The app used
    # to read the fifth argument as a trusted carrier header and let the call ring.
    forged = "=<sip:1;verstat=TN-Validation-Passed-A@x>"
    exten = "206,,,," + base64.b64encode(forged.encode()).decode()
    args: Any = ("206", "", "", "", exten.split(",")[-1], "allowed_not_screened", "PQ==", "PQ==")
    ari, row = screen(args, exten)
    assert ari.calls == [("chan-1", "screening-reject", "608")]
    assert row.verification is None and row.rule_kind == "not-an-extension"
    assert "arguments of an older screening" in caplog.text
