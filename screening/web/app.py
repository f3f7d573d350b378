"""The console's pages: small route functions over the library; templates hold no logic.

Every page but /login needs a session; every POST needs the session's CSRF token; a user
(not an admin) sees only their own extension. Password checks (argon2) run on a thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from screening.config import Config
from screening.core.errors import InvalidInput
from screening.core.features import Reputation
from screening.service import calls as call_log
from screening.service import views
from screening.service.accounts import Refused
from screening.service.actor import Actor
from screening.store.engine import Engine
from screening.web import api, assets, chart, pages
from screening.web.console import Console, csrf_refused, said
from screening.web.devices import KnownDevices
from screening.web.limits import BodyLimit, Gate

log = logging.getLogger(__name__)

#: How long a session lasts without being used.
SESSION_AGE = int(timedelta(hours=8).total_seconds())
#: The cookie that marks a browser an account logged in from (web.devices).
DEVICE_COOKIE = "screening_device"
DEVICE_AGE = int(timedelta(days=180).total_seconds())
#: Password checks (argon2: 64 MiB each) at once, logins that may wait for one, and of
#: those how many from one address; more are answered 429 at once. A browser the account
#: logged in from before (web.devices) has a gate of its own, one login of an account's at
#: a time: strangers flooding the first cannot keep the owner out.
PASSWORD_CHECKS = 2
LOGINS_WAITING = 8
LOGINS_PER_SOURCE = 2
KNOWN_CHECKS = 1
KNOWN_WAITING = 8
RETRY_AFTER_S = "5"


@dataclass(frozen=True)
class Door:
    """What the console's own handlers work with (request.app.state.door)."""

    console: Console
    devices: KnownDevices
    reputation: Reputation
    strangers: Gate  # password checks of logins from browsers the account has not used
    known: Gate  # and from a browser the account logged in from before
    https_only: bool


def create_app(
    config: Config, engine: Engine, secret_key: str, https_only: bool = False
) -> Starlette:
    console = Console(config, engine)
    door = Door(
        console,
        KnownDevices(secret_key),
        Reputation(config.reputation_reports, config.reputation_days),
        Gate(PASSWORD_CHECKS, LOGINS_WAITING, LOGINS_PER_SOURCE, "password-check"),
        Gate(KNOWN_CHECKS, KNOWN_WAITING, 1, "known-browser-check"),
        https_only,
    )
    app = Starlette(
        routes=[
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/", home, methods=["GET"]),
            Route("/ext/{ext}", extension_page, methods=["GET"]),
            Route("/ext/{ext}/spam", spam, methods=["POST"]),
            *pages.routes(),
            *api.routes(config, engine),
            assets.mount(),
        ],
        middleware=[
            Middleware(BodyLimit),  # first: before the session, the routes, any body read
            Middleware(
                SessionMiddleware,
                secret_key=secret_key,
                session_cookie="screening_session",
                max_age=SESSION_AGE,
                same_site="strict",
                https_only=https_only,
            ),
        ],
    )
    app.state.door = door
    app.state.console = console
    app.state.import_jobs = {}
    return app


def _door(request: Request) -> Door:
    door: Door = request.app.state.door
    return door


async def login_form(request: Request) -> Response:
    door = _door(request)
    return door.console.page(request, "login.html")


async def login(request: Request) -> Response:
    door = _door(request)
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
    door = _door(request)
    if await door.console.form(request) is None:
        return csrf_refused()
    who = door.console.account(request)
    if who is not None:
        # Every session of this user ends, a copied cookie too.
        await asyncio.to_thread(
            door.console.accounts.end_sessions, who, datetime.now(UTC), "logout"
        )
    request.session.clear()
    return RedirectResponse("/login", 303)


async def home(request: Request) -> Response:
    door = _door(request)
    who = door.console.account(request)
    if who is None:
        return RedirectResponse("/login", 303)
    if who.role == "user":
        return RedirectResponse(f"/ext/{who.extension}", 303)
    zone = door.console.zone
    board = await asyncio.to_thread(
        call_log.dashboard, door.console.engine, zone, datetime.now(UTC)
    )
    connected = await _app_connected(door.console.config)
    return door.console.page(
        request,
        "home.html",
        user=who,
        stats=board.today,
        chart=chart.build(board.days, zone),
        failed_open=board.failed_open,
        connected=connected,
    )


async def extension_page(request: Request) -> Response:
    door = _door(request)
    extension = str(request.path_params["ext"])
    who, refused = door.console.extension(request, extension)
    if refused is not None:
        return refused
    assert who is not None
    actor = Actor.of(who, "console")
    zone, now = door.console.zone, datetime.now(UTC)
    try:
        view = await asyncio.to_thread(
            call_log.extension_view, door.console.engine, actor, extension, zone, now
        )
    except InvalidInput as e:
        return PlainTextResponse(said(e), 400)
    return door.console.page(
        request,
        "extension.html",
        user=who,
        extension=extension,
        calls=view.calls,
        # A user learns which kind of rule decided, never an admin's rule itself.
        reasons={
            c.id: c.reason
            if actor.admin
            else views.reason_for_user(c.rule_kind, c.policy, c.challenge)
            for c in view.calls
        },
        marked=view.marked,
        blocks=view.blocks,
        allows=view.allows,
        windows=view.windows,
        manual=view.manual,
        chart=chart.build(view.days, zone),
        message=request.query_params.get("done", "")[:200],
        error=request.query_params.get("error", "")[:300],
    )


async def spam(request: Request) -> Response:
    """ "This was spam" on a call that rang the extension: what *60 does, for this
    caller; or its undo."""
    door = _door(request)
    extension = str(request.path_params["ext"])
    asked = await door.console.extension_form(request, extension)
    if isinstance(asked, Response):
        return asked
    who, form = asked
    call = (extension, form.get("caller", ""))
    undo = form.get("undo") == "1"
    actor = Actor.of(who, "console")
    try:
        result = await asyncio.to_thread(
            call_log.mark_spam, door.console.engine, actor, door.reputation, call, undo=undo
        )
    except InvalidInput:
        return PlainTextResponse("no such call to this extension", 400)
    return RedirectResponse(f"/ext/{extension}?done={quote(result.detail)}", 303)


async def _app_connected(config: Config) -> bool | None:
    """Whether a screening app is registered with ARI now (None: ARI cannot be asked)."""
    try:
        async with httpx.AsyncClient(
            auth=(config.ari_user, config.ari_password), timeout=1.0, trust_env=False
        ) as client:
            r = await client.get(f"{config.ari_url}/ari/applications/{config.ari_app}")
    except httpx.HTTPError:
        return None
    return r.status_code == 200
