"""The JSON API under /api/v1: the console's operations for scripts, with per-user bearer
tokens (`screening user token NAME`). One module per resource, each declaring its
operations (web.api.door.Operation); the routes and the OpenAPI document
(/api/v1/openapi.json) are both made from those declarations. The same services, checks
and messages as the CLI and the console; a user sees and changes only their own extension.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from screening.config import Config
from screening.core.features import Reputation
from screening.service.accounts import Accounts
from screening.store.engine import Engine
from screening.web.api import calls, dnd, lists, names, policies, who
from screening.web.api.door import Door, Operation, endpoint
from screening.web.api.openapi import PREFIX, document

OPERATIONS: tuple[Operation, ...] = (
    *who.OPERATIONS,
    *lists.OPERATIONS,
    *names.OPERATIONS,
    *policies.OPERATIONS,
    *dnd.OPERATIONS,
    *calls.OPERATIONS,
)


def routes(config: Config, engine: Engine) -> list[Route]:
    door = Door(
        engine,
        config.default_region,
        Reputation(config.reputation_reports, config.reputation_days),
        Accounts(engine),
    )
    spec = document(OPERATIONS)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    return [
        Route(f"{PREFIX}/openapi.json", openapi, methods=["GET"]),
        *(Route(PREFIX + op.path, endpoint(door, op), methods=[op.method]) for op in OPERATIONS),
    ]
