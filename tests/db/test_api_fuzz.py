"""Fuzz the JSON API from its own OpenAPI document (schemathesis), on each backend, as the
admin and as a user: whatever is sent, no 5xx, and every response (errors included) is one
the document promises, in shape and status code."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

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

from screening.config import Config
from screening.service.accounts import Accounts
from screening.store.engine import make_engine
from screening.web.app import create_app

TOKENS: dict[str, str] = {}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(params=["admin", "user"])
def api_schema(request: pytest.FixtureRequest, database_url: str) -> Iterator[OpenApiSchema]:
    engine = make_engine(database_url)
    accounts = Accounts(engine)
    now = datetime.now(UTC)
    role: str = request.param
    accounts.add("fuzz", role, "201" if role == "user" else None, "correct horse battery", now)
    TOKENS["current"] = accounts.new_token("fuzz", now, None)[0]
    app = create_app(Config(), engine, "test-secret")
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
