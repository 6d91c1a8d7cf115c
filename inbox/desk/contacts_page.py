"""The desk's contacts: found by name or address, each with its addresses across email, SMS
and Slack, its conversations and the audit of merges and splits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, selectinload

from inbox.store.models import Contact, Conversation, Event, Identity

AUDITED = ("contact_merged", "contact_split")
FOUND_AT_MOST = 50


@dataclass
class ContactView:
    contact: Contact
    identities: list[Identity]
    conversations: list[Conversation]
    audit: list[Event]


def find_contacts(session: Session, text: str) -> list[Contact]:
    text = text.strip()[:200]
    if not text:
        return []
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    by_address = select(Identity.contact_id).where(
        Identity.address.ilike(pattern.casefold(), escape="\\")
    )
    matches: list[ColumnElement[bool]] = [
        Contact.name.ilike(pattern, escape="\\"),
        Contact.id.in_(by_address),
    ]
    if text.isdigit():
        matches.append(Contact.id == int(text))  # "#123" as a contact's number
    query = (
        select(Contact)
        .where(or_(*matches))
        .options(selectinload(Contact.identities))
        .order_by(Contact.id)
        .limit(FOUND_AT_MOST)
    )
    return list(session.scalars(query))


def contact_view(session: Session, contact_id: int) -> ContactView | None:
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    identities = list(
        session.scalars(
            select(Identity).where(Identity.contact_id == contact_id).order_by(Identity.id)
        )
    )
    conversations = list(
        session.scalars(
            select(Conversation)
            .where(Conversation.contact_id == contact_id)
            .order_by(Conversation.id.desc())
            .limit(200)
        )
    )
    recent = session.scalars(
        select(Event)
        .where(Event.kind.in_(AUDITED), Event.conversation_id.is_(None))
        .order_by(Event.id.desc())
        .limit(500)
    )
    mine = [
        event
        for event in recent
        if contact_id in {event.detail.get(key) for key in ("kept", "merged", "from", "to")}
    ]
    return ContactView(contact, identities, conversations, mine)
