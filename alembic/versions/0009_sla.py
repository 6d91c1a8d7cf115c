"""SLA: the policy in force and its due times on conversations; sla_timers, claimed by the
daemons' sweeps

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("sla_policy", sa.String(length=100), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("next_response_due", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolution_due", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sla_paused_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "sla_timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_sla_timers_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_timers")),
    )
    op.create_index(
        op.f("ix_sla_timers_conversation_id"), "sla_timers", ["conversation_id"], unique=False
    )
    op.create_index(op.f("ix_sla_timers_fire_at"), "sla_timers", ["fire_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sla_timers_fire_at"), table_name="sla_timers")
    op.drop_index(op.f("ix_sla_timers_conversation_id"), table_name="sla_timers")
    op.drop_table("sla_timers")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("sla_paused_at")
        batch.drop_column("resolution_due")
        batch.drop_column("next_response_due")
        batch.drop_column("sla_policy")
