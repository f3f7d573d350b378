"""Rules and call log on SQLite, PostgreSQL and MariaDB: the same code, the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import cast

import pytest
from sqlalchemy import Engine, Table, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from screening.core.decision import Action, IncomingCall, Rules, decide
from screening.core.errors import DatabaseError
from screening.service import ops
from screening.service.actor import CLI
from screening.store import calllog, lookup, migrate
from screening.store.engine import make_engine
from screening.store.models import BlockEntry, CallLog

NOW = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)


def rules(engine: Engine, caller: str | None, ext: str = "201", now: datetime = NOW) -> Rules:
    with Session(engine) as s:
        return lookup.rules_for(s, caller, ext, now)


def test_upgrade_creates_the_schema_and_is_repeatable(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    with pytest.raises(DatabaseError, match="run `screening db upgrade`"):
        migrate.require_current(engine)
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # a second run changes nothing
    assert migrate.current(engine) == migrate.head()
    migrate.require_current(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"block_entries", "allow_entries", "dnd_schedules", "call_log"} <= tables
    engine.dispose()


def test_an_upgrade_to_the_zoned_day_summaries_that_died_halfway_runs_again(
    empty_database_url: str,
) -> None:
    # MariaDB commits a DROP TABLE at once: an upgrade killed between 0011's drop and its
    # create left no table, and the next `db upgrade` must still get through.
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, "0010")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE call_log_days"))
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    assert "call_log_days" in inspect(engine).get_table_names()
    migrate.downgrade(engine, "0010")
    migrate.upgrade(engine)
    engine.dispose()


def test_lookup_returns_only_entries_that_can_match(engine: Engine) -> None:
    add = ops.add_entry
    add(engine, "block", "+15551234567", "US", now=NOW, by=CLI)
    add(engine, "block", "+1555*", "US", code=608, now=NOW, by=CLI)
    add(engine, "block", "+1556*", "US", now=NOW, by=CLI)  # another prefix
    add(
        engine, "block", "+15551234567", "US", extension="202", now=NOW, by=CLI
    )  # another extension
    add(engine, "block", "+155512345678", "US", now=NOW, by=CLI)  # longer number, not a prefix
    add(engine, "allow", "+1555123*", "US", extension="201", now=NOW, by=CLI)
    found = rules(engine, "+15551234567")
    assert sorted((e.value, e.is_prefix, e.extension) for e in found.block) == [
        ("+1555", True, None),
        ("+15551234567", False, None),
    ]
    assert [(e.value, e.extension) for e in found.allow] == [("+1555123", "201")]


def test_stored_rules_decide_like_the_core(engine: Engine) -> None:
    ops.add_entry(engine, "block", "5551234567", "US", reason="robocaller", now=NOW, by=CLI)
    ops.add_entry(engine, "block", "1900*", "US", code=608, now=NOW, by=CLI)
    ops.add_entry(engine, "allow", "+15557654321", "US", now=NOW, by=CLI)
    ops.add_dnd(engine, "201", "all", "11:00", "13:00", "UTC", now=NOW, by=CLI)

    def verdict(caller: str | None, ext: str = "201") -> tuple[Action, int | None, str | None]:
        d = decide(IncomingCall(caller or "", caller, ext), rules(engine, caller, ext), NOW)
        return d.action, d.sip_code, d.rule_kind

    assert verdict("+15551234567", "202") == (Action.REJECT, 607, "block")
    assert verdict("+19005550000", "202") == (Action.REJECT, 608, "block")
    assert verdict("+15550000000", "201") == (Action.REJECT, 608, "dnd")
    assert verdict("+15557654321", "201") == (Action.CONTINUE, None, "allow")
    assert verdict(None, "201") == (Action.REJECT, 608, "dnd")
    assert verdict("+15550000000", "202") == (Action.CONTINUE, None, None)


def test_expired_entries_are_not_loaded(engine: Engine) -> None:
    ops.add_entry(engine, "block", "+15551234567", "US", now=NOW, by=CLI)
    with Session(engine) as s, s.begin():
        s.execute(
            cast(Table, BlockEntry.__table__).update().values(expires_at=NOW - timedelta(seconds=1))
        )
    assert rules(engine, "+15551234567").block == []
    assert len(rules(engine, "+15551234567", now=NOW - timedelta(seconds=2)).block) == 1


def test_adding_the_same_number_again_updates_it(engine: Engine) -> None:
    first, created = ops.add_entry(engine, "block", "5551234567", "US", reason="a", now=NOW, by=CLI)
    second, created_again = ops.add_entry(
        engine, "block", "+1 555 123 4567", "US", code=608, reason="b", now=NOW, by=CLI
    )
    assert created and not created_again and first.id == second.id
    assert (second.sip_code, second.reason) == (608, "b")
    # Same number for one extension is a separate rule.
    _, scoped = ops.add_entry(engine, "block", "5551234567", "US", extension="201", now=NOW, by=CLI)
    assert scoped
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(BlockEntry)) == 2


def test_database_refuses_bad_codes_and_duplicates(engine: Engine) -> None:
    row = dict(
        value="+1",
        is_prefix=True,
        entered="+1*",
        scope="",
        reason=None,
        source="t",
        created_at=NOW,
        expires_at=None,
    )
    # PyMySQL reports MariaDB's CHECK failure (4025) as OperationalError.
    with pytest.raises((IntegrityError, OperationalError)), Session(engine) as s, s.begin():
        s.add(BlockEntry(**row, sip_code=606))
    with Session(engine) as s, s.begin():
        s.add(BlockEntry(**row, sip_code=607))
    with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
        s.add(BlockEntry(**row, sip_code=608))


def test_dnd_schedule_round_trips(engine: Engine) -> None:
    added = ops.add_dnd(
        engine, "201", "fri-mon", "22:30", "07:15", "Europe/Berlin", now=NOW, by=CLI
    )
    [window] = rules(engine, "+15550000000").dnd
    assert window == added
    assert (window.days, window.start, window.end, window.tz) == (
        frozenset({4, 5, 6, 0}),
        time(22, 30),
        time(7, 15),
        "Europe/Berlin",
    )
    assert rules(engine, "+15550000000", ext="202").dnd == []


def test_call_log_keeps_time_to_the_microsecond_in_utc(engine: Engine) -> None:
    record = calllog.CallRecord(
        at=NOW,
        channel_id="1700000000.1",
        caller_raw="x" * 300,
        caller=None,
        extension="201",
        decision="rejected",
        sip_code=608,
        rule_kind="dnd",
        rule_id=1,
        reason="r" * 400,
        decision_us=1234,
    )
    with Session(engine) as s, s.begin():
        calllog.write_call_log(s, [record, record])
    with Session(engine) as s:
        rows = s.scalars(select(CallLog)).all()
    assert len(rows) == 2
    assert rows[0].at == NOW and rows[0].at.tzinfo is not None
    assert len(rows[0].caller_raw) == 128 and len(rows[0].reason) == 255
    assert (rows[0].decision, rows[0].sip_code, rows[0].decision_us) == ("rejected", 608, 1234)
