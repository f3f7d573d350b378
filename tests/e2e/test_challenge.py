"""The early-media challenge with real SIP and RTP: the caller receives the 183 and the
prompt's audio, presses (or not) the digit the app chose as an RFC 4733 event, and gets the
final response the app decided. The tests learn the digit from the `digit` field of the
app's JSON log line for the call; they never guess it."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DOOR_SOURCE, REPO, App, own_door
from tests.e2e.test_doctor import doctor, lines
from tests.sipprobe import CallResult, EarlyMedia, named_digit, place_call

#: The prompt ("To call this number, press N") lasts about 2.5 s: 125 packets of 20 ms.
PROMPT_PACKETS_AT_LEAST = 75
#: Early media, then the default 8 s time-out after the prompt.
FINAL_WITHIN = 20.0


@pytest.fixture
def challenged(door_app: App) -> Iterator[tuple[App, str]]:
    """`door_app` with unverified callers to a fresh extension challenged (all sandbox
    calls are unverified); the policy goes again afterwards."""
    ext = "27" + ("1" if door_app.door == "ari" else "2")
    r = door_app.cli("policy", "set", "--for", ext, "unverified", "--action", "challenge")
    assert r.code == 0, r.err
    try:
        yield door_app, ext
    finally:
        door_app.cli("policy", "remove", "--for", ext, "unverified")


def digit_in_log(app: App, caller: str, within: float = 5.0) -> str:
    """The digit the app asked `caller` for, from its log line."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        digit = named_digit(app.raw_log(), caller)
        if digit is not None:
            return digit
        time.sleep(0.05)
    pytest.fail(f"no challenge for {caller} in the app's log:\n{app.log()[-3000:]}")


def answer_with(app: App, caller: str, choose: Callable[[str], str]) -> EarlyMedia:
    """Listen to the first second of the prompt, then press choose(the digit asked for)."""

    async def press() -> str:
        digit = await asyncio.to_thread(digit_in_log, app, caller)
        return choose(digit)

    return EarlyMedia(press=press, listen=1.0)


def challenge_call(app: App, caller: str, ext: str, early: EarlyMedia) -> CallResult:
    return app.call(caller, ext, early=early, final_within=FINAL_WITHIN)


def row(app: App, caller: str, ext: str, at_least: int = 1) -> tuple[object, ...]:
    rows = app.rows(
        "SELECT decision, sip_code, challenge, policy, reason FROM call_log "
        f"WHERE caller = '{caller}' AND extension = '{ext}' ORDER BY id",
        at_least=at_least,
    )
    assert len(rows) >= at_least, f"no call-log row for {caller}:\n{app.log()[-3000:]}"
    return rows[-1]


def wrong(digit: str) -> str:
    return str((int(digit) + 1) % 10)


def test_the_right_digit_rings_and_the_caller_is_not_asked_again(
    challenged: tuple[App, str],
) -> None:
    app, ext = challenged
    caller = f"+1555{7100001 + (app.door == 'agi')}"
    result = challenge_call(app, caller, ext, answer_with(app, caller, lambda d: d))
    assert result.status_line == "200 OK", app.log()[-3000:]
    assert 183 in result.provisional
    assert result.early_rtp_packets >= 50, "the prompt's RTP did not arrive"
    assert result.pressed == digit_in_log(app, caller)
    decision, code, outcome, policy, reason = row(app, caller, ext)
    assert (decision, code, outcome, policy) == ("allowed", None, "passed", "unverified")
    assert "challenge passed" in str(reason)
    listed = app.cli("allow", "list", "--json")
    assert caller in listed.out and "challenge" in listed.out

    again = app.call(caller, ext, final_within=10)
    assert again.status_line == "200 OK"
    assert 183 not in again.provisional  # no prompt this time
    decision, _, outcome, _, reason = row(app, caller, ext, at_least=2)
    assert (decision, outcome) == ("allowed", None)
    assert "passed the challenge" in str(reason)


def test_a_wrong_digit_is_refused_with_608(challenged: tuple[App, str]) -> None:
    app, ext = challenged
    caller = f"+1555{7200001 + (app.door == 'agi')}"
    result = challenge_call(app, caller, ext, answer_with(app, caller, wrong))
    assert result.status_line == "608 Rejected", app.log()[-3000:]
    assert result.early_rtp_packets > 0
    decision, code, outcome, _, reason = row(app, caller, ext)
    assert (decision, code, outcome) == ("rejected", 608, "wrong-digit")
    assert "challenge refused" in str(reason)


def test_silence_is_refused_with_608_after_the_time_out(challenged: tuple[App, str]) -> None:
    app, ext = challenged
    caller = f"+1555{7300001 + (app.door == 'agi')}"
    result = challenge_call(app, caller, ext, EarlyMedia())  # listens, sends only silence
    assert result.status_line == "608 Rejected", app.log()[-3000:]
    assert result.early_rtp_packets >= PROMPT_PACKETS_AT_LEAST
    assert result.early_media_ms is not None
    # The whole prompt, then the 8 s time-out.
    assert result.elapsed_ms - result.early_media_ms >= 8000
    decision, code, outcome, _, _ = row(app, caller, ext)
    assert (decision, code, outcome) == ("rejected", 608, "timed-out")


