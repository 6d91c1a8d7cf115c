"""Small helpers over SQLAlchemy that differ by database dialect."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore_many(
    session: Session, model: type[Any], rows: Sequence[dict[str, Any]], conflict_columns: list[str]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, in multi-row statements, for rows that several
    workers may write at once (content-addressed blobs, tags, outbox items with an idempotency
    key): the second writer must not fail the whole batch."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    width = max(1, len(rows[0]))
    # Under SQLite's 32,766 bound parameters a statement.
    for chunk in chunked(rows, max(1, 30_000 // width)):
        statement = module.insert(model).values(list(chunk))
        session.execute(statement.on_conflict_do_nothing(index_elements=conflict_columns))


T = TypeVar("T")

#: Values per IN (...) query: well under SQLite's 32,766 bound parameters, and short enough for
#: PostgreSQL to plan well.
IN_CHUNK = 500


def chunked(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
