"""conversations.csat_survey, csat_sent_at, csat_score, csat_answered_at: satisfaction surveys
sent after closing, and the customer's score; an index of messages by author and time (the
auto-replies' limits)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("csat_survey", sa.String(length=100), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("csat_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("csat_score", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("csat_answered_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_messages_author_created", "messages", ["author", "created_at"], unique=False
    )
    waiting = sa.text("csat_survey != '' AND csat_sent_at IS NULL")
    op.create_index(
        "ix_conversations_survey_waiting",
        "conversations",
        ["closed_at"],
        unique=False,
        sqlite_where=waiting,
        postgresql_where=waiting,
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_survey_waiting", table_name="conversations")
    op.drop_index("ix_messages_author_created", table_name="messages")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("csat_answered_at")
        batch.drop_column("csat_score")
        batch.drop_column("csat_sent_at")
        batch.drop_column("csat_survey")
