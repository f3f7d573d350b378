"""The JSON API under /api/v1: the console's operations for scripts, with per-user bearer
tokens (`screening user token NAME`). The same checks and messages as the CLI
(service.parse), the same operations (service.ops), the same rule: a user sees and changes
only their own extension. The document is /api/v1/openapi.json (web.openapi).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from screening.config import Config
from screening.core.errors import Forbidden, InvalidInput, NotFound
from screening.core.features import Reputation
from screening.service import calls as call_log
from screening.service import lists, ops, parse, views
from screening.service.accounts import Accounts
from screening.service.actor import Actor
from screening.service.views import call_json, entry_json, iso, name_json, policy_json, window_json
from screening.store.accounts import Account
from screening.store.engine import Engine
from screening.web.limits import API_BODY
from screening.web.openapi import document

log = logging.getLogger(__name__)

MAX_BODY = API_BODY  # also bounded before it is read (web.limits)
MAX_LIMIT = 500


@dataclass(frozen=True)
class Door:
    """What every API handler works with."""

    engine: Engine
    region: str
    reputation: Reputation
    accounts: Accounts


@dataclass
class Ask:
    """One API request, authenticated: who asks, the query and the JSON body."""

    door: Door
    who: Account
    path: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        return self.door.engine

    @property
    def region(self) -> str:
        return self.door.region

    @property
    def reputation(self) -> Reputation:
        return self.door.reputation

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

    def text(self, name: str, default: str | None = None) -> str | None:
        """A string field of the body (None when absent); anything else is refused."""
        value = self.body.get(name, default)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise InvalidInput(name, f"expected a string, got {type(value).__name__}")


Handler = Callable[[Ask], tuple[int, Any]]


def routes(config: Config, engine: Engine) -> list[Route]:
    door = Door(
        engine,
        config.default_region,
        Reputation(config.reputation_reports, config.reputation_days),
        Accounts(engine),
    )
    accounts = door.accounts
    spec = document()

    def endpoint(
        handler: Handler, *, admin_only: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            token = _bearer(request)
            if token is None:
                return _error(401, "authentication", "send Authorization: Bearer TOKEN")
            who = await asyncio.to_thread(accounts.by_token, token, datetime.now(UTC))
            if who is None:
                return _error(401, "authentication", "unknown or revoked token")
            if admin_only and who.role != "admin":
                return _error(403, "role", "admins only")
            body: dict[str, Any] = {}
            if request.method in ("POST", "PUT"):
                raw = await request.body()
                if len(raw) > MAX_BODY:
                    return _error(413, "body", f"expected at most {MAX_BODY} bytes")
                try:
                    parsed = json.loads(raw or b"{}")
                except ValueError:
                    return _error(400, "body", "expected a JSON object")
                if not isinstance(parsed, dict):
                    return _error(400, "body", "expected a JSON object")
                body = parsed
            ask = Ask(
                door,
                who,
                {k: str(v) for k, v in request.path_params.items()},
                dict(request.query_params),
                body,
            )
            try:
                status, payload = await asyncio.to_thread(handler, ask)
            except InvalidInput as e:  # the services name fields as the JSON does
                return _error(400, e.field, e.detail)
            except NotFound as e:
                return _error(404, "id", str(e))
            except Forbidden as e:
                peer = request.client.host if request.client else "?"
                log.warning("api: %s refused from %s: %s", who.name, peer, e)
                return _error(403, "extension", str(e))
            return JSONResponse(payload, status)

        return run

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    v1 = "/api/v1"
    return [
        Route(f"{v1}/openapi.json", openapi, methods=["GET"]),
        Route(f"{v1}/me", endpoint(me), methods=["GET"]),
        Route(f"{v1}/lists/{{kind}}", endpoint(list_entries), methods=["GET"]),
        Route(f"{v1}/lists/{{kind}}", endpoint(add_entry), methods=["POST"]),
        Route(f"{v1}/lists/{{kind}}/{{id}}", endpoint(remove_entry), methods=["DELETE"]),
        Route(f"{v1}/names/{{kind}}", endpoint(list_names, admin_only=True), methods=["GET"]),
        Route(f"{v1}/names/{{kind}}", endpoint(add_name, admin_only=True), methods=["POST"]),
        Route(f"{v1}/names/{{kind}}", endpoint(remove_name, admin_only=True), methods=["DELETE"]),
        Route(f"{v1}/policies", endpoint(list_policies), methods=["GET"]),
        Route(f"{v1}/policies/{{policy}}", endpoint(set_policy, admin_only=True), methods=["PUT"]),
        Route(
            f"{v1}/policies/{{policy}}",
            endpoint(remove_policy, admin_only=True),
            methods=["DELETE"],
        ),
        Route(f"{v1}/dnd", endpoint(list_dnd), methods=["GET"]),
        Route(f"{v1}/dnd", endpoint(add_dnd), methods=["POST"]),
        Route(f"{v1}/dnd/{{id}}", endpoint(remove_dnd), methods=["DELETE"]),
        Route(f"{v1}/manual-dnd/{{ext}}", endpoint(manual_dnd), methods=["PUT"]),
        Route(f"{v1}/calls", endpoint(calls), methods=["GET"]),
        Route(f"{v1}/calls/{{id}}/spam", endpoint(spam), methods=["POST"]),
        Route(f"{v1}/check", endpoint(check), methods=["GET"]),
        Route(f"{v1}/stats", endpoint(stats, admin_only=True), methods=["GET"]),
    ]


# -- who ------------------------------------------------------------------------------


def me(ask: Ask) -> tuple[int, Any]:
    return 200, {"name": ask.who.name, "role": ask.who.role, "extension": ask.who.extension}


# -- block and allow lists -------------------------------------------------------------


def list_entries(ask: Ask) -> tuple[int, Any]:
    page = lists.page_entries(
        ask.engine,
        ask.actor,
        _kind(ask.path["kind"]),
        scope=ask.query.get("extension"),
        number=ask.query.get("number", ""),
        after=ask.query.get("after"),
        limit=_limit(ask.query.get("limit")),
    )
    return 200, {
        "entries": [entry_json(e) for e in page.entries],
        "next": parse.encode_cursor(page.next) if page.next else None,
    }


def add_entry(ask: Ask) -> tuple[int, Any]:
    kind = _kind(ask.path["kind"])
    number = ask.text("number")
    if not number:
        raise InvalidInput("number", "expected a phone number or a prefix like +1900*")
    extension = ask.own(ask.text("extension"))  # a user's: their own, unless they name it
    entry, created = ops.add_entry(
        ask.engine,
        kind,
        number,
        ask.region,
        extension=extension,
        code=ask.text("code"),
        reason=ask.text("reason"),
        source="api",
        expires=ask.text("expires"),
        by=ask.actor,
    )
    return (201 if created else 200), entry_json(entry)


def remove_entry(ask: Ask) -> tuple[int, Any]:
    kind = _kind(ask.path["kind"])
    removed = lists.remove_entry(ask.engine, ask.actor, kind, parse.parse_id(ask.path["id"]))
    return 200, entry_json(removed)


# -- caller-name entries (admins) ------------------------------------------------------


def list_names(ask: Ask) -> tuple[int, Any]:
    kind = _kind(ask.path["kind"])
    extension = ask.query.get("extension")
    ext = parse.parse_extension(extension, "extension") if extension is not None else None
    return 200, [name_json(n) for n in ops.list_names(ask.engine, kind, ext)]


def add_name(ask: Ask) -> tuple[int, Any]:
    kind = _kind(ask.path["kind"])
    new = parse.new_name(
        kind,
        ask.text("pattern") or "",
        extension=ask.text("extension"),
        code=ask.text("code"),
        reason=ask.text("reason"),
        source="api",
    )
    saved, created = ops.save_name(ask.engine, new, by=ask.actor)
    return (201 if created else 200), name_json(saved)


def remove_name(ask: Ask) -> tuple[int, Any]:
    kind = _kind(ask.path["kind"])
    pattern = parse.parse_name_pattern(ask.query.get("pattern", ""), "pattern")
    extension = ask.query.get("extension")
    ext = parse.parse_extension(extension, "extension") if extension is not None else None
    removed = ops.remove_name(ask.engine, kind, pattern, ext, by=ask.actor)
    return 200, name_json(removed)


# -- policies --------------------------------------------------------------------------


def list_policies(ask: Ask) -> tuple[int, Any]:
    extension = ask.query.get("extension")
    ext = parse.parse_extension(extension, "extension") if extension is not None else None
    ext = ask.own(ext)
    return 200, [policy_json(p) for p in ops.list_policies(ask.engine, ext)]


def set_policy(ask: Ask) -> tuple[int, Any]:
    new = parse.new_policy(
        ask.path["policy"],
        ask.text("action", "reject") or "reject",
        ask.text("code"),
        ask.text("extension"),
        source="api",
    )
    saved, created = ops.set_policy(ask.engine, new, by=ask.actor)
    return (201 if created else 200), policy_json(saved)


def remove_policy(ask: Ask) -> tuple[int, Any]:
    kind = parse.parse_policy_kind(ask.path["policy"], "kind")
    extension = ask.query.get("extension")
    ext = parse.parse_extension(extension, "extension") if extension is not None else None
    removed = ops.remove_policy(ask.engine, kind, ext, by=ask.actor)
    return 200, policy_json(removed)


# -- do-not-disturb ----------------------------------------------------------------------


def list_dnd(ask: Ask) -> tuple[int, Any]:
    extension = ask.query.get("extension")
    wanted = parse.parse_extension(extension, "extension") if extension else None
    windows, manual = lists.list_dnd(ask.engine, ask.actor, wanted)
    return 200, {
        "schedules": [window_json(w) for w in windows],
        "manual": [{"extension": m.extension, "until": iso(m.until)} for m in manual],
    }


def add_dnd(ask: Ask) -> tuple[int, Any]:
    extension = parse.parse_extension(ask.text("extension") or "", "extension")
    ask.own(extension)  # a user adds only to their own
    window = ops.add_dnd(
        ask.engine,
        extension,
        ask.text("days") or "",
        ask.text("from") or "",
        ask.text("to") or "",
        ask.text("tz"),
        by=ask.actor,
    )
    return 201, window_json(window)


def remove_dnd(ask: Ask) -> tuple[int, Any]:
    removed = lists.remove_dnd(ask.engine, ask.actor, parse.parse_id(ask.path["id"]))
    return 200, window_json(removed)


def manual_dnd(ask: Ask) -> tuple[int, Any]:
    extension = ask.own(parse.parse_extension(ask.path["ext"], "extension"))
    assert extension is not None
    on = ask.body.get("on")
    if not isinstance(on, bool):
        raise InvalidInput("on", "expected true or false")
    if on:
        raw = ask.text("until")
        now = datetime.now(UTC)
        until = parse.parse_until(raw, now) if raw else None
        rule = ops.dnd_on(ask.engine, extension, until, source="api", now=now, by=ask.actor)
        return 200, {"extension": extension, "on": True, "until": iso(rule.until)}
    was = ops.dnd_off(ask.engine, extension, by=ask.actor)
    return 200, {"extension": extension, "on": False, "was_on": was}


# -- calls -----------------------------------------------------------------------------


def calls(ask: Ask) -> tuple[int, Any]:
    wanted = call_log.query_filter(ask.region, ask.query)
    page = call_log.list_calls(ask.engine, ask.actor, wanted, _limit(ask.query.get("limit")))
    return 200, {"calls": [call_json(r, ask.admin) for r in page.calls], "next": page.next}


def spam(ask: Ask) -> tuple[int, Any]:
    call_id = parse.parse_id(ask.path["id"], maximum=parse.MAX_CALL_ID)
    undo = ask.query.get("undo") == "1"
    result = call_log.mark_spam(ask.engine, ask.actor, ask.reputation, call_id, undo=undo)
    return 200, {"outcome": result.outcome.value, "detail": result.detail}


def check(ask: Ask) -> tuple[int, Any]:
    asked = ask.query.get("extension")
    if asked is None and not ask.admin:
        asked = ask.who.extension  # a user's own, unless they name it
    extension = ask.own(parse.parse_extension(asked or "", "extension"))
    assert extension is not None
    caller = ask.query.get("caller", "")
    call = parse.incoming(caller, extension, ask.region)
    now = datetime.now(UTC)
    decision = ops.check(ask.engine, call, now)
    policy = decision.policy.value if decision.policy else None
    reason = (
        decision.reason if ask.admin else views.reason_for_user(decision.rule_kind, policy, None)
    )
    return 200, {
        "caller": call.caller_raw,
        "caller_normalised": call.caller,
        "extension": extension,
        "action": decision.action.value,
        "sip_code": decision.sip_code,
        "rule_kind": decision.rule_kind,
        "rule_id": decision.rule_id if ask.admin else None,
        "policy": policy,
        "reason": reason,
    }


def stats(ask: Ask) -> tuple[int, Any]:
    since = parse.parse_since(ask.query.get("since", "7d"), datetime.now(UTC), field="since")
    st = call_log.stats(ask.engine, since, 10)
    return 200, {
        "since": iso(st.since),
        "calls": st.calls,
        "allowed": st.allowed,
        "rejected_607": st.rejected_607,
        "rejected_608": st.rejected_608,
        "failed_open": st.failed_open,
        "challenges": st.challenges,
        "top_callers": [{"caller": c, "calls": n} for c, n in st.top_callers],
    }


# -- helpers --------------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 200:
        return None
    return token.strip()


def _error(status: int, name: str, message: str) -> JSONResponse:
    return JSONResponse({"error": f"{name}: {message}", "field": name}, status)


def _kind(raw: str) -> Literal["block", "allow"]:
    if raw == "block":
        return "block"
    if raw == "allow":
        return "allow"
    raise NotFound(f"no list {raw[:20]!r}: expected block or allow")


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    return parse.whole_number(raw, "limit", 1, MAX_LIMIT)
