"""The ARI door: StasisStart -> Call -> the screener -> one REST `continue`.

The app only receives events and acts; deciding is the screener's (service.screener) and
feature codes are the feature service's (service.features).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy import Engine

from screening.asterisk.ari import AriClient, StasisStart, parse_stasis_start
from screening.asterisk.dialplan import (
    FEATURE_CONTEXT,
    FEATURE_RESULT_CONTEXT,
    REJECT_CONTEXT,
    identity_args,
)
from screening.config import Config
from screening.core.decision import Decision
from screening.service.features import FeatureCodes
from screening.service.runtime import running, stop_on_signals
from screening.service.screener import Call, Screener, failed_open

log = logging.getLogger(__name__)

#: How long a decided channel is remembered, so that a StasisStart and the recovery scan at
#: connect never both handle it. A decided channel leaves Stasis within milliseconds.
DECIDED_MEMORY_S = 60.0


class ScreeningApp:
    """Subscribes to StasisStart and hands each call to the screener in its own task."""

    def __init__(self, ari: AriClient, screener: Screener, features: FeatureCodes) -> None:
        self._ari = ari
        self._screener = screener
        self._features = features
        self._calls: set[asyncio.Task[None]] = set()
        self._in_hand: set[str] = set()  # channel ids being decided right now
        self._decided: OrderedDict[str, float] = OrderedDict()  # id -> when, recent ones

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
        if reader in done and (error := reader.exception()) is not None:
            raise error

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
        if channel_id in self._in_hand or channel_id in self._decided:
            return False
        is_feature = start.args[:1] == ("feature",) or start.dialplan_context == FEATURE_CONTEXT
        self._in_hand.add(channel_id)
        task = asyncio.create_task(self.feature(start) if is_feature else self.screen(start))
        self._calls.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._calls.discard(t)
            self._in_hand.discard(channel_id)
            now = time.monotonic()
            self._decided[channel_id] = now
            while self._decided and next(iter(self._decided.values())) < now - DECIDED_MEMORY_S:
                self._decided.popitem(last=False)

        task.add_done_callback(done)
        return True

    async def _read(self, events: AsyncGenerator[dict[str, Any], None]) -> None:
        async for event in events:
            start = parse_stasis_start(event)
            if start is None:
                continue
            self._dispatch(start)

    async def screen(self, start: StasisStart) -> None:
        """Every path ends with the call continued or deliberately rejected: on any failure
        the call is continued unscreened."""
        extension = start.args[0] if start.args else start.dialplan_exten
        who = identity_args(start.args[1:])
        call = Call(
            start.channel_id,
            start.caller_number,
            extension,
            "ari",
            name=start.caller_name,
            presentation=who.presentation,
            identity=who.identity,
            date=who.date,
            carrier=who.carrier,
        )

        async def act(decision: Decision) -> Decision:
            return await self._act(start.channel_id, decision)

        await self._screener.screen(call, act)

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

    async def _act(self, channel_id: str, decision: Decision) -> Decision:
        """One REST round trip: continue to the next priority, or to the extension that is
        the SIP code in the reject context. Returns the decision that actually happened."""
        if decision.rejected:
            try:
                await self._ari.continue_in_dialplan(
                    channel_id, REJECT_CONTEXT, str(decision.sip_code)
                )
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
            await ScreeningApp(ari, service.screener, service.features).run(stop)
    finally:
        await ari.aclose()
