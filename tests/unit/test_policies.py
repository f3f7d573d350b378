"""Identity in the decision core: policies, caller-name entries, and the written order
(allow entries, block entries, policies, DND), with no fixtures."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening.core.decision import (
    Action,
    DndWindow,
    Entry,
    IncomingCall,
    NameEntry,
    Policy,
    PolicyKind,
    Rules,
    decide,
)
from screening.core.identity import (
    UNVERIFIED,
    CarrierVerdict,
    Result,
    Status,
    Verification,
    Verstat,
    caller_name,
    verdict,
)
from screening.core.numbers import possible

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CALLER = "+15551234567"
PASSED_A = Verification(Status.PASSED, "A", "success", "identity")
PASSED_C = Verification(Status.PASSED, "C", "success", "identity")
FAILED = Verification(Status.FAILED, "A", "signature_validation", "identity")


def call(
    caller: str | None = CALLER,
    *,
    ext: str = "201",
    name: str = "",
    withheld: bool = False,
    possible: bool = True,
    v: Verification = UNVERIFIED,
) -> IncomingCall:
    raw = caller if caller is not None else "anonymous"
    return IncomingCall(raw, caller, ext, name, withheld, possible, v)


def policy(
    kind: PolicyKind, *, code: int | None = 608, ext: str | None = None, id: int = 50
) -> Policy:
    action = Action.REJECT if code else Action.CONTINUE
    return Policy(id, kind, action, code, ext)


ALLOW = Entry(100, "allow", CALLER, False)
BLOCK = Entry(1, "block", CALLER, False, None, 607)
DND_ALL_DAY = DndWindow(7, "201", frozenset(range(7)), time(0, 0), time(0, 0), "UTC")


def test_withheld_caller_is_rejected_with_608_under_the_anonymous_policy() -> None:
    d = decide(call(None, withheld=True), Rules(policies=[policy(PolicyKind.ANONYMOUS)]), NOW)
    assert (d.action, d.sip_code, d.rule_kind, d.policy) == (
        Action.REJECT,
        608,
        "policy",
        PolicyKind.ANONYMOUS,
    )
    assert "withheld" in d.reason


def test_withheld_caller_rings_without_the_policy() -> None:
    assert decide(call(None, withheld=True), Rules(), NOW).action is Action.CONTINUE


def test_admin_may_choose_607_for_a_policy() -> None:
    d = decide(
        call(None, withheld=True), Rules(policies=[policy(PolicyKind.ANONYMOUS, code=607)]), NOW
    )
    assert d.sip_code == 607


def test_extension_policy_beats_the_global_one_both_ways() -> None:
    glob = policy(PolicyKind.ANONYMOUS, id=1)
    off_for_201 = policy(PolicyKind.ANONYMOUS, code=None, ext="201", id=2)
    withheld = call(None, withheld=True)
    assert decide(withheld, Rules(policies=[glob, off_for_201]), NOW).action is Action.CONTINUE
    assert decide(
        call(None, withheld=True, ext="202"), Rules(policies=[glob, off_for_201]), NOW
    ).rejected
    only_202 = policy(PolicyKind.ANONYMOUS, ext="202", code=607)
    assert decide(withheld, Rules(policies=[only_202]), NOW).action is Action.CONTINUE


def test_invalid_number_policy() -> None:
    rules = Rules(policies=[policy(PolicyKind.INVALID)])
    assert decide(call("+1555", possible=False), rules, NOW).rejected
    assert not decide(call(), rules, NOW).rejected
    # A withheld caller is the anonymous policy's, not "invalid".
    assert not decide(call(None, withheld=True, possible=False), rules, NOW).rejected


@pytest.mark.parametrize(
    ("kind", "verification", "rejected"),
    [
        (PolicyKind.FAILED, FAILED, True),
        (PolicyKind.FAILED, PASSED_A, False),
        (PolicyKind.FAILED, UNVERIFIED, False),
        (PolicyKind.UNVERIFIED, UNVERIFIED, True),
        (PolicyKind.UNVERIFIED, PASSED_C, False),
        (PolicyKind.UNVERIFIED, FAILED, False),
        (PolicyKind.BELOW_A, PASSED_A, False),
        (PolicyKind.BELOW_A, PASSED_C, True),
        (PolicyKind.BELOW_A, Verification(Status.PASSED, "B", "success", "identity"), True),
        (PolicyKind.BELOW_A, Verification(Status.PASSED, None, "verstat x", "carrier"), False),
        (PolicyKind.BELOW_B, Verification(Status.PASSED, "B", "success", "identity"), False),
        (PolicyKind.BELOW_B, PASSED_C, True),
    ],
)
def test_verification_policies(
    kind: PolicyKind, verification: Verification, rejected: bool
) -> None:
    d = decide(call(v=verification), Rules(policies=[policy(kind)]), NOW)
    assert d.rejected is rejected
    if rejected:
        assert (d.sip_code, d.policy) == (608, kind)
        assert verification.result in d.reason


def test_contacts_only_lets_allowed_callers_ring_and_rejects_strangers() -> None:
    rules = Rules(allow=[ALLOW], policies=[policy(PolicyKind.CONTACTS_ONLY, ext="201")])
    assert decide(call(), rules, NOW).rule_kind == "allow"
    stranger = decide(call("+15559999999"), rules, NOW)
    assert (stranger.sip_code, stranger.policy) == (608, PolicyKind.CONTACTS_ONLY)
    assert not decide(call("+15559999999", ext="202"), rules, NOW).rejected


def test_failed_verification_does_not_ride_on_an_allow_entry() -> None:
    rules = Rules(allow=[ALLOW], policies=[policy(PolicyKind.FAILED)])
    d = decide(call(v=FAILED), rules, NOW)
    assert (d.sip_code, d.policy) == (608, PolicyKind.FAILED)
    assert "allow #100" in d.reason and "ignored" in d.reason
    # Without a failed-verification policy the call is treated as a stranger's: DND applies.
    d = decide(call(v=FAILED), Rules(allow=[ALLOW], dnd=[DND_ALL_DAY]), NOW)
    assert (d.rule_kind, d.sip_code) == ("dnd", 608)
    assert decide(call(v=FAILED), Rules(allow=[ALLOW]), NOW).action is Action.CONTINUE


def test_order_allow_then_block_then_policies_then_dnd() -> None:
    everything = Rules(
        allow=[ALLOW], block=[BLOCK], policies=[policy(PolicyKind.UNVERIFIED)], dnd=[DND_ALL_DAY]
    )
    assert decide(call(), everything, NOW).rule_kind == "allow"
    no_allow = Rules(block=[BLOCK], policies=[policy(PolicyKind.UNVERIFIED)], dnd=[DND_ALL_DAY])
    assert decide(call(), no_allow, NOW).rule_kind == "block"
    no_block = Rules(policies=[policy(PolicyKind.UNVERIFIED)], dnd=[DND_ALL_DAY])
    assert decide(call(), no_block, NOW).rule_kind == "policy"
    assert decide(call(), Rules(dnd=[DND_ALL_DAY]), NOW).rule_kind == "dnd"


def test_policies_are_checked_in_their_written_order() -> None:
    both = Rules(
        policies=[policy(PolicyKind.UNVERIFIED, id=2), policy(PolicyKind.ANONYMOUS, id=1, code=607)]
    )
    d = decide(call(None, withheld=True), both, NOW)
    assert (d.policy, d.sip_code) == (PolicyKind.ANONYMOUS, 607)


def test_name_block_matches_a_glob_without_case_and_answers_607() -> None:
    spam = NameEntry(5, "block", "*spam*", None, 607)
    d = decide(call(name="Likely SPAM caller"), Rules(names=[spam]), NOW)
    assert (d.sip_code, d.rule_kind, d.rule_id) == (607, "name-block", 5)
    assert not decide(call(name="Alice"), Rules(names=[spam]), NOW).rejected
    # A name block also reaches a withheld caller.
    assert decide(call(None, withheld=True, name="spam"), Rules(names=[spam]), NOW).rejected


def test_name_allow_beats_policies_and_number_blocks_beat_name_blocks() -> None:
    friend = NameEntry(6, "allow", "dr. *", None)
    rules = Rules(names=[friend], policies=[policy(PolicyKind.ANONYMOUS)])
    assert decide(call(None, withheld=True, name="Dr. Who"), rules, NOW).rule_kind == "name-allow"
    spam = NameEntry(5, "block", "*", None, 608)
    assert decide(call(), Rules(block=[BLOCK], names=[spam]), NOW).rule_kind == "block"


def test_extension_name_entry_beats_a_global_one() -> None:
    glob = NameEntry(5, "block", "scam likely", None, 607)
    mine = NameEntry(7, "allow", "scam likely", "201")
    assert (
        decide(call(name="Scam Likely"), Rules(names=[glob, mine]), NOW).rule_kind == "name-allow"
    )
    assert decide(call(name="Scam Likely", ext="202"), Rules(names=[glob, mine]), NOW).rejected


def test_empty_name_matches_no_pattern() -> None:
    assert not decide(
        call(name=""), Rules(names=[NameEntry(5, "block", "*", None, 607)]), NOW
    ).rejected


@pytest.mark.parametrize(
    ("result", "carrier", "status", "source"),
    [
        (Result.SUCCESS, None, Status.PASSED, "identity"),
        (Result.SIGNATURE, CarrierVerdict(Verstat.PASSED, "A"), Status.FAILED, "identity"),
        (Result.CID_MISMATCH, None, Status.FAILED, "identity"),
        (Result.NO_IDENTITY, None, Status.NONE, "none"),
        # Our certificate fetch failing is not the caller's lie.
        (Result.CERT_RETRIEVAL, None, Status.NONE, "none"),
        (
            Result.NO_IDENTITY,
            CarrierVerdict(Verstat.FAILED, None, "TN-Validation-Failed"),
            Status.FAILED,
            "carrier",
        ),
        (Result.CERT_RETRIEVAL, CarrierVerdict(Verstat.PASSED, "B"), Status.PASSED, "carrier"),
        (Result.NO_IDENTITY, CarrierVerdict(Verstat.NONE, None), Status.NONE, "carrier"),
    ],
)
def test_one_verdict_from_identity_and_carrier(
    result: Result, carrier: CarrierVerdict | None, status: Status, source: str
) -> None:
    v = verdict(result, "A", carrier)
    assert (v.status, v.source) == (status, source)


@given(st.text(max_size=5000))
def test_caller_name_is_bounded_and_printable(raw: str) -> None:
    name = caller_name(raw)
    assert len(name) <= 128 and name.isprintable() and name == name.strip()


@given(st.text(max_size=300), st.text(alphabet="*?ab[]!", max_size=20))
def test_any_name_against_any_pattern_decides(name: str, pattern: str) -> None:
    d = decide(
        call(name=caller_name(name)), Rules(names=[NameEntry(1, "block", pattern, None, 607)]), NOW
    )
    assert d.action in (Action.CONTINUE, Action.REJECT)


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("+15551234567", True),
        ("5551234567", True),
        ("+1555", False),
        ("12", False),
        ("abc", False),
        ("+4930123456", True),
    ],
)
def test_possible_numbers(raw: str, ok: bool) -> None:
    assert possible(raw, "US") is ok
