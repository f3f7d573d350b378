"""console list pages: one extension's entries in number order

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "block_entries": "ix_block_entries_scope_value",
    "allow_entries": "ix_allow_entries_scope_value",
}


def upgrade() -> None:
    for table, name in INDEXES.items():
        op.create_index(name, table, ["scope", "value", "is_prefix"])


def downgrade() -> None:
    for table, name in INDEXES.items():
        op.drop_index(name, table)
