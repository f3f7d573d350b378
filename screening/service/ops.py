"""Admin operations behind the CLI, the console and the import: each one checked input in,
one transaction, our own values out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from screening.core.decision import (
    Decision,
    DndWindow,
    Entry,
    IncomingCall,
    ManualDnd,
    NameEntry,
    Policy,
    PolicyKind,
)
from screening.core.errors import InvalidInput, NotFound, ScreeningError
from screening.service import lists as removals
from screening.service import parse, screener
from screening.service.actor import Actor, audit
from screening.service.parse import EntryKey, new_dnd, new_entry
from screening.store import lists, policies
from screening.store.lists import NewDnd, NewEntry
from screening.store.lookup import rules_for
from screening.store.policies import NameKind, NewName, NewPolicy


def save_entry(
    engine: Engine, kind: Literal["block", "allow"], new: NewEntry, now: datetime, *, by: Actor
) -> tuple[Entry, bool]:
    by.may(new.extension)
    with Session(engine) as session, session.begin():
        entry, created = lists.upsert_entry(session, kind, new, now)
        audit(session, by, f"{kind} {'add' if created else 'update'}", entry.describe(), now)
    return entry, created


def add_entry(
    engine: Engine,
    kind: Literal["block", "allow"],
    number: str,
    region: str,
    *,
    extension: str | None = None,
    code: int | str | None = None,
    reason: str | None = None,
    source: str = "cli",
    expires: str | None = None,
    now: datetime | None = None,
    zone: str | None = None,  # what a date or time in `expires` is in; None: this host's
    by: Actor,
) -> tuple[Entry, bool]:
    now = now or datetime.now(UTC)
    new = new_entry(
        kind,
        number,
        region,
        now,
        extension=extension,
        code=code,
        reason=reason,
        source=source,
        expires=expires,
        zone=zone,
    )
    return save_entry(engine, kind, new, now, by=by)


def add_dnd(
    engine: Engine,
    extension: str,
    days: str,
    start: str,
    end: str,
    tz: str | None = None,
    now: datetime | None = None,
    *,
    by: Actor,
) -> DndWindow:
    return save_dnd(engine, new_dnd(extension, days, start, end, tz), now, by=by)


def save_dnd(engine: Engine, new: NewDnd, now: datetime | None = None, *, by: Actor) -> DndWindow:
    by.may(new.extension)
    now = now or datetime.now(UTC)
    with Session(engine) as session, session.begin():
        window = lists.add_dnd(session, new.extension, new.days, new.start, new.end, new.tz, now)
        audit(session, by, "dnd add", window.describe(), now)
    return window


def remove_entry(
    engine: Engine, kind: Literal["block", "allow"], key: EntryKey, *, by: Actor
) -> Entry:
    """Remove an entry by number and scope (the CLI's way; by id: service.lists)."""
    by.may(key.extension)
    with Session(engine) as session, session.begin():
        removed = lists.remove_entry(
            session,
            kind,
            entry_id=key.entry_id,
            value=key.value,
            is_prefix=key.is_prefix,
            extension=key.extension,
        )
        if removed is not None:
            by.may(removed.extension)  # by id: whose it is shows only now; raising undoes it
            audit(session, by, f"{kind} remove", removed.describe(), datetime.now(UTC))
    if removed is None:
        scope = f"extension {key.extension}" if key.extension else "global"
        what = f"id {key.entry_id}" if key.entry_id is not None else f"{key.target!r} ({scope})"
        raise NotFound(f"no {kind} entry {what}; see `screening {kind} list`")
    return removed


def remove_dnd(engine: Engine, schedule_id: str, *, by: Actor) -> DndWindow:
    try:
        number = parse.whole_number(schedule_id.strip().lstrip("#"), "id", 0, parse.MAX_ID)
    except InvalidInput:
        raise InvalidInput(
            "id",
            f"expected the number of a schedule from `screening dnd list`, got {schedule_id!r}",
        ) from None
    try:
        return removals.remove_dnd(engine, by, number)
    except NotFound:
        raise NotFound(f"no DND schedule with id {schedule_id}; see `screening dnd list`") from None


def dnd_on(
    engine: Engine,
    extension: str,
    until: datetime | None = None,
    source: str = "cli",
    now: datetime | None = None,
    *,
    by: Actor,
) -> ManualDnd:
    """Manual DND for `extension` (checked by parse_extension), until `until` or until
    switched off."""
    by.may(extension)
    now = now or datetime.now(UTC)
    with Session(engine) as session, session.begin():
        rule = lists.set_manual_dnd(session, extension, until, source, now)
        audit(session, by, "dnd on", rule.describe(), now)
    return rule


def dnd_off(engine: Engine, extension: str, *, by: Actor) -> bool:
    by.may(extension)
    with Session(engine) as session, session.begin():
        was = lists.clear_manual_dnd(session, extension)
        audit(session, by, "dnd off", f"extension {extension}", datetime.now(UTC))
    return was


def check(engine: Engine, call: IncomingCall, at: datetime) -> Decision:
    """What the app would do with this call at that instant: the same look-up, the same core."""
    with Session(engine) as session:
        return screener.check(
            lambda caller, ext, now: rules_for(session, caller, ext, now), call, at
        )


def backup_sqlite(engine: Engine, target: str) -> int:
    """SQLite's online backup: a consistent copy while the app keeps writing. The copy goes
    to a temporary name first, so a failure never leaves a half-written FILE."""
    import sqlite3

    if engine.dialect.name != "sqlite":
        raise InvalidInput(
            "db backup", f"is for SQLite; back up {engine.dialect.name} with its own dump tool"
        )
    path = Path(target)
    if not path.parent.is_dir():
        where = str(path.parent)[:200]
        raise InvalidInput("file", f"expected a file in a folder that exists; {where!r} is none")
    partial = path.with_name(path.name + ".partial")
    raw = engine.raw_connection()
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)
        finally:
            copy.close()
        partial.replace(path)
    except (sqlite3.Error, OSError) as e:  # a full disk, a folder we may not write in
        raise ScreeningError(f"the backup to {str(path)[:200]!r} failed: {e}") from None
    finally:
        raw.close()
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def set_policy(
    engine: Engine, new: NewPolicy, now: datetime | None = None, *, by: Actor
) -> tuple[Policy, bool]:
    by.admins_only("policies")
    now = now or datetime.now(UTC)
    with Session(engine) as session, session.begin():
        saved, created = policies.set_policy(session, new, now)
        audit(session, by, f"policy {'set' if created else 'update'}", saved.describe(), now)
    return saved, created


