"""Fuzz the JSON API from its own OpenAPI document (schemathesis), on each backend, as the
admin and as a user, with one record of every kind in the database: whatever is sent, no
5xx, and every response (errors included) is one the document promises, in status code and
in full: the document, generated from the declared views, requires every field and no
other, which the last test shows by taking one away."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.testclient import TestClient

from screening.config import Config
from screening.service.accounts import Accounts
from screening.store.engine import make_engine
from screening.web.app import create_app
from tests.db.conftest import PASSWORD, Api
from tests.db.test_web import log_calls

TOKENS: dict[str, str] = {}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def seed(database_url: str, accounts: Accounts, client: TestClient) -> Api:
    """One record of every kind, global and for 201, so that answers carry full records."""
    accounts.add("seeder", "admin", None, PASSWORD, datetime.now(UTC))
    admin = Api(client, accounts.new_token("seeder", datetime.now(UTC), None)[0])
    for status, _ in (
        admin.post("/lists/block", {"number": "+15550100001", "reason": "robo", "code": 608}),
        admin.post("/lists/block", {"number": "+1900*", "extension": "201", "expires": "30d"}),
        admin.post("/lists/allow", {"number": "+15550100002", "extension": "201"}),
        admin.post("/names/block", {"pattern": "*spam*", "reason": "names"}),
        admin.put("/policies/anonymous", {"action": "reject", "code": "608"}),
        admin.put("/policies/invalid", {"action": "continue", "extension": "201"}),
        admin.post("/dnd", {"extension": "201", "days": "mon-fri", "from": "22:00", "to": "07:00"}),
        admin.put("/manual-dnd/201", {"on": True, "until": "2h"}),
    ):
        assert status in (200, 201), status
    log_calls(
        database_url,
        ("201", "+15550100001", "rejected", 608, "block"),
        ("201", "+15550100003", "allowed", None, None),
    )
    return admin


@pytest.fixture(params=["admin", "user"])
def api_schema(request: pytest.FixtureRequest, database_url: str) -> Iterator[OpenApiSchema]:
    engine = make_engine(database_url)
    accounts = Accounts(engine)
    now = datetime.now(UTC)
    role: str = request.param
    accounts.add("fuzz", role, "201" if role == "user" else None, "correct horse battery", now)
    TOKENS["current"] = accounts.new_token("fuzz", now, None)[0]
    app = create_app(Config(), engine, "test-secret")
    seed(database_url, accounts, TestClient(app))
    yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    engine.dispose()


def test_no_request_gets_a_server_error_or_an_undocumented_answer(
    api_schema: OpenApiSchema,
) -> None:
    # Operation by operation with hypothesis directly: schemathesis' pytest plugin does not
    # run under this pytest.
    tried = 0
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKENS['current']}"}, checks=CHECKS
            )

        fuzz()
        tried += 1
    assert tried >= 18  # every operation in the document


def _valid(document: dict[str, Any], name: str, body: object) -> bool:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return bool(jsonschema_rs.validator_for(schema).is_valid(body))


@pytest.mark.parametrize(
    ("path", "name", "records"),
    [
        ("/lists/block", "EntryPage", "entries"),
        ("/lists/allow", "EntryPage", "entries"),
        ("/calls", "CallPage", "calls"),
        ("/dnd", "DndView", "schedules"),
        ("/dnd", "DndView", "manual"),
        ("/stats", "StatsView", "top_callers"),
        ("/me", "WhoView", None),
        ("/check", "CheckView", None),
    ],
)
def test_the_document_requires_every_field_an_answer_has_and_no_other(
    database_url: str, path: str, name: str, records: str | None
) -> None:
    engine = make_engine(database_url)
    accounts = Accounts(engine)
    client = TestClient(create_app(Config(), engine, "test-secret"))
    admin = seed(database_url, accounts, client)
    document = client.get("/api/v1/openapi.json").json()
    asked = {"caller": "+15550100001", "extension": "201"} if path == "/check" else {}
    status, body = admin.get(path, **asked)
    engine.dispose()
    assert status == 200 and isinstance(body, dict), body
    assert _valid(document, name, body)
    # A record in the answer with any one field dropped, or one field added, is refused:
    # what the fuzz test checks every answer against is the whole record.
    shown = body[records][0] if records else body
    assert isinstance(shown, dict) and len(shown) >= 2, body
    for field in list(shown):
        value = shown.pop(field)
        assert not _valid(document, name, body), f"{name} without {field!r} passed"
        shown[field] = value
    shown["surprise"] = 1
    assert not _valid(document, name, body), f"{name} with an unknown field passed"
