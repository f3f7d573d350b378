"""List edits: block and allow entries, DND schedules and manual DND; one at a time (CLI,
feature codes) or in bulk (import)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Table, and_, delete, false, func, insert, or_, select, true
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from screening.core.challenge import CHALLENGE_SOURCE
from screening.core.decision import DndWindow, Entry
from screening.core.decision import ManualDnd as ManualDndRule
from screening.store.models import (
    GLOBAL,
    AllowEntry,
    BlockEntry,
    CallLog,
    DndSchedule,
    ManualDnd,
    as_utc,
)

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


def remember_challenge(
    session: Session, caller: str, extension: str, until: datetime, now: datetime
) -> Entry:
    """A caller passed the challenge for `extension`: a temporary allow entry spares them
    the next ones (core.decision.decide gives it less weight than an entry a person made)."""
    new = NewEntry(
        entered=caller,
        value=caller,
        is_prefix=False,
        extension=extension,
        reason="passed the challenge",
        source=CHALLENGE_SOURCE,
        expires_at=until,
    )
    return upsert_entry(session, "allow", new, now)[0]


def find_entry_by_id(
    session: Session, kind: Literal["block", "allow"], entry_id: int
) -> Entry | None:
    row = cast("BlockEntry | AllowEntry | None", session.get(_model(kind), entry_id))
    return _to_entry(row) if row is not None else None


def find_dnd(session: Session, schedule_id: int) -> DndWindow | None:
    row = session.get(DndSchedule, schedule_id)
    return _to_window(row) if row is not None else None


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
        _listed(row, kind, n, last)
        for row, n, last in cast(
            "list[tuple[_Row, int | None, datetime | str | None]]", session.execute(query).all()
        )
    ]


#: Where a page of entries starts: after this (value, is_prefix, scope).
Cursor = tuple[str, bool, str]


@dataclass(frozen=True)
class EntryPage:
    entries: list[ListedEntry]
    next: Cursor | None  # None: this is the last page


def page_entries(
    session: Session,
    kind: Literal["block", "allow"],
    *,
    scope: str | None = None,
    prefix: str = "",
    after: Cursor | None = None,
    limit: int = 50,
) -> EntryPage:
    """One page of entries in number order: all scopes (None), global ones ("") or one
    extension's; numbers starting with `prefix` (normalised, e.g. "+1555"). Keyset paging
    on an index, so page 20,000 of a million entries costs what page 1 does."""
    model = _model(kind)
    query = select(model)
    if scope is not None:
        query = query.where(model.scope == scope).order_by(model.value, model.is_prefix)
    else:
        query = query.order_by(model.value, model.is_prefix, model.scope)
    if prefix:
        # A range, not LIKE: it uses the index on every backend ("~" sorts after digits).
        query = query.where(model.value >= prefix, model.value < prefix + "~")
    if after is not None:
        value, is_prefix, after_scope = after
        # Booleans sort False < True; "greater than True" is nothing.
        later_kind = false() if is_prefix else model.is_prefix == true()
        tail = or_(later_kind, and_(model.is_prefix == is_prefix, model.scope > after_scope))
        if scope is not None:
            tail = later_kind
        query = query.where(
            model.value >= value, or_(model.value > value, and_(model.value == value, tail))
        )
    rows = cast("list[BlockEntry | AllowEntry]", list(session.scalars(query.limit(limit + 1))))
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [r.id for r in rows]
    kinds = ("block", "reputation") if kind == "block" else (kind,)
    hits = (
        {
            rule_id: (n, last)
            for rule_id, n, last in session.execute(
                select(CallLog.rule_id, func.count(), func.max(CallLog.at))
                .where(CallLog.rule_kind.in_(kinds), CallLog.rule_id.in_(ids))
                .group_by(CallLog.rule_id)
            ).all()
        }
        if ids
        else {}
    )
    entries = [_listed(row, kind, *hits.get(row.id, (0, None))) for row in rows]
    last = rows[-1] if rows else None
    cursor = (last.value, last.is_prefix, last.scope) if more and last is not None else None
    return EntryPage(entries, cursor)


def _listed(
    row: BlockEntry | AllowEntry,
    kind: Literal["block", "allow"],
    hits: int | None,
    last_hit: datetime | str | None,
) -> ListedEntry:
    return ListedEntry(
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
        hits=hits or 0,
        # Aggregates bypass the column type: normalise to aware UTC here.
        last_hit=as_utc(last_hit),
    )


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
