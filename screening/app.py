"""The Stasis application: StasisStart -> IncomingCall -> decide -> one REST call -> log row."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from screening import features, store
from screening.ari import AriClient, StasisStart, parse_stasis_start
from screening.config import Config
from screening.db import make_engine
from screening.numbers import normalise
from screening.policy import Action, Decision, IncomingCall, Rules, decide
from screening.watchdog import Watchdog

log = logging.getLogger(__name__)

#: Dialplan contexts (asterisk-conf/extensions.conf): where 607/608 are sent, where feature
#: codes enter Stasis, and where their outcome is played.
REJECT_CONTEXT = "screening-reject"
FEATURE_CONTEXT = "screening-feature"
FEATURE_RESULT_CONTEXT = "screening-feature-result"
#: Feature codes write to the database; give them longer than a call decision.
FEATURE_TIMEOUT = 3.0
#: Look-ups run on this many threads, each with a pooled connection of its own, all opened
#: at start: the app's threads, connections and open files stay the same under any load,
#: and no call waits for a connection to open.
LOOKUP_THREADS = 4
#: How long a decided channel is remembered, so that a StasisStart and the recovery scan at
#: connect never both handle it. A decided channel leaves Stasis within milliseconds.
DECIDED_MEMORY_S = 60.0
#: A query that has not answered in this long is on a hung connection (screening.watchdog):
#: a look-up takes well under a millisecond, a batch of call-log rows a few.
LOOKUP_HUNG_S = 3.0
WRITE_HUNG_S = 10.0

FeatureRunner = Callable[[str, str, datetime], features.Result]

RulesLookup = Callable[[str | None, str, datetime], Rules]


def sql_feature_runner(
    engine: Engine, reputation: features.Reputation, hung_after: float = FEATURE_TIMEOUT
) -> FeatureRunner:
    """Feature codes on `engine` (see side_engine: no ping before use). A connection that
    turns out to be dead (the server restarted, or the watchdog closed it) is discarded and
    the feature run once more on a new one; running a feature twice does what once does."""
    watchdog = Watchdog("feature code", hung_after)

    def once(feature: str, extension: str, now: datetime) -> features.Result:
        with Session(engine) as session, watchdog.watching(session.connection()):
            result = features.run(session, feature, extension, now, reputation)
            session.commit()
            return result

    def run(feature: str, extension: str, now: datetime) -> features.Result:
        try:
            return once(feature, extension, now)
        except DBAPIError as e:
            if not e.connection_invalidated:
                raise
            return once(feature, extension, now)

    return run


def lookup_engine(engine: Engine) -> Engine:
    """The engine for per-call look-ups: the same database, tuned for one read per call.
    Autocommit: no BEGIN, and no ROLLBACK when the connection goes back to the pool; no
    ping before each use: a connection that fails is discarded instead (sql_rules_lookup).
    On PostgreSQL that is two round trips per call instead of four."""
    url = engine.url.render_as_string(hide_password=False)
    pool = {"pool_size": LOOKUP_THREADS, "max_overflow": 0}
    if engine.dialect.name == "sqlite":
        return make_engine(url, **pool)
    return make_engine(url, pool_pre_ping=False, isolation_level="AUTOCOMMIT", **pool)


def side_engine(engine: Engine) -> Engine:
    """An engine of one connection for the call-log writer or the feature codes, each on a
    thread of its own. No ping before each use: a ping on a hung connection would wait where
    the watchdog cannot see it. A connection that fails is discarded by SQLAlchemy, and the
    work done again on a new one."""
    url = engine.url.render_as_string(hide_password=False)
    return make_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False)


def prepares_connection(engine: Engine) -> Callable[[threading.Barrier], None]:
    """For ScreeningApp.warm_up: open one pooled connection, run the look-up on it once for
    every length of caller number (E.164: up to 15 digits), and hold it until every look-up
    thread holds one. The pool ends up with one connection per thread, and no call pays for
    compiling the queries or for the driver preparing them (the first call did: 2.6 ms)."""

    def open_one(all_open: threading.Barrier) -> None:
        now = datetime.now(UTC)
        with engine.connect() as conn:
            for digits in range(1, 16):
                store.rules_for(conn, "+" + "0" * digits, "", now)
            all_open.wait()

    return open_one


class _ConnectionLost(Exception):
    """A look-up's connection was found dead."""


