"""The admin's dashboard, a user's page of their extension, and "this was spam" there."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from screening.config import Config
from screening.core.errors import InvalidInput
from screening.service import calls as call_log
from screening.service import views
from screening.service.actor import Actor
from screening.web import chart
from screening.web.console import said
from screening.web.pages.common import door_of

log = logging.getLogger(__name__)


async def home(request: Request) -> Response:
    door = door_of(request)
    who = await door.console.account(request)
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
    door = door_of(request)
    extension = str(request.path_params["ext"])
    who, refused = await door.console.extension(request, extension)
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
    door = door_of(request)
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
