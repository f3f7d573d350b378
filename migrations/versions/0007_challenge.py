"""early-media challenge: policies may challenge; the call log keeps each challenge's outcome

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _action_check(actions: str) -> None:
    # Batch mode: SQLite cannot alter a CHECK in place, so Alembic copies the table there;
    # PostgreSQL and MariaDB get plain ALTER TABLE statements.
    with op.batch_alter_table("policies") as batch:
        batch.drop_constraint("ck_policies_action", type_="check")
        batch.create_check_constraint("ck_policies_action", f"action IN ({actions})")


def upgrade() -> None:
    _action_check("'reject', 'challenge', 'continue'")
    # passed | wrong-digit | timed-out | abandoned | failed; NULL: the call was not challenged.
    op.add_column("call_log", sa.Column("challenge", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("call_log", "challenge")
    # A challenge policy cannot be kept by the older schema: it becomes a reject (608).
    op.execute("UPDATE policies SET action = 'reject', sip_code = 608 WHERE action = 'challenge'")
    _action_check("'reject', 'continue'")
