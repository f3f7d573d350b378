"""The one place a call is decided: a call in, a decision out, one log line and one call-log
row. Doors (ARI, FastAGI) parse what Asterisk sends into a `Call`, ask `Screener.screen`,
and act; `screening check` uses the same pieces without the clock, threads or log."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from screening.config import Config
from screening.core.decision import Action, Decision, IncomingCall, decide
from screening.core.numbers import normalise
from screening.store.calllog import CallRecord
from screening.store.engine import LOOKUP_THREADS
from screening.store.lookup import RulesLookup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """An incoming call as a door received it."""

    id: str  # the channel's id (ARI) or unique id (AGI), for the log
    caller: str  # the caller ID number as received, untrusted
    extension: str  # the dialled extension, from our own dialplan
    door: str  # "ari" or "agi"


class CallLog(Protocol):
    """Where the screener leaves one row per call (store.writer.CallLogWriter)."""

    def add(self, record: CallRecord) -> None: ...


#: What a door does with a decision: continue or reject the call, and return the decision
#: that really happened (a reject that failed is a call continued unscreened).
Act = Callable[[Decision], Awaitable[Decision]]


def incoming(caller: str, extension: str, region: str) -> IncomingCall:
    """The call as the decision core sees it: the caller normalised, or None when unusable."""
    return IncomingCall(caller, normalise(caller, region), extension)


def check(lookup: RulesLookup, call: IncomingCall, at: datetime) -> Decision:
    """What the screener would decide for `call` at `at`: the same look-up, the same core."""
    return decide(call, lookup(call.caller, call.extension, at), at)


def failed_open(why: str) -> Decision:
    return Decision(Action.CONTINUE, None, "error", None, f"{why}; continued unscreened")


class Screener:
    """Decides calls: look-ups on a fixed pool of threads under the decision time-out; any
    failure continues the call unscreened, with one warning per outage."""

    def __init__(
        self,
        config: Config,
        lookup: RulesLookup,
        call_log: CallLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._lookup = lookup
        self._call_log = call_log
        self._clock = clock
        self._lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="lookup")
        self._failing = False  # one warning per outage, not one per call

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
        """Decide `call`, let the door act on it, then log it. Returns what happened."""
        t0 = time.perf_counter()
        now = self._clock()
        caller, decision = await self._decide(call, now)
        decision = await act(decision)
        elapsed_us = int((time.perf_counter() - t0) * 1_000_000)
        verdict: Literal["allowed", "rejected"] = "rejected" if decision.rejected else "allowed"
        code = f" {decision.sip_code}" if decision.sip_code else ""
        log.info(
            "call %s from %s (%r) to %s: %s%s, %s [%s %.1f ms]",
            call.id,
            caller or "no caller ID",
            call.caller[:64],
            call.extension,
            verdict,
            code,
            decision.reason,
            call.door,
            elapsed_us / 1000,
        )
        self._call_log.add(
            CallRecord(
                at=now,
                channel_id=call.id,
                caller_raw=call.caller,
                caller=caller,
                extension=call.extension,
                decision=verdict,
                sip_code=decision.sip_code,
                rule_kind=decision.rule_kind,
                rule_id=decision.rule_id,
                reason=decision.reason,
                decision_us=elapsed_us,
                door=call.door,
            )
        )
        return decision

    async def _decide(self, call: Call, now: datetime) -> tuple[str | None, Decision]:
        caller: str | None = None
        try:
            seen = incoming(call.caller, call.extension, self._config.default_region)
            caller = seen.caller
            lookup = asyncio.get_running_loop().run_in_executor(
                self._lookups, self._lookup, caller, call.extension, now
            )
            rules = await asyncio.wait_for(lookup, self._config.decision_timeout)
            decision = decide(seen, rules, now)
            if self._failing:
                log.warning("rule look-ups work again; calls are screened")
                self._failing = False
        except Exception as e:
            kind = "timed out" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            if not self._failing:
                log.warning("rule look-up failed (%s); calls pass unscreened until it works", kind)
                self._failing = True
            decision = failed_open(f"screening failed ({kind})")
        return caller, decision
