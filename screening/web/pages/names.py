"""Caller-name entries: block or allow callers by the name they send."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from screening.core.errors import InvalidInput, NotFound
from screening.service import ops, parse
from screening.service.actor import Actor
from screening.store.accounts import Account
from screening.web.console import Console, said
from screening.web.pages.common import (
    admin_form,
    admin_page,
    list_kind,
    redirect,
)


@admin_page
async def names_page(request: Request, console: Console, who: Account) -> Response:
    kind = list_kind(request.path_params["kind"])
    if kind is None:
        return PlainTextResponse("no such list", 404)
    found = await asyncio.to_thread(ops.list_names, console.engine, kind, None)
    return console.page(
        request, "names.html", user=who, kind=kind, names=found, notes=console.notes(request)
    )


@admin_form
async def name_change(
    request: Request, console: Console, who: Account, form: dict[str, str]
) -> Response:
    """Add (POST /names/KIND) or remove (POST /names/KIND/remove) a name entry."""
    kind = list_kind(request.path_params["kind"])
    if kind is None:
        return PlainTextResponse("no such list", 404)
    extension = form.get("extension", "").strip() or None
    try:
        if request.url.path.endswith("/remove"):
            entry = await asyncio.to_thread(
                ops.remove_name,
                console.engine,
                kind,
                form.get("pattern", ""),
                extension,
                by=Actor.of(who, "console"),
            )
            verb = "removed"
        else:
            new = parse.new_name(
                kind,
                form.get("pattern", ""),
                extension=extension,
                code=form.get("code") or None,
                reason=form.get("reason") or None,
                source="console",
            )
            entry, created = await asyncio.to_thread(
                ops.save_name, console.engine, new, by=Actor.of(who, "console")
            )
            verb = "added" if created else "updated"
    except (InvalidInput, NotFound) as e:
        return redirect(f"/names/{kind}", error=said(e))
    return redirect(f"/names/{kind}", done=f"{verb} {entry.describe()}")
