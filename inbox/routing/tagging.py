"""Tags added and removed outside a batch's rules (an SLA escalation, a person at the desk),
each with its event: what `conversations show` and the desk's history explain."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from inbox.routing.writer import RoutingWriter
from inbox.store.models import ConversationTag, Tag
from inbox.store.sql import insert_ignore_many


def add_tags(
    session: Session,
    writer: RoutingWriter,
    conversation_id: int,
    names: Collection[str],
    *,
    actor: str,
    matched: str,
) -> list[str]:
    """The tags that were new to the conversation (only those get an event)."""
    if not names:
        return []
    insert_ignore_many(session, Tag, [{"name": name} for name in names], ["name"])
    ids = dict(session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(names))).all())
    had = _tags_of(session, conversation_id)
    added = [name for name in names if name not in had]
    rows = [{"conversation_id": conversation_id, "tag_id": ids[name]} for name in added]
    insert_ignore_many(session, ConversationTag, rows, ["conversation_id", "tag_id"])
    for name in added:
        writer.event(conversation_id, "tag_added", actor, {"tag": name, "matched": matched})
    return added


def remove_tags(
    session: Session,
    writer: RoutingWriter,
    conversation_id: int,
    names: Collection[str],
    *,
    actor: str,
    matched: str,
) -> list[str]:
    had = _tags_of(session, conversation_id)
    removed = [name for name in names if name in had]
    if not removed:
        return []
    session.execute(
        delete(ConversationTag).where(
            ConversationTag.conversation_id == conversation_id,
            ConversationTag.tag_id.in_(select(Tag.id).where(Tag.name.in_(removed))),
        )
    )
    for name in removed:
        writer.event(conversation_id, "tag_removed", actor, {"tag": name, "matched": matched})
    return removed


def _tags_of(session: Session, conversation_id: int) -> set[str]:
    query = (
        select(Tag.name)
        .join(ConversationTag, ConversationTag.tag_id == Tag.id)
        .where(ConversationTag.conversation_id == conversation_id)
    )
    return set(session.scalars(query))
