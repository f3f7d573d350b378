"""The running service behind a door: the screener and the feature codes on their engines,
threads and call-log writer, opened before the first call and closed after the last."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
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
    #: The process's limit on open files, raised at start (raise_open_files).
    open_files: int = 1024

    def ready(self, status: str) -> None:
        """The door takes calls: systemd's READY=1 (Type=notify)."""
        self.systemd.ready(status)


#: Open files a service asks for: the units set it (LimitNOFILE); by hand, systemd and most
#: shells give 1,024, under FastAGI's own cap of connections.
WANT_OPEN_FILES = 65536
#: Descriptors kept for what is not a listener's connection: database pools, ARI, logs,
#: certificate fetches, the metrics listener's few.
RESERVED_FILES = 256


def raise_open_files(want: int = WANT_OPEN_FILES) -> int:
    """Raise the soft limit on open files as far as the hard one allows, up to `want`;
    returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, e)
    return want if soft == resource.RLIM_INFINITY else soft


def connection_cap(wanted: int, open_files: int) -> int:
    """A listener's cap on connections that fits under the open-files limit, with room for
    everything else the process needs: past the limit, accept() fails for every listener
    and the database alike."""
    room = max(open_files - RESERVED_FILES, open_files // 2)
    if wanted > room:
        log.warning(
            "the open-files limit is %d: at most %d connections at once, not %d "
            "(raise LimitNOFILE)",
            open_files,
            room,
            wanted,
        )
    return min(wanted, room)


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
    open_files = raise_open_files()
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
        yield Service(screener, features, systemd, metrics, checks, open_files)
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
