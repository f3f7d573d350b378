"""A database server that stops answering without closing its connections (tests/proxy.py,
hang), on PostgreSQL and MariaDB: a rule look-up on such a connection fails once the
watchdog's limit has passed instead of holding its thread until TCP gives up, the call-log
writer and feature codes do the same (the writer keeping its rows), and all of them work
again as soon as the server answers.
SQLite has no connection to hang and is not in these tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session

from screening.core import features
from screening.service import ops
from screening.service.actor import CLI
from screening.service.features import sql_feature_runner
from screening.store import calllog, migrate
from screening.store.engine import lookup_engine, make_engine, side_engine
from screening.store.lookup import sql_rules_lookup
from screening.store.models import CallLog
from screening.store.writer import CallLogWriter
from tests.conftest import BACKENDS, ThrowawayDatabases
from tests.proxy import TcpProxy

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BLOCKED = "+15550600001"
LIMIT = 1.0  # the watchdog's limit in these tests (the app's: 3 s for look-ups)


@pytest.fixture(params=[b for b in BACKENDS if b != "sqlite"])
def via_proxy(
    request: pytest.FixtureRequest, _servers: dict[str, ThrowawayDatabases]
) -> Iterator[tuple[str, TcpProxy]]:
    """(URL of a new database through a proxy that can hang, the proxy)."""
    backend: str = request.param
    if backend not in _servers:
        _servers[backend] = ThrowawayDatabases(backend)
    direct = _servers[backend].new()
    engine = make_engine(direct)
    migrate.upgrade(engine)
    ops.add_entry(engine, "block", BLOCKED, "US", now=NOW, by=CLI)
    engine.dispose()
    url = make_url(direct)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 0))
    try:
        yield url.set(port=proxy.port).render_as_string(hide_password=False), proxy
    finally:
        proxy.cut()


def within(seconds: float, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run fn on a thread; (how long it took, what it returned or raised). Fails the test if
    it is still waiting after `seconds`, rather than hanging the run."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as e:
            out.append(e)

    t0 = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still waiting after {seconds} s: the hung connection holds the thread"
    return time.monotonic() - t0, out[0]


def test_a_look_up_on_a_hung_server_gives_up_and_the_next_one_reconnects(
    via_proxy: tuple[str, TcpProxy],
) -> None:
    url, proxy = via_proxy
    engine = lookup_engine(make_engine(url))
    lookup = sql_rules_lookup(engine, hung_after=LIMIT)
    try:
        assert [e.value for e in lookup(BLOCKED, "201", NOW).block] == [BLOCKED]

        proxy.hang()
        waited, result = within(10, lambda: lookup(BLOCKED, "201", NOW))
        assert isinstance(result, Exception), result
        assert LIMIT <= waited < LIMIT + 1.5, f"gave up after {waited:.2f} s"

        proxy.restore()
        waited, result = within(10, lambda: lookup(BLOCKED, "201", NOW))
        assert not isinstance(result, Exception), result
        assert [e.value for e in result.block] == [BLOCKED]
    finally:
        engine.dispose()


def test_the_call_log_writer_gives_up_on_a_hung_server_and_keeps_every_row(
    via_proxy: tuple[str, TcpProxy],
) -> None:
    url, proxy = via_proxy
    engine = make_engine(url)

    def record(n: int) -> calllog.CallRecord:
        return calllog.CallRecord(
            at=NOW,
            channel_id=f"hung-{n}",
            caller=BLOCKED,
            caller_raw=BLOCKED,
            extension="201",
            decision="rejected",
            sip_code=607,
            rule_kind="block",
            rule_id=None,
            reason="test",
            decision_us=100,
        )

    async def scenario() -> float:
        writer = CallLogWriter(side_engine(engine), hung_after=LIMIT)
        await writer.start()
        writer.add(record(0))
        await writer.flush()
        proxy.hang()
        for n in range(1, 6):
            writer.add(record(n))
        await asyncio.sleep(LIMIT + 1)  # the write hangs, is cut, and is retried
        proxy.restore()
        t0 = time.monotonic()
        await asyncio.wait_for(writer.flush(), 15)
        flushed = time.monotonic() - t0
        assert await writer.close() == 0
        writer.dispose()
        return flushed

    try:
        flushed = asyncio.run(scenario())
        with Session(engine) as s:
            rows = s.scalars(
                select(CallLog.channel_id).where(CallLog.channel_id.like("hung-%"))
            ).all()
        assert sorted(rows) == [f"hung-{n}" for n in range(6)], rows
        assert flushed < 10, f"rows written {flushed:.1f} s after the server came back"
    finally:
        engine.dispose()


def test_a_feature_code_on_a_hung_server_gives_up_and_the_next_one_works(
    via_proxy: tuple[str, TcpProxy],
) -> None:
    url, proxy = via_proxy
    engine = side_engine(make_engine(url))
    run = sql_feature_runner(engine, features.Reputation(), hung_after=LIMIT)
    try:
        assert run("dnd-on", "201", NOW).outcome == features.Outcome.DND_ON

        proxy.hang()
        waited, result = within(15, lambda: run("dnd-off", "201", NOW))
        assert isinstance(result, Exception), result
        assert waited < LIMIT + 1.5, f"gave up after {waited:.2f} s"

        proxy.restore()
        waited, result = within(15, lambda: run("dnd-off", "201", NOW))
        assert result.outcome == features.Outcome.DND_OFF, result
    finally:
        engine.dispose()


def test_the_first_feature_code_after_a_server_restart_works(
    via_proxy: tuple[str, TcpProxy],
) -> None:
    """The pooled connection died with the server; the feature is run again on a new one
    rather than telling the user "not possible"."""
    url, proxy = via_proxy
    engine = side_engine(make_engine(url))
    run = sql_feature_runner(engine, features.Reputation())
    try:
        assert run("dnd-on", "201", NOW).outcome == features.Outcome.DND_ON
        proxy.cut()
        proxy.restore()
        assert run("dnd-off", "201", NOW).outcome == features.Outcome.DND_OFF
    finally:
        engine.dispose()


def test_the_first_look_up_after_a_server_restart_finds_the_rules(
    via_proxy: tuple[str, TcpProxy],
) -> None:
    """Every pooled connection died with the server; the first caller after it is still
    screened, not let through because of a dead connection."""
    url, proxy = via_proxy
    engine = lookup_engine(make_engine(url))
    lookup = sql_rules_lookup(engine)
    try:
        assert [e.value for e in lookup(BLOCKED, "201", NOW).block] == [BLOCKED]
        proxy.cut()
        proxy.restore()
        assert [e.value for e in lookup(BLOCKED, "201", NOW).block] == [BLOCKED]
    finally:
        engine.dispose()