def test_hanging_up_during_the_prompt_is_logged_abandoned(
    challenged: tuple[App, str], sandbox: dict[str, str]
) -> None:
    app, ext = challenged
    caller = f"+1555{7400001 + (app.door == 'agi')}"
    result = challenge_call(app, caller, ext, EarlyMedia(listen=1.0, hang_up=True))
    assert result.status_line == "487 Request Terminated"
    decision, code, outcome, _, reason = row(app, caller, ext)
    assert (decision, code, outcome) == ("abandoned", None, "abandoned")
    assert "hung up" in str(reason)
    with httpx.Client(
        base_url=f"{sandbox['SCREENING_ARI_URL']}/ari",
        auth=(sandbox["SCREENING_ARI_USER"], sandbox["SCREENING_ARI_PASSWORD"]),
        trust_env=False,
    ) as ari:
        assert ari.get("/applications/screening").json()["channel_ids"] == []
        assert ari.get("/channels").json() == []


def test_twenty_simultaneous_challenges_are_each_resolved(challenged: tuple[App, str]) -> None:
    app, ext = challenged
    base = 7500000 + 100 * (app.door == "agi")
    callers = [f"+1555{base + n:07d}" for n in range(20)]
    # Even callers press the digit they were asked for, odd ones a wrong one.
    plans = [
        answer_with(app, c, (lambda d: d) if n % 2 == 0 else wrong) for n, c in enumerate(callers)
    ]

    async def all_at_once() -> list[CallResult]:
        return await asyncio.gather(
            *(
                place_call(
                    ext,
                    c,
                    port=app.sip_port,
                    source=DOOR_SOURCE[app.door],
                    early=plan,
                    final_within=FINAL_WITHIN,
                )
                for c, plan in zip(callers, plans, strict=True)
            )
        )

    results = asyncio.run(all_at_once())
    got = [r.status_line for r in results]
    assert got == ["200 OK" if n % 2 == 0 else "608 Rejected" for n in range(20)], got
    assert all(r.early_rtp_packets > 0 for r in results)
    outcomes = [row(app, c, ext)[2] for c in callers]
    assert outcomes == ["passed" if n % 2 == 0 else "wrong-digit" for n in range(20)]
    stats = app.cli("stats", "--since", "1h")
    assert re.search(r"challenged \d+: \d+ passed, \d+ refused", stats.out), stats.out


@pytest.fixture(params=["ari", "agi"])
def killable(
    request: pytest.FixtureRequest, sandbox: dict[str, str], tmp_path: Path
) -> Iterator[App]:
    """A door of its own, in place of the shared one, that a test may kill."""
    with own_door(request, sandbox, tmp_path, request.param) as own:
        yield own


def test_the_call_still_rings_when_the_app_dies_during_the_challenge(killable: App) -> None:
    app = killable
    ext = "273" if app.door == "ari" else "274"
    assert app.cli("policy", "set", "--for", ext, "unverified", "--action", "challenge").code == 0
    caller = f"+1555{7600001 + (app.door == 'agi')}"

    async def die_then_stay_silent() -> str:
        await asyncio.to_thread(digit_in_log, app, caller)
        assert app.proc is not None
        app.proc.send_signal(signal.SIGKILL)  # no goodbye: as a crash
        await asyncio.to_thread(app.proc.wait, 5)
        return ""  # nobody is left to judge a digit

    early = EarlyMedia(press=die_then_stay_silent, listen=0.5)
    result = challenge_call(app, caller, ext, early)
    app.proc = None
    assert result.status_line == "200 OK"  # rang, unscreened: never lost
    assert result.early_rtp_packets > 0


def test_the_call_rings_when_the_app_freezes_during_the_challenge(killable: App) -> None:
    # Frozen (SIGSTOP), not dead: its socket stays open, and the dialplan's report of the
    # digit would wait for it for ever. After 3 s the call rings, unscreened.
    app = killable
    ext = "277" if app.door == "ari" else "278"
    assert app.cli("policy", "set", "--for", ext, "unverified", "--action", "challenge").code == 0
    caller = f"+1555{7800001 + (app.door == 'agi')}"

    async def freeze_then_press() -> str:
        digit = await asyncio.to_thread(digit_in_log, app, caller)
        assert app.proc is not None
        app.proc.send_signal(signal.SIGSTOP)
        return digit

    try:
        result = challenge_call(app, caller, ext, EarlyMedia(press=freeze_then_press, listen=0.5))
    finally:
        assert app.proc is not None
        app.proc.send_signal(signal.SIGCONT)
    assert result.status_line == "200 OK"  # rang: never held, never lost
    assert result.pressed


@pytest.fixture
def old_dialplan() -> Iterator[None]:
    """A PBX whose extensions.conf predates the challenge."""
    cli = [str(REPO / "scripts" / "sandbox"), "cli"]
    subprocess.run([*cli, "dialplan remove context screening-challenge-run"], check=True)
    try:
        yield
    finally:
        subprocess.run([*cli, "dialplan reload"], check=True, capture_output=True)


def test_without_the_challenge_in_the_dialplan_calls_ring_and_the_doctor_says_why(
    killable: App, old_dialplan: None
) -> None:
    app = killable  # a fresh door: it has not seen the challenge in the dialplan yet
    ext = "275" if app.door == "ari" else "276"
    assert app.cli("policy", "set", "--for", ext, "unverified", "--action", "challenge").code == 0
    caller = f"+1555{7700001 + (app.door == 'agi')}"
    result = app.call(caller, ext, final_within=10)
    assert result.status_line == "200 OK"  # never hung up by a missing context
    assert 183 not in result.provisional
    app.wait_log("the dialplan has no [screening-challenge-run]")
    decision, code, outcome, _, reason = row(app, caller, ext)
    assert (decision, code, outcome) == ("allowed", None, None)
    assert "no challenge in the dialplan" in str(reason)
    report = doctor(app)
    assert report.code == 1
    [fail] = [f for f in lines(report, "FAIL") if "screening-challenge-run" in f]
    assert "not in the dialplan" in fail
