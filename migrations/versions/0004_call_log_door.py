"""call log: which door (ARI or FastAGI) decided each call

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows written before this revision do not know their door.
    op.add_column("call_log", sa.Column("door", sa.String(8), nullable=True))


def downgrade() -> None:
    op.drop_column("call_log", "door")
