"""ping_threads: the Slack thread of each assignment ping, so that an agent's reply in it is
taken as a reply to the conversation

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ping_threads",
        sa.Column("channel", sa.String(length=50), nullable=False),
        sa.Column("ts", sa.String(length=50), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_ping_threads_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel", "ts", name=op.f("pk_ping_threads")),
    )
    op.create_index(
        op.f("ix_ping_threads_conversation_id"), "ping_threads", ["conversation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ping_threads_conversation_id"), table_name="ping_threads")
    op.drop_table("ping_threads")
