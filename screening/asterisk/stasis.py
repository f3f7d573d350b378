"""The ARI door: StasisStart -> Call -> the screener -> one REST `continue`.

The app only receives events and acts; deciding is the screener's (service.screener) and
feature codes are the feature service's (service.features).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any

from screening.asterisk.ari import AriClient, StasisStart, destroyed_channel, parse_stasis_start
from screening.asterisk.dialplan import (
    CHALLENGE_CONTEXT,
    CHALLENGE_RUN_CONTEXT,
    CHALLENGE_VARIABLE,
    FEATURE_CONTEXT,
    FEATURE_RESULT_CONTEXT,
    OLD_DIALPLAN,
    REJECT_CONTEXT,
    ChallengeDialplan,
    Rejection,
    Throttled,
    challenge_answer,
    challenge_value,
    legacy_answer,
    read_call,
    rejection,
)
from screening.config import Config
from screening.core.challenge import Settings as ChallengeSettings
from screening.core.decision import Decision
from screening.core.wire import Settings as WireSettings
from screening.service.features import FeatureCodes
from screening.service.runtime import running, stop_on_signals
from screening.service.screener import Call, Screener, failed_open
from screening.store.engine import Engine

log = logging.getLogger(__name__)

#: How long a decided channel is remembered, so that a StasisStart and the recovery scan at
#: connect never both handle it. A decided channel leaves Stasis within milliseconds.
DECIDED_MEMORY_S = 60.0


class ScreeningApp:
    """Subscribes to StasisStart and hands each call to the screener in its own task."""

    def __init__(
        self,
        ari: AriClient,
        screener: Screener,
        features: FeatureCodes,
        challenge: ChallengeSettings | None = None,
        wire: WireSettings | None = None,
    ) -> None:
        self._ari = ari
        self._screener = screener
        self._features = features
        self._challenge = challenge or ChallengeSettings()
        self._wire = wire or WireSettings()
        self._calls: set[asyncio.Task[None]] = set()
        # Keys are the channel id, plus ":challenge" for a challenge's report: the same
        # channel enters the app twice when it is challenged.
        self._in_hand: set[str] = set()  # being handled right now
        self._decided: OrderedDict[str, float] = OrderedDict()  # key -> when, recent ones
        self._gone: set[str] = set()  # hung up while in hand (ChannelDestroyed)
        self._watched: set[str] = set()  # channels in the challenge whose events we hear
        self._dialplan = ChallengeDialplan()
        self._old_dialplan = Throttled()

    async def run(self, stop: asyncio.Event) -> None:
        events = self._ari.events(on_connect=self._recover_parked)
        reader = asyncio.create_task(self._read(events))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await events.aclose()
        # Calls already in the app are decided before we go.
        if self._calls:
            await asyncio.wait(self._calls)
        await self._unwatch_all()
        if reader in done and (error := reader.exception()) is not None:
            raise error

    async def _unwatch_all(self) -> None:
        """Stop hearing the channels still in the challenge. Asterisk keeps an app it still
        sends events for listed in /applications after we go (until something registers
        again), which would tell `screening doctor` it is registered when it is not. The
        calls themselves need nothing: their dialplan rings them without us."""
        if not self._watched:
            return
        unwatch = [self._ari.watch(c, on=False) for c in self._watched]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.gather(*unwatch, return_exceptions=True)
        self._watched.clear()

    async def _recover_parked(self) -> None:
        """After a (re)connect, decide any call that was left waiting in our app: a previous
        run may have died holding it. Never fatal: the events must keep flowing."""
        try:
            parked = await self._ari.parked_channels()
        except Exception as e:
            log.warning("could not list channels waiting in the app: %s", e)
            return
        for start in parked:
            if self._dispatch(start):
                log.warning("channel %s was waiting in the app; deciding it now", start.channel_id)

    def _dispatch(self, start: StasisStart) -> bool:
        """Start handling a channel, once. The same channel can be announced twice: by its
        StasisStart and by the recovery scan at connect, which races with it. A feature
        channel found by the scan has lost its arguments; feature() then says so."""
        channel_id = start.channel_id
        # Only our challenge context reports on a challenge: a caller cannot reach it.
        is_challenge = start.dialplan_context == CHALLENGE_RUN_CONTEXT
        key = f"{channel_id}:challenge" if is_challenge else channel_id
        if key in self._in_hand or key in self._decided:
            return False
        is_feature = start.args[:1] == ("feature",) or start.dialplan_context == FEATURE_CONTEXT
        self._in_hand.add(key)
        if is_challenge:
            task = asyncio.create_task(self.challenge(start))
        else:
            task = asyncio.create_task(self.feature(start) if is_feature else self.screen(start))
        self._calls.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._calls.discard(t)
            self._in_hand.discard(key)
            self._gone.discard(channel_id)
            now = time.monotonic()
            self._decided[key] = now
            while self._decided and next(iter(self._decided.values())) < now - DECIDED_MEMORY_S:
                self._decided.popitem(last=False)

        task.add_done_callback(done)
        return True

    async def _read(self, events: AsyncGenerator[dict[str, Any], None]) -> None:
        async for event in events:
            start = parse_stasis_start(event)
            if start is not None:
                self._dispatch(start)
            elif (gone := destroyed_channel(event)) is not None:
                # Only channels we watch send it: those in the challenge.
                self._watched.discard(gone)
                if gone in self._in_hand:
                    self._gone.add(gone)  # screen() hands it over once the challenge is noted
                else:
                    self._screener.abandoned(gone)

    async def screen(self, start: StasisStart) -> None:
        """Every path ends with the call continued or deliberately rejected: on any failure
        the call is continued unscreened."""
        text = start.args[1] if start.args[:1] == ("call",) and len(start.args) == 2 else None
        facts = read_call(text, start.args, start.dialplan_exten)
        if facts.legacy is not None:
            self._old_dialplan.error(OLD_DIALPLAN, facts.legacy)
        # Caller number and name from the channel itself (ARI's JSON cannot be shifted).
        call = Call(
            start.channel_id,
            start.caller_number,
            facts.dialled,
            "ari",
            name=start.caller_name,
            presentation=facts.presentation,
            identity=facts.identity,
            date=facts.date,
            carrier=facts.carrier,
        )

        async def act(decision: Decision) -> Decision:
            return await self._act(start.channel_id, decision, facts.dialled)

        decision = await self._screener.screen(call, act)
        if decision.challenged and start.channel_id in self._gone:
            self._screener.abandoned(start.channel_id)  # hung up before the prompt began

    async def challenge(self, start: StasisStart) -> None:
        """The dialplan's report after the challenge: the screener decides; the call goes
        on to ring (the next priority) or to the reject context. Every path continues it."""
        if start.args[:1] == ("challenge",) and len(start.args) == 2:
            dialled, answer = challenge_answer(start.args[1])
        else:
            dialled, answer = legacy_answer(start.args[1:])
        call = Call(start.channel_id, start.caller_number, dialled, "ari", name=start.caller_name)

        async def act(decision: Decision) -> Decision:
            return await self._act(start.channel_id, decision, dialled)

        try:
            await self._screener.answered(call, answer, act)
        except Exception:
            log.exception("challenge report of channel %s failed; continuing it", start.channel_id)
            await self._act(start.channel_id, failed_open("challenge report failed"), dialled)
        try:
            # After the answer (which the screener takes at once, so a hang-up now is not
            # counted twice): the ringing that follows is not ours to hear.
            self._watched.discard(start.channel_id)
            await self._ari.watch(start.channel_id, on=False)
        except Exception as e:
            log.debug("could not stop watching channel %s: %s", start.channel_id, e)

    async def feature(self, start: StasisStart) -> None:
        """A feature code from a phone. The extension comes from the dialplan of the feature
        context (the PJSIP endpoint), never from anything the far end of a call controls."""
        name = start.args[1] if len(start.args) > 1 else "?"
        who = start.args[2] if len(start.args) > 2 else "?"
        if start.dialplan_context != FEATURE_CONTEXT:
            why = f"refused: feature request from context {start.dialplan_context!r}"
            result = self._features.refused(name, who, why)
        elif len(start.args) != 3:
            why = "the feature's arguments are missing (the phone can dial again)"
            result = self._features.refused(name, who, why)
        else:
            result = await self._features.request(name, who)
        try:
            await self._ari.continue_in_dialplan(
                start.channel_id, FEATURE_RESULT_CONTEXT, result.outcome.value
            )
        except Exception as e:
            log.error("could not continue channel %s: %s", start.channel_id, e)

    async def _send_to_challenge(self, channel_id: str, digit: str, extension: str) -> bool:
        """Watch the channel (to hear a hang-up), set its digit and continue it to the
        challenge. False when the dialplan has no challenge: the caller rings instead."""
        if not self._dialplan.found:
            found = await self._ari.get_variable(channel_id, ChallengeDialplan.EXPRESSION)
            if not self._dialplan.answer(found):
                return False
        await self._ari.watch(channel_id)
        self._watched.add(channel_id)
        value = challenge_value(digit, self._challenge)
        if await self._ari.set_variable(channel_id, CHALLENGE_VARIABLE, value):
            await self._ari.continue_in_dialplan(channel_id, CHALLENGE_CONTEXT, extension)
        else:
            self._gone.add(channel_id)
        return True

    async def _act(self, channel_id: str, decision: Decision, extension: str) -> Decision:
        """One REST round trip: continue to the next priority, or to the extension that is
        the SIP code in the reject context. A challenge costs three: watch the channel (to
        hear a hang-up), set the digit, continue to the challenge. Returns the decision that
        actually happened."""
        if decision.challenged and decision.digit is not None:
            try:
                if await self._send_to_challenge(channel_id, decision.digit, extension):
                    return decision
                decision = failed_open("no challenge in the dialplan")
            except Exception as e:
                log.error("could not challenge channel %s (%s); continuing it", channel_id, e)
                decision = failed_open(f"challenge failed ({e})")
        if decision.rejected:
            try:
                await self._reject(channel_id, rejection(decision, self._wire))
                return decision
            except Exception as e:
                log.error("could not reject channel %s (%s); continuing it", channel_id, e)
                decision = failed_open(f"reject failed ({e})")
        try:
            await self._ari.continue_in_dialplan(channel_id)
        except Exception as e:
            # Nothing else can be done from here; Asterisk's own timeouts end the call.
            log.error("could not continue channel %s: %s", channel_id, e)
        return decision

    async def _reject(self, channel_id: str, plan: Rejection) -> None:
        """To the reject extension; with more to say, its variable first (a second round
        trip). Without it, if that fails: the rejection matters more than its redress."""
        if plan.more is not None:
            try:
                await self._ari.set_variable(channel_id, *plan.more)
            except Exception as e:
                log.warning("channel %s: rejected with its code alone: %s", channel_id, e)
        await self._ari.continue_in_dialplan(channel_id, REJECT_CONTEXT, plan.extension)


async def serve(config: Config, engine: Engine) -> None:
    """Run until SIGTERM/SIGINT; then finish the calls in hand and write the call log."""
    stop = stop_on_signals()
    ari = AriClient(config)
    try:
        async with running(config, engine) as service:
            # Ready without waiting for Asterisk: the dialplan fails open while it is away,
            # and an Asterisk outage must not make systemd restart us.
            service.metrics.asterisk_connected.set_function(lambda: float(ari.connected))
            service.checks["asterisk"] = ari.reachable
            ari.on_reconnect = service.metrics.asterisk_reconnects.inc
            service.ready(f"ARI app {config.ari_app!r} at {config.ari_url}")
            app = ScreeningApp(
                ari, service.screener, service.features, config.challenge, config.wire
            )
            await app.run(stop)
    finally:
        await ari.aclose()
