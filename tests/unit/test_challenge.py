"""The early-media challenge without Asterisk: what the core decides, what the caller's
answer means, and what the ARI door does at each step (the sandbox tests place real calls)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

import pytest

from screening.asterisk.ari import AriClient, StasisStart
from screening.asterisk.dialplan import (
    CHALLENGE_CONTEXT,
    CHALLENGE_RUN_CONTEXT,
    CHALLENGE_VARIABLE,
    REJECT_CONTEXT,
    challenge_answer,
    legacy_answer,
)
from screening.asterisk.stasis import ScreeningApp
from screening.config import Config
from screening.core.challenge import CHALLENGE_SOURCE, Answer, Outcome, Settings, judge
from screening.core.decision import (
    Action,
    Decision,
    DndWindow,
    Entry,
    IncomingCall,
    Policy,
    PolicyKind,
    Rules,
    decide,
)
from screening.core.identity import Status, Verification
from screening.service import screener as screener_module
from screening.service.features import FeatureCodes
from screening.service.screener import Call, Screener
from screening.store.calllog import CallRecord
from tests.dialplan_strings import call_text, report_text

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CALLER = "+15551234567"
CHALLENGE_UNVERIFIED = Policy(9, PolicyKind.UNVERIFIED, Action.CHALLENGE, None)
DND_ALL_DAY = DndWindow(7, "201", frozenset(range(7)), time(0, 0), time(0, 0), "UTC")
PASSED_ENTRY = Entry(40, "allow", CALLER, False, "201", source=CHALLENGE_SOURCE)


def call(caller: str | None = CALLER, v: Verification | None = None) -> IncomingCall:
    if v is None:
        return IncomingCall(caller or "anonymous", caller, "201")
    return IncomingCall(caller or "anonymous", caller, "201", verification=v)


# -- the core -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "asked", "outcome"),
    [
        (Answer("4", "OK"), "4", Outcome.PASSED),
        (Answer("7", "OK"), "4", Outcome.WRONG_DIGIT),
        (Answer("*", "OK"), "4", Outcome.WRONG_DIGIT),
        (Answer("", "TIMEOUT"), "4", Outcome.TIMED_OUT),
        (Answer("", "OK"), "4", Outcome.TIMED_OUT),  # Read() ended on silence
        (Answer("", "HANGUP"), "4", Outcome.ABANDONED),
        (Answer("", "ERROR"), "4", Outcome.FAILED),  # our side: the call rings
        (Answer("", "TIMEOUT"), "", Outcome.FAILED),  # no digit was asked for
        (Answer("4", "OK"), "44", Outcome.FAILED),
    ],
)
def test_the_answer_is_judged_against_the_digit_asked_for(
    answer: Answer, asked: str, outcome: Outcome
) -> None:
    assert judge(answer, asked) is outcome


def test_a_challenge_policy_challenges_instead_of_rejecting() -> None:
    d = decide(call(), Rules(policies=[CHALLENGE_UNVERIFIED]), NOW)
    assert (d.action, d.sip_code, d.rule_kind, d.policy) == (
        Action.CHALLENGE,
        None,
        "policy",
        PolicyKind.UNVERIFIED,
    )


def test_allow_entries_are_never_challenged() -> None:
    allow = Entry(1, "allow", CALLER, False)
    d = decide(call(), Rules(allow=[allow], policies=[CHALLENGE_UNVERIFIED]), NOW)
    assert (d.action, d.rule_kind) == (Action.CONTINUE, "allow")


def test_dnd_rejects_without_a_challenge_first() -> None:
    d = decide(call(), Rules(policies=[CHALLENGE_UNVERIFIED], dnd=[DND_ALL_DAY]), NOW)
    assert (d.action, d.sip_code, d.rule_kind) == (Action.REJECT, 608, "dnd")


def test_the_first_policy_in_order_decides_between_challenge_and_reject() -> None:
    anonymous_challenged = Policy(3, PolicyKind.ANONYMOUS, Action.CHALLENGE, None)
    unverified_rejected = Policy(4, PolicyKind.UNVERIFIED, Action.REJECT, 608)
    rules = Rules(policies=[anonymous_challenged, unverified_rejected])
    withheld = IncomingCall("anonymous", None, "201", withheld=True)
    assert decide(withheld, rules, NOW).action is Action.CHALLENGE
    assert decide(call(), rules, NOW).action is Action.REJECT


def test_an_extension_can_switch_a_global_challenge_off() -> None:
    off = Policy(10, PolicyKind.UNVERIFIED, Action.CONTINUE, None, "201")
    d = decide(call(), Rules(policies=[CHALLENGE_UNVERIFIED, off]), NOW)
    assert (d.action, d.rule_kind) == (Action.CONTINUE, None)


def test_a_passed_caller_is_not_challenged_again() -> None:
    d = decide(call(), Rules(allow=[PASSED_ENTRY], policies=[CHALLENGE_UNVERIFIED]), NOW)
    assert (d.action, d.rule_kind, d.rule_id) == (Action.CONTINUE, "allow", 40)


def test_a_passed_caller_is_still_blocked_and_still_meets_dnd() -> None:
    block = Entry(2, "block", CALLER, False, None, 607)
    blocked = decide(call(), Rules(allow=[PASSED_ENTRY], block=[block]), NOW)
    assert (blocked.action, blocked.sip_code) == (Action.REJECT, 607)
    dnd = decide(call(), Rules(allow=[PASSED_ENTRY], dnd=[DND_ALL_DAY]), NOW)
    assert (dnd.action, dnd.rule_kind) == (Action.REJECT, "dnd")


def test_a_passed_entry_does_not_help_a_caller_whose_verification_failed() -> None:
    failed = Verification(Status.FAILED, "A", "signature_validation", "identity")
    rules = Rules(
        allow=[PASSED_ENTRY],
        policies=[Policy(5, PolicyKind.FAILED, Action.CHALLENGE, None)],
    )
    assert decide(call(v=failed), rules, NOW).action is Action.CHALLENGE


def test_an_expired_passed_entry_means_a_new_challenge() -> None:
    old = Entry(
        40, "allow", CALLER, False, "201", expires_at=NOW - timedelta(1), source=CHALLENGE_SOURCE
    )
    rules = Rules(allow=[old], policies=[CHALLENGE_UNVERIFIED])
    assert decide(call(), rules, NOW).action is Action.CHALLENGE


def test_the_report_is_read_from_the_dialplans_string() -> None:
    assert challenge_answer(report_text("OK", "4")) == ("201", Answer("4", "OK"))
    assert challenge_answer(report_text("TIMEOUT", "")) == ("201", Answer("", "TIMEOUT"))
    # Cut short, or not ours: judged failed, and the call rings.
    assert judge(challenge_answer("v=2&status=OK&pressed=PTQ=")[1], "4") is Outcome.FAILED
    assert judge(challenge_answer("")[1], "4") is Outcome.FAILED


def test_an_older_dialplans_report_names_a_digit_that_is_not_read() -> None:
    # EXT, EXPECTED, READSTATUS, PRESSED: EXPECTED is the report's word, not ours.
    assert legacy_answer(["201", "9", "OK", "9"]) == ("201", Answer("9", "OK"))
    assert legacy_answer(["201", "4", "TIMEOUT"]) == ("201", Answer("", "TIMEOUT"))


# -- the ARI door ---------------------------------------------------------------------------


class ChallengeAri:
    """Records every REST call the door makes."""

    def __init__(self, fail_variable: bool = False, dialplan: str = "1") -> None:
        self.requests: list[tuple[Any, ...]] = []
        self.fail_variable = fail_variable
        self.dialplan = dialplan  # DIALPLAN_EXISTS of the challenge

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        self.requests.append(("get", channel_id, name))
        return self.dialplan

    async def continue_in_dialplan(
        self, channel_id: str, context: str | None = None, extension: str | None = None
    ) -> bool:
        self.requests.append(("continue", channel_id, context, extension))
        return True

    async def set_variable(self, channel_id: str, name: str, value: str) -> bool:
        if self.fail_variable:
            raise RuntimeError("HTTP 500")
        self.requests.append(("variable", channel_id, name, value))
        return True

    async def watch(self, channel_id: str, on: bool = True) -> None:
        self.requests.append(("watch" if on else "unwatch", channel_id))

    async def events(self, on_connect: Any = None) -> AsyncIterator[dict[str, Any]]:
        await asyncio.Event().wait()  # connected, and quiet
        yield {}


class Rows:
    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        self.rows.append(record)


class Remembered:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, datetime]] = []

    async def __call__(self, caller: str, extension: str, until: datetime) -> None:
        self.entries.append((caller, extension, until))


async def _flushed() -> None:
    pass


def door(
    ari: ChallengeAri, settings: Settings | None = None
) -> tuple[ScreeningApp, Rows, Remembered]:
    rows, remembered = Rows(), Remembered()
    config = Config(challenge=settings or Settings())
    screener = Screener(
        config,
        lambda *a: Rules(policies=[CHALLENGE_UNVERIFIED]),
        rows,
        clock=lambda: NOW,
        remember=remembered,
        digits=lambda: "4",
    )
    features = FeatureCodes(None, _flushed, clock=lambda: NOW)
    app = ScreeningApp(cast(AriClient, ari), screener, features, config.challenge)
    return app, rows, remembered


def first(caller: str = "5551234567") -> StasisStart:
    args = ("call", call_text("201", caller))
    return StasisStart("chan-1", "PJSIP/trunk-1", caller, "", "201", args)


def report(status: str, pressed: str, channel: str = "chan-1") -> StasisStart:
    args = ("challenge", report_text(status, pressed))
    return StasisStart(channel, "PJSIP/trunk-1", "5551234567", "", "s", args, CHALLENGE_RUN_CONTEXT)


def test_a_challenged_call_is_watched_told_its_digit_and_sent_to_the_challenge() -> None:
    ari = ChallengeAri()
    app, rows, _ = door(ari)
    asyncio.run(app.screen(first()))
    assert ari.requests == [
        ("get", "chan-1", "DIALPLAN_EXISTS(screening-challenge-run,s,1)"),
        ("watch", "chan-1"),
        ("variable", "chan-1", CHALLENGE_VARIABLE, "4,8,to-call-this-number&vm-press"),
        ("continue", "chan-1", CHALLENGE_CONTEXT, "201"),
    ]
    assert rows.rows == []  # logged once the outcome is known


def test_the_right_digit_rings_and_the_caller_is_remembered_for_30_days() -> None:
    ari = ChallengeAri()
    app, rows, remembered = door(ari)

    async def scenario() -> None:
        await app.screen(first())
        await app.challenge(report("OK", "4"))

    asyncio.run(scenario())
    assert ari.requests[-2:] == [("continue", "chan-1", None, None), ("unwatch", "chan-1")]
    (row,) = rows.rows
    assert (row.decision, row.sip_code, row.challenge, row.policy) == (
        "allowed",
        None,
        "passed",
        "unverified",
    )
    assert "challenge passed" in row.reason
    assert remembered.entries == [(CALLER, "201", NOW + timedelta(days=30))]


@pytest.mark.parametrize(
    ("status", "pressed", "outcome"),
    [("OK", "7", "wrong-digit"), ("TIMEOUT", "", "timed-out")],
)
def test_a_wrong_digit_or_none_is_refused_with_608(status: str, pressed: str, outcome: str) -> None:
    ari = ChallengeAri()
    app, rows, remembered = door(ari)

    async def scenario() -> None:
        await app.screen(first())
        await app.challenge(report(status, pressed))

    asyncio.run(scenario())
    assert ("continue", "chan-1", REJECT_CONTEXT, "608") in ari.requests
    (row,) = rows.rows
    assert (row.decision, row.sip_code, row.challenge) == ("rejected", 608, outcome)
    assert remembered.entries == []


def test_the_refusal_code_and_the_memory_are_settings() -> None:
    ari = ChallengeAri()
    app, rows, remembered = door(ari, Settings(sip_code=607, remember_days=0, timeout_s=5))

    async def scenario() -> None:
        await app.screen(first())
        await app.challenge(report("TIMEOUT", ""))
        await app.screen(first())
        await app.challenge(report("OK", "4"))

    asyncio.run(scenario())
    assert ("variable", "chan-1", CHALLENGE_VARIABLE, "4,5,to-call-this-number&vm-press") in (
        ari.requests
    )
    assert ("continue", "chan-1", REJECT_CONTEXT, "607") in ari.requests
    assert [r.challenge for r in rows.rows] == ["timed-out", "passed"]
    assert remembered.entries == []  # remember_days = 0


def test_a_hang_up_during_the_challenge_is_logged_abandoned() -> None:
    ari = ChallengeAri()
    app, rows, _ = door(ari)

    async def scenario() -> None:
        await app.screen(first())
        events = [{"type": "ChannelDestroyed", "channel": {"id": "chan-1"}}]

        async def stream() -> Any:
            for e in events:
                yield e

        await app._read(stream())

    asyncio.run(scenario())
    (row,) = rows.rows
    assert (row.decision, row.challenge, row.sip_code) == ("abandoned", "abandoned", None)


def test_a_report_for_no_challenge_of_ours_rings_and_leaves_no_allow_entry() -> None:
    # The app restarted while the caller listened to the prompt, or a report was forged:
    # either way it proves nothing. It used to be judged on its own digits (and a passed
    # one left a 30-day allow entry for any caller and extension).
    ari = ChallengeAri()
    app, rows, remembered = door(ari)
    asyncio.run(app.challenge(report("OK", "4")))
    assert ("continue", "chan-1", None, None) in ari.requests
    (row,) = rows.rows
    assert (row.decision, row.rule_kind, row.challenge) == ("allowed", "error", "failed")
    assert remembered.entries == []


def test_a_report_for_another_channel_does_not_answer_a_pending_challenge() -> None:
    ari = ChallengeAri()
    app, _rows, remembered = door(ari)

    async def scenario() -> None:
        await app.screen(first())
        await app.challenge(report("OK", "4", channel="chan-2"))

    asyncio.run(scenario())
    assert remembered.entries == []
    assert app._screener.challenged_now() == 1  # chan-1 still waits for its own answer


def test_an_old_report_naming_its_own_digit_does_not_pass() -> None:
    # An older dialplan's report said which digit was asked for; pressing the digit it
    # names used to pass. Only the digit the app chose (4) counts.
    ari = ChallengeAri()
    app, rows, remembered = door(ari)
    old = StasisStart(
        "chan-1",
        "PJSIP/trunk-1",
        "5551234567",
        "",
        "s",
        ("challenge", "201", "9", "OK", "9"),
        CHALLENGE_RUN_CONTEXT,
    )

    async def scenario() -> None:
        await app.screen(first())
        await app.challenge(old)

    asyncio.run(scenario())
    (row,) = rows.rows
    assert (row.decision, row.challenge) == ("rejected", "wrong-digit")
    assert remembered.entries == []


def test_a_challenge_that_cannot_be_set_up_rings_unscreened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ari = ChallengeAri(fail_variable=True)
    app, rows, _ = door(ari)
    asyncio.run(app.screen(first()))
    assert ari.requests[-1] == ("continue", "chan-1", None, None)
    (row,) = rows.rows
    assert (row.decision, row.rule_kind) == ("allowed", "error")
    assert "could not challenge channel chan-1" in caplog.text


def test_a_stopping_app_stops_watching_the_callers_in_the_challenge() -> None:
    # Asterisk would otherwise keep listing the app as registered after it is gone.
    ari = ChallengeAri()
    app, _, _ = door(ari)

    async def scenario() -> None:
        await app.screen(first())
        stop = asyncio.Event()
        stop.set()
        await app.run(stop)

    asyncio.run(scenario())
    assert ari.requests[-1] == ("unwatch", "chan-1")


def test_an_old_dialplan_without_the_challenge_lets_the_call_ring(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A context that is not there would make Asterisk hang the caller up.
    ari = ChallengeAri(dialplan="0")
    app, rows, _ = door(ari)

    async def scenario() -> None:
        await app.screen(first())
        await app.screen(first("5551234568"))

    asyncio.run(scenario())
    sent = [r for r in ari.requests if r[0] == "continue"]
    assert sent == [("continue", "chan-1", None, None)] * 2
    assert [(r.decision, r.rule_kind) for r in rows.rows] == [("allowed", "error")] * 2
    assert caplog.text.count("the dialplan has no [screening-challenge-run]") == 1
    assert [r[0] for r in ari.requests].count("get") == 2  # asked again after a miss


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def challenger() -> tuple[Screener, Rows, Ticks]:
    rows, ticks = Rows(), Ticks()
    rules = Rules(policies=[CHALLENGE_UNVERIFIED])
    screener = Screener(Config(), lambda *a: rules, rows, clock=lambda: NOW, ticks=ticks)
    return screener, rows, ticks


async def _acted(decision: Decision) -> Decision:
    return decision


def challenge_calls(screener: Screener, ids: list[str]) -> None:
    async def all_of_them() -> None:
        for n, call_id in enumerate(ids):
            await screener.screen(Call(call_id, f"+1555{n:07d}", "201", "agi"), _acted)

    asyncio.run(all_of_them())


def test_challenges_never_reported_on_are_forgotten_whatever_ids_arrive() -> None:
    # One id challenged again every minute kept its first place in the table with a new
    # start time, and every stale challenge behind it stayed: 6,001 after an hour.
    screener, rows, ticks = challenger()
    for minute in range(60):
        ticks.now = minute * 60.0
        challenge_calls(screener, ["shield"] + [f"{minute}.{i}" for i in range(100)])
    waited = Settings().timeout_s + screener_module.CHALLENGE_GRACE_S
    assert screener.challenged_now() <= 101 * (waited // 60 + 2)
    # Each one forgotten is logged, as a call that went on (fail open).
    assert len(rows.rows) == 60 * 101 - screener.challenged_now()
    assert {r.challenge for r in rows.rows} == {Outcome.FAILED.value}
    screener.close()


def test_the_challenge_table_has_a_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(screener_module, "MAX_CHALLENGES", 50)
    screener, rows, _ = challenger()
    challenge_calls(screener, [f"c{i}" for i in range(120)])
    assert screener.challenged_now() == 50
    assert [r.channel_id for r in rows.rows] == [f"c{i}" for i in range(70)]  # oldest first
    screener.close()


def test_a_channel_challenged_twice_ends_its_first_challenge() -> None:
    screener, rows, _ = challenger()
    challenge_calls(screener, ["same", "same"])
    assert screener.challenged_now() == 1
    assert [(r.channel_id, r.challenge) for r in rows.rows] == [("same", Outcome.FAILED.value)]
    screener.close()
