"""The service core's schema: the shown-card log and feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "shown_cards",
        sa.Column("card_uuid", sa.String(64), primary_key=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("rule_version", sa.String(20), nullable=False),
        sa.Column("hook", sa.String(40), nullable=False),
        sa.Column("hook_instance", sa.String(100), nullable=False),
        sa.Column("indicator", sa.String(10), nullable=False),
        sa.Column("patient_key", sa.String(64)),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_shown_cards_rule_time", "shown_cards", ["rule_id", "shown_at"])
    op.create_index("ix_shown_cards_patient", "shown_cards", ["patient_key", "rule_id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_key", sa.String(64), nullable=False, unique=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("card_uuid", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("accepted_suggestions", sa.Text, nullable=False),
        sa.Column("override_code", sa.String(100)),
        sa.Column("override_system", sa.String(300)),
        sa.Column("override_display", sa.String(300)),
        sa.Column("override_comment", sa.Text),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_card", "feedback", ["card_uuid"])
    op.create_index("ix_feedback_outcome_time", "feedback", ["outcome_at"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("shown_cards")
