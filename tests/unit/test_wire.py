"""Which rejection goes on the wire for which verdict (core.wire), and how a door hands its
header value to the dialplan (asterisk.dialplan.rejection)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from screening import config
from screening.asterisk import agi
from screening.asterisk.dialplan import Rejection, rejection
from screening.core.decision import Action, Decision, PolicyKind
from screening.core.errors import ConfigError
from screening.core.wire import Settings, blocked_reason, wire

CONTACTS = Settings(
    url="https://example.net/unblock", phone="+15550001111", email="unblock@example.net"
)
JCARD = "https://pbx.example.net/redress/jcard"


def verdict(code: int, kind: str, policy: PolicyKind | None = None) -> Decision:
    return Decision(Action.REJECT, code, kind, 1, "test", policy=policy)


def test_without_settings_a_verdict_goes_out_as_its_own_code_with_cause_21() -> None:
    for code in (607, 608):
        sent = wire(verdict(code, "block"), Settings())
        assert (sent.code, sent.call_info) == (code, None)
        assert sent.reason.startswith("Q.850;cause=21")


def test_the_jcard_rides_on_608_only_unless_the_admin_chose_607_too() -> None:
    settings = Settings(jcard_url=JCARD)
    assert wire(verdict(608, "policy"), settings).call_info == f"<{JCARD}>;purpose=jwscard"
    assert wire(verdict(607, "block"), settings).call_info is None
    both = Settings(jcard_url=JCARD, redress_on=frozenset({"607", "608"}))
    assert wire(verdict(607, "block"), both).call_info is not None
    none = Settings(jcard_url=JCARD, redress_on=frozenset())
    assert wire(verdict(608, "dnd"), none).call_info is None


def test_the_admin_can_choose_the_rules_whose_rejections_carry_the_jcard() -> None:
    kinds = config.load(
        {"SCREENING_REDRESS_JCARD_URL": JCARD, "SCREENING_REDRESS_ON": "policy, reputation"}
    ).wire
    assert wire(verdict(607, "policy", PolicyKind.ANONYMOUS), kinds).call_info is not None
    assert wire(verdict(607, "reputation"), kinds).call_info is not None
    # Not listed by kind, and 608 not listed as a code: no jCard.
    assert wire(verdict(608, "dnd"), kinds).call_info is None
    assert wire(verdict(607, "block"), kinds).call_info is None


@pytest.mark.parametrize(
    "kind,policy,blocked",
    [
        ("reputation", None, True),
        ("policy", PolicyKind.UNVERIFIED, True),
        ("policy", PolicyKind.ANONYMOUS, True),
        # The callee's own choices are no analytics: their code stays.
        ("policy", PolicyKind.CONTACTS_ONLY, False),
        ("block", None, False),
        ("name-block", None, False),
        ("dnd", None, False),
        ("manual-dnd", None, False),
    ],
)
def test_provider_mode_makes_only_analytics_verdicts_603_plus(
    kind: str, policy: PolicyKind | None, blocked: bool
) -> None:
    settings = Settings(provider_mode=True, url="https://example.net/unblock")
    sent = wire(verdict(608, kind, policy), settings)
    assert (sent.code == 603) is blocked
    assert sent.phrase == ("Network Blocked" if blocked else "Rejected")


def test_603_plus_names_every_redress_contact_inside_its_text_then_the_location() -> None:
    reason = blocked_reason(CONTACTS)
    assert reason == (
        'SIP;cause=603;text="v=analytics1;url=https://example.net/unblock;'
        'tel=+15550001111;email=unblock@example.net";location=RLN'
    )
    only_phone = Settings(phone="+15550001111", location="RPN")
    assert (
        blocked_reason(only_phone)
        == 'SIP;cause=603;text="v=analytics1;tel=+15550001111";location=RPN'
    )


def test_a_door_rejects_to_the_verdicts_code_and_says_more_in_one_base64_variable() -> None:
    """The extension is always 607 or 608, as every dialplan screening shipped knows it: an
    older one still rejects when the app has more to say, with the code alone."""
    plan = rejection(verdict(608, "policy"), Settings(jcard_url=JCARD))
    assert plan.extension == "608" and plan.more is not None
    variable, value = plan.more
    assert variable == "SCREENING_REDRESS"
    assert base64.b64decode(value).decode() == f"<{JCARD}>;purpose=jwscard"
    assert agi.set_expression("SCREENING_REDRESS", value).startswith("SET(")
    provider = Settings(
        provider_mode=True, url=CONTACTS.url, phone=CONTACTS.phone, email=CONTACTS.email
    )
    blocked = rejection(verdict(608, "reputation"), provider)
    assert blocked.extension == "608" and blocked.more is not None
    variable, value = blocked.more
    assert variable == "SCREENING_BLOCKED"
    assert base64.b64decode(value).decode() == blocked_reason(provider)
    assert rejection(verdict(607, "block"), provider) == Rejection("607")


def test_an_agi_value_that_is_neither_plain_nor_base64_is_refused() -> None:
    for bad in ("a b", "x;y", "${EVIL}", "A" * 1400, "A" * 300 + "==="):
        with pytest.raises(ValueError):
            agi.set_expression("SCREENING_REDRESS", bad)


@pytest.mark.parametrize(
    "variable,value,expected",
    [
        ("SCREENING_REDRESS_URL", "http://example.net/", "https://"),
        ("SCREENING_REDRESS_URL", 'https://example.net/"x', "without spaces, quotes"),
        ("SCREENING_REDRESS_URL", "https://example.net/a;b", "without spaces, quotes"),
        ("SCREENING_REDRESS_URL", "https://example.net/" + "a" * 300, "at most 256"),
        ("SCREENING_REDRESS_JCARD_URL", "https://x/ y", "without spaces"),
        ("SCREENING_REDRESS_PHONE", "5551234", "E.164"),
        ("SCREENING_REDRESS_EMAIL", "no-at-sign", "email address"),
        ("SCREENING_REDRESS_NAME", "two\nlines", "one line"),
        ("SCREENING_REDRESS_ON", "603", "codes (607, 608) and rule kinds"),
        ("SCREENING_REDRESS_ON", "608,allow", "codes (607, 608) and rule kinds"),
        ("SCREENING_SIP_BLOCKED_LOCATION", "XX", "RFC 8606"),
        ("SCREENING_SIP_PROVIDER_MODE", "yes", "where to seek redress"),
    ],
)
def test_a_wire_setting_that_could_break_a_header_stops_the_start_naming_it(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as e:
        config.load({variable: value})
    assert variable in str(e.value) and expected in str(e.value)


def test_provider_mode_with_a_contact_loads() -> None:
    loaded = config.load(
        {"SCREENING_SIP_PROVIDER_MODE": "yes", "SCREENING_REDRESS_PHONE": "+1 555-000-1111"}
    )
    assert loaded.wire.provider_mode and loaded.wire.phone == "+15550001111"


def test_the_longest_values_the_settings_take_fit_the_module_and_an_agi_value() -> None:
    """The settings' bounds, the AGI value's and the module's C bounds agree: a value the
    app sends is never cut or refused on the way."""
    source = (
        Path(__file__).resolve().parents[2] / "asterisk-module" / "res_screening.c"
    ).read_text()
    bounds = dict(re.findall(r"#define (MAX_REASON|MAX_CALL_INFO) (\d+)", source))
    assert int(bounds["MAX_REASON"]) == agi.MAX_HEADER_VALUE
    longest = config.load(
        {
            "SCREENING_SIP_PROVIDER_MODE": "yes",
            "SCREENING_REDRESS_URL": "https://" + "a" * 248,
            "SCREENING_REDRESS_PHONE": "+123456789012345",
            "SCREENING_REDRESS_EMAIL": "a" * 64 + "@" + "b" * 185 + ".com",
            "SCREENING_REDRESS_JCARD_URL": "https://" + "c" * 248,
        }
    ).wire
    reason, call_info = blocked_reason(longest), f"<{longest.jcard_url}>;purpose=jwscard"
    assert len(reason) <= int(bounds["MAX_REASON"]) and len(call_info) <= int(
        bounds["MAX_CALL_INFO"]
    )
    for value in (reason, call_info):
        encoded = base64.b64encode(value.encode()).decode()
        assert agi.set_expression("SCREENING_BLOCKED", encoded)
    too_long = base64.b64encode(b"x" * (agi.MAX_HEADER_VALUE + 1)).decode()
    with pytest.raises(ValueError):
        agi.set_expression("SCREENING_BLOCKED", too_long)
