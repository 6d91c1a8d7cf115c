"""Fixtures that start real things: a SQLite file per test, and a schema of its own per test in
the PostgreSQL at 127.0.0.1:5432 (or INBOX_TEST_DATABASE_URL)."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from inbox.log_setup import configure_logging
from inbox.store.db import make_engine, make_sessionmaker, normalize_url, upgrade
from tests.smtp_server import PASSWORD as SMTP_PASSWORD
from tests.smtp_server import SmtpServer

POSTGRES_URL = os.environ.get(
    "INBOX_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass
class Store:
    url: str
    engine: Engine
    readers: sessionmaker[Session]
    writers: sessionmaker[Session]
    backend: str


def _postgres_schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL with nothing in it, on the backend named by the test's parameter."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'inbox.db'}"
        return
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # pragma: no cover - only without PostgreSQL
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable: {error}")
    try:
        yield _postgres_schema_url(schema)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


BACKENDS = pytest.mark.parametrize("empty_store_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def store(empty_store_url: str) -> Iterator[Store]:
    """A migrated store. Parametrize with BACKENDS to run on SQLite and PostgreSQL."""
    upgrade(empty_store_url)
    engine = make_engine(empty_store_url)
    try:
        yield Store(
            url=empty_store_url,
            engine=engine,
            readers=make_sessionmaker(engine),
            writers=make_sessionmaker(engine, writer=True),
            backend=engine.dialect.name,
        )
    finally:
        engine.dispose()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Log lines as the daemon writes them off a terminal (JSON), at INFO."""
    stream = io.StringIO()
    configure_logging("info", "auto", stream)  # a StringIO is not a terminal: JSON
    yield stream
    structlog.reset_defaults()


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (STARTTLS, the login its settings() give), ended after."""
    monkeypatch.setenv("INBOX_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    with SmtpServer(tmp_path) as server:
        yield server
