"""connector_leases.standby_*: who stands by to take a lease, so that it is handed over only
to a daemon that is there

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("connector_leases") as batch:
        batch.add_column(sa.Column("standby_holder", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("standby_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connector_leases") as batch:
        batch.drop_column("standby_until")
        batch.drop_column("standby_holder")
