"""Engines, sessions and migrations for the store.

SQLite is the embedded default: WAL so that readers (the CLI) never block the daemon, a busy
timeout so that two writers wait instead of failing, and foreign keys on (SQLite leaves them off
unless asked, per connection). PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from inbox.log_setup import remember_secret

log = structlog.get_logger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Accept the URLs operators write and pick our drivers: `postgresql://` means psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write, which lets two
    # writers both read and then fail on the lock upgrade; we emit BEGIN ourselves (_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL with synchronous=NORMAL is durable across process crashes (SIGKILL) and only risks
    # the last transactions on power loss; FULL costs an fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint at 16 MB of WAL rather than 4 MB: a batch of mail writes a few MB, and each
    # checkpoint is an fsync (bench/ingest.py: 6% faster storing, the WAL stays bounded).
    cursor.execute("PRAGMA wal_autocheckpoint=4000")
    cursor.close()


def _on_sqlite_begin(connection: Any) -> None:
    # A writer takes the write lock up front (and waits for it under busy_timeout) instead of
    # failing half-way when another process holds it. Readers stay deferred: WAL never blocks them.
    if connection.get_execution_options().get("sqlite_immediate"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine whose errors never quote the statement's parameters: SQLAlchemy puts them in
    the exception's text, and a refused batch is logged with its error, so a message's subject
    and body would reach the log (the statement itself and the database's own message stay)."""
    kwargs.setdefault("hide_parameters", True)
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.password:
        # SQLAlchemy shows URLs as ***, but a driver's or a library's error may quote the URL
        # (or the libpq DSN made from it) whole.
        remember_secret(str(parsed.password))
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    database = parsed.database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def make_sessionmaker(engine: Engine, *, writer: bool = False) -> sessionmaker[Session]:
    """Sessions for readers, or for a writer whose transactions take the write lock first."""
    bind = engine.execution_options(sqlite_immediate=True) if writer else engine
    return sessionmaker(bind, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def migrations_dir() -> Path:
    """Where the Alembic scripts are: the checkout's alembic/, or the installed copy."""
    checkout = Path(__file__).resolve().parent.parent / "alembic"
    # Installed, the parent folder is site-packages, whose alembic/ is the library itself.
    if (checkout / "env.py").is_file() and (checkout / "script.py.mako").is_file():
        return checkout
    # Shipped without __init__.py (see pyproject.toml): a namespace package, whose location
    # comes from its spec rather than importlib.resources.
    spec = importlib.util.find_spec("inbox_migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the migrations are missing from this installation of inbox")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`. Safe to run at every start: a no-op when current."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
    log.info("db_upgraded", revision=revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
