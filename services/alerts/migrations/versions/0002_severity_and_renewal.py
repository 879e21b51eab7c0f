"""Rule severity beside the band-capped severity; renewal date of accounts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: a plain ADD COLUMN on both SQLite and PostgreSQL, no table rewrite.
    op.add_column("alerts", sa.Column("rule_severity", sa.String(16), nullable=True))
    op.add_column("accounts", sa.Column("renewal_date", sa.String(64), nullable=True))
    op.execute("UPDATE alerts SET rule_severity = severity WHERE rule_severity IS NULL")


def downgrade() -> None:
    # batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("renewal_date")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("rule_severity")