def sql_rules_lookup(engine: Engine, hung_after: float = LOOKUP_HUNG_S) -> RulesLookup:
    """Look-ups on `engine` (see lookup_engine: no ping before use). A connection that turns
    out to be dead (the server restarted) is discarded and the look-up run once more on a
    new one, so the first call after a restart is still screened."""
    watchdog = Watchdog("rule look-up", hung_after)

    def once(caller: str | None, extension: str, now: datetime) -> Rules:
        with engine.connect() as conn:
            try:
                with watchdog.watching(conn):
                    return store.rules_for(conn, caller, extension, now)
            except Exception as e:
                # The queries run on the driver's cursor, so SQLAlchemy has not looked at
                # the error: ask the dialect whether the connection is gone.
                driver_error: Any = e
                dbapi_conn = conn.connection.dbapi_connection
                lost = isinstance(e, engine.dialect.loaded_dbapi.Error) and (
                    engine.dialect.is_disconnect(driver_error, dbapi_conn, None)
                )
                conn.invalidate()  # whatever went wrong, never hand it out again
                if lost:
                    raise _ConnectionLost(str(e)) from e
                raise

    def lookup(caller: str | None, extension: str, now: datetime) -> Rules:
        try:
            return once(caller, extension, now)
        except _ConnectionLost:
            return once(caller, extension, now)

    return lookup


class CallLogWriter:
    """Writes call-log rows in batches, after the call has already moved on. Rows wait in
    memory while the database is away and are written when it returns."""

    def __init__(self, engine: Engine, batch: int = 500, hung_after: float = WRITE_HUNG_S) -> None:
        self._engine = engine
        self._batch = batch
        self._queue: asyncio.Queue[store.CallRecord] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._unwritten = 0  # queued or in a batch, not yet committed
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="call-log")
        self._watchdog = Watchdog("call log", hung_after)

    async def start(self) -> None:
        """Open the writer's connection, before the first call rather than during it, and
        start writing."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._open)
        self._task = asyncio.create_task(self._run(), name="call-log-writer")

    def add(self, record: store.CallRecord) -> None:
        self._unwritten += 1
        self._queue.put_nowait(record)

    async def flush(self) -> None:
        """Wait until every row queued so far is written."""
        await self._queue.join()

    async def close(self, within: float = 10.0) -> int:
        """Write every pending row, then stop. Returns how many rows could not be written
        because the database stayed away for `within` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), within)
        if self._task is not None:
            self._task.cancel()
        self._thread.shutdown(wait=False, cancel_futures=True)
        return self._unwritten

    def dispose(self) -> None:
        self._engine.dispose()

    def _open(self) -> None:
        with contextlib.suppress(Exception), self._engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")  # if it fails, the first write says why

    def _write(self, rows: list[store.CallRecord]) -> None:
        with Session(self._engine) as session, self._watchdog.watching(session.connection()):
            store.write_call_log(session, rows)
            session.commit()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            rows = [await self._queue.get()]
            while len(rows) < self._batch and not self._queue.empty():
                rows.append(self._queue.get_nowait())
            delay = 0.1
            while True:
                try:
                    await loop.run_in_executor(self._thread, self._write, rows)
                    self._unwritten -= len(rows)
                    break
                except Exception as e:
                    if not self._failing:
                        log.warning(
                            "cannot write the call log (%s); keeping rows until it works", e
                        )
                        self._failing = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if self._failing:
                log.warning("call log writes work again")
                self._failing = False
            for _ in rows:
                self._queue.task_done()


