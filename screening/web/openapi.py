"""The API's OpenAPI 3.0 document (/api/v1/openapi.json), written out by hand: it is the
contract the tests fuzz the API against (schemathesis), so it says exactly what is sent and
what comes back, including every error."""

from __future__ import annotations

from typing import Any

_S = dict[str, Any]


def _nullable(kind: str, **more: Any) -> _S:
    return {"type": kind, "nullable": True, **more}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_ERROR: _S = {
    "type": "object",
    "required": ["error", "field"],
    "properties": {"error": _STR, "field": _STR},
}
_ENTRY: _S = {
    "type": "object",
    "required": ["id", "kind", "number", "extension", "code", "reason", "source", "expires"],
    "properties": {
        "id": _INT,
        "kind": {"type": "string", "enum": ["block", "allow"]},
        "number": _STR,
        "extension": _nullable("string"),
        "code": _nullable("integer", enum=[607, 608, None]),
        "reason": _nullable("string"),
        "source": _nullable("string"),
        "expires": _nullable("string", format="date-time"),
    },
}
_LISTED: _S = {
    "type": "object",
    "required": [*_ENTRY["required"], "entered", "created", "calls", "last_call"],
    "properties": {
        **_ENTRY["properties"],
        "entered": _STR,
        "created": {"type": "string", "format": "date-time"},
        "calls": _INT,
        "last_call": _nullable("string", format="date-time"),
    },
}
_NAME: _S = {
    "type": "object",
    "required": ["id", "kind", "pattern", "extension", "code", "reason"],
    "properties": {
        "id": _INT,
        "kind": {"type": "string", "enum": ["block", "allow"]},
        "pattern": _STR,
        "extension": _nullable("string"),
        "code": _nullable("integer"),
        "reason": _nullable("string"),
    },
}
_POLICY: _S = {
    "type": "object",
    "required": ["id", "kind", "extension", "action", "code"],
    "properties": {
        "id": _INT,
        "kind": _STR,
        "extension": _nullable("string"),
        "action": {"type": "string", "enum": ["reject", "challenge", "continue"]},
        "code": _nullable("integer"),
    },
}
_WINDOW: _S = {
    "type": "object",
    "required": ["id", "extension", "description", "from", "to", "tz"],
    "properties": {
        "id": _INT,
        "extension": _STR,
        "description": _STR,
        "days": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6}},
        "from": _STR,
        "to": _STR,
        "tz": _STR,
    },
}
_CALL: _S = {
    "type": "object",
    "required": ["id", "at", "caller", "extension", "decision", "reason"],
    "properties": {
        "id": _INT,
        "at": {"type": "string", "format": "date-time"},
        "channel_id": _STR,
        "caller": _nullable("string"),
        "caller_raw": _STR,
        "caller_name": _nullable("string"),
        "extension": _STR,
        "decision": {"type": "string", "enum": ["allowed", "rejected", "abandoned"]},
        "code": _nullable("integer"),
        "rule_kind": _nullable("string"),
        "rule_id": _nullable("integer"),
        "reason": _STR,
        "policy": _nullable("string"),
        "verification": _nullable("string"),
        "attestation": _nullable("string"),
        "challenge": _nullable("string"),
        "door": _nullable("string"),
        "decision_ms": {"type": "number"},
    },
}
_KIND = {
    "name": "kind",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": ["block", "allow"]},
}
_EXT_QUERY = {
    "name": "extension",
    "in": "query",
    "schema": {"type": "string"},
    "description": "an extension (a user may give only their own)",
}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
}
_CALL_ID = {**_ID, "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}
_LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
}


def _json(schema: _S) -> _S:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> _S:
    words = {
        400: "a field is wrong; `field` names it",
        401: "no token, or one that is unknown or revoked",
        403: "not yours: another extension's data, or an admin's operation",
        404: "no such entry, schedule or call",
        413: "the body is larger than 16 KB",
    }
    return {str(c): {"description": words[c], **_json(_ERROR)} for c in (401, *codes)}


