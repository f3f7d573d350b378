"""Database engines: the admin's, and the ones the running service uses per call and on its
side threads (call log, feature codes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError, SQLAlchemyError

__all__ = ["Engine", "database_failure", "make_engine"]  # doors type with Engine, never import

#: Look-ups run on this many threads, each with a pooled connection of its own, all opened
#: at start: the service's threads, connections and open files stay the same under any
#: load, and no call waits for a connection to open.
LOOKUP_THREADS = 4


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # Several processes (app, CLI, imports) share one file: wait for locks rather than
        # failing at once, and let readers run beside the writer.
        engine = create_engine(url, connect_args={"timeout": 5}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if url.startswith("postgresql"):
        # libpq waits for TCP to give up on a server that does not answer (minutes).
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
    return create_engine(url, **kwargs)


def lookup_engine(engine: Engine) -> Engine:
    """The engine for per-call look-ups: the same database, tuned for one read per call.
    Autocommit: no BEGIN, and no ROLLBACK when the connection goes back to the pool; no
    ping before each use: a connection that fails is discarded instead (lookup.sql_rules_lookup).
    On PostgreSQL that is two round trips per call instead of four."""
    url = engine.url.render_as_string(hide_password=False)
    pool = {"pool_size": LOOKUP_THREADS, "max_overflow": 0}
    if engine.dialect.name == "sqlite":
        return make_engine(url, **pool)
    return make_engine(url, pool_pre_ping=False, isolation_level="AUTOCOMMIT", **pool)


def side_engine(engine: Engine) -> Engine:
    """An engine of one connection for the call-log writer or the feature codes, each on a
    thread of its own. No ping before each use: a ping on a hung connection would wait where
    the watchdog cannot see it. A connection that fails is discarded by SQLAlchemy, and the
    work done again on a new one."""
    url = engine.url.render_as_string(hide_password=False)
    return make_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False)


def database_failure(e: BaseException) -> str | None:
    """The one line an admin reads for a database error; None for any other error."""
    if isinstance(e, OperationalError):
        return f"cannot use the database: {str(e.orig).strip().splitlines()[0]}"
    if isinstance(e, SQLAlchemyError):
        return f"database error: {str(e).splitlines()[0]}"
    return None
