"""Block and allow entries and DND schedules as every door reads and removes them by id,
checked against who asks: a user's are their extension's, global ones are the admins'."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from screening.core.decision import DndWindow, Entry, ManualDnd
from screening.core.errors import NotFound
from screening.service import parse
from screening.service.actor import Actor, audit
from screening.store import lists as rows
from screening.store import policies
from screening.store.lists import EntryPage as EntryPage
from screening.store.lists import ListedEntry

Kind = Literal["block", "allow"]


def page_scope(actor: Actor, asked: str | None) -> str | None:
    """The scope of a page of entries: "global" (the admins'), an extension, or None for
    all; a user's own extension whatever they ask for, and never the global ones."""
    if asked == "global":
        actor.may(None)
        return ""
    return actor.scope(parse.parse_extension(asked, "extension") if asked else None)


def page_entries(
    engine: Engine,
    actor: Actor,
    kind: Kind,
    *,
    scope: str | None = None,
    number: str = "",
    after: str | None = None,
    limit: int = 50,
) -> EntryPage:
    """One page of entries, ordered by number: `scope` as `page_scope` reads it, `number`
    a prefix of the numbers wanted, `after` the cursor of the previous page."""
    where = page_scope(actor, scope)
    prefix = parse.parse_number_prefix(number)
    cursor = parse.parse_cursor(after)
    with Session(engine) as s:
        return rows.page_entries(s, kind, scope=where, prefix=prefix, after=cursor, limit=limit)


def all_entries(engine: Engine, kind: Kind, extension: str | None) -> tuple[list[ListedEntry], int]:
    """Every entry of a list (for the CLI's admin), and how many name entries it has."""
    with Session(engine) as s:
        return rows.list_entries(s, kind, extension), len(policies.list_names(s, kind, extension))


def remove_entry(
    engine: Engine, actor: Actor, kind: Kind, entry_id: int, now: datetime | None = None
) -> Entry:
    """Remove the entry with this id, if it is the actor's to remove; audited with it."""
    with Session(engine) as s, s.begin():
        found = rows.find_entry_by_id(s, kind, entry_id)
        if found is None:
            raise NotFound(f"no {kind} entry with id {entry_id}")
        actor.may(found.extension)
        removed = rows.remove_entry(s, kind, entry_id=entry_id)
        assert removed is not None
        audit(s, actor, f"{kind} remove", removed.describe(), now or datetime.now(UTC))
    return removed


def list_dnd(
    engine: Engine, actor: Actor, extension: str | None = None
) -> tuple[list[DndWindow], list[ManualDnd]]:
    """The schedules and manual DND of one extension (None: all, for an admin)."""
    with Session(engine) as s:
        return rows.list_dnd(s, actor.scope(extension))


def remove_dnd(
    engine: Engine, actor: Actor, schedule_id: int, now: datetime | None = None
) -> DndWindow:
    with Session(engine) as s, s.begin():
        found = rows.find_dnd(s, schedule_id)
        if found is None:
            raise NotFound(f"no DND schedule with id {schedule_id}")
        actor.may(found.extension)
        removed = rows.remove_dnd(s, schedule_id)
        assert removed is not None
        audit(s, actor, "dnd remove", removed.describe(), now or datetime.now(UTC))
    return removed
