"""identity: policies, caller-name entries, and who the caller was in the call log

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("sip_code", sa.SmallInteger(), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("kind", "scope", name="uq_policies_kind_scope"),
        sa.CheckConstraint("sip_code IN (607, 608)", name="ck_policies_sip_code"),
        sa.CheckConstraint("action IN ('reject', 'continue')", name="ck_policies_action"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "name_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("pattern", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("sip_code", sa.SmallInteger(), nullable=True),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("kind", "pattern", "scope", name="uq_name_entries_rule"),
        sa.CheckConstraint("kind IN ('block', 'allow')", name="ck_name_entries_kind"),
        sa.CheckConstraint("sip_code IN (607, 608)", name="ck_name_entries_sip_code"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_name_entries_scope", "name_entries", ["scope"])
    # Nullable: rows written before this revision know none of it.
    op.add_column("call_log", sa.Column("caller_name", sa.String(128), nullable=True))
    op.add_column("call_log", sa.Column("verification", sa.String(40), nullable=True))
    op.add_column("call_log", sa.Column("attestation", sa.String(1), nullable=True))
    op.add_column("call_log", sa.Column("policy", sa.String(32), nullable=True))


def downgrade() -> None:
    for column in ("policy", "attestation", "verification", "caller_name"):
        op.drop_column("call_log", column)
    op.drop_index("ix_name_entries_scope", "name_entries")
    op.drop_table("name_entries")
    op.drop_table("policies")
