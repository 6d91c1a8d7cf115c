"""`inbox conversations list/show`: reading the store as a person, or as a script with --json
(`assign`/`unassign` are in cli_assign.py, `inbox raw` in cli_raw.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from inbox.cli.assign import assign_conversation, unassign_conversation
from inbox.cli.common import console, iso, reading_session, when
from inbox.cli.context import AppContext, pass_app
from inbox.cli.reply import (
    close_conversation,
    reply_conversation,
    respond_conversation,
    snooze_conversation,
)
from inbox.routing.sla import breached_targets, earliest_due, sla_due_before
from inbox.store.models import Contact, Conversation, ConversationTag, Event, Message, Tag
from inbox.store.queries import first_senders

SNIPPET_CHARS = 60


@click.group()
def conversations() -> None:
    """Conversations in the store."""


@conversations.command("list")
@click.option("--status", type=click.Choice(["open", "pending", "closed"]))
@click.option("--channel", type=click.Choice(["email", "sms", "chat"]))
@click.option("--tag", "tag_name", help="Only conversations with this tag.")
@click.option("--assignee", help="Agent name; 'none' for unassigned.")
@click.option("--breached", is_flag=True, help="Only those past an SLA target, unmet.")
@click.option(
    "--due-within",
    "due_within",
    help="Only those with an SLA target unmet and due within this long (30m, 2h, 1d).",
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@pass_app
def list_conversations(
    app: AppContext,
    status: str | None,
    channel: str | None,
    tag_name: str | None,
    assignee: str | None,
    breached: bool,
    due_within: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Newest activity first (with --breached or --due-within: soonest due first)."""
    from rules.matchers import parse_duration

    query = (
        select(Conversation)
        .options(selectinload(Conversation.tags), selectinload(Conversation.contact))
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        .limit(limit)
    )
    now = datetime.now(UTC)
    if breached or due_within:
        try:
            horizon = now + parse_duration(due_within) if due_within else now
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--due-within") from None
        query = (
            query.where(sla_due_before(horizon))
            .order_by(None)
            .order_by(earliest_due(), Conversation.id)
        )
        if due_within and not breached:
            query = query.where(~sla_due_before(now))
    if status:
        query = query.where(Conversation.status == status)
    if channel:
        query = query.where(Conversation.channel == channel)
    if assignee:
        is_none = assignee.lower() == "none"
        query = query.where(
            Conversation.assignee.is_(None) if is_none else Conversation.assignee == assignee
        )
    if tag_name:
        query = query.join(ConversationTag).join(Tag).where(Tag.name == tag_name)
    with reading_session(app) as session:
        rows = session.scalars(query).all()
        senders = first_senders(session, [c.id for c in rows])
        if as_json:
            click.echo(
                json.dumps(
                    [_conversation_json(c, senders.get(c.id, "")) for c in rows],
                    ensure_ascii=False,
                    indent=2,
                )
            )
            return
        table = Table(box=None, header_style="bold")
        for column in (
            "id",
            "status",
            "channel",
            "from",
            "subject",
            "lang",
            "msgs",
            "priority",
            "assignee",
            "tags",
            "last message",
            "sla",
        ):
            table.add_column(column, overflow="ellipsis", no_wrap=column != "subject")
        for c in rows:
            table.add_row(
                str(c.id),
                c.status,
                c.channel,
                senders.get(c.id, ""),
                c.subject or "(no subject)",
                c.language,
                str(c.message_count),
                c.priority,
                c.assignee or "",
                ",".join(t.name for t in c.tags),
                when(c.last_message_at),
                sla_line(c, now),
            )
        console().print(table)
        if not rows:
            click.echo("no conversations match", err=True)


