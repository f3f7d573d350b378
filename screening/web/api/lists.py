"""/api/v1/lists: block and allow entries, a page at a time; a user's are their extension's."""

from __future__ import annotations

from typing import Literal

from screening.core.errors import NotFound
from screening.service import lists, ops, parse
from screening.service.views import EntryPage, EntryView, Kind, entry_view, listed_view
from screening.web.api.door import Answer, Ask, Body, Operation, Param, Text
from screening.web.api.params import ID, LIMIT


class EntryBody(Body):
    number: Text  # a number, or a prefix ending in *
    extension: Text | None = None
    code: Text | None = None  # 607 or 608
    reason: str | None = None
    expires: str | None = None  # 30d, 12h, YYYY-MM-DD or ISO 8601 (UTC unless it says)


KIND = Param("kind", "path", Kind, required=True)


def kind_of(raw: str) -> Literal["block", "allow"]:
    if raw == "block":
        return "block"
    if raw == "allow":
        return "allow"
    raise NotFound(f"no list {raw[:20]!r}: expected block or allow")


def list_entries(ask: Ask) -> Answer:
    page = lists.page_entries(
        ask.engine,
        ask.actor,
        kind_of(ask.path["kind"]),
        scope=ask.query.get("extension"),
        number=ask.query.get("number", ""),
        after=ask.query.get("after"),
        limit=ask.limit(),
    )
    cursor = parse.encode_cursor(page.next) if page.next else None
    return 200, EntryPage(entries=[listed_view(e) for e in page.entries], next=cursor)


def add_entry(ask: Ask) -> Answer:
    kind = kind_of(ask.path["kind"])
    body = ask.sent(EntryBody)
    extension = ask.own(_text(body.extension))  # a user's: their own, unless they name it
    entry, created = ops.add_entry(
        ask.engine,
        kind,
        str(body.number),
        ask.region,
        extension=extension,
        code=_text(body.code),
        reason=body.reason,
        source="api",
        expires=body.expires,
        zone="UTC",  # the API speaks UTC both ways: a time without an offset is UTC
        by=ask.actor,
    )
    return (201 if created else 200), entry_view(entry)


def remove_entry(ask: Ask) -> Answer:
    kind = kind_of(ask.path["kind"])
    removed = lists.remove_entry(ask.engine, ask.actor, kind, parse.parse_id(ask.path["id"]))
    return 200, entry_view(removed)


def _text(value: Text | None) -> str | None:
    return None if value is None else str(value)


OPERATIONS = (
    Operation(
        "GET",
        "/lists/{kind}",
        list_entries,
        "block or allow entries in number order, a page at a time",
        EntryPage,
        params=(
            KIND,
            Param("extension", description="an extension, or `global`"),
            Param("number", description="entries whose number starts with these digits"),
            Param("after", description="the `next` of the previous page"),
            LIMIT,
        ),
        errors=(400, 403, 404),
    ),
    Operation(
        "POST",
        "/lists/{kind}",
        add_entry,
        "add (or update) an entry; a user's go to their extension",
        EntryView,
        params=(KIND,),
        body=EntryBody,
        errors=(400, 403, 404),
        created=True,
    ),
    Operation(
        "DELETE",
        "/lists/{kind}/{id}",
        remove_entry,
        "remove an entry",
        EntryView,
        params=(KIND, ID),
        errors=(400, 403, 404),
    ),
)
