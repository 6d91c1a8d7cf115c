"""A throw-away PostgreSQL schema for a benchmark's run, dropped after it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import create_engine, text

from inbox.store.db import normalize_url


def postgres_schema(base_url: str) -> tuple[str, Callable[[], None]]:
    """A URL whose connections use a new, empty schema, and what drops it."""
    schema = "bench_" + uuid.uuid4().hex[:12]
    admin = create_engine(normalize_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{base_url}{separator}options=-csearch_path%3D{schema}", drop
