"""Schema upgrades through Alembic, and the check that refuses to run on a stale schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from screening.core.errors import DatabaseError

_PACKAGE = Path(__file__).resolve().parents[1]  # screening/


def _migrations_dir() -> Path:
    # An installed wheel carries screening/migrations; a source checkout has ./migrations.
    for candidate in (_PACKAGE / "migrations", _PACKAGE.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise DatabaseError("the migrations directory is missing from this installation")


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    return cfg


def head() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    rev = script.get_current_head()
    assert rev is not None
    return rev


def history() -> list[tuple[str, str]]:
    """(revision, message), oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())
    return [(r.revision, (r.doc or "").splitlines()[0]) for r in reversed(revisions)]


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def require_current(engine: Engine) -> None:
    """Raise a message an admin can act on when the schema is missing or behind."""
    have, want = current(engine), head()
    if have == want:
        return
    if have is None:
        raise DatabaseError(
            "the database has no screening tables yet; run `screening db upgrade` first"
        )
    raise DatabaseError(
        f"the database schema is at revision {have} but this version needs {want}; "
        "run `screening db upgrade`"
    )


def narrow_tables(engine: Engine) -> list[str]:
    """MariaDB/MySQL tables of ours with text columns that are not utf8mb4 (a database whose
    default was latin1 or utf8mb3 when they were made): they refuse emoji and more in caller
    names. Empty for other backends."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT DISTINCT TABLE_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME IS NOT NULL "
                "AND CHARACTER_SET_NAME <> 'utf8mb4' ORDER BY TABLE_NAME"
            )
        )
        return [str(r[0]) for r in rows]


def widen_sql(tables: list[str]) -> str:
    """The statements that make them utf8mb4 (each copies its table: run them off-peak)."""
    return " ".join(
        f"ALTER TABLE {t} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;"
        for t in tables
    )
