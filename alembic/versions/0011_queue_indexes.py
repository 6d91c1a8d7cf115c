"""indexes for the web desk's queue: open conversations by latest activity and by the
customer's wait, their counts per team and priority (read from the index alone), and the SLA
due times still unmet (the breached and due-soon filters)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Each SLA due time where it is still unmet (the same conditions as sla_due_before).
SLA_DUE = {
    "ix_conversations_first_response_due": (
        "first_response_due",
        "first_response_at IS NULL AND first_response_due IS NOT NULL",
    ),
    "ix_conversations_next_response_due": ("next_response_due", "next_response_due IS NOT NULL"),
    "ix_conversations_resolution_due": (
        "resolution_due",
        "sla_paused_at IS NULL AND resolution_due IS NOT NULL",
    ),
}


def upgrade() -> None:
    op.create_index(
        "ix_conversations_status_last_message",
        "conversations",
        ["status", "last_message_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_conversations_status_waiting",
        "conversations",
        ["status", "last_customer_message_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_conversations_status_team_priority",
        "conversations",
        ["status", "team", "priority", "id"],
        unique=False,
    )
    for name, (column, where) in SLA_DUE.items():
        op.create_index(
            name,
            "conversations",
            [column],
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name in reversed(SLA_DUE):
        op.drop_index(name, table_name="conversations")
    op.drop_index("ix_conversations_status_team_priority", table_name="conversations")
    op.drop_index("ix_conversations_status_waiting", table_name="conversations")
    op.drop_index("ix_conversations_status_last_message", table_name="conversations")
