"""Feature codes as a service both doors use: each request runs on a thread and database
connection of its own, watched for hangs, once the call log has caught up, and is logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from screening.core.features import FEATURE_SOURCE, Outcome, Reputation, Result
from screening.store import accounts, lists, reports
from screening.store.watchdog import Watchdog

log = logging.getLogger(__name__)

#: Feature codes write to the database; give them longer than a call decision.
FEATURE_TIMEOUT = 3.0

FeatureRunner = Callable[[str, str, datetime], Result]


def run(
    session: Session, feature: str, extension: str, now: datetime, reputation: Reputation
) -> Result:
    """What one feature code does, in the caller's transaction, with its audit row: a
    change from a phone is in the trail like one from the console."""
    result = _run(session, feature, extension, now, reputation)
    if result.outcome is not Outcome.NOT_POSSIBLE:
        accounts.audit(
            session, f"extension {extension}"[:64], f"feature {feature}", result.detail[:500], now
        )
    return result


def _run(
    session: Session, feature: str, extension: str, now: datetime, reputation: Reputation
) -> Result:
    if feature == "mark-spam":
        return reports.mark_last_caller(session, extension, now, reputation)
    if feature == "undo-spam":
        return reports.undo_last_mark(session, extension, now, reputation)
    if feature == "dnd-on":
        lists.set_manual_dnd(session, extension, None, FEATURE_SOURCE, now)
        return Result(Outcome.DND_ON, f"DND on for {extension}")
    if feature == "dnd-off":
        was_on = lists.clear_manual_dnd(session, extension)
        return Result(
            Outcome.DND_OFF, f"DND off for {extension}" + ("" if was_on else " (was off)")
        )
    return Result(Outcome.NOT_POSSIBLE, f"unknown feature {feature!r}")


def sql_feature_runner(
    engine: Engine, reputation: Reputation, hung_after: float = FEATURE_TIMEOUT
) -> FeatureRunner:
    """Feature codes on `engine` (see store.engine.side_engine: no ping before use). A
    connection that turns out to be dead (the server restarted, or the watchdog closed it) is
    discarded and the feature run once more on a new one; running a feature twice does what
    once does."""
    watchdog = Watchdog("feature code", hung_after)

    def once(feature: str, extension: str, now: datetime) -> Result:
        with Session(engine) as session, watchdog.watching(session.connection()):
            result = run(session, feature, extension, now, reputation)
            session.commit()
            return result

    def run_it(feature: str, extension: str, now: datetime) -> Result:
        try:
            return once(feature, extension, now)
        except DBAPIError as e:
            if not e.connection_invalidated:
                raise
            return once(feature, extension, now)

    return run_it


class FeatureCodes:
    """Runs the feature codes the doors receive; every request ends in an outcome the
    dialplan can play, and one log line."""

    def __init__(
        self,
        runner: FeatureRunner | None,
        flush_call_log: Callable[[], Awaitable[None]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._runner = runner
        self._flush = flush_call_log
        self._clock = clock
        # Not the loop's default executor: that one also resolves host names for the ARI
        # reconnect, and feature codes stuck on a hung database must never take it.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="feature")

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def request(self, feature: str, extension: str) -> Result:
        """Run `feature` for the phone at `extension` (identified by the dialplan)."""
        try:
            if self._runner is None:
                result = Result(Outcome.NOT_POSSIBLE, "feature codes are not enabled")
            else:
                # "The last caller" must include a call that ended a moment ago.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush(), 1.0)
                result = await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(
                        self._thread, self._runner, feature, extension, self._clock()
                    ),
                    FEATURE_TIMEOUT,
                )
        except Exception as e:
            why = "timed out" if isinstance(e, TimeoutError) else e
            result = Result(Outcome.NOT_POSSIBLE, f"failed ({why})")
        return self.logged(feature, extension, result)

    @staticmethod
    def refused(feature: str, who: str, detail: str) -> Result:
        """A request a door would not run (wrong context, missing arguments)."""
        return FeatureCodes.logged(feature, who, Result(Outcome.NOT_POSSIBLE, detail))

    @staticmethod
    def logged(feature: str, who: str, result: Result) -> Result:
        log.info("feature %s from %s: %s (%s)", feature, who, result.outcome, result.detail)
        return result
