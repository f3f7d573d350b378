"""initial schema: block and allow lists, DND schedules, call log

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported, so later model changes cannot rewrite history.
# Naive UTC; MariaDB needs fsp=6 to keep microseconds.
UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _list_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("value", sa.String(32), nullable=False),
        sa.Column("is_prefix", sa.Boolean(), nullable=False),
        sa.Column("entered", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "block_entries",
        *_list_columns(),
        sa.Column("sip_code", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("sip_code IN (607, 608)", name="ck_block_entries_sip_code"),
        sa.UniqueConstraint("value", "is_prefix", "scope", name="uq_block_entries_rule"),
    )
    op.create_table(
        "allow_entries",
        *_list_columns(),
        sa.UniqueConstraint("value", "is_prefix", "scope", name="uq_allow_entries_rule"),
    )
    op.create_table(
        "dnd_schedules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("days", sa.SmallInteger(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_dnd_schedules_extension", "dnd_schedules", ["extension"])
    op.create_table(
        "call_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("caller_raw", sa.String(128), nullable=False),
        sa.Column("caller", sa.String(32), nullable=True),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("sip_code", sa.SmallInteger(), nullable=True),
        sa.Column("rule_kind", sa.String(16), nullable=True),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("decision_us", sa.Integer(), nullable=False),
    )
    op.create_index("ix_call_log_at", "call_log", ["at"])
    op.create_index("ix_call_log_extension_at", "call_log", ["extension", "at"])
    op.create_index("ix_call_log_caller_at", "call_log", ["caller", "at"])


def downgrade() -> None:
    op.drop_table("call_log")
    op.drop_table("dnd_schedules")
    op.drop_table("allow_entries")
    op.drop_table("block_entries")
