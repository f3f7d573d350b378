"""The console's pages: small route functions over the library; templates hold no logic.

Every page but /login needs a session; every POST needs the session's CSRF token; a user
(not an admin) sees only their own extension. Password checks (argon2) run on a thread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from screening.config import Config
from screening.service.accounts import Accounts, Refused
from screening.store import calllog
from screening.store.accounts import Account

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
#: How long a session lasts without being used.
SESSION_AGE = int(timedelta(hours=8).total_seconds())

Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    config: Config, engine: Engine, secret_key: str, https_only: bool = False
) -> Starlette:
    accounts = Accounts(engine)

    def csrf(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    async def form_with_csrf(request: Request) -> dict[str, str] | None:
        form = await request.form()
        sent = str(form.get("csrf", ""))
        expected = request.session.get("csrf")
        if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            return None
        return {k: str(v) for k, v in form.items()}

    def account(request: Request) -> Account | None:
        uid = request.session.get("uid")
        return accounts.get(uid) if isinstance(uid, int) else None

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return TEMPLATES.TemplateResponse(
            request, name, {"csrf": csrf(request), **context}, status_code=status
        )

    async def login_form(request: Request) -> Response:
        return page(request, "login.html")

    async def login(request: Request) -> Response:
        form = await form_with_csrf(request)
        if form is None:
            return PlainTextResponse("refused: the form's CSRF token is missing or wrong", 403)
        name, password = form.get("name", ""), form.get("password", "")
        now = datetime.now(UTC)
        result = await asyncio.to_thread(accounts.login, name, password, now)
        if isinstance(result, Refused):
            peer = request.client.host if request.client else "?"
            log.warning("console login refused from %s: %s", peer, result.why)
            # The same words whatever went wrong: no hint which names exist.
            return page(
                request, "login.html", 401, error="Wrong name or password, or locked for now."
            )
        request.session.clear()  # a new session on login: no fixation
        request.session["uid"] = result.id
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
        if await form_with_csrf(request) is None:
            return PlainTextResponse("refused: the form's CSRF token is missing or wrong", 403)
        request.session.clear()
        return RedirectResponse("/login", 303)

    async def home(request: Request) -> Response:
        who = account(request)
        if who is None:
            return RedirectResponse("/login", 303)
        now = datetime.now(UTC)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        scope = who.extension if who.role == "user" else None
        with Session(engine) as s:
            days = calllog.daily(s, today - timedelta(days=29), scope)
            if who.role == "admin":
                stats = calllog.stats(s, today, 10)
                calls: list[Any] = []
            else:
                stats = None
                calls = calllog.query_log(s, extension=who.extension, limit=50)
        return page(
            request,
            "home.html",
            user=who,
            stats=stats,
            calls=calls,
            chart=_chart(days, today),
        )

    return Starlette(
        routes=[
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/", home, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret_key,
                session_cookie="screening_session",
                max_age=SESSION_AGE,
                same_site="strict",
                https_only=https_only,
            )
        ],
    )


def _chart(days: list[tuple[str, int, int, int]], today: datetime) -> list[dict[str, Any]]:
    """30 bars, oldest first, each the day's allowed and rejected calls, scaled to 100."""
    by_day = {d: (a, r, f) for d, a, r, f in days}
    dates = [(today - timedelta(days=29 - i)).strftime("%Y-%m-%d") for i in range(30)]
    top = max((a + r for a, r, _ in by_day.values()), default=0) or 1
    bars = []
    for i, day in enumerate(dates):
        allowed, rejected, failed = by_day.get(day, (0, 0, 0))
        bars.append(
            {
                "x": i * 10,
                "day": day,
                "allowed": allowed,
                "rejected": rejected,
                "failed": failed,
                "h_allowed": round(100 * allowed / top),
                "h_rejected": round(100 * rejected / top),
            }
        )
    return bars
