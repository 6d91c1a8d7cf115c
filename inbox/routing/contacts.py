"""A person's corrections to who is who: two contacts that are one customer merged, an address
that is someone else's split off. Threading and the rules see contacts as the store holds
them, so a merge makes the customer's history one (sticky assignment, "returning customer")
from the next message on. Each is audited: an event on every conversation it moved, and one
without a conversation for the contact itself."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from inbox.routing.writer import RoutingWriter
from inbox.store.models import Contact, ContactTag, Conversation, Identity, Message, utcnow
from inbox.store.sql import insert_ignore_many


class CannotChangeContact(ValueError):
    pass


@dataclass(frozen=True)
class Changed:
    contact_id: int
    identities: int
    conversations: int


def merge_contacts(session: Session, keep_id: int, merge_id: int, *, person: str) -> Changed:
    """Everything of `merge_id` (addresses, conversations, tags) becomes `keep_id`'s; the
    merged contact is gone. An SMS opt-out of either holds for the one left: a customer who
    said STOP is never texted because of a merge."""
    if keep_id == merge_id:
        raise CannotChangeContact("a contact cannot be merged into itself")
    keep = session.get(Contact, keep_id, with_for_update=True)
    merged = session.get(Contact, merge_id, with_for_update=True)
    if keep is None or merged is None:
        raise CannotChangeContact(f"no contact {keep_id if keep is None else merge_id}")
    identities = session.scalar(select(func.count()).where(Identity.contact_id == merge_id)) or 0
    session.execute(
        update(Identity).where(Identity.contact_id == merge_id).values(contact_id=keep_id)
    )
    moved = list(
        session.scalars(select(Conversation.id).where(Conversation.contact_id == merge_id))
    )
    session.execute(
        update(Conversation).where(Conversation.contact_id == merge_id).values(contact_id=keep_id)
    )
    tags = session.scalars(select(ContactTag.tag_id).where(ContactTag.contact_id == merge_id)).all()
    insert_ignore_many(
        session,
        ContactTag,
        [{"contact_id": keep_id, "tag_id": t} for t in tags],
        ["contact_id", "tag_id"],
    )
    opted = [at for at in (keep.sms_opted_out_at, merged.sms_opted_out_at) if at is not None]
    keep.sms_opted_out_at = min(opted) if opted else None
    keep.name = keep.name or merged.name
    detail = {
        "kept": keep_id,
        "merged": merge_id,
        "merged_name": merged.name,
        "identities": identities,
    }
    _audit(session, "contact_merged", person, detail, moved)
    session.execute(delete(Contact).where(Contact.id == merge_id))
    return Changed(keep_id, identities, len(moved))


def split_identity(session: Session, identity_id: int, *, person: str) -> Changed:
    """The address becomes a contact of its own, with the conversations its owner began from
    it; the rest stays. The last address of a contact cannot be split off."""
    identity = session.get(Identity, identity_id, with_for_update=True)
    if identity is None:
        raise CannotChangeContact(f"no address {identity_id}")
    old_id = identity.contact_id
    count = session.scalar(select(func.count()).where(Identity.contact_id == old_id)) or 0
    if count < 2:
        raise CannotChangeContact(f"{identity.address} is the contact's only address")
    old = session.get(Contact, old_id)
    assert old is not None
    new = Contact(
        name=identity.display_name,
        sms_opted_out_at=old.sms_opted_out_at if identity.kind == "phone" else None,
    )
    session.add(new)
    session.flush()
    identity.contact_id = new.id
    first_inbound = (
        select(Message.conversation_id, func.min(Message.id).label("first_id"))
        .where(Message.direction == "in")
        .group_by(Message.conversation_id)
        .subquery()
    )
    moved = list(
        session.scalars(
            select(Conversation.id)
            .join(first_inbound, first_inbound.c.conversation_id == Conversation.id)
            .join(Message, Message.id == first_inbound.c.first_id)
            .where(Conversation.contact_id == old_id, Message.sender_identity_id == identity_id)
        )
    )
    if moved:
        session.execute(
            update(Conversation).where(Conversation.id.in_(moved)).values(contact_id=new.id)
        )
    detail = {"from": old_id, "to": new.id, "address": identity.address, "kind": identity.kind}
    _audit(session, "contact_split", person, detail, moved)
    return Changed(new.id, 1, len(moved))


def _audit(
    session: Session, kind: str, person: str, detail: dict[str, object], moved: list[int]
) -> None:
    writer = RoutingWriter(session, utcnow())
    row = writer.event(0, kind, f"person:{person}", {**detail, "conversations": moved})
    row["conversation_id"] = None
    for conversation_id in moved:
        writer.event(conversation_id, kind, f"person:{person}", detail)
    writer.flush()
