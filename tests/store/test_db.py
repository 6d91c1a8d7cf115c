"""Connection settings the operator relies on without seeing them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from inbox.store.db import normalize_url, transaction
from inbox.store.models import Contact
from tests.conftest import BACKENDS, Store


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(store: Store) -> None:
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    assert normalize_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalize_url("postgres://u@h/db").startswith("postgresql+psycopg://")
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


@BACKENDS
def test_times_come_back_aware_and_in_utc(store: Store) -> None:
    helsinki = timezone(timedelta(hours=2))
    written = datetime(2024, 11, 25, 10, 12, tzinfo=helsinki)
    with transaction(store.writers) as session:
        contact = Contact(name="Aino", created_at=written)
        session.add(contact)
    with store.readers() as session:
        loaded = session.get(Contact, contact.id)
        assert loaded is not None
        assert loaded.created_at == written
        assert loaded.created_at.utcoffset() == timedelta(0)


@BACKENDS
def test_naive_times_are_refused(store: Store) -> None:
    with (
        pytest.raises(StatementError, match="naive datetime"),
        transaction(store.writers) as session,
    ):
        session.add(Contact(name="x", created_at=datetime(2024, 1, 1)))
        session.flush()


@BACKENDS
def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), transaction(store.writers) as session:
        session.add(Contact(name="half-written", created_at=datetime.now(UTC)))
        session.flush()
        raise RuntimeError("crash before commit")
    with store.readers() as session:
        assert session.execute(text("SELECT count(*) FROM contacts")).scalar() == 0
