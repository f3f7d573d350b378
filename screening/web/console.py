"""What every console page needs: the session's account, its CSRF token, the rule that a
user sees only their own extension, and rendering. Pages (web.pages) are small
functions over it."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from screening.config import Config
from screening.core.errors import Forbidden, ScreeningError, worded
from screening.service import parse
from screening.service.accounts import Accounts
from screening.store.accounts import Account
from screening.store.engine import Engine
from screening.web import assets, timefmt

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.globals["static"] = assets.url
timefmt.register(TEMPLATES.env)


#: The services name a field by its key (core.errors); the console's forms by these labels.
LABELS = {
    "extension": "Extension",
    "number": "Number",
    "code": "Code",
    "reason": "Reason",
    "expires": "Expires",
    "action": "Action",
    "kind": "Policy",
    "pattern": "Name or pattern",
    "days": "Days",
    "from": "From",
    "to": "To",
    "tz": "Time zone",
    "until": "Until",
    "name": "Name",
    "role": "Role",
    "password": "Password",
    "caller": "Caller",
    "decision": "Decision",
}


def said(e: ScreeningError) -> str:
    """An error as a console user reads it: fields named as the form labels them."""
    return worded(e, LABELS)


def csrf_refused() -> Response:
    return PlainTextResponse("refused: the form's CSRF token is missing or wrong", 403)


class Console:
    def __init__(self, config: Config, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.accounts = Accounts(engine)
        self.region = config.default_region
        #: The zone pages show times in and forms read them in (web.timezone).
        self.zone = config.web_timezone or parse.local_zone()

    def csrf(self, request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    async def form(self, request: Request) -> dict[str, str] | None:
        """The posted form, or None when its CSRF token is missing or wrong."""
        form = await request.form()
        sent = str(form.get("csrf", ""))
        expected = request.session.get("csrf")
        if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            return None
        return {k: str(v) for k, v in form.items() if isinstance(v, str)}

    async def account(self, request: Request) -> Account | None:
        """The session's account, if the session is still one of its sessions: logout, a
        new password, a new role or removal raise the account's epoch, and every cookie
        that carries the old one (copies included) stops working."""
        uid, epoch = request.session.get("uid"), request.session.get("epoch")
        if not isinstance(uid, int) or not isinstance(epoch, int):
            return None
        account = await asyncio.to_thread(self.accounts.get, uid)
        if account is None or account.session_epoch != epoch:
            request.session.clear()
            return None
        return account

    def page(
        self,
        request: Request,
        name: str,
        status: int = 200,
        notes: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        context = {"csrf": self.csrf(request), "zone": self.zone, **(notes or {}), **context}
        return TEMPLATES.TemplateResponse(request, name, context, status_code=status)

    async def admin(self, request: Request) -> tuple[Account | None, Response | None]:
        """The admin of this session, or the response that refuses the page."""
        who = await self.account(request)
        if who is None:
            return None, RedirectResponse("/login", 303)
        if who.role != "admin":
            self._refused(request, who, "an admin page")
            return who, PlainTextResponse("forbidden: admins only", 403)
        return who, None

    async def extension(
        self, request: Request, extension: str
    ) -> tuple[Account | None, Response | None]:
        """The account, or the response that refuses it: a user may only ever see their own
        extension."""
        who = await self.account(request)
        if who is None:
            return None, RedirectResponse("/login", 303)
        if who.role != "admin" and who.extension != extension:
            self._refused(request, who, f"extension {extension}")
            return who, PlainTextResponse("forbidden: not your extension", 403)
        return who, None

    async def admin_form(self, request: Request) -> tuple[Account, dict[str, str]] | Response:
        """The admin and their posted form, or the response that refuses them."""
        return await self._with_form(request, *await self.admin(request))

    async def extension_form(
        self, request: Request, extension: str
    ) -> tuple[Account, dict[str, str]] | Response:
        """The account allowed this extension and its posted form, or the refusal."""
        return await self._with_form(request, *await self.extension(request, extension))

    async def _with_form(
        self, request: Request, who: Account | None, refused: Response | None
    ) -> tuple[Account, dict[str, str]] | Response:
        if refused is not None:
            return refused
        assert who is not None
        form = await self.form(request)
        if form is None:
            return csrf_refused()
        return who, form

    @staticmethod
    def notes(request: Request) -> dict[str, str]:
        """What the previous change said (?done= or ?error=), for the page's status line."""
        q = request.query_params
        return {"message": q.get("done", "")[:300], "error": q.get("error", "")[:300]}

    def audit(self, who: Account, action: str, detail: str) -> None:
        self.accounts.audit(who.name, action, detail[:500], datetime.now(UTC))

    def forbidden(self, request: Request, who: Account, e: Forbidden) -> Response:
        """The answer to what the service refused this account."""
        self._refused(request, who, str(e))
        return PlainTextResponse(f"forbidden: {e}", 403)

    def _refused(self, request: Request, who: Account, what: str) -> None:
        peer = request.client.host if request.client else "?"
        log.warning(
            "console: %s (%s %s) refused %s from %s",
            who.name,
            who.role,
            who.extension or "",
            what,
            peer,
        )