def _op(
    summary: str,
    ok: _S,
    *,
    status: str = "200",
    params: list[_S] | None = None,
    body: _S | None = None,
    errors: tuple[int, ...] = (400, 403),
    created: bool = False,
) -> _S:
    responses: _S = {status: {"description": "done", **_json(ok)}, **_errors(*errors)}
    if created:
        responses["201"] = {"description": "created", **_json(ok)}
    if body is not None:
        responses.update(_errors(413))
    op: _S = {"summary": summary, "responses": responses, "security": [{"bearer": []}]}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def _body(required: list[str], **properties: _S) -> _S:
    return {"type": "object", "required": required, "properties": properties}


def document() -> _S:
    entry_body = _body(
        ["number"],
        number={"type": "string", "description": "a number, or a prefix ending in *"},
        extension=_STR,
        code={"type": "string", "enum": ["607", "608"]},
        reason=_STR,
        expires={"type": "string", "description": "30d, 12h, YYYY-MM-DD or ISO 8601"},
    )
    page = {
        "type": "object",
        "required": ["entries", "next"],
        "properties": {"entries": {"type": "array", "items": _LISTED}, "next": _nullable("string")},
    }
    calls = {
        "type": "object",
        "required": ["calls", "next"],
        "properties": {"calls": {"type": "array", "items": _CALL}, "next": _nullable("integer")},
    }
    paths: _S = {
        "/api/v1/me": {
            "get": _op(
                "who the token belongs to",
                _body(
                    ["name", "role", "extension"],
                    name=_STR,
                    role=_STR,
                    extension=_nullable("string"),
                ),
                errors=(),
            )
        },
        "/api/v1/lists/{kind}": {
            "get": _op(
                "block or allow entries in number order, a page at a time",
                page,
                params=[
                    _KIND,
                    {**_EXT_QUERY, "description": "an extension, or `global`"},
                    {
                        "name": "number",
                        "in": "query",
                        "schema": _STR,
                        "description": "entries whose number starts with these digits",
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "schema": _STR,
                        "description": "the `next` of the previous page",
                    },
                    _LIMIT,
                ],
                errors=(400, 403, 404),
            ),
            "post": _op(
                "add (or update) an entry; a user's go to their extension",
                _ENTRY,
                params=[_KIND],
                body=entry_body,
                errors=(400, 403, 404),
                created=True,
            ),
        },
        "/api/v1/lists/{kind}/{id}": {
            "delete": _op("remove an entry", _ENTRY, params=[_KIND, _ID], errors=(400, 403, 404))
        },
        "/api/v1/names/{kind}": {
            "get": _op(
                "caller-name entries (admins)",
                {"type": "array", "items": _NAME},
                params=[_KIND, _EXT_QUERY],
                errors=(400, 403, 404),
            ),
            "post": _op(
                "add a caller-name entry (admins)",
                _NAME,
                params=[_KIND],
                body=_body(
                    ["pattern"],
                    pattern=_STR,
                    extension=_STR,
                    code={"type": "string", "enum": ["607", "608"]},
                    reason=_STR,
                ),
                errors=(400, 403, 404),
                created=True,
            ),
            "delete": _op(
                "remove a caller-name entry (admins)",
                _NAME,
                params=[
                    _KIND,
                    {"name": "pattern", "in": "query", "required": True, "schema": _STR},
                    _EXT_QUERY,
                ],
                errors=(400, 403, 404),
            ),
        },
        "/api/v1/policies": {
            "get": _op(
                "policies (a user's: those that apply to their extension)",
                {"type": "array", "items": _POLICY},
                params=[_EXT_QUERY],
            )
        },
        "/api/v1/policies/{policy}": {
            "put": _op(
                "set a policy (admins)",
                _POLICY,
                params=[{"name": "policy", "in": "path", "required": True, "schema": _STR}],
                body=_body(
                    ["action"],
                    action={"type": "string", "enum": ["reject", "challenge", "continue"]},
                    code={"type": "string", "enum": ["607", "608"]},
                    extension=_STR,
                ),
                created=True,
            ),
            "delete": _op(
                "remove a policy (admins)",
                _POLICY,
                params=[
                    {"name": "policy", "in": "path", "required": True, "schema": _STR},
                    _EXT_QUERY,
                ],
                errors=(400, 403, 404),
            ),
        },
        "/api/v1/dnd": {
            "get": _op(
                "do-not-disturb schedules and manual DND",
                _body(
                    ["schedules", "manual"],
                    schedules={"type": "array", "items": _WINDOW},
                    manual={
                        "type": "array",
                        "items": _body(
                            ["extension", "until"],
                            extension=_STR,
                            until=_nullable("string", format="date-time"),
                        ),
                    },
                ),
                params=[_EXT_QUERY],
            ),
            "post": _op(
                "add a schedule",
                _WINDOW,
                status="201",
                body=_body(
                    ["extension", "days", "from", "to"],
                    extension=_STR,
                    days={"type": "string", "description": "mon-fri, sat,sun, all, weekdays"},
                    **{
                        "from": {"type": "string", "description": "HH:MM"},
                        "to": {"type": "string", "description": "HH:MM"},
                    },
                    tz=_STR,
                ),
            ),
        },
        "/api/v1/dnd/{id}": {
            "delete": _op("remove a schedule", _WINDOW, params=[_ID], errors=(400, 403, 404))
        },
        "/api/v1/manual-dnd/{ext}": {
            "put": _op(
                "switch manual DND on or off",
                _body(
                    ["extension", "on"],
                    extension=_STR,
                    on={"type": "boolean"},
                    until=_nullable("string"),
                    was_on={"type": "boolean"},
                ),
                params=[{"name": "ext", "in": "path", "required": True, "schema": _STR}],
                body=_body(
                    ["on"],
                    on={"type": "boolean"},
                    until={"type": "string", "description": "HH:MM, 2h, date"},
                ),
            )
        },
        "/api/v1/calls": {
            "get": _op(
                "the call log, newest first, a page at a time",
                calls,
                params=[
                    _EXT_QUERY,
                    {"name": "caller", "in": "query", "schema": _STR},
                    {
                        "name": "decision",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["allowed", "rejected", "abandoned"]},
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                        "description": "the `next` of the previous page",
                    },
                    _LIMIT,
                ],
            )
        },
        "/api/v1/calls/{id}/spam": {
            "post": _op(
                "this call was spam (as *60); ?undo=1 takes it back",
                _body(["outcome", "detail"], outcome=_STR, detail=_STR),
                params=[
                    _CALL_ID,
                    {"name": "undo", "in": "query", "schema": {"type": "string", "enum": ["1"]}},
                ],
                errors=(400, 403, 404),
            )
        },
        "/api/v1/check": {
            "get": _op(
                "what would happen to a call from CALLER to EXTENSION now, and why",
                _body(
                    ["action", "reason"],
                    caller=_STR,
                    caller_normalised=_nullable("string"),
                    extension=_STR,
                    action={"type": "string", "enum": ["continue", "reject", "challenge"]},
                    sip_code=_nullable("integer"),
                    rule_kind=_nullable("string"),
                    rule_id=_nullable("integer"),
                    policy=_nullable("string"),
                    reason=_STR,
                ),
                params=[
                    {"name": "caller", "in": "query", "required": True, "schema": _STR},
                    {**_EXT_QUERY, "required": True},
                ],
            )
        },
        "/api/v1/stats": {
            "get": _op(
                "counts since a time (admins)",
                _body(
                    ["calls", "allowed", "rejected_607", "rejected_608"],
                    calls=_INT,
                    allowed=_INT,
                    rejected_607=_INT,
                    rejected_608=_INT,
                    failed_open=_INT,
                    since=_nullable("string"),
                    challenges={"type": "object"},
                    top_callers={"type": "array"},
                ),
                params=[
                    {
                        "name": "since",
                        "in": "query",
                        "schema": _STR,
                        "description": "1h, 7d, YYYY-MM-DD",
                    }
                ],
            )
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "screening",
            "version": "1",
            "description": "Call screening for Asterisk: lists, policies, DND and the call "
            "log. Send `Authorization: Bearer TOKEN` (`screening user token NAME`).",
        },
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
