"""spam reports from feature codes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "spam_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("caller", sa.String(32), nullable=False),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("reported_at", UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("caller", "extension", name="uq_spam_reports_caller_extension"),
    )
    op.create_index("ix_spam_reports_caller_at", "spam_reports", ["caller", "reported_at"])


def downgrade() -> None:
    op.drop_table("spam_reports")
