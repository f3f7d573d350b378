"""Database queries: the rules for one call, list edits, and call-log writes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from screening.db import (
    GLOBAL,
    AllowEntry,
    BlockEntry,
    CallLog,
    DndSchedule,
    ManualDnd,
)
from screening.policy import DndWindow, Entry, Rules
from screening.policy import ManualDnd as ManualDndRule

_Row = TypeVar("_Row", BlockEntry, AllowEntry)


def _scope(extension: str | None) -> str:
    return extension or GLOBAL


def _to_entry(row: BlockEntry | AllowEntry) -> Entry:
    kind: Literal["block", "allow"] = "block" if isinstance(row, BlockEntry) else "allow"
    return Entry(
        id=row.id,
        kind=kind,
        value=row.value,
        is_prefix=row.is_prefix,
        extension=row.scope or None,
        sip_code=row.sip_code if isinstance(row, BlockEntry) else None,
        reason=row.reason,
        expires_at=row.expires_at,
        source=row.source,
    )


def _to_window(row: DndSchedule) -> DndWindow:
    return DndWindow(
        id=row.id,
        extension=row.extension,
        days=frozenset(d for d in range(7) if row.days >> d & 1),
        start=row.start_time,
        end=row.end_time,
        tz=row.tz,
    )


def _to_manual(row: ManualDnd) -> ManualDndRule:
    return ManualDndRule(id=row.id, extension=row.extension, until=row.until)


def rules_for(
    session: Session | Connection, caller: str | None, extension: str, now: datetime
) -> Rules:
    """Only the rows that could decide this call: entries equal to the caller or to one of its
    prefixes (an indexed IN look-up, flat in list size), in its scope, not expired at `now`;
    and the extension's DND. This runs for every call, so its two queries are compiled once
    per backend and shape and run on the driver's own cursor: SQLAlchemy's per-execution
    work (expanding IN, type processing) cost 3x the queries themselves."""
    conn = session.connection() if isinstance(session, Session) else session
    dialect = conn.dialect
    windows: list[DndWindow] = []
    manual: list[ManualDndRule] = []
    for kind, id_, days, start, end, tz, until in _run(conn, _dnd_sql(dialect), {"ext": extension}):
        if kind == "s":
            windows.append(
                DndWindow(
                    id_,
                    extension,
                    frozenset(d for d in range(7) if days >> d & 1),
                    _time(start),
                    _time(end),
                    tz,
                )
            )
        else:
            manual.append(ManualDndRule(id_, extension, _utc(until)))
    if caller is None:
        return Rules(dnd=windows, manual_dnd=manual)
    params = {f"v{i}": caller[: i + 1] for i in range(len(caller))}
    params |= {"s0": GLOBAL, "s1": extension}
    allow: list[Entry] = []
    block: list[Entry] = []
    rows = _run(conn, _entry_sql(dialect, len(caller)), params)
    for kind, id_, value, is_prefix, scope, code, reason, expires, source in rows:
        expires_at = _utc(expires)
        if expires_at is not None and expires_at <= now:
            continue
        entry = Entry(
            id_, kind, value, bool(is_prefix), scope or None, code, reason, expires_at, source
        )
        (allow if kind == "allow" else block).append(entry)
    return Rules(allow=allow, block=block, dnd=windows, manual_dnd=manual)


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


def _dnd_sql(dialect: Any) -> _Sql:
    key = (dialect.name, dialect.driver, dialect.paramstyle, -1)
    if key not in _compiled:
        _compiled[key] = _compile(_DND_QUERY, dialect)
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
_manual = cast(Table, ManualDnd.__table__)
_DND_QUERY = union_all(
    select(
        literal("s").label("kind"),
        _dnd.c.id,
        _dnd.c.days,
        _dnd.c.start_time,
        _dnd.c.end_time,
        _dnd.c.tz,
        null().label("until"),
    ).where(_dnd.c.extension == bindparam("ext")),
    select(literal("m"), _manual.c.id, null(), null(), null(), null(), _manual.c.until).where(
        _manual.c.extension == bindparam("ext")
    ),
)


def _time(value: time | str | timedelta) -> time:
    # Inside a UNION the backends hand back TIME in their own ways.
    if isinstance(value, time):
        return value
    if isinstance(value, timedelta):  # PyMySQL
        return (datetime.min + value).time()
    return time.fromisoformat(value)


@dataclass(frozen=True)
class NewEntry:
    entered: str
    value: str
    is_prefix: bool
    extension: str | None
    reason: str | None
    source: str
    expires_at: datetime | None = None
    sip_code: int | None = None  # blocks only


def upsert_entry(
    session: Session, kind: Literal["block", "allow"], new: NewEntry, now: datetime
) -> tuple[Entry, bool]:
    """Add an entry, or update the one with the same number and scope. Returns (entry, created)."""
    row = find_entry(session, kind, new.value, new.is_prefix, new.extension)
    created = row is None
    if row is None:
        fields = {
            "value": new.value,
            "is_prefix": new.is_prefix,
            "scope": _scope(new.extension),
            "created_at": now,
        }
        row = BlockEntry(**fields) if kind == "block" else AllowEntry(**fields)
        session.add(row)
    row.entered = new.entered
    row.reason = new.reason
    row.source = new.source
    row.expires_at = new.expires_at
    if isinstance(row, BlockEntry):
        row.sip_code = new.sip_code or 607
    session.flush()
    return _to_entry(row), created


def find_entry(
    session: Session,
    kind: Literal["block", "allow"],
    value: str,
    is_prefix: bool,
    extension: str | None,
) -> BlockEntry | AllowEntry | None:
    """The entry for this number (or prefix) and scope; there is at most one."""
    model: type[BlockEntry | AllowEntry] = _model(kind)
    query = select(model).where(
        model.value == value, model.is_prefix == is_prefix, model.scope == _scope(extension)
    )
    return cast("BlockEntry | AllowEntry | None", session.scalars(query).one_or_none())


def add_dnd(
    session: Session,
    extension: str,
    days: Iterable[int],
    start: time,
    end: time,
    tz: str,
    now: datetime,
) -> DndWindow:
    row = DndSchedule(
        extension=extension,
        days=sum(1 << d for d in set(days)),
        start_time=start,
        end_time=end,
        tz=tz,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return _to_window(row)


@dataclass(frozen=True)
class CallRecord:
    """One decided call, as the call log keeps it."""

    at: datetime
    channel_id: str
    caller_raw: str
    caller: str | None
    extension: str
    decision: Literal["allowed", "rejected"]
    sip_code: int | None
    rule_kind: str | None
    rule_id: int | None
    reason: str
    decision_us: int


def write_call_log(session: Session, records: Sequence[CallRecord]) -> None:
    if not records:
        return
    # The table, not the class: a plain executemany, without the ORM's bulk bookkeeping
    # (it cost the log writer thread, and so the event loop waiting on the GIL, 3x more).
    session.execute(
        insert(cast(Table, CallLog.__table__)),
        [
            {
                "at": r.at,
                "channel_id": r.channel_id[:64],
                # Caller ID is set by the far end: clip it to the column rather than fail.
                "caller_raw": r.caller_raw[:128],
                "caller": r.caller,
                "extension": r.extension[:32],
                "decision": r.decision,
                "sip_code": r.sip_code,
                "rule_kind": r.rule_kind,
                "rule_id": r.rule_id,
                "reason": r.reason[:255],
                "decision_us": r.decision_us,
            }
            for r in records
        ],
    )


# -- listing and removing -----------------------------------------------------------------


@dataclass(frozen=True)
class ListedEntry:
    """An entry as `block list` / `allow list` shows it, with how often it decided a call."""

    id: int
    kind: Literal["block", "allow"]
    entered: str
    value: str
    is_prefix: bool
    extension: str | None
    sip_code: int | None
    reason: str | None
    source: str
    created_at: datetime
    expires_at: datetime | None
    hits: int
    last_hit: datetime | None


def _model(kind: Literal["block", "allow"]) -> type[BlockEntry] | type[AllowEntry]:
    return BlockEntry if kind == "block" else AllowEntry


def list_entries(
    session: Session, kind: Literal["block", "allow"], extension: str | None = None
) -> list[ListedEntry]:
    if kind == "block":
        return _list(session, BlockEntry, kind, extension)
    return _list(session, AllowEntry, kind, extension)


def _list(
    session: Session, model: type[_Row], kind: Literal["block", "allow"], extension: str | None
) -> list[ListedEntry]:
    hits = (
        select(CallLog.rule_id, func.count().label("n"), func.max(CallLog.at).label("last"))
        .where(CallLog.rule_kind.in_(("block", "reputation") if kind == "block" else (kind,)))
        .group_by(CallLog.rule_id)
        .subquery()
    )
    query = (
        select(model, hits.c.n, hits.c.last)
        .outerjoin(hits, hits.c.rule_id == model.id)
        .order_by(model.scope, model.value, model.is_prefix)
    )
    if extension is not None:
        query = query.where(model.scope == extension)
    return [
        ListedEntry(
            id=row.id,
            kind=kind,
            entered=row.entered,
            value=row.value,
            is_prefix=row.is_prefix,
            extension=row.scope or None,
            sip_code=row.sip_code if isinstance(row, BlockEntry) else None,
            reason=row.reason,
            source=row.source,
            created_at=row.created_at,
            expires_at=row.expires_at,
            hits=n or 0,
            # Aggregates bypass the column type: normalise to aware UTC here.
            last_hit=_utc(last),
        )
        for row, n, last in cast(
            "list[tuple[_Row, int | None, datetime | str | None]]", session.execute(query).all()
        )
    ]


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite returns max() of a DATETIME as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def remove_entry(
    session: Session,
    kind: Literal["block", "allow"],
    *,
    entry_id: int | None = None,
    value: str | None = None,
    is_prefix: bool = False,
    extension: str | None = None,
) -> Entry | None:
    if entry_id is not None:
        row = cast("BlockEntry | AllowEntry | None", session.get(_model(kind), entry_id))
    else:
        assert value is not None
        row = find_entry(session, kind, value, is_prefix, extension)
    if row is None:
        return None
    entry = _to_entry(row)
    session.delete(row)
    return entry


def list_dnd(
    session: Session, extension: str | None = None
) -> tuple[list[DndWindow], list[ManualDndRule]]:
    windows = select(DndSchedule).order_by(DndSchedule.extension, DndSchedule.id)
    manual = select(ManualDnd).order_by(ManualDnd.extension)
    if extension is not None:
        windows = windows.where(DndSchedule.extension == extension)
        manual = manual.where(ManualDnd.extension == extension)
    return (
        [_to_window(r) for r in session.scalars(windows)],
        [_to_manual(r) for r in session.scalars(manual)],
    )


def remove_dnd(session: Session, schedule_id: int) -> DndWindow | None:
    row = session.get(DndSchedule, schedule_id)
    if row is None:
        return None
    window = _to_window(row)
    session.delete(row)
    return window


def set_manual_dnd(
    session: Session, extension: str, until: datetime | None, source: str, now: datetime
) -> ManualDndRule:
    row = session.scalars(select(ManualDnd).where(ManualDnd.extension == extension)).one_or_none()
    if row is None:
        row = ManualDnd(extension=extension, since=now, source=source)
        session.add(row)
    row.until = until
    row.source = source
    session.flush()
    return _to_manual(row)


def clear_manual_dnd(session: Session, extension: str) -> bool:
    result = session.execute(delete(ManualDnd).where(ManualDnd.extension == extension))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# -- call log -------------------------------------------------------------------------------


def query_log(
    session: Session,
    *,
    since: datetime | None = None,
    extension: str | None = None,
    caller: str | None = None,
    decision: str | None = None,
    limit: int = 50,
) -> list[CallLog]:
    query = select(CallLog).order_by(CallLog.at.desc(), CallLog.id.desc()).limit(limit)
    if since is not None:
        query = query.where(CallLog.at >= since)
    if extension is not None:
        query = query.where(CallLog.extension == extension)
    if caller is not None:
        query = query.where(CallLog.caller == caller)
    if decision is not None:
        query = query.where(CallLog.decision == decision)
    rows = list(session.scalars(query))
    session.expunge_all()
    return rows


def purge_log(session: Session, before: datetime) -> int:
    """Delete call-log rows older than `before`; returns how many."""
    result = session.execute(delete(CallLog).where(CallLog.at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Stats:
    since: datetime | None
    calls: int
    allowed: int
    rejected_607: int
    rejected_608: int
    rejected_by_reputation: int
    failed_open: int  # continued unscreened because screening failed
    top_callers: list[tuple[str, int]]  # rejected callers, most first
    top_rules: list[tuple[str, int]]  # rule descriptions that rejected, most first


def stats(session: Session, since: datetime | None = None, top: int = 10) -> Stats:
    scope = [CallLog.at >= since] if since is not None else []

    def matching(*where: ColumnElement[bool]) -> ColumnElement[int]:
        # COUNT skips NULLs: one pass over the log counts every category at once.
        return func.count(case((and_(*where), 1)))

    totals = session.execute(
        select(
            func.count(),
            matching(CallLog.decision == "allowed"),
            matching(CallLog.decision == "rejected", CallLog.sip_code == 607),
            matching(CallLog.decision == "rejected", CallLog.sip_code == 608),
            matching(CallLog.rule_kind == "reputation"),
            matching(CallLog.rule_kind == "error"),
        )
        .select_from(CallLog)
        .where(*scope)
    ).one()
    rejected = [*scope, CallLog.decision == "rejected"]
    top_callers = session.execute(
        select(CallLog.caller, func.count().label("n"))
        .where(*rejected, CallLog.caller.is_not(None))
        .group_by(CallLog.caller)
        .order_by(func.count().desc(), CallLog.caller)
        .limit(top)
    ).all()
    top_rules = session.execute(
        select(CallLog.rule_kind, CallLog.rule_id, func.max(CallLog.reason), func.count())
        .where(*rejected)
        .group_by(CallLog.rule_kind, CallLog.rule_id)
        .order_by(func.count().desc())
        .limit(top)
    ).all()
    return Stats(
        since=since,
        calls=totals[0],
        allowed=totals[1],
        rejected_607=totals[2],
        rejected_608=totals[3],
        rejected_by_reputation=totals[4],
        failed_open=totals[5],
        top_callers=[(str(c), n) for c, n in top_callers],
        top_rules=[(reason, n) for _kind, _id, reason, n in top_rules],
    )


# -- bulk import ----------------------------------------------------------------------------


def bulk_upsert_entries(
    session: Session,
    kind: Literal["block", "allow"],
    entries: Sequence[NewEntry],
    now: datetime,
    progress: Callable[[int], None] | None = None,
    chunk: int = 20_000,
) -> None:
    """Insert or update many entries in the caller's transaction. The same number and scope
    twice: the later row wins (as if added one after the other)."""
    table = cast(Table, _model(kind).__table__)
    unique: dict[tuple[str, bool, str], NewEntry] = {}
    for e in entries:
        unique[(e.value, e.is_prefix, _scope(e.extension))] = e
    rows = [
        {
            "value": e.value,
            "is_prefix": e.is_prefix,
            "scope": _scope(e.extension),
            "entered": e.entered,
            "reason": e.reason,
            "source": e.source,
            "created_at": now,
            "expires_at": e.expires_at,
            **({"sip_code": e.sip_code or 607} if kind == "block" else {}),
        }
        for e in unique.values()
    ]
    updated = ["entered", "reason", "source", "expires_at"] + (
        ["sip_code"] if kind == "block" else []
    )
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(table)
        stmt: Any = my.on_duplicate_key_update({c: my.inserted[c] for c in updated})
    else:
        ins = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=["value", "is_prefix", "scope"],
            set_={c: ins.excluded[c] for c in updated},
        )
    for start in range(0, len(rows), chunk):
        batch = rows[start : start + chunk]
        session.execute(stmt, batch)
        if progress is not None:
            progress(len(batch))


@dataclass(frozen=True)
class NewDnd:
    extension: str
    days: frozenset[int]
    start: time
    end: time
    tz: str


def bulk_add_dnd(session: Session, schedules: Sequence[NewDnd], now: datetime) -> int:
    """Add schedules, skipping any identical to one already there (so re-importing an export
    changes nothing). Returns how many were added."""
    if not schedules:
        return 0

    def key(ext: str, days: int, start: time, end: time, tz: str) -> tuple[object, ...]:
        return (ext, days, start.replace(second=0, microsecond=0), end.replace(second=0), tz)

    existing = {
        key(r.extension, r.days, r.start_time, r.end_time, r.tz)
        for r in session.scalars(
            select(DndSchedule).where(DndSchedule.extension.in_({d.extension for d in schedules}))
        )
    }
    rows = []
    for d in schedules:
        bits = sum(1 << day for day in d.days)
        k = key(d.extension, bits, d.start, d.end, d.tz)
        if k in existing:
            continue
        existing.add(k)
        rows.append(
            {
                "extension": d.extension,
                "days": bits,
                "start_time": d.start,
                "end_time": d.end,
                "tz": d.tz,
                "created_at": now,
            }
        )
    if rows:
        session.execute(insert(DndSchedule), rows)
    return len(rows)
