"""The one place a call is decided: a call in, a decision out, one log line and one call-log
row. Doors (ARI, FastAGI) parse what Asterisk sends into a `Call`, ask `Screener.screen`,
and act; `screening check` uses the same pieces without the clock, threads or log."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from screening.config import Config
from screening.core.challenge import DIGITS, Answer, Outcome, describe, judge
from screening.core.decision import Action, Decision, IncomingCall, decide
from screening.core.identity import (
    UNVERIFIED,
    Destination,
    Result,
    Verification,
    caller_name,
    carrier_verdict,
    destination,
    verdict,
    withheld,
)
from screening.core.numbers import classify, dialled_extension
from screening.core.wire import wire
from screening.service.metrics import Metrics
from screening.store.calllog import CallRecord
from screening.store.engine import LOOKUP_THREADS
from screening.store.lookup import RulesLookup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """An incoming call as a door received it."""

    id: str  # the channel's id (ARI) or unique id (AGI), for the log
    caller: str  # the caller ID number as received, untrusted
    extension: str  # as dialled; the screener refuses one that is not a plausible extension
    door: str  # "ari" or "agi"
    # Who is really calling, as the dialplan passed it (asterisk.dialplan.call_facts);
    # all of it untrusted, from the far end.
    name: str = ""  # CALLERID(name)
    presentation: str = ""  # CALLERID(pres), e.g. allowed_not_screened, prohib
    identity: str = ""  # the raw Identity header (STIR/SHAKEN)
    date: str = ""  # the raw Date header
    carrier: tuple[str, ...] = ()  # a trusted trunk's headers that may carry verstat


class IdentityCheck(Protocol):
    """Checks an Identity header (stir.Verifier): (result, attestation)."""

    async def check(
        self, identity: str, date: str, caller: str, now: datetime, to: Destination | None = None
    ) -> tuple[Result, str | None]: ...


class CallLog(Protocol):
    """Where the screener leaves one row per call (store.writer.CallLogWriter)."""

    def add(self, record: CallRecord) -> None: ...


class Remember(Protocol):
    """Leaves a passed caller's allow entry for the extension (source "challenge")."""

    async def __call__(self, caller: str, extension: str, until: datetime) -> None: ...


#: What a door does with a decision: continue, reject or challenge the call, and return the
#: decision that really happened (a reject that failed is a call continued unscreened).
Act = Callable[[Decision], Awaitable[Decision]]

#: A challenge the dialplan has not reported on after this much longer than its prompt and
#: time-out is forgotten (the app was away when it ended, or missed the hang-up).
CHALLENGE_GRACE_S = 120.0
#: Calls in the challenge at once that the app remembers; the oldest is given up past it.
MAX_CHALLENGES = 10_000


@dataclass(frozen=True)
class _Challenge:
    """A call in the challenge: what was decided, kept until the dialplan reports back."""

    call: Call
    seen: IncomingCall
    decision: Decision  # the policy's, with the digit
    at: datetime
    decision_us: int
    started: float  # Screener's ticks (time.monotonic)


def incoming(
    caller: str,
    extension: str,
    region: str,
    *,
    name: str = "",
    presentation: str = "",
    verification: Verification = UNVERIFIED,
) -> IncomingCall:
    """The call as the decision core sees it: the caller normalised (None when unusable),
    whether it was withheld or cannot exist, its name, and who vouches for it."""
    number, is_possible = classify(caller, region)
    return IncomingCall(
        caller,
        number,
        extension,
        caller_name(name),
        withheld(caller, presentation),
        is_possible,
        verification,
    )


def check(lookup: RulesLookup, call: IncomingCall, at: datetime) -> Decision:
    """What the screener would decide for `call` at `at`: the same look-up, the same core."""
    return decide(call, lookup(call.caller, call.extension, at), at)


def failed_open(why: str) -> Decision:
    return Decision(Action.CONTINUE, None, "error", None, f"{why}; continued unscreened")


def not_an_extension(dialled: str) -> Decision:
    """A dialled number no extension can be: refused (608, an automated verdict) rather
    than screened against rules it could only fool. Our own dialplan answers such calls
    404 before they reach a door; this guards any other dialplan."""
    why = f"the dialled number {dialled[:40]!r} is not an extension"
    return Decision(Action.REJECT, 608, "not-an-extension", None, why)


