"""the dashboard's day summaries per time zone (the console's web.timezone), with rejections
split into 607 and 608

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    # The summaries are counts of the call log, nothing else: the old UTC days go, and the
    # console writes each zone's days again from the log as it needs them (settle_days).
    # IF EXISTS: MariaDB commits a DROP at once, so an upgrade that died after it must be
    # able to run again.
    op.execute("DROP TABLE IF EXISTS call_log_days")
    op.create_table(
        "call_log_days",
        sa.Column("zone", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("allowed", sa.Integer(), nullable=False),
        sa.Column("spam", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("failed_open", sa.Integer(), nullable=False),
        sa.Column("computed_at", UTC_DATETIME, nullable=False),
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS call_log_days")
    op.create_table(
        "call_log_days",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("allowed", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("failed_open", sa.Integer(), nullable=False),
        sa.Column("computed_at", UTC_DATETIME, nullable=False),
    )
