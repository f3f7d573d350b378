"""What the console's pages share: the door they work with (request.app.state.door), the
decorators that let only admins in, and where a form goes back to."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from screening.core.errors import Forbidden, InvalidInput, NotFound
from screening.core.features import Reputation
from screening.service import parse
from screening.service.actor import Actor
from screening.store.accounts import Account
from screening.web.console import Console, csrf_refused
from screening.web.devices import KnownDevices
from screening.web.limits import Gate

Page = Callable[[Request], Awaitable[Response]]
PER_PAGE = 50


@dataclass(frozen=True)
class Door:
    """What the console's own handlers work with (request.app.state.door)."""

    console: Console
    devices: KnownDevices
    reputation: Reputation
    strangers: Gate  # password checks of logins from browsers the account has not used
    known: Gate  # and from a browser the account logged in from before
    https_only: bool


def door_of(request: Request) -> Door:
    door: Door = request.app.state.door
    return door


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def admin_page(
    handler: Callable[[Request, Console, Account], Awaitable[Response]],
) -> Page:
    """A page for admins only: the handler gets the console and the admin; anyone else
    is refused (to the login page, or 403)."""

    @functools.wraps(handler)
    async def page(request: Request) -> Response:
        console = console_of(request)
        who, refused = await console.admin(request)
        if refused is not None:
            return refused
        assert who is not None
        return await handler(request, console, who)

    return page


def admin_form(
    handler: Callable[[Request, Console, Account, dict[str, str]], Awaitable[Response]],
) -> Page:
    """An admin's form: the handler gets the console, the admin and the posted form, its
    CSRF token checked; anyone else is refused."""

    @functools.wraps(handler)
    async def page(request: Request) -> Response:
        console = console_of(request)
        asked = await console.admin_form(request)
        if isinstance(asked, Response):
            return asked
        return await handler(request, console, *asked)

    return page


def redirect(path: str, **params: str) -> Response:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, 303)


def list_kind(raw: object) -> Literal["block", "allow"] | None:
    return "block" if raw == "block" else "allow" if raw == "allow" else None


def back(form: dict[str, str], default: str) -> str:
    """Where a form returns to: a path on this site only."""
    target = form.get("back", "")
    return target if target.startswith("/") and not target.startswith("//") else default


class Described(Protocol):
    def describe(self) -> str: ...


async def remove_by_id(
    request: Request,
    remove: Callable[[Actor, int], Described],
    missing: str,
    default_back: str,
) -> Response:
    """Remove the record /.../{id}/remove names: an admin's, or a user's own (the service
    checks whose it is); a record that is not there, or an id that is none, is 404."""
    console = console_of(request)
    form = await console.form(request)
    if form is None:
        return csrf_refused()
    try:
        record_id = parse.parse_id(str(request.path_params["id"]))
    except InvalidInput:
        return PlainTextResponse(missing, 404)
    who = await console.account(request)
    if who is None:
        return RedirectResponse("/login", 303)
    try:
        removed = await asyncio.to_thread(remove, Actor.of(who, "console"), record_id)
    except NotFound:
        return PlainTextResponse(missing, 404)
    except Forbidden as e:
        return console.forbidden(request, who, e)
    return redirect(back(form, default_back), done=f"removed {removed.describe()}")
