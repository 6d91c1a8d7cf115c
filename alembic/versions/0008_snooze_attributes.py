"""conversations.snoozed_until (pending until a time, by a person) and conversations.attributes
(what rules extracted from the messages, such as an order number)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}"))
        batch.create_index(
            batch.f("ix_conversations_snoozed_until"), ["snoozed_until"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index(batch.f("ix_conversations_snoozed_until"))
        batch.drop_column("attributes")
        batch.drop_column("snoozed_until")
