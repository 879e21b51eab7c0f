"""Ownership audit: every change of an account's owner, with its cause.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.alerts.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_owner_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(256), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("previous", sa.String(256), nullable=True),
        sa.Column("csm", sa.String(256), nullable=True),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(256), nullable=True),
        sa.Column("event_source", sa.String(256), nullable=True),
    )
    op.create_index("ix_account_owner_changes_account_id", "account_owner_changes", ["account_id"])


def downgrade() -> None:
    op.drop_table("account_owner_changes")
