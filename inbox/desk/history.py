"""A conversation as the desk shows it: every message, reply and note in order, with the
events between them (why it was tagged and assigned, by which rule, who was passed over), the
lines that explain its current state, and which messages still have their raw bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inbox.desk.queue import sla_state
from inbox.store.models import Contact, Conversation, Event, Identity, Message, RawRecord
from rules.explain import EventView, explain, passed_over
from rules.model import RuleSet

#: Events that say nothing a person acts on, left out of the history (still in the store).
QUIET = frozenset({"rule_matched"})


@dataclass(frozen=True)
class Item:
    at: datetime
    message: Message | None = None
    event: Event | None = None
    text: str = ""


@dataclass
class ConversationView:
    conversation: Conversation
    contact: Contact | None
    identities: list[Identity]
    items: list[Item]
    why: list[str]
    sla: str
    due: datetime | None
    raw: set[int] = field(default_factory=set)
    agents: list[str] = field(default_factory=list)


def conversation_view(
    session: Session, conversation_id: int, ruleset: RuleSet | None, now: datetime, *, full: bool
) -> ConversationView | None:
    conversation = session.scalar(
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .options(
            selectinload(Conversation.tags),
            selectinload(Conversation.messages).selectinload(Message.attachments),
        )
    )
    if conversation is None:
        return None
    contact = session.get(Contact, conversation.contact_id) if conversation.contact_id else None
    identities = (
        list(session.scalars(select(Identity).where(Identity.contact_id == contact.id)))
        if contact is not None
        else []
    )
    events = list(
        session.scalars(
            select(Event)
            .where(Event.conversation_id == conversation_id)
            .order_by(Event.created_at, Event.id)
        )
    )
    message_ids = [m.id for m in conversation.messages]
    stored_raw = select(RawRecord.message_id).where(RawRecord.message_id.in_(message_ids))
    raw = {i for i in session.scalars(stored_raw) if i is not None} if message_ids else set()
    items = [
        Item(m.received_at, message=m, text=m.text if full else (m.new_text or m.text))
        for m in conversation.messages
    ]
    items += [Item(e.created_at, event=e, text=describe(e)) for e in events if e.kind not in QUIET]
    items.sort(key=lambda item: (item.at, item.event is not None))
    why = explain(
        (EventView(e.kind, e.actor, e.detail) for e in events),
        tags=[t.name for t in conversation.tags],
        priority=conversation.priority,
        assignee=conversation.assignee or "",
        team=conversation.team or "",
    )
    state, due = sla_state(conversation, now)
    agents = sorted(ruleset.agents) if ruleset is not None else []
    return ConversationView(conversation, contact, identities, items, why, state, due, raw, agents)


def describe(event: Event) -> str:
    """One line a person reads: who did what, and the rule's reason."""
    d: dict[str, Any] = event.detail or {}
    who = event.actor.removeprefix("person:").removeprefix("rule:")
    by = f"by {who}" if who else ""
    kind = event.kind
    if kind == "assigned":
        how = f" ({d['strategy']})" if d.get("strategy") else ""
        passed = passed_over(d)
        return f"assigned to {d.get('agent')}{how} {by}{passed}".strip()
    if kind == "unassigned":
        return f"taken from {d.get('from')} {by}"
    if kind == "queued":
        return f"waiting in team {d.get('team')}'s queue {by}{passed_over(d)}"
    if kind in ("tag_added", "tag_removed"):
        verb = "tagged" if kind == "tag_added" else "untagged"
        matched = f": {d['matched']}" if d.get("matched") else ""
        return f"{verb} {d.get('tag')} {by}{matched}"
    if kind == "priority_set":
        return f"priority {d.get('from')} → {d.get('to')} {by}"
    if kind == "snoozed":
        return f"snoozed until {d.get('until', '')[:16].replace('T', ' ')} UTC {by}"
    detail = ", ".join(
        f"{k} {v}" for k, v in d.items() if k != "rules_version" and v not in ("", None)
    )
    return f"{kind.replace('_', ' ')} {by}" + (f": {detail}" if detail else "")
