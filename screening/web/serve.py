"""`screening web`: the console under uvicorn, in a process of its own (a fault here never
touches call handling), with systemd's READY=1 once it listens and watchdog pings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import uvicorn

from screening.config import Config
from screening.core.errors import ConfigError
from screening.service import calls as call_log
from screening.service.runtime import connection_cap, raise_open_files, stop_on_signals
from screening.service.systemd import Notifier
from screening.store.engine import Engine
from screening.web import redress
from screening.web.app import create_app
from screening.web.limits import HeadDeadline

log = logging.getLogger(__name__)

#: A key that signs session cookies must not be guessable.
MIN_SECRET_KEY = 32
#: Requests at once: a console serves a few people.
WEB_CONNECTIONS = 256


async def serve(config: Config, engine: Engine) -> None:
    key = config.web_secret_key
    if key and len(key) < MIN_SECRET_KEY:
        raise ConfigError(
            "web.secret_key",
            f"expected at least {MIN_SECRET_KEY} characters (it signs every session: make one "
            "with `head -c 32 /dev/urandom | base64`), got "
            f"{len(key)}",
        )
    if not key:
        key = secrets.token_urlsafe(32)
        log.warning(
            "no web.secret_key set: sessions end when the console restarts "
            "(set web.secret_key_file, README 'Web console')"
        )
    app = create_app(config, engine, key, https_only=config.web_secure_cookies)
    server = _Server(
        uvicorn.Config(
            app,
            host=config.web_host,
            port=config.web_port,
            log_config=None,  # ours (screening.cli), not uvicorn's
            access_log=False,
            server_header=False,
            proxy_headers=False,  # only a proxy the admin configures may set client addresses
            lifespan="off",
            # Past this many connections at once, uvicorn answers 503: a flood cannot take
            # every open file (the limit is raised first, below the unit's LimitNOFILE).
            limit_concurrency=connection_cap(WEB_CONNECTIONS, raise_open_files()),
            backlog=256,
            http=HeadDeadline,  # h11 with a time limit on each request's headers
            timeout_graceful_shutdown=5,  # a stop waits for no client longer than this
        )
    )
    systemd = Notifier()
    stop = stop_on_signals()
    running = asyncio.create_task(server.serve())
    # uvicorn offers no event for "listening": poll its flag until then.
    while not server.started and not running.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if running.done():
        await running  # it failed to start: let the error out
        raise SystemExit(1)  # uvicorn returned without listening (port taken: it logged why)
    log.info("web console on http://%s:%d", config.web_host, config.web_port)
    redress.announce(app.state.redress)
    systemd.ready(f"web console on {config.web_host}:{config.web_port}")
    pings = asyncio.create_task(systemd.watchdog())
    stopper = asyncio.create_task(_stop_when(stop, server))
    # The dashboard's 30 days, summarised now rather than on the first visit.
    summaries = asyncio.create_task(asyncio.to_thread(_settle, engine, app.state.console.zone))
    try:
        await running
    finally:
        systemd.stopping()
        pings.cancel()
        stopper.cancel()
        summaries.cancel()
        systemd.close()


def _settle(engine: Engine, zone: str) -> None:
    now = datetime.now(UTC)
    try:
        written = call_log.settle(engine, zone, now)
    except Exception as e:  # the dashboard does it itself on its first visit
        log.warning("could not summarise the call log's last 30 days yet: %s", e)
        return
    if written:
        log.info("summarised %d days of the call log for the dashboard", written)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises SIGTERM after shutting down, so
    the process would die by the signal instead of exiting 0 like the other doors."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
