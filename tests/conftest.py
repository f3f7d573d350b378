"""Shared fixtures: one throwaway database per run on each real backend.

Backends come from SCREENING_TEST_BACKENDS (default: sqlite,postgresql,mariadb). A backend
that is asked for but unreachable fails the tests that need it, with the reason; setting the
variable is the only way to leave one out.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from screening.config import normalise_database_url
from screening.store import migrate
from screening.store.engine import make_engine

SERVERS = {
    "postgresql": os.environ.get(
        "SCREENING_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("SCREENING_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/test"),
}
BACKENDS = [
    b.strip()
    for b in os.environ.get("SCREENING_TEST_BACKENDS", "sqlite,postgresql,mariadb").split(",")
    if b.strip()
]
# Under pytest-xdist every worker is a process of its own with its own counter below: the
# worker's id in each name keeps two workers from ever making the same database, and the run
# id they share names one run's databases together.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_NAMES = itertools.count()  # shared by every server, so no two databases share a name


class ThrowawayDatabases:
    """Creates databases named screening_test_<run>_<worker>_<n> on a server and drops them at
    the end."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.admin_url = normalise_database_url(SERVERS[backend])
        self.created: list[str] = []
        try:
            self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            with self.admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as e:
            pytest.fail(
                f"{backend} is not reachable at {self.admin_url} ({e.__class__.__name__}: "
                f"{str(e).splitlines()[0]}). Start it, point SCREENING_TEST_{backend.upper()}_URL "
                f"at one, or leave it out with SCREENING_TEST_BACKENDS.",
                pytrace=False,
            )

    def new(self, options: str = "") -> str:
        """A new database; `options` go after CREATE DATABASE name (e.g. a character set)."""
        name = f"screening_test_{RUN_ID}_{WORKER}_{next(_NAMES)}"
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} {options}"))
        self.created.append(name)
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                if self.backend == "postgresql":
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                else:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        self.admin.dispose()


@pytest.fixture(scope="session")
def _servers() -> Iterator[dict[str, ThrowawayDatabases]]:
    servers: dict[str, ThrowawayDatabases] = {}
    yield servers
    for s in servers.values():
        s.drop_all()


def server(backend: str, servers: dict[str, ThrowawayDatabases]) -> ThrowawayDatabases:
    """The throwaway databases of one server backend (fails the test when it is away)."""
    if backend not in servers:
        servers[backend] = ThrowawayDatabases(backend)
    return servers[backend]


@pytest.fixture(params=BACKENDS)
def empty_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, _servers: dict[str, ThrowawayDatabases]
) -> str:
    """The URL of a new, empty database on one backend."""
    backend: str = request.param
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'screening.db'}"
    if backend not in SERVERS:
        pytest.fail(f"unknown backend {backend!r} in SCREENING_TEST_BACKENDS", pytrace=False)
    return server(backend, _servers).new()


@pytest.fixture
def database_url(empty_database_url: str) -> Iterator[str]:
    """A database at the current schema revision."""
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    yield empty_database_url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
