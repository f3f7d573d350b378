"""The per-call look-up: only the rules that could decide one call, in two compiled queries,
and the thread-safe wrapper the screener runs on its look-up threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    bindparam,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from screening.core.decision import (
    Action,
    DndWindow,
    Entry,
    FeedHit,
    ManualDnd,
    NameEntry,
    Policy,
    PolicyKind,
    Rules,
)
from screening.store.models import (
    GLOBAL,
    AllowEntry,
    BlockEntry,
    DndSchedule,
    Feed,
    FeedNumber,
    as_utc,
)
from screening.store.models import ManualDnd as ManualDndRow
from screening.store.models import NameEntry as NameEntryRow
from screening.store.models import Policy as PolicyRow
from screening.store.watchdog import Watchdog

#: A query that has not answered in this long is on a hung connection (store.watchdog):
#: a look-up takes well under a millisecond.
LOOKUP_HUNG_S = 3.0

RulesLookup = Callable[[str | None, str, datetime], Rules]


def rules_for(
    session: Session | Connection, caller: str | None, extension: str, now: datetime
) -> Rules:
    """Only the rows that could decide this call: entries equal to the caller or to one of its
    prefixes (an indexed IN look-up, flat in list size), in its scope, not expired at `now`;
    the extension's DND; the global and the extension's policies and name entries (a few
    rows); the feeds that reported the caller (the index on feed_numbers.number). This runs
    for every call, so its three queries are compiled once per backend and shape and run on
    the driver's own cursor: SQLAlchemy's per-execution work (expanding IN, type
    processing) cost 3x the queries themselves."""
    conn = session.connection() if isinstance(session, Session) else session
    dialect = conn.dialect
    windows: list[DndWindow] = []
    manual: list[ManualDnd] = []
    policies: list[Policy] = []
    names: list[NameEntry] = []
    scoped = _run(conn, _scoped_sql(dialect), {"s0": GLOBAL, "s1": extension})
    for kind, id_, number, start, end, text, until, how, reason, scope in scoped:
        if kind == "s":  # number: the days, as bits
            days = frozenset(d for d in range(7) if number >> d & 1)
            windows.append(DndWindow(id_, extension, days, _time(start), _time(end), text))
        elif kind == "m":
            manual.append(ManualDnd(id_, extension, as_utc(until)))
        elif kind == "p":  # number: the SIP code
            policies.append(Policy(id_, PolicyKind(text), Action(how), number, scope or None))
        else:
            names.append(NameEntry(id_, how, text, scope or None, number, reason))
    if caller is None:
        return Rules(dnd=windows, manual_dnd=manual, policies=policies, names=names)
    params = {f"v{i}": caller[: i + 1] for i in range(len(caller))}
    params |= {"s0": GLOBAL, "s1": extension}
    allow: list[Entry] = []
    block: list[Entry] = []
    rows = _run(conn, _entry_sql(dialect, len(caller)), params)
    for kind, id_, value, is_prefix, scope, code, reason, expires, source in rows:
        expires_at = as_utc(expires)
        if expires_at is not None and expires_at <= now:
            continue
        entry = Entry(
            id_, kind, value, bool(is_prefix), scope or None, code, reason, expires_at, source
        )
        (allow if kind == "allow" else block).append(entry)
    feeds = [
        FeedHit(
            id_,
            name,
            reports,
            _utc(first),
            _utc(last),
            min_reports,
            timedelta(seconds=keep_s),
            code,
            Action(action),
            ext,
        )
        for id_, name, reports, first, last, min_reports, keep_s, code, action, ext in _run(
            conn, _feed_sql(dialect), {"number": caller, "s1": extension}
        )
    ]
    return Rules(
        allow=allow,
        block=block,
        dnd=windows,
        manual_dnd=manual,
        policies=policies,
        names=names,
        feeds=feeds,
    )


def _utc(value: datetime | str) -> datetime:
    found = as_utc(value)
    assert found is not None
    return found


@dataclass(frozen=True)
class _Sql:
    """A statement compiled for one backend: its text and how to pass its parameters."""

    text: str
    defaults: dict[str, Any]  # the literals' own bind values
    order: tuple[str, ...] | None  # parameter names in order, for positional drivers


_compiled: dict[tuple[str, str, str, int], _Sql] = {}


def _compile(stmt: Any, dialect: Any) -> _Sql:
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup) if compiled.positional else None
    return _Sql(str(compiled), dict(compiled.params), order)


def _run(conn: Connection, sql: _Sql, params: dict[str, Any]) -> list[Any]:
    values = sql.defaults | params
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql.text, tuple(values[n] for n in sql.order) if sql.order else values)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _entry_sql(dialect: Any, n: int) -> _Sql:
    key = (dialect.name, dialect.driver, dialect.paramstyle, n)
    if key not in _compiled:
        values: list[Any] = [bindparam(f"v{i}") for i in range(n)]
        scopes: list[Any] = [bindparam("s0"), bindparam("s1")]
        stmt = union_all(
            _entry_select(AllowEntry, "allow", values, scopes),
            _entry_select(BlockEntry, "block", values, scopes),
        )
        _compiled[key] = _compile(stmt, dialect)
    return _compiled[key]


def _feed_sql(dialect: Any) -> _Sql:
    key = (dialect.name, dialect.driver, dialect.paramstyle, -3)
    if key not in _compiled:
        _compiled[key] = _compile(_FEED_QUERY, dialect)
    return _compiled[key]


def _scoped_sql(dialect: Any) -> _Sql:
    key = (dialect.name, dialect.driver, dialect.paramstyle, -2)
    if key not in _compiled:
        _compiled[key] = _compile(_SCOPED_QUERY, dialect)
    return _compiled[key]


def _entry_select(
    model: type[BlockEntry] | type[AllowEntry],
    kind: str,
    values: list[Any],
    scopes: list[Any],
) -> Select[Any]:
    table = cast(Table, model.__table__)
    code = table.c.sip_code if kind == "block" else null().label("sip_code")
    return select(
        literal(kind).label("kind"),
        table.c.id,
        table.c.value,
        table.c.is_prefix,
        table.c.scope,
        code,
        table.c.reason,
        table.c.expires_at,
        table.c.source,
    ).where(table.c.value.in_(values), table.c.scope.in_(scopes))


_dnd = cast(Table, DndSchedule.__table__)
_manual = cast(Table, ManualDndRow.__table__)
_policies = cast(Table, PolicyRow.__table__)
_names = cast(Table, NameEntryRow.__table__)
_in_scope: list[Any] = [bindparam("s0"), bindparam("s1")]
# Everything that depends on the extension, not the caller, in one statement: DND windows,
# manual DND, policies and caller-name entries (a few rows). One union, not four queries:
# each statement costs the call ~50 us on the driver.
_SCOPED_QUERY = union_all(
    select(
        literal("s").label("kind"),
        _dnd.c.id,
        _dnd.c.days.label("number"),
        _dnd.c.start_time,
        _dnd.c.end_time,
        _dnd.c.tz.label("text"),
        null().label("until"),
        null().label("how"),
        null().label("reason"),
        _dnd.c.extension.label("scope"),
    ).where(_dnd.c.extension == bindparam("s1")),
    select(
        literal("m"),
        _manual.c.id,
        null(),
        null(),
        null(),
        null(),
        _manual.c.until,
        null(),
        null(),
        _manual.c.extension,
    ).where(_manual.c.extension == bindparam("s1")),
    select(
        literal("p"),
        _policies.c.id,
        _policies.c.sip_code,
        null(),
        null(),
        _policies.c.kind,
        null(),
        _policies.c.action,
        null(),
        _policies.c.scope,
    ).where(_policies.c.scope.in_(_in_scope)),
    select(
        literal("n"),
        _names.c.id,
        _names.c.sip_code,
        null(),
        null(),
        _names.c.pattern,
        null(),
        _names.c.kind,
        _names.c.reason,
        _names.c.scope,
    ).where(_names.c.scope.in_(_in_scope)),
)


_feeds = cast(Table, Feed.__table__)
_feed_numbers = cast(Table, FeedNumber.__table__)
# The feeds that reported this caller, for every extension or for this one: one look-up on
# the index on feed_numbers.number, then the feed's row by its key.
_FEED_QUERY = (
    select(
        _feeds.c.id,
        _feeds.c.name,
        _feed_numbers.c.reports,
        _feed_numbers.c.first_seen,
        _feed_numbers.c.last_seen,
        _feeds.c.min_reports,
        _feeds.c.keep_s,
        _feeds.c.sip_code,
        _feeds.c.action,
        _feeds.c.extension,
    )
    .select_from(_feed_numbers.join(_feeds, _feeds.c.id == _feed_numbers.c.feed_id))
    .where(
        _feed_numbers.c.number == bindparam("number"),
        (_feeds.c.extension.is_(None)) | (_feeds.c.extension == bindparam("s1")),
    )
)


def _time(value: time | str | timedelta) -> time:
    # Inside a UNION the backends hand back TIME in their own ways.
    if isinstance(value, time):
        return value
    if isinstance(value, timedelta):  # PyMySQL
        return (datetime.min + value).time()
    return time.fromisoformat(value)


def prepares_connection(engine: Engine) -> Callable[[threading.Barrier], None]:
    """For the screener's warm-up: open one pooled connection, run the look-up on it once for
    every length of caller number (E.164: up to 15 digits), and hold it until every look-up
    thread holds one. The pool ends up with one connection per thread, and no call pays for
    compiling the queries or for the driver preparing them (the first call did: 2.6 ms)."""

    def open_one(all_open: threading.Barrier) -> None:
        now = datetime.now(UTC)
        with engine.connect() as conn:
            for digits in range(1, 16):
                rules_for(conn, "+" + "0" * digits, "", now)
            all_open.wait()

    return open_one


class _ConnectionLost(Exception):
    """A look-up's connection was found dead."""


def sql_rules_lookup(engine: Engine, hung_after: float = LOOKUP_HUNG_S) -> RulesLookup:
    """Look-ups on `engine` (see engine.lookup_engine: no ping before use). A connection that
    turns out to be dead (the server restarted) is discarded and the look-up run once more on
    a new one, so the first call after a restart is still screened."""
    watchdog = Watchdog("rule look-up", hung_after)

    def once(caller: str | None, extension: str, now: datetime) -> Rules:
        with engine.connect() as conn:
            try:
                with watchdog.watching(conn):
                    return rules_for(conn, caller, extension, now)
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
