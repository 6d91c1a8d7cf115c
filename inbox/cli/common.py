"""What the store's commands share: opening the store a command reads or writes, and
printing for a person."""

from __future__ import annotations

from datetime import datetime

import click
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from inbox.cli.context import AppContext
from inbox.store.db import current_revision, make_engine, make_sessionmaker


def store_engine(app: AppContext) -> Engine:
    engine = make_engine(app.existing_store_url())
    if current_revision(engine) is None:
        raise click.ClickException(f"the store at {engine.url!r} is empty: run `inbox db upgrade`")
    return engine


def reading_session(app: AppContext) -> Session:
    return make_sessionmaker(store_engine(app))()


def store_writers(app: AppContext) -> sessionmaker[Session]:
    return make_sessionmaker(store_engine(app), writer=True)


def console() -> Console:
    """Rich assumes 80 columns when output is not a terminal; a pipe or a file gets the
    whole table instead of ellipses. No emoji codes: markup=False leaves them on, and
    "person:sari: agent=..." or a customer's ":smile:" must print as written."""
    terminal = Console(highlight=False, emoji=False)
    return terminal if terminal.is_terminal else Console(highlight=False, emoji=False, width=200)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
