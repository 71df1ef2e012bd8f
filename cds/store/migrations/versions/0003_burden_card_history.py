"""burden: the facts' fingerprint on shown cards; withheld cards; one row per hook call.

Revision ID: 0003_burden
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_burden"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("shown_cards") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(32)))
    op.create_table(
        "withheld_cards",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("rule_version", sa.String(20), nullable=False),
        sa.Column("hook", sa.String(40), nullable=False),
        sa.Column("hook_instance", sa.String(100), nullable=False),
        sa.Column("indicator", sa.String(10), nullable=False),
        sa.Column("patient_key", sa.String(64)),
        sa.Column("fingerprint", sa.String(32)),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_withheld_cards_time", "withheld_cards", ["at"])
    op.create_table(
        "hook_calls",
        sa.Column("hook_instance", sa.String(100), primary_key=True),
        sa.Column("service_id", sa.String(100), primary_key=True),
        sa.Column("hook", sa.String(40), nullable=False),
        sa.Column("patient_key", sa.String(64)),
        sa.Column("cards", sa.Integer, nullable=False),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_hook_calls_time", "hook_calls", ["called_at"])


def downgrade() -> None:
    op.drop_table("hook_calls")
    op.drop_table("withheld_cards")
    with op.batch_alter_table("shown_cards") as batch:
        batch.drop_column("fingerprint")
