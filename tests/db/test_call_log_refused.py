"""A call-log row the database refuses is repaired or set aside, and never holds up the
rows after it (it used to be retried for ever, with every later row queued behind it in
memory). On SQLite, PostgreSQL and MariaDB; a MariaDB database made in utf8mb3 for the
character set."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from screening.store import migrate
from screening.store.calllog import CallRecord
from screening.store.engine import make_engine, side_engine
from screening.store.models import CallLog
from screening.store.writer import CallLogWriter
from tests.cli_helpers import run
from tests.conftest import ThrowawayDatabases, server

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def record(channel: str, **changes: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "at": NOW,
        "channel_id": channel,
        "caller_raw": "+15550990001",
        "caller": "+15550990001",
        "extension": "201",
        "decision": "allowed",
        "sip_code": None,
        "rule_kind": None,
        "rule_id": None,
        "reason": "no rule matched",
        "decision_us": 100,
        **changes,
    }
    return CallRecord(**fields)


def write(engine: Engine, rows: list[CallRecord]) -> list[str]:
    """Queue `rows` through the service's writer; what it reported refused."""
    refused: list[str] = []

    async def scenario() -> None:
        writer = CallLogWriter(side_engine(engine), linger=0)
        writer.on_refused = refused.append
        await writer.start()
        for r in rows:
            writer.add(r)
        await asyncio.wait_for(writer.flush(), 20)  # never for ever
        assert await writer.close() == 0
        writer.dispose()

    asyncio.run(scenario())
    return refused


def written(engine: Engine) -> list[tuple[str, str, str | None]]:
    with Session(engine) as s:
        rows = s.execute(
            select(CallLog.channel_id, CallLog.caller_raw, CallLog.caller_name).order_by(CallLog.id)
        )
        return [(r[0], r[1], r[2]) for r in rows]


def test_a_nul_or_newline_from_the_far_end_is_written_escaped(engine: Engine) -> None:
    # A FastAGI peer's caller ID with a NUL: PostgreSQL refused the batch, the writer
    # retried it for ever and nothing more was written.
    rows = [
        record("c1"),
        record("c2", caller_raw="+1555\x00099", caller=None, caller_name="A\x00B\nC"),
        record("c3"),
    ]
    assert write(engine, rows) == []
    assert written(engine) == [
        ("c1", "+15550990001", None),
        ("c2", "+1555\\x00099", "A\\x00B\\x0aC"),
        ("c3", "+15550990001", None),
    ]


def test_a_row_refused_even_repaired_is_set_aside_and_the_rows_after_it_written(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    broken = record("c2", at=cast(datetime, None))  # NOT NULL everywhere: nothing repairs it
    assert write(engine, [record("c1"), broken, record("c3")]) == ["set_aside"]
    assert [r[0] for r in written(engine)] == ["c1", "c3"]
    assert "set aside" in caplog.text and '"channel_id": "c2"' in caplog.text


@pytest.fixture
def utf8mb3(_servers: dict[str, ThrowawayDatabases]) -> Engine:
    """A MariaDB database whose default was utf8mb3 when its tables were made."""
    url = server("mariadb", _servers).new("CHARACTER SET utf8mb3")
    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine


def test_an_emoji_name_on_a_table_that_is_not_utf8mb4_is_written_repaired(
    utf8mb3: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    rows = [record("c1", caller_name="\U0001f4de Pizza"), record("c2")]
    assert write(utf8mb3, rows) == ["repaired"]
    assert written(utf8mb3) == [
        ("c1", "+15550990001", "\ufffd Pizza"),
        ("c2", "+15550990001", None),
    ]
    assert "written repaired" in caplog.text
    utf8mb3.dispose()


def test_db_upgrade_and_the_doctor_name_tables_that_are_not_utf8mb4(utf8mb3: Engine) -> None:
    url = utf8mb3.url.render_as_string(hide_password=False)
    r = run("db", "upgrade", env={"SCREENING_DATABASE_URL": url})
    assert r.code == 0, r.err
    assert "call_log" in r.err and "CONVERT TO CHARACTER SET utf8mb4" in r.err
    doctor = run("doctor", "--asterisk", "false", env={"SCREENING_DATABASE_URL": url})
    assert "not utf8mb4" in doctor.out and "ALTER TABLE call_log" in doctor.out
    assert doctor.code != 0
    utf8mb3.dispose()


def test_rows_for_a_database_that_is_away_are_bounded_in_memory(
    caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    # A database that never comes back must not let memory grow with every call.
    dropped: list[int] = []

    async def scenario() -> int:
        away = make_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
        writer = CallLogWriter(away, linger=0, max_pending=3)
        writer.on_dropped = lambda: dropped.append(1)
        await writer.start()
        for n in range(10):
            writer.add(record(f"c{n}"))
        pending = writer.pending
        await writer.close(within=0.2)
        return pending

    assert asyncio.run(scenario()) == 3
    assert len(dropped) == 7
    assert caplog.text.count("later rows are dropped") == 1
