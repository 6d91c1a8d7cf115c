"""`inbox conversations list/show` and `inbox raw list/show`: reading the store as a person,
or as a script with --json; `inbox conversations assign/unassign`: a person's decision."""

from __future__ import annotations

import getpass
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, Text, cast, func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from inbox.cli import AppContext, pass_app, rules_in_force
from inbox.db import current_revision, make_engine, make_sessionmaker, transaction
from inbox.models import (
    Contact,
    Conversation,
    ConversationTag,
    Event,
    Message,
    OutboxItem,
    RawRecord,
    Tag,
    utcnow,
)

if TYPE_CHECKING:
    from rules.model import Agent, RuleSet

SNIPPET_CHARS = 60


def _engine(app: AppContext) -> Engine:
    engine = make_engine(app.existing_store_url())
    if current_revision(engine) is None:
        raise click.ClickException(f"the store at {engine.url!r} is empty: run `inbox db upgrade`")
    return engine


def _session(app: AppContext) -> Session:
    return make_sessionmaker(_engine(app))()


def _writers(app: AppContext) -> sessionmaker[Session]:
    return make_sessionmaker(_engine(app), writer=True)


def _console() -> Console:
    """Rich assumes 80 columns when output is not a terminal; a pipe or a file gets the
    whole table instead of ellipses. No emoji codes: markup=False leaves them on, and
    "person:sari: agent=..." or a customer's ":smile:" must print as written."""
    console = Console(highlight=False, emoji=False)
    return console if console.is_terminal else Console(highlight=False, emoji=False, width=200)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@click.group()
def conversations() -> None:
    """Conversations in the store."""


