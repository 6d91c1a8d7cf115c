"""messages.author, delivery and delivery_detail; conversations.first_response_at and
last_agent_reply_at: agents' replies and notes in the history, with their delivery state

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("author", sa.String(length=100), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("delivery", sa.String(length=16), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("delivery_detail", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("last_agent_reply_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("last_agent_reply_at")
        batch.drop_column("first_response_at")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("delivery_detail")
        batch.drop_column("delivery")
        batch.drop_column("author")
