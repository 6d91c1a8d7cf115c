"""`inbox raw list/show`: what arrived, byte for byte, and what went wrong with it."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table
from sqlalchemy import Text, cast, select

from inbox.cli.common import console, iso, reading_session
from inbox.cli.context import AppContext, pass_app
from inbox.store.models import Message, RawRecord


@click.group()
def raw() -> None:
    """Raw messages as fetched, including those that could not be parsed."""


@raw.command("list")
@click.option("--errors", is_flag=True, help="Only messages kept raw-only or parsed with errors.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def list_raw(app: AppContext, errors: bool, limit: int, as_json: bool) -> None:
    """What arrived, newest first: connector, id at the source, size, and what went wrong."""
    query = (
        select(
            RawRecord.id,
            RawRecord.connector,
            RawRecord.external_id,
            RawRecord.size,
            RawRecord.error,
            RawRecord.message_id,
            RawRecord.stored_at,
            Message.parse_errors,
            Message.conversation_id,
        )
        .outerjoin(Message, Message.id == RawRecord.message_id)
        .order_by(RawRecord.id.desc())
        .limit(limit)
    )
    if errors:
        # JSON has no equality operator on PostgreSQL: compare its text form.
        query = query.where((RawRecord.error != "") | (cast(Message.parse_errors, Text) != "[]"))
    with reading_session(app) as session:
        rows = session.execute(query).all()
    documents = [
        {
            "id": r.id,
            "connector": r.connector,
            "external_id": r.external_id,
            "size": r.size,
            "error": r.error,
            "parse_errors": r.parse_errors or [],
            "message_id": r.message_id,
            "conversation_id": r.conversation_id,
            "stored_at": iso(r.stored_at),
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps(documents, ensure_ascii=False, indent=2))
        return
    table = Table(box=None, header_style="bold")
    for column in ("raw id", "connector", "external id", "bytes", "conversation", "problem"):
        table.add_column(column, overflow="fold")
    for d in documents:
        problem = d["error"] or "; ".join(d["parse_errors"])
        table.add_row(
            str(d["id"]),
            d["connector"],
            d["external_id"][:40],
            str(d["size"]),
            str(d["conversation_id"] or "-"),
            problem,
        )
    console().print(table)


@raw.command("show")
@click.argument("raw_id", type=int)
@pass_app
def show_raw(app: AppContext, raw_id: int) -> None:
    """Write the original bytes to stdout, exactly as fetched."""
    with reading_session(app) as session:
        record = session.get(RawRecord, raw_id)
        if record is None:
            raise click.ClickException(f"no raw message {raw_id}")
        sys.stdout.buffer.write(record.payload)
