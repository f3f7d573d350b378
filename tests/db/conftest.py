"""Fixtures for the admin CLI and the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from screening.config import Config
from screening.service.accounts import Accounts
from screening.store.engine import make_engine
from screening.web.app import create_app
from tests.cli_helpers import Cli, Result, run

PASSWORD = "correct horse battery"


@pytest.fixture
def cli(database_url: str) -> Cli:
    """`screening ARGS` against this test's database, as an admin runs it."""

    def invoke(*args: str, stdin: str = "") -> Result:
        return run(*args, env={"SCREENING_DATABASE_URL": database_url}, stdin=stdin)

    return invoke


class Api:
    def __init__(self, client: TestClient, token: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: str) -> tuple[int, object]:
        r = self.client.get(f"/api/v1{path}", params=params, headers=self.headers)
        return r.status_code, r.json()

    def post(self, path: str, body: object, **params: str) -> tuple[int, object]:
        r = self.client.post(f"/api/v1{path}", json=body, params=params, headers=self.headers)
        return r.status_code, r.json()

    def put(self, path: str, body: object) -> tuple[int, object]:
        r = self.client.put(f"/api/v1{path}", json=body, headers=self.headers)
        return r.status_code, r.json()

    def delete(self, path: str, **params: str) -> tuple[int, object]:
        r = self.client.delete(f"/api/v1{path}", params=params, headers=self.headers)
        return r.status_code, r.json()


@pytest.fixture
def apis(database_url: str) -> Iterator[tuple[Api, Api, TestClient]]:
    """(the admin's API, the API of 201's user, the bare client)."""
    engine = make_engine(database_url)
    accounts = Accounts(engine)
    now = datetime.now(UTC)
    accounts.add("alice", "admin", None, PASSWORD, now)
    accounts.add("bob", "user", "201", PASSWORD, now)
    client = TestClient(create_app(Config(), engine, "test-secret"))
    yield (
        Api(client, accounts.new_token("alice", now, None)[0]),
        Api(client, accounts.new_token("bob", now, None)[0]),
        client,
    )
    engine.dispose()
