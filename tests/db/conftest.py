"""Fixtures for the admin CLI tests."""

from __future__ import annotations

import pytest

from tests.cli_helpers import Cli, Result, run


@pytest.fixture
def cli(database_url: str) -> Cli:
    """`screening ARGS` against this test's database, as an admin runs it."""

    def invoke(*args: str, stdin: str = "") -> Result:
        return run(*args, env={"SCREENING_DATABASE_URL": database_url}, stdin=stdin)

    return invoke
