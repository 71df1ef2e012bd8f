"""Feedback keeps the hookInstance of its card; the shared JWT replay cache.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("hook_instance", sa.String(100)))
    op.create_table(
        "jwt_replay",
        sa.Column("token_key", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_jwt_replay_expires", "jwt_replay", ["expires_at"])


def downgrade() -> None:
    op.drop_table("jwt_replay")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("hook_instance")