class ScreeningApp:
    """Subscribes to StasisStart and screens each call in its own task."""

    def __init__(
        self,
        config: Config,
        ari: AriClient,
        lookup: RulesLookup,
        call_log: CallLogWriter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        feature_runner: FeatureRunner | None = None,
    ) -> None:
        self._config = config
        self._features = feature_runner
        self._ari = ari
        self._lookup = lookup
        self._call_log = call_log
        self._clock = clock
        self._calls: set[asyncio.Task[None]] = set()
        self._in_hand: set[str] = set()  # channel ids being decided right now
        self._decided: OrderedDict[str, float] = OrderedDict()  # id -> when, recent ones
        self._lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="lookup")
        # Not the loop's default executor: that one also resolves host names for the ARI
        # reconnect, and feature codes stuck on a hung database must never take it.
        self._feature_thread = ThreadPoolExecutor(1, thread_name_prefix="feature")
        self._lookup_failing = False  # one warning per outage, not one per call

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
        self._lookups.shutdown(wait=False, cancel_futures=True)
        self._feature_thread.shutdown(wait=False, cancel_futures=True)
        if reader in done and (error := reader.exception()) is not None:
            raise error

    async def warm_up(self, open_one: Callable[[threading.Barrier], None]) -> None:
        """Start every look-up thread now and run open_one on each at once (see
        prepares_connection). Never fatal: with the database away, calls pass unscreened and
        the first look-up that works opens what it needs."""
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
        """Decide one call and move it on. Every path ends with the call continued or
        deliberately rejected: on any failure the call is continued unscreened."""
        t0 = time.perf_counter()
        now = self._clock()
        extension = start.args[0] if start.args else start.dialplan_exten
        caller: str | None = None
        try:
            caller = normalise(start.caller_number, self._config.default_region)
            call = IncomingCall(start.caller_number, caller, extension)
            lookup = asyncio.get_running_loop().run_in_executor(
                self._lookups, self._lookup, caller, extension, now
            )
            rules = await asyncio.wait_for(lookup, self._config.decision_timeout)
            decision = decide(call, rules, now)
            if self._lookup_failing:
                log.warning("rule look-ups work again; calls are screened")
                self._lookup_failing = False
        except Exception as e:
            kind = "timed out" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            if not self._lookup_failing:
                log.warning("rule look-up failed (%s); calls pass unscreened until it works", kind)
                self._lookup_failing = True
            decision = Decision(
                Action.CONTINUE,
                None,
                "error",
                None,
                f"screening failed ({kind}); continued unscreened",
            )
        decision = await self._act(start.channel_id, decision)
        elapsed_us = int((time.perf_counter() - t0) * 1_000_000)
        verdict: Literal["allowed", "rejected"] = "rejected" if decision.rejected else "allowed"
        code = f" {decision.sip_code}" if decision.sip_code else ""
        log.info(
            "call %s from %s (%r) to %s: %s%s, %s [%.1f ms]",
            start.channel_id,
            caller or "no caller ID",
            start.caller_number[:64],
            extension,
            verdict,
            code,
            decision.reason,
            elapsed_us / 1000,
        )
        self._call_log.add(
            store.CallRecord(
                at=now,
                channel_id=start.channel_id,
                caller_raw=start.caller_number,
                caller=caller,
                extension=extension,
                decision=verdict,
                sip_code=decision.sip_code,
                rule_kind=decision.rule_kind,
                rule_id=decision.rule_id,
                reason=decision.reason,
                decision_us=elapsed_us,
            )
        )

    async def feature(self, start: StasisStart) -> None:
        """A feature code from a phone. The extension comes from the dialplan of the feature
        context (the PJSIP endpoint), never from anything the far end of a call controls."""
        outcome, detail = features.Outcome.NOT_POSSIBLE, ""
        try:
            if start.dialplan_context != FEATURE_CONTEXT:
                detail = f"refused: feature request from context {start.dialplan_context!r}"
            elif len(start.args) != 3:
                detail = "the feature's arguments are missing (the phone can dial again)"
            elif self._features is None:
                detail = "feature codes are not enabled"
            else:
                _, name, extension = start.args
                # "The last caller" must include a call that ended a moment ago.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._call_log.flush(), 1.0)
                result = await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(
                        self._feature_thread, self._features, name, extension, self._clock()
                    ),
                    FEATURE_TIMEOUT,
                )
                outcome, detail = result.outcome, result.detail
        except Exception as e:
            detail = f"failed ({'timed out' if isinstance(e, TimeoutError) else e})"
        name = start.args[1] if len(start.args) > 1 else "?"
        who = start.args[2] if len(start.args) > 2 else "?"
        log.info("feature %s from %s: %s (%s)", name, who, outcome, detail)
        try:
            await self._ari.continue_in_dialplan(
                start.channel_id, FEATURE_RESULT_CONTEXT, outcome.value
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
                decision = Decision(
                    Action.CONTINUE,
                    None,
                    "error",
                    None,
                    f"reject failed ({e}); continued unscreened",
                )
        try:
            await self._ari.continue_in_dialplan(channel_id)
        except Exception as e:
            # Nothing else can be done from here; Asterisk's own timeouts end the call.
            log.error("could not continue channel %s: %s", channel_id, e)
        return decision


async def serve(config: Config, engine: Engine) -> None:
    """Run until SIGTERM/SIGINT; then finish the calls in hand and write the call log."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ari = AriClient(config)
    reader = lookup_engine(engine)
    writer = CallLogWriter(side_engine(engine))
    await writer.start()
    reputation = features.Reputation(config.reputation_reports, config.reputation_days)
    feature_engine = side_engine(engine)
    app = ScreeningApp(
        config,
        ari,
        sql_rules_lookup(reader),
        writer,
        feature_runner=sql_feature_runner(feature_engine, reputation),
    )
    # Everything loaded so far (SQLAlchemy, the models, the clients: ~90,000 objects) lives
    # as long as the process. Left to the collector, each full collection walked all of it
    # and stopped the event loop for up to 40 ms, in the middle of calls.
    gc.collect()
    gc.freeze()
    await app.warm_up(prepares_connection(reader))
    try:
        await app.run(stop)
    finally:
        lost = await writer.close()
        await ari.aclose()
        reader.dispose()
        writer.dispose()
        feature_engine.dispose()
        if lost:
            log.error("stopped with %d call-log rows unwritten: the database is unavailable", lost)
            raise SystemExit(1)
        log.info("stopped")
