"""manual DND, call-log index by rule, ids never reused on SQLite

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_RULE_TABLES = ("block_entries", "allow_entries", "dnd_schedules")


def upgrade() -> None:
    op.create_table(
        "manual_dnd",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("since", UTC_DATETIME, nullable=False),
        sa.Column("until", UTC_DATETIME, nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.UniqueConstraint("extension", name="uq_manual_dnd_extension"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_call_log_rule", "call_log", ["rule_kind", "rule_id", "at"])
    if op.get_bind().dialect.name == "sqlite":
        # Rebuild so SQLite never reuses a deleted rule's id (PostgreSQL and MariaDB
        # sequences never do). Rows and ids are copied as they are.
        for table in _RULE_TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass


def downgrade() -> None:
    op.drop_index("ix_call_log_rule", "call_log")
    op.drop_table("manual_dnd")