def _conversation_json(c: Conversation, sender: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "status": c.status,
        "channel": c.channel,
        "from": sender,
        "subject": c.subject,
        "language": c.language,
        "messages": c.message_count,
        "priority": c.priority,
        "team": c.team,
        "assignee": c.assignee,
        "tags": [t.name for t in c.tags],
        "contact_id": c.contact_id,
        "created_at": iso(c.created_at),
        "last_message_at": iso(c.last_message_at),
        "first_response_at": iso(c.first_response_at),
        "last_agent_reply_at": iso(c.last_agent_reply_at),
        "snoozed_until": iso(c.snoozed_until),
        "sla": {
            "policy": c.sla_policy,
            "first_response_due": iso(c.first_response_due),
            "next_response_due": iso(c.next_response_due),
            "resolution_due": iso(c.resolution_due),
            "paused_since": iso(c.sla_paused_at),
            "breached": breached_targets(c, datetime.now(UTC)),
        },
        "attributes": dict(c.attributes or {}),
        "previous_conversation_id": c.previous_conversation_id,
    }


@conversations.command("show")
@click.argument("conversation_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.option("--full", is_flag=True, help="Print the whole text, quoted history included.")
@pass_app
def show_conversation(app: AppContext, conversation_id: int, as_json: bool, full: bool) -> None:
    """The messages with their decoded text, language, flags, attachments, and the history."""
    with reading_session(app) as session:
        conversation = session.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .options(
                selectinload(Conversation.messages).selectinload(Message.attachments),
                selectinload(Conversation.tags),
                selectinload(Conversation.contact).selectinload(Contact.identities),
            )
        )
        if conversation is None:
            raise click.ClickException(f"no conversation {conversation_id}")
        events = session.scalars(
            select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
        ).all()
        if as_json:
            document = _conversation_json(conversation, "")
            document["messages"] = [_message_json(m) for m in conversation.messages]
            document["events"] = [
                {"kind": e.kind, "actor": e.actor, "detail": e.detail, "at": iso(e.created_at)}
                for e in events
            ]
            document["why"] = _why(conversation, events)
            click.echo(json.dumps(document, ensure_ascii=False, indent=2))
            return
        _print_conversation(conversation, events, full)


def _message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "direction": m.direction,
        "author": m.author,
        "delivery": m.delivery,
        "delivery_detail": m.delivery_detail,
        "from": m.from_address,
        "from_name": m.from_name,
        "to": m.to_addresses,
        "cc": m.cc_addresses,
        "subject": m.subject,
        "sent_at": iso(m.sent_at),
        "received_at": iso(m.received_at),
        "language": m.language,
        "new_text": m.new_text,
        "text": m.text,
        "signature": m.signature,
        "flags": _flags(m),
        "flag_reasons": m.flag_reasons,
        "thread_reason": m.thread_reason,
        "message_id": m.message_id_header,
        "connector": m.connector,
        "parse_errors": m.parse_errors,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "inline": a.inline,
            }
            for a in m.attachments
        ],
    }


def _flags(m: Message) -> list[str]:
    names = ("auto_submitted", "bulk", "list_mail", "bounce")
    return [name for name in names if getattr(m, name)]


