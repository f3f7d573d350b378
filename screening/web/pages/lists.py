"""Block and allow lists: a page at a time, searched by number; users add and remove
their own extension's entries from their page."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from screening.core.decision import Entry
from screening.core.errors import InvalidInput, NotFound
from screening.service import lists, ops, parse
from screening.service.actor import Actor
from screening.store.accounts import Account
from screening.web.console import Console, csrf_refused, said
from screening.web.pages.common import (
    PER_PAGE,
    admin_page,
    back,
    console_of,
    list_kind,
    redirect,
    remove_by_id,
)


@admin_page
async def list_page(request: Request, console: Console, who: Account) -> Response:
    kind = list_kind(request.path_params["kind"])
    if kind is None:
        return PlainTextResponse("no such list", 404)
    q = request.query_params
    error = q.get("error", "")[:300]
    actor = Actor.of(who, "console")

    def load() -> lists.EntryPage:
        return lists.page_entries(
            console.engine,
            actor,
            kind,
            scope=q.get("extension", "").strip() or None,
            number=q.get("number", ""),
            after=q.get("after"),
            limit=PER_PAGE,
        )

    try:
        page = await asyncio.to_thread(load)
    except InvalidInput as e:
        page, error = lists.EntryPage([], None), said(e)
    next_url = None
    if page.next is not None:
        next_url = "?" + urlencode(
            {
                "number": q.get("number", ""),
                "extension": q.get("extension", ""),
                "after": parse.encode_cursor(page.next),
            }
        )
    return console.page(
        request,
        "lists.html",
        400 if error else 200,
        user=who,
        kind=kind,
        entries=page.entries,
        next_url=next_url,
        search=q.get("number", ""),
        scope=q.get("extension", ""),
        message=q.get("done", "")[:300],
        error=error,
    )


async def list_add(request: Request) -> Response:
    console = console_of(request)
    kind = list_kind(request.path_params["kind"])
    form = await console.form(request)
    if form is None:
        return csrf_refused()
    extension = form.get("extension", "").strip() or None
    asked = console.extension(request, extension) if extension else console.admin(request)
    who, refused = await asked
    if refused is not None or kind is None:
        return refused or PlainTextResponse("no such list", 404)
    assert who is not None
    target = back(form, f"/lists/{kind}")
    try:
        entry, created = await asyncio.to_thread(
            ops.add_entry,
            console.engine,
            kind,
            form.get("number", ""),
            console.region,
            extension=extension,
            code=form.get("code") or None,
            reason=form.get("reason") or None,
            source="console",
            expires=form.get("expires") or None,
            zone=console.zone,
            by=Actor.of(who, "console"),
        )
    except InvalidInput as e:
        return redirect(target, error=said(e))
    return redirect(target, done=f"{'added' if created else 'updated'} {entry.describe()}")


async def list_remove(request: Request) -> Response:
    kind = list_kind(request.path_params["kind"])
    engine = console_of(request).engine

    def remove(actor: Actor, entry_id: int) -> Entry:
        if kind is None:
            raise NotFound("no such list")
        return lists.remove_entry(engine, actor, kind, entry_id)

    return await remove_by_id(request, remove, "no such entry", f"/lists/{kind}")
