"""console sessions that end when they should, login failures that fade, API tokens that
expire

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        # Carried in each session cookie; logout, a new password, a new role raise it, and
        # every cookie with the old value stops working.
        users.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )
        # When the last failed login was: failures older than the lock-out window fade.
        users.add_column(sa.Column("failed_at", UTC_DATETIME, nullable=True))
    with op.batch_alter_table("api_tokens") as tokens:
        tokens.add_column(sa.Column("expires_at", UTC_DATETIME, nullable=True))  # NULL: never


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as tokens:
        tokens.drop_column("expires_at")
    with op.batch_alter_table("users") as users:
        users.drop_column("failed_at")
        users.drop_column("session_epoch")