def list_policies(engine: Engine, extension: str | None = None) -> list[Policy]:
    with Session(engine) as session:
        return policies.list_policies(session, extension)


def any_challenge(engine: Engine) -> bool:
    with Session(engine) as session:
        return policies.any_challenge(session)


def remove_policy(engine: Engine, kind: PolicyKind, extension: str | None, *, by: Actor) -> Policy:
    by.admins_only("policies")
    with Session(engine) as session, session.begin():
        removed = policies.remove_policy(session, kind, extension)
        if removed is not None:
            audit(session, by, "policy remove", removed.describe(), datetime.now(UTC))
    if removed is None:
        scope = f"extension {extension}" if extension else "global"
        raise NotFound(f"no {kind} policy ({scope}); see `screening policy list`")
    return removed


def save_name(
    engine: Engine, new: NewName, now: datetime | None = None, *, by: Actor
) -> tuple[NameEntry, bool]:
    by.admins_only("caller-name entries")
    now = now or datetime.now(UTC)
    with Session(engine) as session, session.begin():
        saved, created = policies.upsert_name(session, new, now)
        what = f"{saved.kind} name {'add' if created else 'update'}"
        audit(session, by, what, saved.describe(), now)
    return saved, created


def list_names(engine: Engine, kind: NameKind, extension: str | None) -> list[NameEntry]:
    with Session(engine) as session:
        return policies.list_names(session, kind, extension)


def remove_name(
    engine: Engine, kind: NameKind, pattern: str, extension: str | None, *, by: Actor
) -> NameEntry:
    by.admins_only("caller-name entries")
    with Session(engine) as session, session.begin():
        removed = policies.remove_name(session, kind, pattern, extension)
        if removed is not None:
            audit(session, by, f"{kind} name remove", removed.describe(), datetime.now(UTC))
    if removed is None:
        scope = f"extension {extension}" if extension else "global"
        raise NotFound(
            f"no {kind} entry for name {pattern!r} ({scope}); see `screening {kind} list`"
        )
    return removed
