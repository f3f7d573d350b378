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

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from screening.config import Config
from screening.core.decision import DndWindow, Entry, NameEntry, Policy
from screening.core.errors import InvalidInput, NotFound
from screening.core.features import Reputation
from screening.core.numbers import normalise
from screening.service import ops, parse, views
from screening.service.accounts import Accounts
from screening.store import calllog, lists, reports
from screening.store.accounts import Account
from screening.store.accounts import audit as audit_row
from screening.store.models import CallLog
from screening.web.limits import API_BODY
from screening.web.openapi import document

log = logging.getLogger(__name__)

#: The CLI names fields as an admin types them; the API names them as JSON keys.
_FIELDS = {
    "--for": "extension",
    "EXT": "extension",
    "--code": "code",
    "--reason": "reason",
    "--expires": "expires",
    "--action": "action",
    "KIND": "kind",
    "NUMBER": "number",
    "--name": "pattern",
    "--days": "days",
    "--from": "from",
    "--to": "to",
    "--tz": "tz",
    "--since": "since",
    "--until": "until",
    "ID": "id",
}
MAX_BODY = API_BODY  # also bounded before it is read (web.limits)
MAX_LIMIT = 500


class Forbidden(Exception):
    """Not this user's to see or change."""


@dataclass
class Ask:
    """One API request, authenticated: who asks, the query and the JSON body."""

    who: Account
    path: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> bool:
        return self.who.role == "admin"

    def own(self, extension: str | None) -> str | None:
        """The extension this request may touch: a user's own, whatever they asked for; a
        user asking for another one is refused."""
        if self.admin:
            return extension
        if extension is not None and extension != self.who.extension:
            raise Forbidden(f"extension {extension} is not yours")
        return self.who.extension

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
    accounts = Accounts(engine)
    region = config.default_region
    reputation = Reputation(config.reputation_reports, config.reputation_days)
    spec = document()

    def audit(ask: Ask, action: str, detail: str) -> None:
        accounts.audit(ask.who.name, f"api {action}", detail[:500], datetime.now(UTC))

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
                who,
                {k: str(v) for k, v in request.path_params.items()},
                dict(request.query_params),
                body,
            )
            try:
                status, payload = await asyncio.to_thread(handler, ask)
            except InvalidInput as e:
                name = _FIELDS.get(e.field, e.field)
                return _error(400, name, e.detail)
            except NotFound as e:
                return _error(404, "id", str(e))
            except Forbidden as e:
                peer = request.client.host if request.client else "?"
                log.warning("api: %s refused from %s: %s", who.name, peer, e)
                return _error(403, "extension", str(e))
            return JSONResponse(payload, status)

        return run

    # -- who ------------------------------------------------------------------------------

    def me(ask: Ask) -> tuple[int, Any]:
        return 200, {"name": ask.who.name, "role": ask.who.role, "extension": ask.who.extension}

    # -- block and allow lists -------------------------------------------------------------

    def list_entries(ask: Ask) -> tuple[int, Any]:
        kind = _kind(ask.path["kind"])
        scope_text = ask.query.get("extension")
        scope: str | None
        if scope_text == "global":
            if not ask.admin:
                raise Forbidden("global entries are the admins'")
            scope = ""
        elif scope_text is not None:
            scope = ask.own(parse.parse_extension(scope_text, "extension"))
        else:
            scope = ask.own(None)
        prefix = parse.parse_number_prefix(ask.query.get("number", ""))
        after = parse.parse_cursor(ask.query.get("after"))
        limit = _limit(ask.query.get("limit"))
        with Session(engine) as s:
            page = lists.page_entries(s, kind, scope=scope, prefix=prefix, after=after, limit=limit)
        return 200, {
            "entries": [_listed(e) for e in page.entries],
            "next": parse.encode_cursor(page.next) if page.next else None,
        }

    def add_entry(ask: Ask) -> tuple[int, Any]:
        kind = _kind(ask.path["kind"])
        number = ask.text("number")
        if not number:
            raise InvalidInput("number", "expected a phone number or a prefix like +1900*")
        extension = ask.own(ask.text("extension"))
        if not ask.admin and extension is None:
            raise Forbidden("a user's entries are for their extension")
        entry, created = ops.add_entry(
            engine,
            kind,
            number,
            region,
            extension=extension,
            code=ask.text("code"),
            reason=ask.text("reason"),
            source="api",
            expires=ask.text("expires"),
        )
        audit(ask, f"{kind} {'add' if created else 'update'}", entry.describe())
        return (201 if created else 200), _entry(entry)

    def remove_entry(ask: Ask) -> tuple[int, Any]:
        kind = _kind(ask.path["kind"])
        entry_id = parse.parse_id(ask.path["id"])
        with Session(engine) as s:
            found = lists.find_entry_by_id(s, kind, entry_id)
        if found is None:
            raise NotFound(f"no {kind} entry with id {entry_id}")
        if not ask.admin and found.extension != ask.who.extension:
            raise Forbidden(f"{kind} entry {entry_id} is not for your extension")
        key = parse.EntryKey(f"#{entry_id}", entry_id, "", False, None)
        removed = ops.remove_entry(engine, kind, key)
        audit(ask, f"{kind} remove", removed.describe())
        return 200, _entry(removed)

    # -- caller-name entries (admins) ------------------------------------------------------

    def list_names(ask: Ask) -> tuple[int, Any]:
        kind = _kind(ask.path["kind"])
        extension = ask.query.get("extension")
        ext = parse.parse_extension(extension, "extension") if extension is not None else None
        return 200, [_name(n) for n in ops.list_names(engine, kind, ext)]

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
        saved, created = ops.save_name(engine, new)
        audit(ask, f"{kind} name {'add' if created else 'update'}", saved.describe())
        return (201 if created else 200), _name(saved)

    def remove_name(ask: Ask) -> tuple[int, Any]:
        kind = _kind(ask.path["kind"])
        pattern = parse.parse_name_pattern(ask.query.get("pattern", ""), "pattern")
        extension = ask.query.get("extension")
        ext = parse.parse_extension(extension, "extension") if extension is not None else None
        removed = ops.remove_name(engine, kind, pattern, ext)
        audit(ask, f"{kind} name remove", removed.describe())
        return 200, _name(removed)

    # -- policies --------------------------------------------------------------------------

    def list_policies(ask: Ask) -> tuple[int, Any]:
        extension = ask.query.get("extension")
        ext = parse.parse_extension(extension, "extension") if extension is not None else None
        ext = ask.own(ext)
        return 200, [_policy(p) for p in ops.list_policies(engine, ext)]

    def set_policy(ask: Ask) -> tuple[int, Any]:
        new = parse.new_policy(
            ask.path["policy"],
            ask.text("action", "reject") or "reject",
            ask.text("code"),
            ask.text("extension"),
            source="api",
        )
        saved, created = ops.set_policy(engine, new)
        audit(ask, f"policy {'set' if created else 'update'}", saved.describe())
        return (201 if created else 200), _policy(saved)

    def remove_policy(ask: Ask) -> tuple[int, Any]:
        kind = parse.parse_policy_kind(ask.path["policy"], "kind")
        extension = ask.query.get("extension")
        ext = parse.parse_extension(extension, "extension") if extension is not None else None
        removed = ops.remove_policy(engine, kind, ext)
        audit(ask, "policy remove", removed.describe())
        return 200, _policy(removed)

    # -- do-not-disturb ----------------------------------------------------------------------

    def list_dnd(ask: Ask) -> tuple[int, Any]:
        extension = ask.query.get("extension")
        ext = ask.own(parse.parse_extension(extension, "extension") if extension else None)
        with Session(engine) as s:
            windows, manual = lists.list_dnd(s, ext)
        return 200, {
            "schedules": [_window(w) for w in windows],
            "manual": [{"extension": m.extension, "until": _iso(m.until)} for m in manual],
        }

    def add_dnd(ask: Ask) -> tuple[int, Any]:
        extension = parse.parse_extension(ask.text("extension") or "", "extension")
        ask.own(extension)  # a user adds only to their own
        window = ops.add_dnd(
            engine,
            extension,
            ask.text("days") or "",
            ask.text("from") or "",
            ask.text("to") or "",
            ask.text("tz"),
        )
        audit(ask, "dnd add", window.describe())
        return 201, _window(window)

    def remove_dnd(ask: Ask) -> tuple[int, Any]:
        schedule_id = parse.parse_id(ask.path["id"])
        with Session(engine) as s:
            found = lists.find_dnd(s, schedule_id)
        if found is None:
            raise NotFound(f"no DND schedule with id {schedule_id}")
        ask.own(found.extension)
        removed = ops.remove_dnd(engine, str(schedule_id))
        audit(ask, "dnd remove", removed.describe())
        return 200, _window(removed)

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
            rule = ops.dnd_on(engine, extension, until, source="api", now=now)
            audit(ask, "dnd on", rule.describe())
            return 200, {"extension": extension, "on": True, "until": _iso(rule.until)}
        was = ops.dnd_off(engine, extension)
        audit(ask, "dnd off", f"extension {extension}")
        return 200, {"extension": extension, "on": False, "was_on": was}

    # -- calls -----------------------------------------------------------------------------

    def calls(ask: Ask) -> tuple[int, Any]:
        extension = ask.query.get("extension")
        ext = ask.own(parse.parse_extension(extension, "extension") if extension else None)
        caller = ask.query.get("caller")
        wanted = None
        if caller is not None:
            wanted = normalise(caller, region)
            if wanted is None:
                raise InvalidInput("caller", f"expected a phone number, got {caller[:40]!r}")
        decision = ask.query.get("decision")
        if decision is not None and decision not in ("allowed", "rejected", "abandoned"):
            raise InvalidInput("decision", "expected allowed, rejected or abandoned")
        before = (
            parse.parse_id(ask.query["before"], "before", parse.MAX_CALL_ID)
            if "before" in ask.query
            else None
        )
        limit = _limit(ask.query.get("limit"))
        with Session(engine) as s:
            rows = calllog.query_log(
                s,
                extension=ext,
                caller=wanted,
                decision=decision,
                before_id=before,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return 200, {
            "calls": [_call(r, ask.admin) for r in rows],
            "next": rows[-1].id if more and rows else None,
        }

    def spam(ask: Ask) -> tuple[int, Any]:
        call_id = parse.parse_id(ask.path["id"], maximum=parse.MAX_CALL_ID)
        now = datetime.now(UTC)
        with Session(engine) as s, s.begin():
            row = s.get(CallLog, call_id)
            if row is None:
                raise NotFound(f"no call with id {call_id}")
            ask.own(row.extension)
            if row.caller is None or row.decision != "allowed":
                raise InvalidInput("id", "only a call that rang, from a number, can be spam")
            undo = ask.query.get("undo") == "1"
            if undo:
                result = reports.unmark_caller(s, row.caller, row.extension, now, reputation)
            else:
                result = reports.mark_caller(s, row.caller, row.extension, now, reputation)
            audit_row(
                s, ask.who.name, "api unmark spam" if undo else "api mark spam", result.detail, now
            )
        return 200, {"outcome": result.outcome.value, "detail": result.detail}

    def check(ask: Ask) -> tuple[int, Any]:
        asked = ask.query.get("extension")
        if asked is None and not ask.admin:
            asked = ask.who.extension  # a user's own, unless they name it
        extension = ask.own(parse.parse_extension(asked or "", "extension"))
        assert extension is not None
        caller = ask.query.get("caller", "")
        call = parse.incoming(caller, extension, region)
        now = datetime.now(UTC)
        decision = ops.check(engine, call, now)
        policy = decision.policy.value if decision.policy else None
        reason = (
            decision.reason
            if ask.admin
            else views.reason_for_user(decision.rule_kind, policy, None)
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
        since = parse.parse_since(ask.query.get("since", "7d"), datetime.now(UTC), "since")
        with Session(engine) as s:
            st = calllog.stats(s, since, 10)
        return 200, {
            "since": _iso(st.since),
            "calls": st.calls,
            "allowed": st.allowed,
            "rejected_607": st.rejected_607,
            "rejected_608": st.rejected_608,
            "failed_open": st.failed_open,
            "challenges": st.challenges,
            "top_callers": [{"caller": c, "calls": n} for c, n in st.top_callers],
        }

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


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


def _entry(e: Entry | lists.ListedEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "number": e.value + ("*" if e.is_prefix else ""),
        "extension": e.extension,
        "code": e.sip_code,
        "reason": e.reason,
        "source": e.source,
        "expires": _iso(e.expires_at),
    }


def _listed(e: lists.ListedEntry) -> dict[str, Any]:
    return {
        **_entry(e),
        "entered": e.entered,
        "created": _iso(e.created_at),
        "calls": e.hits,
        "last_call": _iso(e.last_hit),
    }


def _name(n: NameEntry) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "pattern": n.pattern,
        "extension": n.extension,
        "code": n.sip_code,
        "reason": n.reason,
    }


def _policy(p: Policy) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind.value,
        "extension": p.extension,
        "action": p.action.value,
        "code": p.sip_code,
    }


def _window(w: DndWindow) -> dict[str, Any]:
    return {
        "id": w.id,
        "extension": w.extension,
        "description": w.describe(),
        "from": f"{w.start:%H:%M}",
        "to": f"{w.end:%H:%M}",
        "tz": w.tz,
    }


def _call(r: CallLog, admin: bool = True) -> dict[str, Any]:
    """One call; for a user, with the rule that decided told by its kind only (views)."""
    reason = r.reason if admin else views.reason_for_user(r.rule_kind, r.policy, r.challenge)
    return {
        "id": r.id,
        "at": _iso(r.at),
        "caller": r.caller,
        "caller_raw": r.caller_raw,
        "caller_name": r.caller_name,
        "extension": r.extension,
        "decision": r.decision,
        "code": r.sip_code,
        "rule_kind": r.rule_kind,
        "rule_id": r.rule_id if admin else None,
        "reason": reason,
        "policy": r.policy,
        "verification": r.verification,
        "attestation": r.attestation,
        "challenge": r.challenge,
    }
