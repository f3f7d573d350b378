"""Logging in and out. Password checks (argon2: 64 MiB each) run on a thread, behind a
Gate: strangers' logins and those from a browser the account used before wait apart."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from screening.service.accounts import Refused
from screening.web.console import csrf_refused
from screening.web.pages.common import door_of

log = logging.getLogger(__name__)

#: The cookie that marks a browser an account logged in from (web.devices).
DEVICE_COOKIE = "screening_device"
DEVICE_AGE = int(timedelta(days=180).total_seconds())
RETRY_AFTER_S = "5"


async def login_form(request: Request) -> Response:
    door = door_of(request)
    return door.console.page(request, "login.html")


async def login(request: Request) -> Response:
    door = door_of(request)
    form = await door.console.form(request)
    if form is None:
        return csrf_refused()
    name, password = form.get("name", ""), form.get("password", "")
    now = datetime.now(UTC)
    peer = request.client.host if request.client else "?"
    device = door.devices.read(request.cookies.get(DEVICE_COOKIE, ""))
    gate, key = (door.known, f"user {device[0]}") if device else (door.strangers, peer)
    result = await gate.run(key, door.console.accounts.login, name, password, now, peer, device)
    if result is None:
        log.warning("console login from %s not tried: too many logins at once", peer)
        busy = "Too many logins at once: try again in a few seconds."
        response = door.console.page(request, "login.html", 429, error=busy)
        response.headers["Retry-After"] = RETRY_AFTER_S
        return response
    if isinstance(result, Refused):
        log.warning("console login refused from %s: %s", peer, result.why)
        # The same words whatever went wrong: no hint which names exist.
        return door.console.page(
            request, "login.html", 401, error="Wrong name or password, or locked for now."
        )
    request.session.clear()  # a new session on login: no fixation
    request.session["uid"] = result.id
    request.session["epoch"] = result.session_epoch
    response = RedirectResponse("/", 303)
    if device is None or device[0] != result.id:
        response.set_cookie(
            DEVICE_COOKIE,
            door.devices.issue(result.id),
            max_age=DEVICE_AGE,
            httponly=True,
            samesite="strict",
            secure=door.https_only,
        )
    return response


async def logout(request: Request) -> Response:
    door = door_of(request)
    if await door.console.form(request) is None:
        return csrf_refused()
    who = await door.console.account(request)
    if who is not None:
        # Every session of this user ends, a copied cookie too.
        await asyncio.to_thread(
            door.console.accounts.end_sessions, who, datetime.now(UTC), "logout"
        )
    request.session.clear()
    return RedirectResponse("/login", 303)
