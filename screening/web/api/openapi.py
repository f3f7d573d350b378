"""The API's OpenAPI 3.1 document (/api/v1/openapi.json), derived from the operations'
declarations: paths, parameters and bodies from each Operation, every answer's schema from
its declared view (service.views), so the document cannot say less than the API sends. The
fuzz test checks every answer against it, bodies in full."""

from __future__ import annotations

from typing import Any

import msgspec

from screening.service.views import ErrorView
from screening.web.api.door import MAX_BODY, Operation

_S = dict[str, Any]
PREFIX = "/api/v1"

_ERRORS = {
    400: "a field is wrong; `field` names it",
    401: "no token, or one that is unknown or revoked",
    403: "not yours: another extension's data, or an admin's operation",
    404: "no such entry, schedule or call",
    413: f"the body is larger than {MAX_BODY // 1024} KB",
}


def document(operations: tuple[Operation, ...]) -> _S:
    schemas, components = _schemas(operations)
    paths: _S = {}
    for op in operations:
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "screening",
            "version": "1",
            "description": "Call screening for Asterisk: lists, policies, DND and the call "
            "log. Send `Authorization: Bearer TOKEN` (`screening user token NAME`).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _schemas(operations: tuple[Operation, ...]) -> tuple[dict[int, _S], _S]:
    """Each declared type's schema (by id of the type object), and the shared components."""
    kinds: list[Any] = [ErrorView]
    for op in operations:
        kinds += [op.answer, *(p.kind for p in op.params)]
        if op.body is not None:
            kinds.append(op.body)
    found, components = msgspec.json.schema_components(
        kinds, ref_template="#/components/schemas/{name}"
    )
    return {id(k): s for k, s in zip(kinds, found, strict=True)}, components


def _json(schema: _S) -> _S:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(op: Operation, schemas: dict[int, _S]) -> _S:
    answer = {"description": "done", **_json(schemas[id(op.answer)])}
    responses: _S = {str(op.status): answer}
    if op.created:
        responses["201"] = {**answer, "description": "created"}
    codes = [401, *op.errors, *((413,) if op.body is not None else ())]
    if op.admin_only and 403 not in codes:
        codes.append(403)
    error = _json(schemas[id(ErrorView)])
    responses |= {str(c): {"description": _ERRORS[c], **error} for c in codes}
    out: _S = {"summary": op.summary, "responses": responses, "security": [{"bearer": []}]}
    if op.params:
        out["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "schema": schemas[id(p.kind)],
                **({"description": p.description} if p.description else {}),
            }
            for p in op.params
        ]
    if op.body is not None:
        out["requestBody"] = {"required": True, **_json(schemas[id(op.body)])}
    return out
