"""The running service behind a door: the screener and the feature codes on their engines,
threads and call-log writer, opened before the first call and closed after the last."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from screening.config import Config
from screening.core.errors import ConfigError
from screening.core.features import Reputation
from screening.service.features import FeatureCodes, sql_feature_runner
from screening.service.metrics import Check, Metrics, MetricsServer
from screening.service.screener import Remember, Screener
from screening.service.systemd import Notifier
from screening.stir import Verifier, load_cas
from screening.store.engine import lookup_engine, side_engine
from screening.store.lists import remember_challenge
from screening.store.lookup import prepares_connection, sql_rules_lookup
from screening.store.writer import CallLogWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    screener: Screener
    features: FeatureCodes
    systemd: Notifier
    metrics: Metrics
    #: What /readyz asks; a door adds its own ("asterisk").
    checks: dict[str, Check]

    def ready(self, status: str) -> None:
        """The door takes calls: systemd's READY=1 (Type=notify)."""
        self.systemd.ready(status)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the door stops taking calls and finishes the ones
    in hand."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextlib.asynccontextmanager
async def running(config: Config, engine: Engine) -> AsyncIterator[Service]:
    """Open everything a door needs; on the way out, write every pending call-log row. Exits
    1 (SystemExit) when rows could not be written because the database stayed away."""
    verifier = stir_verifier(config)
    reader = lookup_engine(engine)
    writer = CallLogWriter(side_engine(engine))
    feature_engine = side_engine(engine)
    await writer.start()
    metrics = Metrics()
    metrics.call_log_queue.set_function(lambda: writer.pending)
    writer.on_refused = lambda outcome: metrics.call_log_refused.labels(outcome).inc()
    writer.on_dropped = metrics.call_log_lost.inc
    screener = Screener(
        config,
        sql_rules_lookup(reader),
        writer,
        identity=verifier,
        metrics=metrics,
        remember=sql_remember(feature_engine),
    )
    reputation = Reputation(config.reputation_reports, config.reputation_days)
    features = FeatureCodes(sql_feature_runner(feature_engine, reputation), writer.flush)
    # Everything loaded so far (SQLAlchemy, the models, the clients: ~90,000 objects) lives
    # as long as the process. Left to the collector, each full collection walked all of it
    # and stopped the event loop for up to 40 ms, in the middle of calls.
    gc.collect()
    gc.freeze()
    await screener.warm_up(prepares_connection(reader))
    systemd = Notifier()
    pings = asyncio.create_task(systemd.watchdog())
    checks: dict[str, Check] = {"database": _reachable(reader)}
    http = None
    if config.metrics_listen is not None:
        http = await MetricsServer(metrics, checks).start(*config.metrics_listen)
    try:
        yield Service(screener, features, systemd, metrics, checks)
    finally:
        systemd.stopping()
        if http is not None:
            http.close()
        lost = await writer.close()
        metrics.call_log_lost.inc(lost)
        pings.cancel()
        systemd.close()
        await verifier.aclose()
        screener.close()
        features.close()
        reader.dispose()
        writer.dispose()
        feature_engine.dispose()
        if lost:
            log.error("stopped with %d call-log rows unwritten: the database is unavailable", lost)
            raise SystemExit(1)
        log.info("stopped")


def sql_remember(engine: Engine) -> Remember:
    """Writes a passed caller's allow entry on a thread: the call is already ringing."""

    def write(caller: str, extension: str, until: datetime) -> None:
        with Session(engine) as session, session.begin():
            remember_challenge(session, caller, extension, until, datetime.now(UTC))

    async def remember(caller: str, extension: str, until: datetime) -> None:
        await asyncio.to_thread(write, caller, extension, until)

    return remember


def stir_verifier(config: Config) -> Verifier:
    """The STIR/SHAKEN verifier the settings describe; a CA store that cannot be read stops
    the start with the setting's name (calls would otherwise all be unverified, silently)."""
    try:
        cas = load_cas(config.stir_ca_file)
    except (OSError, ValueError) as e:
        raise ConfigError(
            "SCREENING_STIR_CA_FILE",
            f"expected a PEM file of CA certificates, {config.stir_ca_file}: {e}",
        ) from None
    cache = Path(config.stir_cache_dir or Path.home() / ".cache" / "screening" / "stir")
    if config.stir_relax_x5u:
        log.warning("STIR/SHAKEN x5u rules relaxed: http and private addresses are fetched")
    return Verifier(
        cas,
        relaxed=config.stir_relax_x5u,
        cache_dir=cache,
        cache_max_age=config.stir_cache_max_age,
        fetch_wait=config.stir_fetch_wait,
    )


def _reachable(engine: Engine) -> Check:
    """For /readyz: a `SELECT 1` on a thread of its own, so a hung database cannot stall the
    loop (the caller bounds the wait)."""

    def ping() -> bool:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    async def check() -> bool:
        return await asyncio.to_thread(ping)

    return check
