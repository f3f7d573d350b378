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
from urllib.parse import quote

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
from screening.core.features import Reputation
from screening.service.accounts import Accounts, Refused
from screening.store import calllog, reports
from screening.store.accounts import Account
from screening.store.accounts import audit as accounts_audit
from screening.web import api

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
#: How long a session lasts without being used.
SESSION_AGE = int(timedelta(hours=8).total_seconds())

Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    config: Config, engine: Engine, secret_key: str, https_only: bool = False
) -> Starlette:
    accounts = Accounts(engine)
    reputation = Reputation(config.reputation_reports, config.reputation_days)

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
            return _csrf_refused()
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
            return _csrf_refused()
        request.session.clear()
        return RedirectResponse("/login", 303)

    async def home(request: Request) -> Response:
        who = account(request)
        if who is None:
            return RedirectResponse("/login", 303)
        if who.role == "user":
            return RedirectResponse(f"/ext/{who.extension}", 303)
        today = _midnight()
        with Session(engine) as s:
            days = calllog.daily(s, today - timedelta(days=29))
            stats = calllog.stats(s, today, 10)
        return page(request, "home.html", user=who, stats=stats, chart=_chart(days, today))

    def allowed_extension(request: Request) -> tuple[Account | None, str, Response | None]:
        """The account and the extension of the URL, or the response that refuses it: a
        user may only ever see their own extension."""
        who = account(request)
        extension = str(request.path_params["ext"])
        if who is None:
            return None, extension, RedirectResponse("/login", 303)
        if who.role != "admin" and who.extension != extension:
            peer = request.client.host if request.client else "?"
            log.warning(
                "console: %s (extension %s) refused extension %s from %s",
                who.name,
                who.extension,
                extension,
                peer,
            )
            return who, extension, PlainTextResponse("forbidden: not your extension", 403)
        return who, extension, None

    async def extension_page(request: Request) -> Response:
        who, extension, refused = allowed_extension(request)
        if refused is not None:
            return refused
        today = _midnight()
        with Session(engine) as s:
            days = calllog.daily(s, today - timedelta(days=29), extension)
            calls = calllog.query_log(s, extension=extension, limit=50)
            marked = reports.marked_callers(s, extension)
        return page(
            request,
            "extension.html",
            user=who,
            extension=extension,
            calls=calls,
            marked=marked,
            chart=_chart(days, today),
            message=request.query_params.get("done", "")[:200],
        )

    async def spam(request: Request) -> Response:
        """ "This was spam" on a call that rang the extension: what *60 does, for this
        caller; or its undo."""
        who, extension, refused = allowed_extension(request)
        if refused is not None:
            return refused
        assert who is not None
        form = await form_with_csrf(request)
        if form is None:
            return _csrf_refused()
        caller = form.get("caller", "")[:32]
        undo = form.get("undo") == "1"
        now = datetime.now(UTC)
        with Session(engine) as s, s.begin():
            if not undo and not calllog.rang(s, extension, caller):
                return PlainTextResponse("no such call to this extension", 400)
            if undo:
                result = reports.unmark_caller(s, caller, extension, now, reputation)
            else:
                result = reports.mark_caller(s, caller, extension, now, reputation)
            accounts_audit(s, who.name, "unmark spam" if undo else "mark spam", result.detail, now)
        return RedirectResponse(f"/ext/{extension}?done={quote(result.detail)}", 303)

    return Starlette(
        routes=[
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/", home, methods=["GET"]),
            Route("/ext/{ext}", extension_page, methods=["GET"]),
            Route("/ext/{ext}/spam", spam, methods=["POST"]),
            *api.routes(config, engine),
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


def _csrf_refused() -> Response:
    return PlainTextResponse("refused: the form's CSRF token is missing or wrong", 403)


def _midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


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
