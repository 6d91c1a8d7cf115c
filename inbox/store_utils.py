"""Small helpers over SQLAlchemy that differ by database dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(
    session: Session, model: type[Any], values: dict[str, Any], conflict_columns: list[str]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, for rows that several workers may write at once
    (content-addressed blobs): the second writer must not fail the whole batch."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(model).values(**values)
    session.execute(statement.on_conflict_do_nothing(index_elements=conflict_columns))