class Screener:
    """Decides calls: look-ups on a fixed pool of threads under the decision time-out; any
    failure continues the call unscreened, with one warning per outage."""

    def __init__(
        self,
        config: Config,
        lookup: RulesLookup,
        call_log: CallLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        identity: IdentityCheck | None = None,
        metrics: Metrics | None = None,
        remember: Remember | None = None,
        digits: Callable[[], str] = lambda: secrets.choice(DIGITS),
        ticks: Callable[[], float] = time.monotonic,  # how long challenges have waited
    ) -> None:
        self._config = config
        self._lookup = lookup
        self._call_log = call_log
        self._identity = identity
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._remember = remember
        self._digits = digits
        self._ticks = ticks
        self._lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="lookup")
        self._failing = False  # one warning per outage, not one per call
        self._challenges: dict[str, _Challenge] = {}  # call id -> in the challenge now

    def close(self) -> None:
        self._lookups.shutdown(wait=False, cancel_futures=True)

    async def warm_up(self, open_one: Callable[[threading.Barrier], None]) -> None:
        """Start every look-up thread now and run open_one on each at once (see
        store.lookup.prepares_connection). Never fatal: with the database away, calls pass
        unscreened and the first look-up that works opens what it needs."""
        all_open = threading.Barrier(LOOKUP_THREADS, timeout=5)

        def one() -> None:
            try:
                open_one(all_open)
            except BaseException:
                all_open.abort()  # the others stop waiting at once
                raise

        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(self._lookups, one) for _ in range(LOOKUP_THREADS)),
            return_exceptions=True,
        )
        errors = [r for r in results if r and not isinstance(r, threading.BrokenBarrierError)]
        if errors:
            log.warning("could not open the database at start: %s", errors[0])

    async def screen(self, call: Call, act: Act) -> Decision:
        """Decide `call`, let the door act on it, then log it. Returns what happened. A
        challenged call is logged when the dialplan reports its outcome (`answered`,
        `abandoned`)."""
        t0 = time.perf_counter()
        now = self._clock()
        extension = dialled_extension(call.extension)
        if extension is None:
            seen = incoming(call.caller, call.extension, self._config.default_region)
            decision = not_an_extension(call.extension)
        else:
            call = replace(call, extension=extension)
            seen, decision = await self._decide(call, now)
        if decision.challenged:
            decision = replace(decision, digit=self._digits())
        decision = await act(decision)
        elapsed_us = int((time.perf_counter() - t0) * 1_000_000)
        self._metrics.decision_seconds.labels(call.door).observe(elapsed_us / 1e6)
        if decision.challenged:
            self._forget_stale()
            self._hold(_Challenge(call, seen, decision, now, elapsed_us, self._ticks()))
            self._log(call, seen, decision, elapsed_us, "challenged", digit=decision.digit)
            return decision
        self._record(call, seen, decision, now, elapsed_us)
        return decision

    def challenged_now(self) -> int:
        """Calls in the challenge right now (for tests and the log on shutdown)."""
        return len(self._challenges)

    async def answered(self, call: Call, answer: Answer, act: Act) -> Decision:
        """The dialplan's report after the challenge's Read(): decide, let the door act,
        log one row for the whole call, and remember a caller who passed. The answer counts
        only for a challenge this screener started on that channel, and is judged against
        the digit it chose: a report for any other call (a restarted app's, or a forged
        one) makes the call ring and leaves nothing behind."""
        pending = self._challenges.pop(call.id, None)
        if pending is None or pending.call.door != call.door:
            return await self._unknown_answer(call, act)
        asked = pending.decision.digit or ""
        outcome = judge(answer, asked)
        d = pending.decision
        why = f"{d.reason}; {describe(outcome, answer, asked)}"
        if outcome.refused:
            code = self._config.challenge.sip_code
            final = Decision(Action.REJECT, code, d.rule_kind, d.rule_id, why, d.policy)
        else:
            # Passed, or failed on our side: the call rings (fail open).
            final = Decision(Action.CONTINUE, None, d.rule_kind, d.rule_id, why, d.policy)
        final = await act(final)
        if outcome is Outcome.PASSED and final.action is Action.CONTINUE:
            await self._remember_passed(pending)
        self._finish(pending, final, outcome)
        return final

    async def _unknown_answer(self, call: Call, act: Act) -> Decision:
        log.warning(
            "call %s: a challenge report, but no challenge of ours is pending for it (the app "
            "restarted mid-challenge, or the report is not the dialplan's); it rings, and "
            "nothing is remembered",
            call.id,
        )
        seen = incoming(call.caller, call.extension, self._config.default_region)
        final = await act(failed_open("no challenge of this app was pending for the report"))
        self._metrics.challenges.labels(Outcome.FAILED.value).inc()
        self._record(call, seen, final, self._clock(), 0, challenge=Outcome.FAILED)
        return final

    def abandoned(self, call_id: str) -> None:
        """The caller hung up during the challenge (the door saw the channel go)."""
        pending = self._challenges.pop(call_id, None)
        if pending is None:
            return
        why = f"{pending.decision.reason}; {describe(Outcome.ABANDONED, None)}"
        d = replace(pending.decision, action=Action.CONTINUE, reason=why)
        self._finish(pending, d, Outcome.ABANDONED)

    def _hold(self, challenge: _Challenge) -> None:
        """Remember a challenge until its report. The table stays in start order (the oldest
        first, which _forget_stale relies on) and under MAX_CHALLENGES, whatever ids a door
        sends: a second challenge for a channel ends its first one."""
        earlier = self._challenges.pop(challenge.call.id, None)
        if earlier is not None:
            self._give_up(earlier, "challenged again before its report came")
        while len(self._challenges) >= MAX_CHALLENGES:
            oldest = next(iter(self._challenges))
            self._give_up(self._challenges.pop(oldest), "too many calls in the challenge")
        self._challenges[challenge.call.id] = challenge

    def _forget_stale(self) -> None:
        """Challenges the dialplan never reported on (the app was away when they ended): one
        warning each, so the table stays as small as the calls in it."""
        settings = self._config.challenge
        limit = self._ticks() - (settings.timeout_s + CHALLENGE_GRACE_S)
        while self._challenges:
            call_id, oldest = next(iter(self._challenges.items()))
            if oldest.started >= limit:
                return
            del self._challenges[call_id]
            self._give_up(oldest, "no word from the dialplan since its challenge began")

    def _give_up(self, pending: _Challenge, why: str) -> None:
        """Log a challenge that will get no report as failed: the call went on (fail open)."""
        log.warning("call %s: %s; it went on without the app", pending.call.id, why)
        d = replace(pending.decision, action=Action.CONTINUE)
        self._finish(pending, d, Outcome.FAILED)

    async def _remember_passed(self, pending: _Challenge) -> None:
        days = self._config.challenge.remember_days
        caller = pending.seen.caller
        if self._remember is None or days == 0 or caller is None:
            return
        try:
            until = self._clock() + timedelta(days=days)
            await self._remember(caller, pending.call.extension, until)
        except Exception as e:
            # The call already rings; the caller is asked again next time.
            log.warning("could not remember %s passing the challenge: %s", caller, e)

    def _finish(self, pending: _Challenge, decision: Decision, outcome: Outcome) -> None:
        self._metrics.challenges.labels(outcome.value).inc()
        self._record(
            pending.call,
            pending.seen,
            decision,
            pending.at,
            pending.decision_us,
            challenge=outcome,
        )

    def _log(
        self,
        call: Call,
        seen: IncomingCall,
        decision: Decision,
        elapsed_us: int,
        outcome: str,
        digit: str | None = None,
    ) -> None:
        code = f" {decision.sip_code}" if decision.sip_code else ""
        sent = wire(decision, self._config.wire) if decision.rejected else None
        if sent is not None:
            code = f" {sent.describe(decision.sip_code)}"
        name = f", name {seen.name!r}" if seen.name else ""
        v = seen.verification
        # Who vouched for the number, unless the reason says it already (a policy on it).
        vouched = f"; {v.describe()}" if v.source != "none" else ""
        vouched = "" if vouched[2:] in decision.reason else vouched
        log.info(
            "call %s from %s (%r%s) to %s: %s%s, %s%s [%s %.1f ms]",
            call.id,
            seen.caller or "no caller ID",
            call.caller[:64],
            name,
            call.extension,
            f"{outcome} (press {digit})" if digit else outcome,
            code,
            decision.reason,
            vouched,
            call.door,
            elapsed_us / 1000,
            # For JSON log lines (log.format = "json"): the call's fields, no parsing needed.
            extra={
                "channel": call.id,
                "caller": seen.caller or call.caller[:64],
                "caller_id": call.caller[:64],  # as it came
                "extension": call.extension,
                "outcome": outcome,
                "sip_code": decision.sip_code,
                # What went on the wire, when not the verdict's code alone.
                **({"sent": sent.code, "redress": sent.carries_redress} if sent else {}),
                "rule": decision.rule_kind,
                "door": call.door,
                "ms": round(elapsed_us / 1000, 2),
                **({"digit": digit} if digit else {}),  # what a challenged caller must press
            },
        )

    def _record(
        self,
        call: Call,
        seen: IncomingCall,
        decision: Decision,
        at: datetime,
        elapsed_us: int,
        challenge: Outcome | None = None,
    ) -> None:
        """The log line, the metrics and the call-log row of a call whose fate is known."""
        outcome: Literal["allowed", "rejected", "abandoned"] = (
            "abandoned"
            if challenge is Outcome.ABANDONED
            else "rejected"
            if decision.rejected
            else "allowed"
        )
        self._log(call, seen, decision, elapsed_us, outcome)
        failed_open = decision.rule_kind == "error"
        self._metrics.call(
            call.door,
            "failed_open" if failed_open else outcome,
            decision.sip_code,
            decision.rule_kind,
        )
        v = seen.verification
        if v.source != "none":
            self._metrics.verifications.labels(v.status.value, v.attestation or "").inc()
        self._call_log.add(
            CallRecord(
                at=at,
                channel_id=call.id,
                caller_raw=call.caller,
                caller=seen.caller,
                extension=call.extension,
                decision=outcome,
                sip_code=decision.sip_code,
                rule_kind=decision.rule_kind,
                rule_id=decision.rule_id,
                reason=decision.reason,
                decision_us=elapsed_us,
                door=call.door,
                caller_name=seen.name or None,
                verification=v.result if v.source != "none" or call.identity else None,
                attestation=v.attestation,
                policy=decision.policy.value if decision.policy else None,
                challenge=challenge.value if challenge else None,
            )
        )

    async def _decide(self, call: Call, now: datetime) -> tuple[IncomingCall, Decision]:
        region = self._config.default_region
        seen = incoming(
            call.caller, call.extension, region, name=call.name, presentation=call.presentation
        )
        try:
            # The Identity header is checked while the rules are looked up: with its
            # certificate cached, that is CPU only; a first fetch waits within its own bound.
            checking = (
                asyncio.create_task(self._verify(call, now))
                if call.identity and self._identity is not None
                else None
            )
            lookup = asyncio.get_running_loop().run_in_executor(
                self._lookups, self._lookup, seen.caller, call.extension, now
            )
            try:
                rules = await asyncio.wait_for(lookup, self._config.decision_timeout)
            finally:
                result, attestation = await checking if checking else (Result.NO_IDENTITY, None)
            carrier = carrier_verdict(*call.carrier)
            seen = replace(seen, verification=verdict(result, attestation, carrier))
            decision = decide(seen, rules, now)
            if self._failing:
                log.warning("rule look-ups work again; calls are screened")
                self._failing = False
        except Exception as e:
            timed_out = isinstance(e, TimeoutError)
            self._metrics.lookup_errors.labels("timeout" if timed_out else "error").inc()
            kind = "timed out" if timed_out else f"{type(e).__name__}: {e}"
            if not self._failing:
                log.warning("rule look-up failed (%s); calls pass unscreened until it works", kind)
                self._failing = True
            decision = failed_open(f"screening failed ({kind})")
        return seen, decision

    async def _verify(self, call: Call, now: datetime) -> tuple[Result, str | None]:
        """Never raises: a verifier bug makes the call unverified, not unscreened."""
        assert self._identity is not None
        try:
            to = destination(call.extension, self._config.default_region, self._config.stir_numbers)
            return await self._identity.check(call.identity, call.date, call.caller, now, to)
        except Exception:
            log.exception("STIR/SHAKEN check of call %s failed; treating it as unverified", call.id)
            return Result.CERT_RETRIEVAL, None
