"""Alerts raised by backfilled history: stored and listed, never delivered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "alerts",
        sa.Column("backfilled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("backfilled")