def _print_conversation(conversation: Conversation, events: Any, full: bool) -> None:
    out = console()
    c = conversation
    out.print(f"[bold]#{c.id} {c.subject or '(no subject)'}[/bold]", markup=True)
    contact = c.contact
    who = ", ".join(i.address for i in contact.identities) if contact else "(unknown)"
    out.print(
        f"status {c.status} · channel {c.channel} · priority {c.priority} · "
        f"language {c.language or '?'} · assignee {c.assignee or '-'} · team {c.team or '-'}"
        f" · tags {', '.join(t.name for t in c.tags) or '-'}",
        markup=False,
    )
    out.print(f"contact: {contact.name if contact else ''} <{who}>", markup=False)
    if c.snoozed_until:
        out.print(f"snoozed until {when(c.snoozed_until)} UTC", markup=False)
    if c.sla_policy:
        out.print(f"SLA {c.sla_policy}: {sla_line(c, datetime.now(UTC), full=True)}", markup=False)
    if c.attributes:
        found = ", ".join(f"{name} {value}" for name, value in sorted(c.attributes.items()))
        out.print(f"found by rules: {found}", markup=False)
    if c.previous_conversation_id:
        out.print(f"follows conversation #{c.previous_conversation_id}", markup=False)
    for m in c.messages:
        out.rule()
        if m.direction == "note":
            out.print(
                f"[bold]note {m.id}[/bold] by {m.author} · {when(m.received_at)}", markup=True
            )
        elif m.direction == "out":
            out.print(
                f"[bold]reply {m.id}[/bold] by {m.author} to {', '.join(m.to_addresses)} · "
                f"{when(m.received_at)} · via {m.connector} · {m.delivery}",
                markup=True,
                highlight=False,
            )
            if m.delivery_detail:
                out.print(f"delivery: {m.delivery_detail}", markup=False)
        else:
            sender = f"{m.from_name} <{m.from_address}>" if m.from_name else m.from_address
            out.print(
                f"[bold]message {m.id}[/bold] from {sender} · {when(m.sent_at)} · "
                f"language {m.language or '?'} · via {m.connector}",
                markup=True,
                highlight=False,
            )
            out.print(f"joined: {m.thread_reason}", markup=False)
        flags = _flags(m)
        if flags:
            out.print(f"flags: {', '.join(flags)} ({'; '.join(m.flag_reasons)})", markup=False)
        for problem in m.parse_errors:
            out.print(f"parse error: {problem}", markup=False, style="yellow")
        out.print("")
        out.print(m.text if full else (m.new_text or m.text), markup=False)
        if m.signature and full:
            out.print(f"-- \n{m.signature}", markup=False, style="dim")
        elif m.quoted_text and not full:
            out.print(
                f"[… {len(m.quoted_text.splitlines())} quoted lines, --full shows them]",
                markup=False,
                style="dim",
            )
        for a in m.attachments:
            inline = " inline" if a.inline else ""
            out.print(
                f"📎 {a.filename or '(unnamed)'} · {a.content_type} · {a.size} bytes{inline}"
                f" · sha256 {a.sha256[:12]}",
                markup=False,
            )
    why = _why(c, events)
    if why:
        out.rule("why")
        for line in why:
            out.print(line, markup=False)
    out.rule("history")
    for e in events:
        detail = " ".join(f"{k}={v}" for k, v in e.detail.items())
        out.print(f"{when(e.created_at)} {e.kind} by {e.actor}: {detail}", markup=False)


def _why(conversation: Conversation, events: Any) -> list[str]:
    from rules.explain import EventView, explain

    return explain(
        (EventView(e.kind, e.actor, e.detail) for e in events),
        tags=[t.name for t in conversation.tags],
        priority=conversation.priority,
        assignee=conversation.assignee or "",
        team=conversation.team or "",
    )


# -- a person's decision ----------------------------------------------------------------------
#
# Loads and sticky's memory are read from the conversations' assignees (inbox/routing/workload.py):
# setting the assignee in the transaction is all the bookkeeping there is. A team's round-robin
# pointer moves only when a strategy picks, as with a rule's `assign: {agent: ...}`.


conversations.add_command(assign_conversation)
conversations.add_command(unassign_conversation)
conversations.add_command(reply_conversation)
conversations.add_command(close_conversation)
conversations.add_command(snooze_conversation)
conversations.add_command(respond_conversation)


def sla_line(c: Conversation, now: datetime, *, full: bool = False) -> str:
    """Where a conversation stands against its SLA: "first_response breached 12 min ago",
    "resolution due in 3 h" (the soonest target unmet; all of them with `full`)."""
    parts = []
    for target, due in sorted(c.unmet_sla().items(), key=lambda item: item[1]):
        minutes = int((due - now).total_seconds() // 60)
        if minutes < 0:
            parts.append(f"{target} breached {_span(-minutes)} ago")
        else:
            parts.append(f"{target} due in {_span(minutes)}")
    if c.sla_paused_at and c.resolution_due:
        parts.append("resolution paused while pending")
    if not parts:
        return ("all targets met" if c.sla_policy else "") if full else ""
    return "; ".join(parts) if full else parts[0]


def _span(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} d"
