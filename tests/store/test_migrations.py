"""The models and the Alembic migrations must describe the same schema, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from inbox.store.db import current_revision, make_engine, upgrade
from inbox.store.models import Base
from tests.conftest import BACKENDS, Store


@BACKENDS
def test_migrations_match_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


@BACKENDS
def test_upgrade_twice_is_a_no_op(store: Store) -> None:
    before = current_revision(store.engine)
    upgrade(store.url)
    assert current_revision(store.engine) == before
    assert before is not None


@BACKENDS
def test_upgrade_creates_every_table(empty_store_url: str) -> None:
    upgrade(empty_store_url)
    engine = make_engine(empty_store_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    expected = {
        "contacts",
        "identities",
        "conversations",
        "messages",
        "attachments",
        "blobs",
        "raw_messages",
        "tags",
        "conversation_tags",
        "events",
        "cursors",
        "outbox",
    }
    assert expected <= tables
