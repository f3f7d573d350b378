"""/api/v1/dnd and /api/v1/manual-dnd: schedules, and DND switched on by hand (as *78/*79)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from screening.core.errors import InvalidInput
from screening.service import lists, ops, parse
from screening.service.views import DndView, ManualDndView, WindowView, dnd_view, utc, window_view
from screening.web.api.door import Answer, Ask, Body, Operation, Param, Text
from screening.web.api.params import EXTENSION, ID


class WindowBody(Body):
    extension: Text
    days: str  # mon-fri, sat,sun, all, weekdays
    start: str = msgspec.field(name="from")  # HH:MM
    end: str = msgspec.field(name="to")  # HH:MM
    tz: str | None = None  # an IANA zone; the machine's by default


class ManualBody(Body):
    on: bool
    until: str | None = None  # HH:MM, 2h, a date (UTC unless it says)


def list_dnd(ask: Ask) -> Answer:
    wanted = ask.query.get("extension")
    extension = parse.parse_extension(wanted, "extension") if wanted else None
    windows, manual = lists.list_dnd(ask.engine, ask.actor, extension)
    return 200, dnd_view(windows, manual)


def add_dnd(ask: Ask) -> Answer:
    body = ask.sent(WindowBody)
    extension = parse.parse_extension(str(body.extension), "extension")
    ask.own(extension)  # a user adds only to their own
    window = ops.add_dnd(
        ask.engine, extension, body.days, body.start, body.end, body.tz, by=ask.actor
    )
    return 201, window_view(window)


def remove_dnd(ask: Ask) -> Answer:
    removed = lists.remove_dnd(ask.engine, ask.actor, parse.parse_id(ask.path["id"]))
    return 200, window_view(removed)


def manual_dnd(ask: Ask) -> Answer:
    extension = ask.own(parse.parse_extension(ask.path["ext"], "extension"))
    if extension is None:  # a path always names one
        raise InvalidInput("extension", "expected an extension")
    body = ask.sent(ManualBody)
    if not body.on:
        was = ops.dnd_off(ask.engine, extension, by=ask.actor)
        return 200, ManualDndView(extension=extension, on=False, until=None, was_on=was)
    now = datetime.now(UTC)
    until = parse.parse_until(body.until, now, "UTC") if body.until else None
    rule = ops.dnd_on(ask.engine, extension, until, source="api", now=now, by=ask.actor)
    return 200, ManualDndView(extension=extension, on=True, until=utc(rule.until), was_on=None)


OPERATIONS = (
    Operation(
        "GET",
        "/dnd",
        list_dnd,
        "do-not-disturb schedules and manual DND",
        DndView,
        params=(EXTENSION,),
    ),
    Operation("POST", "/dnd", add_dnd, "add a schedule", WindowView, body=WindowBody, status=201),
    Operation(
        "DELETE",
        "/dnd/{id}",
        remove_dnd,
        "remove a schedule",
        WindowView,
        params=(ID,),
        errors=(400, 403, 404),
    ),
    Operation(
        "PUT",
        "/manual-dnd/{ext}",
        manual_dnd,
        "switch manual DND on or off",
        ManualDndView,
        params=(Param("ext", "path", required=True),),
        body=ManualBody,
        owner="ext",
    ),
)
