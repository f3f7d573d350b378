"""Do-not-disturb: schedules, and DND switched on by hand (what *78 and *79 do)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from screening.core.decision import DndWindow
from screening.core.errors import InvalidInput
from screening.service import lists, ops, parse
from screening.service.actor import Actor
from screening.store.accounts import Account
from screening.web.console import Console, csrf_refused, said
from screening.web.pages.common import (
    admin_page,
    back,
    console_of,
    redirect,
    remove_by_id,
)


@admin_page
async def dnd_page(request: Request, console: Console, who: Account) -> Response:
    wanted = request.query_params.get("extension", "").strip()
    notes = console.notes(request)
    try:
        extension = parse.parse_extension(wanted, "extension") if wanted else None
    except InvalidInput as e:
        extension, notes = None, {**notes, "error": said(e)}
    actor = Actor.of(who, "console")
    windows, manual = await asyncio.to_thread(lists.list_dnd, console.engine, actor, extension)
    return console.page(
        request,
        "dnd.html",
        user=who,
        windows=windows,
        manual=manual,
        wanted=wanted,
        notes=notes,
    )


async def dnd_add(request: Request) -> Response:
    console = console_of(request)
    form = await console.form(request)
    if form is None:
        return csrf_refused()
    extension = form.get("extension", "").strip()
    who, refused = await console.extension(request, extension)
    if refused is not None:
        return refused
    assert who is not None
    target = back(form, "/dnd")
    try:
        window = await asyncio.to_thread(
            ops.add_dnd,
            console.engine,
            extension,
            form.get("days", ""),
            form.get("from", ""),
            form.get("to", ""),
            form.get("tz") or console.zone,
            by=Actor.of(who, "console"),
        )
    except InvalidInput as e:
        return redirect(target, error=said(e))
    return redirect(target, done=f"added {window.describe()}")


async def dnd_remove(request: Request) -> Response:
    engine = console_of(request).engine

    def remove(actor: Actor, window_id: int) -> DndWindow:
        return lists.remove_dnd(engine, actor, window_id)

    return await remove_by_id(request, remove, "no such schedule", "/dnd")


async def dnd_manual(request: Request) -> Response:
    """Manual DND on or off for one extension (what *78 / *79 do)."""
    console = console_of(request)
    extension = str(request.path_params["ext"])
    asked = await console.extension_form(request, extension)
    if isinstance(asked, Response):
        return asked
    who, form = asked
    target = back(form, "/dnd")
    try:
        ext = parse.parse_extension(extension, "extension")
        if form.get("on") == "1":
            now = datetime.now(UTC)
            raw = form.get("until", "").strip()
            until = parse.parse_until(raw, now, console.zone) if raw else None
            rule = await asyncio.to_thread(
                ops.dnd_on, console.engine, ext, until, "console", now, by=Actor.of(who, "console")
            )
            detail = rule.describe()
            return redirect(target, done=f"do-not-disturb on: {detail}")
        await asyncio.to_thread(ops.dnd_off, console.engine, ext, by=Actor.of(who, "console"))
    except InvalidInput as e:
        return redirect(target, error=said(e))
    return redirect(target, done=f"do-not-disturb off for extension {ext}")
