"""Accounts, their API tokens, and the audit trail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from screening.core.errors import InvalidInput, NotFound
from screening.service import parse
from screening.store.accounts import Account
from screening.web.console import Console, said
from screening.web.pages.common import (
    admin_form,
    admin_page,
    redirect,
)


@admin_page
async def users_page(request: Request, console: Console, who: Account) -> Response:
    return console.page(
        request,
        "users.html",
        user=who,
        users=await asyncio.to_thread(console.accounts.all),
        tokens=await asyncio.to_thread(console.accounts.tokens),
        notes=console.notes(request),
    )


@admin_form
async def token_revoke(
    request: Request, console: Console, who: Account, _form: dict[str, str]
) -> Response:
    try:
        token_id = parse.parse_id(str(request.path_params["id"]))
        gone = await asyncio.to_thread(
            console.accounts.revoke_token, token_id, datetime.now(UTC), who.name
        )
    except (InvalidInput, NotFound):
        return PlainTextResponse("no such token", 404)
    return redirect("/users", done=f"revoked token #{gone.id} of {gone.user}")


@admin_form
async def user_add(
    request: Request, console: Console, who: Account, form: dict[str, str]
) -> Response:
    try:
        name, role, extension = parse.new_user(
            form.get("name", ""), form.get("role", ""), form.get("extension", "") or None
        )
        now = datetime.now(UTC)
        await asyncio.to_thread(
            console.accounts.add,
            name,
            role,
            extension,
            form.get("password", ""),
            now,
            who.name,
        )
    except InvalidInput as e:
        return redirect("/users", error=said(e))
    return redirect("/users", done=f"added {role} {name}")


@admin_form
async def user_remove(
    request: Request, console: Console, who: Account, form: dict[str, str]
) -> Response:
    name = form.get("name", "")
    if name == who.name:
        return redirect("/users", error="name: you cannot remove yourself")
    try:
        await asyncio.to_thread(console.accounts.remove, name, datetime.now(UTC), who.name)
    except NotFound as e:
        return redirect("/users", error=said(e))
    return redirect("/users", done=f"removed {name}")


@admin_page
async def audit_page(request: Request, console: Console, who: Account) -> Response:
    trail = await asyncio.to_thread(console.accounts.trail, 200)
    return console.page(request, "audit.html", user=who, trail=trail)
