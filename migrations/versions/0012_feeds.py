"""subscribed spam feeds and the numbers they report

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    # IF EXISTS: MariaDB commits each CREATE at once, so an upgrade that died after one of
    # them must be able to run again; neither table holds anything before this revision.
    op.execute("DROP TABLE IF EXISTS feed_numbers")
    op.execute("DROP TABLE IF EXISTS feeds")
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("every_s", sa.Integer(), nullable=False),
        sa.Column("keep_s", sa.Integer(), nullable=False),
        sa.Column("min_reports", sa.Integer(), nullable=False),
        sa.Column("sip_code", sa.SmallInteger(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("extension", sa.String(32), nullable=True),
        sa.Column("relaxed", sa.Boolean(), nullable=False),
        sa.Column("etag", sa.String(255), nullable=True),
        sa.Column("last_modified", sa.String(64), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("last_checked_at", UTC_DATETIME, nullable=True),
        sa.Column("last_updated_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.String(512), nullable=True),
        sa.Column("numbers_in_force", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("name", name="uq_feeds_name"),
        sa.CheckConstraint("sip_code IN (607, 608)", name="ck_feeds_sip_code"),
        sa.CheckConstraint("action IN ('reject', 'challenge')", name="ck_feeds_action"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "feed_numbers",
        sa.Column(
            "feed_id",
            sa.Integer(),
            sa.ForeignKey("feeds.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.String(32), primary_key=True),
        sa.Column("first_seen", UTC_DATETIME, nullable=False),
        sa.Column("last_seen", UTC_DATETIME, nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
    )
    op.create_index("ix_feed_numbers_number", "feed_numbers", ["number"])


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS feed_numbers")
    op.execute("DROP TABLE IF EXISTS feeds")
