"""Read-only look-ups that several faces of the store share (the CLI's lists, the web desk)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inbox.store.models import Message


def first_senders(session: Session, conversation_ids: list[int]) -> dict[int, str]:
    """Who wrote each conversation's first message (name, else address): the row's "from"."""
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
