"""Admin operations behind the CLI: validate every field first, then write in one transaction."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from screening import store
from screening.errors import InvalidInput, InvalidSchedule
from screening.numbers import parse_entry
from screening.policy import WEEKDAYS, DndWindow, Entry

_EXTENSION = re.compile(r"[0-9A-Za-z*#+_-]{1,32}")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_extension(raw: str, field: str = "--for") -> str:
    if not _EXTENSION.fullmatch(raw):
        raise InvalidInput(
            field, f"expected an extension like 201 (up to 32 characters), got {raw!r}"
        )
    return raw


def parse_code(raw: int | str) -> int:
    if str(raw) not in ("607", "608"):
        raise InvalidInput(
            "--code", f"expected 607 (unwanted, spam) or 608 (rejected, policy), got {raw}"
        )
    return int(raw)


def parse_days(raw: str) -> frozenset[int]:
    """`mon,tue`, ranges like `mon-fri` or `fri-mon`, `all`, `weekdays`, `weekends`."""
    text = raw.strip().lower()
    aliases = {"all": "mon-sun", "weekdays": "mon-fri", "weekends": "sat-sun"}
    days: set[int] = set()
    for part in aliases.get(text, text).split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
            raise InvalidSchedule(
                "--days",
                f"expected days like mon,tue or mon-fri or all; {part!r} is not a day",
            )
        a = WEEKDAYS.index(first)
        b = WEEKDAYS.index(last) if last else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def parse_hhmm(raw: str, field: str) -> time:
    m = _HHMM.fullmatch(raw.strip())
    if not m:
        raise InvalidSchedule(
            field, f"expected a time of day HH:MM from 00:00 to 23:59, got {raw!r}"
        )
    return time(int(m.group(1)), int(m.group(2)))


def parse_tz(raw: str) -> str:
    # ZoneInfo also accepts file paths and odd spellings; only IANA names are portable
    # between the PBXs that share one database.
    if raw not in available_timezones() and raw != "UTC":
        raise InvalidSchedule(
            "--tz",
            f"expected an IANA time zone like Europe/Berlin or America/New_York, got {raw!r}",
        )
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule("--tz", f"time zone {raw!r} has no data on this system") from None
    return raw


def local_zone() -> str:
    """The PBX's own zone, the default an admin expects for `--tz`; UTC if it has none."""
    import os
    from pathlib import Path

    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = str(Path("/etc/localtime").resolve())
            name = target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else ""
        except OSError:
            name = ""
    return name if name in available_timezones() else "UTC"


def parse_reason(raw: str | None) -> str | None:
    if raw is None:
        return None
    if len(raw) > 255 or any(ord(c) < 32 for c in raw):
        raise InvalidInput("--reason", "expected one line of at most 255 characters")
    return raw.strip() or None


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
    now: datetime | None = None,
) -> tuple[Entry, bool]:
    value, is_prefix = parse_entry(number, region)
    new = store.NewEntry(
        entered=number.strip()[:64],
        value=value,
        is_prefix=is_prefix,
        extension=parse_extension(extension) if extension is not None else None,
        reason=parse_reason(reason),
        source=source,
        sip_code=parse_code(code if code is not None else 607) if kind == "block" else None,
    )
    with Session(engine) as session, session.begin():
        return store.upsert_entry(session, kind, new, now or datetime.now(UTC))


def add_dnd(
    engine: Engine,
    extension: str,
    days: str,
    start: str,
    end: str,
    tz: str | None = None,
    now: datetime | None = None,
) -> DndWindow:
    ext = parse_extension(extension, "EXT")
    parsed_days = parse_days(days)
    t_from, t_to = parse_hhmm(start, "--from"), parse_hhmm(end, "--to")
    zone = parse_tz(tz) if tz else local_zone()
    with Session(engine) as session, session.begin():
        return store.add_dnd(
            session, ext, parsed_days, t_from, t_to, zone, now or datetime.now(UTC)
        )
