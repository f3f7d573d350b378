"""Alembic environment: the URL comes from screening's own config, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from screening import config as screening_config
from screening.store.engine import make_engine
from screening.store.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # screening.store.migrate hands in its own connection; plain `alembic` gets one from the env.
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(screening_config.load().database_url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; connect to the database")
run_migrations_online()
