"""/api/v1/names: caller-name entries (admins only)."""

from __future__ import annotations

from screening.service import ops, parse
from screening.service.views import NameView, name_view
from screening.web.api.door import Answer, Ask, Body, Operation, Param, Text
from screening.web.api.lists import KIND, kind_of
from screening.web.api.params import EXTENSION


class NameBody(Body):
    pattern: str  # a case-insensitive glob: *SPAM*
    extension: Text | None = None
    code: Text | None = None  # 607 or 608
    reason: str | None = None


def list_names(ask: Ask) -> Answer:
    kind = kind_of(ask.path["kind"])
    return 200, [name_view(n) for n in ops.list_names(ask.engine, kind, ask.extension())]


def add_name(ask: Ask) -> Answer:
    kind = kind_of(ask.path["kind"])
    body = ask.sent(NameBody)
    new = parse.new_name(
        kind,
        body.pattern,
        extension=None if body.extension is None else str(body.extension),
        code=None if body.code is None else str(body.code),
        reason=body.reason,
        source="api",
    )
    saved, created = ops.save_name(ask.engine, new, by=ask.actor)
    return (201 if created else 200), name_view(saved)


def remove_name(ask: Ask) -> Answer:
    kind = kind_of(ask.path["kind"])
    pattern = parse.parse_name_pattern(ask.query.get("pattern", ""), "pattern")
    removed = ops.remove_name(ask.engine, kind, pattern, ask.extension(), by=ask.actor)
    return 200, name_view(removed)


OPERATIONS = (
    Operation(
        "GET",
        "/names/{kind}",
        list_names,
        "caller-name entries (admins)",
        list[NameView],
        params=(KIND, EXTENSION),
        errors=(400, 403, 404),
        admin_only=True,
    ),
    Operation(
        "POST",
        "/names/{kind}",
        add_name,
        "add a caller-name entry (admins)",
        NameView,
        params=(KIND,),
        body=NameBody,
        errors=(400, 403, 404),
        created=True,
        admin_only=True,
    ),
    Operation(
        "DELETE",
        "/names/{kind}",
        remove_name,
        "remove a caller-name entry (admins)",
        NameView,
        params=(KIND, Param("pattern", required=True), EXTENSION),
        errors=(400, 403, 404),
        admin_only=True,
    ),
)
