"""`inbox outbox`: what is waiting to leave (Slack pings), what left, and what could not."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from sqlalchemy import func, select

from inbox.cli.context import AppContext, pass_app

STATUSES = ("pending", "sending", "sent", "held", "dead")


@click.group()
def outbox() -> None:
    """Side effects waiting to leave: Slack pings, with their attempts and errors."""


@outbox.command("list")
@click.option(
    "--status",
    type=click.Choice([*STATUSES, "all"]),
    default="all",
    show_default=True,
    help="Only rows in this state.",
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def outbox_list(app: AppContext, status: str, limit: int, as_json: bool) -> None:
    """Newest first, with a count per state."""
    from inbox.store.db import make_engine, make_sessionmaker
    from inbox.store.models import OutboxItem

    engine = make_engine(app.existing_store_url())
    try:
        with make_sessionmaker(engine)() as session:
            counts = dict(
                session.execute(
                    select(OutboxItem.status, func.count()).group_by(OutboxItem.status)
                ).all()
            )
            query = select(OutboxItem).order_by(OutboxItem.id.desc()).limit(limit)
            if status != "all":
                query = query.where(OutboxItem.status == status)
            rows = list(session.scalars(query))
    finally:
        engine.dispose()
    if as_json:
        for row in rows:
            click.echo(json.dumps(_as_dict(row), ensure_ascii=False, default=str))
        return
    # `held` (a reply that may have been sent, waiting for a person) only when there is one.
    shown = [name for name in STATUSES if name != "held" or counts.get(name)]
    click.echo("  ".join(f"{name}: {counts.get(name, 0)}" for name in shown))
    for row in rows:
        payload = row.payload
        target = payload.get("agent") or payload.get("slack_channel") or payload.get("connector")
        line = (
            f"{row.id:>6}  {row.status:<7}  {row.kind:<16}  conversation {row.conversation_id}"
            f"  to {target or ''}  attempts {row.attempts}  created {_when(row.created_at)}"
        )
        if row.status == "sent":
            said = row.result.get("ts") or row.result.get("provider_id", "")
            line += f"  sent {_when(row.sent_at)}  {'ts' if 'ts' in row.result else 'id'} {said}"
        elif row.status in ("pending", "sending") and (row.attempts or row.last_error):
            # A 429 does not count as an attempt, but the operator still wants to know when.
            line += f"  next {_when(row.next_attempt_at)}"
        click.echo(line)
        if row.last_error and row.status != "sent":
            click.echo(f"        error: {row.last_error}")


@outbox.command("retry")
@click.argument("ids", type=int, nargs=-1, required=True)
@pass_app
def outbox_retry(app: AppContext, ids: tuple[int, ...]) -> None:
    """Send dead (or waiting) rows again now, with a fresh count of attempts."""
    from inbox.store.db import make_engine, make_sessionmaker, transaction
    from inbox.store.models import Message, OutboxItem, utcnow

    engine = make_engine(app.existing_store_url())
    problems = []
    try:
        with transaction(make_sessionmaker(engine, writer=True)) as session:
            for outbox_id in ids:
                row = session.get(OutboxItem, outbox_id)
                if row is None:
                    problems.append(f"no outbox row {outbox_id}")
                    continue
                if row.status in ("sent", "sending"):
                    problems.append(f"row {outbox_id} is {row.status}: not retried")
                    continue
                row.status = "pending"
                row.attempts = 0
                row.next_attempt_at = utcnow()
                message = session.get(Message, int(row.payload.get("message") or 0))
                if row.kind == "reply" and message is not None:
                    message.delivery = "queued"
                was = row.last_error or "waiting"
                click.echo(f"row {outbox_id} will be sent again (was: {was})")
    finally:
        engine.dispose()
    if problems:
        raise click.ClickException("; ".join(problems))


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


def _as_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "conversation_id": row.conversation_id,
        "attempts": row.attempts,
        "payload": row.payload,
        "result": row.result,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "next_attempt_at": row.next_attempt_at,
        "sent_at": row.sent_at,
    }
