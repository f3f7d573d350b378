"""Database queries: the rules for one call, list edits, and call-log writes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal, TypeVar

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from screening.db import GLOBAL, AllowEntry, BlockEntry, CallLog, DndSchedule
from screening.policy import DndWindow, Entry, Rules

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


def rules_for(session: Session, caller: str | None, extension: str, now: datetime) -> Rules:
    """Only the rows that could decide this call: entries equal to the caller or to one of its
    prefixes (an indexed IN look-up, flat in list size), in its scope, not expired."""
    dnd = [
        _to_window(r)
        for r in session.scalars(select(DndSchedule).where(DndSchedule.extension == extension))
    ]
    if caller is None:
        return Rules(dnd=dnd)
    candidates = [caller[:i] for i in range(1, len(caller) + 1)]
    return Rules(
        allow=_matching(session, AllowEntry, candidates, extension, now),
        block=_matching(session, BlockEntry, candidates, extension, now),
        dnd=dnd,
    )


def _matching(
    session: Session,
    model: type[_Row],
    candidates: list[str],
    extension: str,
    now: datetime,
) -> list[Entry]:
    query = select(model).where(
        model.value.in_(candidates),
        model.scope.in_((GLOBAL, extension)),
        or_(model.expires_at.is_(None), model.expires_at > now),
    )
    return [_to_entry(r) for r in session.scalars(query)]


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
    row: BlockEntry | AllowEntry | None = (
        _find(session, BlockEntry, new) if kind == "block" else _find(session, AllowEntry, new)
    )
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


def _find(session: Session, model: type[_Row], new: NewEntry) -> _Row | None:
    return session.scalars(
        select(model).where(
            model.value == new.value,
            model.is_prefix == new.is_prefix,
            model.scope == _scope(new.extension),
        )
    ).one_or_none()


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
    session.execute(
        insert(CallLog),
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