@conversations.command("list")
@click.option("--status", type=click.Choice(["open", "pending", "closed"]))
@click.option("--channel", type=click.Choice(["email", "sms", "chat"]))
@click.option("--tag", "tag_name", help="Only conversations with this tag.")
@click.option("--assignee", help="Agent name; 'none' for unassigned.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@pass_app
def list_conversations(
    app: AppContext,
    status: str | None,
    channel: str | None,
    tag_name: str | None,
    assignee: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Newest activity first."""
    query = (
        select(Conversation)
        .options(selectinload(Conversation.tags), selectinload(Conversation.contact))
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        .limit(limit)
    )
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
    with _session(app) as session:
        rows = session.scalars(query).all()
        senders = _first_senders(session, [c.id for c in rows])
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
                _when(c.last_message_at),
            )
        _console().print(table)
        if not rows:
            click.echo("no conversations match", err=True)


def _first_senders(session: Session, conversation_ids: list[int]) -> dict[int, str]:
    if not conversation_ids:
        return {}
    first = (
        select(Message.conversation_id, func.min(Message.id).label("first_id"))
        .where(Message.conversation_id.in_(conversation_ids))
        .group_by(Message.conversation_id)
        .subquery()
    )
    rows = session.execute(
        select(Message.conversation_id, Message.from_name, Message.from_address).join(
            first, Message.id == first.c.first_id
        )
    )
    return {row[0]: row[1] or row[2] for row in rows}


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
        "created_at": _iso(c.created_at),
        "last_message_at": _iso(c.last_message_at),
        "previous_conversation_id": c.previous_conversation_id,
    }


@conversations.command("show")
@click.argument("conversation_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.option("--full", is_flag=True, help="Print the whole text, quoted history included.")
@pass_app
def show_conversation(app: AppContext, conversation_id: int, as_json: bool, full: bool) -> None:
    """The messages with their decoded text, language, flags, attachments, and the history."""
    with _session(app) as session:
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
                {"kind": e.kind, "actor": e.actor, "detail": e.detail, "at": _iso(e.created_at)}
                for e in events
            ]
            document["why"] = _why(conversation, events)
            click.echo(json.dumps(document, ensure_ascii=False, indent=2))
            return
        _print_conversation(conversation, events, full)


def _message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "from": m.from_address,
        "from_name": m.from_name,
        "to": m.to_addresses,
        "cc": m.cc_addresses,
        "subject": m.subject,
        "sent_at": _iso(m.sent_at),
        "received_at": _iso(m.received_at),
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
    out = _console()
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
    if c.previous_conversation_id:
        out.print(f"follows conversation #{c.previous_conversation_id}", markup=False)
    for m in c.messages:
        out.rule()
        sender = f"{m.from_name} <{m.from_address}>" if m.from_name else m.from_address
        out.print(
            f"[bold]message {m.id}[/bold] from {sender} · {_when(m.sent_at)} · "
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
        out.print(f"{_when(e.created_at)} {e.kind} by {e.actor}: {detail}", markup=False)


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
# Loads and sticky's memory are read from the conversations' assignees (rules/assignment.py):
# setting the assignee in the transaction is all the bookkeeping there is. A team's round-robin
# pointer moves only when a strategy picks, as with a rule's `assign: {agent: ...}`.


@conversations.command("assign")
@click.argument("conversation_id", type=int)
@click.argument("agent_name", metavar="AGENT")
@click.option("--team", "team_name", help="Its team (default: the agent's team).")
@click.option("--by", "person", help="Who decides, for the history (default: your login name).")
@click.option("--note", default="", help="Why, for the history.")
@pass_app
def assign_conversation(
    app: AppContext,
    conversation_id: int,
    agent_name: str,
    team_name: str | None,
    person: str | None,
    note: str,
) -> None:
    """Give a conversation to AGENT, an agent of the rules in force, and ping them on Slack.

    Unlike a rule, a person may give it to an agent who is off hours, away or at capacity: the
    command warns and assigns."""
    from rules.errors import unknown

    ruleset = _ruleset_in_force(app)
    agent = ruleset.agents.get(agent_name)
    if agent is None:
        raise click.ClickException(unknown("agent", agent_name, ruleset.agents))
    if team_name is not None:
        team = ruleset.teams.get(team_name)
        if team is None:
            raise click.ClickException(unknown("team", team_name, ruleset.teams))
        if agent.name not in team.members:
            click.echo(f"warning: {agent.name} is not in team {team.name}", err=True)
    by = _person(person)
    with transaction(_writers(app)) as session:
        done = _assign(session, ruleset, conversation_id, agent, team_name, by, note)
    if not done.changed:
        click.echo(f"conversation {conversation_id} is already {agent.name}'s: nothing changed")
        return
    if done.warning:
        click.echo(f"warning: {agent.name}: {done.warning}; assigned all the same", err=True)
    team_part = f" in team {done.team}" if done.team else ""
    taken = f", taken from {done.previous}" if done.previous else ""
    click.echo(f"conversation {conversation_id} assigned to {agent.name}{team_part}{taken}")
    if agent.slack:
        click.echo(f"{agent.name} will get a Slack message")
    else:
        click.echo(f"{agent.name} has no Slack id in the rules: nobody is pinged")


@conversations.command("unassign")
@click.argument("conversation_id", type=int)
@click.option("--by", "person", help="Who decides, for the history (default: your login name).")
@pass_app
def unassign_conversation(app: AppContext, conversation_id: int, person: str | None) -> None:
    """Take a conversation from its agent: it waits in its team's queue. Nobody is pinged."""
    by = _person(person)
    with transaction(_writers(app)) as session:
        conversation = _locked(session, conversation_id)
        previous = conversation.assignee or ""
        team = conversation.team or ""
        if previous:
            conversation.assignee = None
            session.add(
                Event(
                    conversation_id=conversation.id,
                    kind="unassigned",
                    actor=f"person:{by}"[:200],
                    detail={"agent": "", "from": previous, "team": team},
                    created_at=utcnow(),
                )
            )
    if not previous:
        click.echo(f"conversation {conversation_id} is not assigned: nothing changed")
        return
    queue = f"; it waits in team {team}'s queue" if team else ""
    click.echo(f"conversation {conversation_id} unassigned from {previous}{queue}")


@dataclass(frozen=True)
class _Assigned:
    previous: str
    team: str
    #: Why a strategy would have passed the agent over ("off hours (...)"), or "".
    warning: str = ""
    changed: bool = True


def _assign(
    session: Session,
    ruleset: RuleSet,
    conversation_id: int,
    agent: Agent,
    team_name: str | None,
    person: str,
    note: str,
) -> _Assigned:
    """The assignee, the event and the ping, in the caller's transaction."""
    from rules.apply import assignment_payload
    from rules.assignment import Assigner
    from rules.model import Assign

    conversation = _locked(session, conversation_id)
    previous = conversation.assignee or ""
    if previous == agent.name:
        return _Assigned(previous, conversation.team or "", changed=False)
    now = utcnow()
    warning = Assigner(session, ruleset, now).why_not(
        agent, conversation.language, Assign(agent=agent.name)
    )
    team = team_name or _team_for(ruleset, agent.name, conversation.team or "")
    conversation.assignee = agent.name
    conversation.team = team or None
    detail: dict[str, Any] = {"agent": agent.name, "from": previous, "team": team, "note": note}
    if warning:
        detail["warning"] = warning
    event = Event(
        conversation_id=conversation.id,
        kind="assigned",
        actor=f"person:{person}"[:200],
        detail=detail,
        created_at=now,
    )
    session.add(event)
    session.flush()  # the event's id keys the ping: each decision of a person pings once
    if agent.slack:
        payload = assignment_payload(
            agent, previous=previous, team=team, rule="", why=f"assigned by {person}"
        )
        session.add(
            OutboxItem(
                kind="slack.assignment",
                idempotency_key=f"assign:{conversation.id}:person:{event.id}",
                conversation_id=conversation.id,
                payload={**payload, "by": person, "note": note},
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return _Assigned(previous, team, warning)


def _team_for(ruleset: RuleSet, agent: str, current: str) -> str:
    """The conversation's team if the agent is in it, else the agent's first team."""
    teams = [team.name for team in ruleset.teams.values() if agent in team.members]
    return current if current in teams or not teams else teams[0]


def _locked(session: Session, conversation_id: int) -> Conversation:
    # Locked until the commit on PostgreSQL, so that the rules of a batch cannot assign it in
    # between (on SQLite the writer's transaction holds the whole database).
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise click.ClickException(f"no conversation {conversation_id}")
    return conversation


def _ruleset_in_force(app: AppContext) -> RuleSet:
    settings = app.config().settings
    if settings.rules_file is None:
        raise click.ClickException("no rules_file is configured: the agents are defined there")
    rules = rules_in_force(settings)
    assert rules is not None
    return rules.current.ruleset


def _person(given: str | None) -> str:
    if given is None:
        try:
            given = getpass.getuser()
        except (OSError, KeyError):  # neither $USER nor a passwd entry, as in a bare container
            raise click.UsageError("cannot tell who you are: give --by NAME") from None
    name = given.strip()
    if not name:
        raise click.UsageError("--by needs a name")
    return name


@click.group()
def raw() -> None:
    """Raw messages as fetched, including those that could not be parsed."""


@raw.command("list")
@click.option("--errors", is_flag=True, help="Only messages kept raw-only or parsed with errors.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def list_raw(app: AppContext, errors: bool, limit: int, as_json: bool) -> None:
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
    with _session(app) as session:
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
            "stored_at": _iso(r.stored_at),
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
    _console().print(table)


@raw.command("show")
@click.argument("raw_id", type=int)
@pass_app
def show_raw(app: AppContext, raw_id: int) -> None:
    """Write the original bytes to stdout, exactly as fetched."""
    with _session(app) as session:
        record = session.get(RawRecord, raw_id)
        if record is None:
            raise click.ClickException(f"no raw message {raw_id}")
        sys.stdout.buffer.write(record.payload)
