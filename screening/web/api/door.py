"""What every API operation is made of: its declaration (method, path, parameters, body and
answer types: the OpenAPI document is derived from these), the authenticated request a
handler gets, and the one place that turns a request into a handler call and its answer or
error into JSON."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from screening.core.errors import Forbidden, InvalidInput, NotFound
from screening.core.features import Reputation
from screening.service import parse
from screening.service.accounts import Accounts
from screening.service.actor import Actor
from screening.service.views import ErrorView, View
from screening.store.accounts import Account
from screening.store.engine import Engine
from screening.web.limits import API_BODY

log = logging.getLogger(__name__)

MAX_BODY = API_BODY  # also bounded before it is read (web.limits)
MAX_LIMIT = 500
#: Body fields a client may send as a JSON number too (an extension 201, a code 607).
Text = str | int

B = TypeVar("B", bound=msgspec.Struct)


class Body(msgspec.Struct, kw_only=True):
    """A request body: its fields are what a client may send; others are ignored."""


@dataclass(frozen=True)
class Door:
    """What every API handler works with."""

    engine: Engine
    region: str
    reputation: Reputation
    accounts: Accounts


@dataclass(frozen=True)
class Ask:
    """One API request, authenticated: who asks, the path and query, the decoded body."""

    door: Door
    who: Account
    path: dict[str, str]
    query: dict[str, str]
    body: Body | None = None

    @property
    def engine(self) -> Engine:
        return self.door.engine

    @property
    def region(self) -> str:
        return self.door.region

    @property
    def admin(self) -> bool:
        return self.who.role == "admin"

    @property
    def actor(self) -> Actor:
        return Actor.of(self.who, "api")

    def own(self, extension: str | None) -> str | None:
        """The extension this request may touch: a user's own, whatever they asked for; a
        user asking for another one is refused."""
        return self.actor.scope(extension)

    def sent(self, kind: type[B]) -> B:
        """The body, as the operation declared it."""
        assert isinstance(self.body, kind), "the operation declares this body"
        return self.body

    def extension(self, name: str = "extension") -> str | None:
        """An optional extension in the query, checked (None when absent)."""
        raw = self.query.get(name)
        return parse.parse_extension(raw, name) if raw is not None else None

    def limit(self) -> int:
        raw = self.query.get("limit")
        return 50 if raw is None else parse.whole_number(raw, "limit", 1, MAX_LIMIT)


Answer = tuple[int, View | list[View]]
Handler = Callable[[Ask], Answer]


@dataclass(frozen=True)
class Param:
    """A path or query parameter: its JSON Schema comes from `kind`."""

    name: str
    where: Literal["path", "query"] = "query"
    kind: Any = str
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Operation:
    """One API operation, declared once: its route and its OpenAPI entry come from here."""

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str  # under /api/v1
    handler: Handler
    summary: str
    answer: Any  # a View, or list[View]
    params: tuple[Param, ...] = ()
    body: type[Body] | None = None
    errors: tuple[int, ...] = (400, 403)
    status: int = 200
    created: bool = False  # may answer 201 for a record it made
    admin_only: bool = False
    #: The path parameter naming the extension it acts on: a user's own only, checked
    #: before the body is read, so a probe of another extension is refused (and logged)
    #: whatever it sends.
    owner: str | None = None


def error(status: int, name: str, message: str) -> Response:
    return json_response(status, ErrorView(error=f"{name}: {message}", field=name))


def json_response(status: int, payload: View | list[View]) -> Response:
    return Response(msgspec.json.encode(payload), status, media_type="application/json")


def endpoint(door: Door, op: Operation) -> Callable[[Request], Awaitable[Response]]:
    """The route function of one operation."""

    async def run(request: Request) -> Response:
        who = await _caller(door, request)
        if isinstance(who, Response):
            return who
        if op.admin_only and who.role != "admin":
            return error(403, "role", "admins only")
        path = {k: str(v) for k, v in request.path_params.items()}
        try:
            if op.owner is not None:
                Actor.of(who, "api").scope(parse.parse_extension(path[op.owner], "extension"))
            body: Body | None = None
            if op.body is not None:
                decoded = decode(await request.body(), op.body)
                if isinstance(decoded, Response):
                    return decoded
                body = decoded
            ask = Ask(door, who, path, dict(request.query_params), body)
            status, payload = await asyncio.to_thread(op.handler, ask)
        except InvalidInput as e:  # the services name fields as the JSON does
            return error(400, e.field, e.detail)
        except NotFound as e:
            return error(404, "id", str(e))
        except Forbidden as e:
            peer = request.client.host if request.client else "?"
            log.warning("api: %s refused from %s: %s", who.name, peer, e)
            return error(403, "extension", str(e))
        return json_response(status, payload)

    return run


async def _caller(door: Door, request: Request) -> Account | Response:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 200:
        return error(401, "authentication", "send Authorization: Bearer TOKEN")
    who = await asyncio.to_thread(door.accounts.by_token, token.strip(), datetime.now(UTC))
    if who is None:
        return error(401, "authentication", "unknown or revoked token")
    return who


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$\.(?P<field>[A-Za-z_]+)[^`]*`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[A-Za-z_]+)`")


def decode(raw: bytes, kind: type[B]) -> B | Response:
    """The body as its operation declared it, or the 400/413 that says what is wrong."""
    if len(raw) > MAX_BODY:
        return error(413, "body", f"expected at most {MAX_BODY} bytes")
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as e:
        said = str(e)
        if missing := _MISSING.match(said):
            return error(400, missing["field"], "required")
        m = _AT.match(said)
        assert m is not None  # the pattern matches any text
        what = m["what"].replace("`", "")
        field = m["field"] or "body"
        if field == "body" and what.startswith("Expected object"):
            what = "expected a JSON object"
        return error(400, field, what[:1].lower() + what[1:])
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nested a thousand deep
        return error(400, "body", "expected a JSON object")
