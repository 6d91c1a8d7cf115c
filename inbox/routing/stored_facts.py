"""Facts of stored messages for the rules: the same columns in the batch writer (on arrival)
and in the store (`inbox rules test --conversation` and `replay`, which judge stored messages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inbox.normalize.addresses import normalize_address
from inbox.store.models import ContactTag, Conversation, ConversationTag, Message, Tag
from inbox.store.sql import chunked
from rules.facts import Facts


def facts_from_columns(
    columns: Mapping[str, Any],
    attachments: Sequence[Mapping[str, Any]],
    conversation: Conversation,
    *,
    now: datetime,
    new_conversation: bool,
    tags: frozenset[str],
    contact_known: bool,
    contact_conversations: int,
    contact_tags: frozenset[str],
    message_count: int = 0,
) -> Facts:
    """Facts of a stored message (the same columns in the batch writer and in the store)."""
    created = conversation.created_at or now
    return Facts(
        now=now,
        channel=columns.get("channel") or "email",
        connector=columns.get("connector") or "",
        from_address=_matched_form(columns.get("from_address") or ""),
        from_name=columns.get("from_name") or "",
        to=tuple(columns.get("to_addresses") or ()),
        cc=tuple(columns.get("cc_addresses") or ()),
        subject=columns.get("subject") or "",
        body=columns.get("new_text") or columns.get("text") or "",
        headers=dict(columns.get("headers") or {}),
        attachment_types=tuple(a["content_type"] for a in attachments),
        attachment_names=tuple(a["filename"] for a in attachments if a["filename"]),
        language=columns.get("language") or "",
        auto_submitted=bool(columns.get("auto_submitted")),
        bulk=bool(columns.get("bulk") or columns.get("list_mail")),
        new_conversation=new_conversation,
        status=conversation.status,
        tags=tags,
        priority=conversation.priority,
        assignee=conversation.assignee or "",
        team=conversation.team or "",
        message_count=message_count or conversation.message_count,
        age=max(now - created, timedelta(0)),
        contact_known=contact_known,
        contact_conversations=contact_conversations,
        contact_tags=contact_tags,
    )


def _matched_form(address: str) -> str:
    """The message keeps a mail address as the sender wrote it; rules see the form identities
    match on, the same as on arrival. Phone numbers and Slack ids have no "@" and stay."""
    return normalize_address(address) if "@" in address else address


def stored_context(session: Session, conversation: Conversation) -> dict[str, Any]:
    """The conversation and contact facts of a stored conversation, as they are now (for
    `inbox rules test --conversation` and `replay`, which judge stored messages)."""
    contact = conversation.contact_id
    tags = tags_by_owner(session, ConversationTag.conversation_id, [conversation.id])
    contact_tags = tags_by_owner(session, ContactTag.contact_id, [contact] if contact else [])
    earlier = 0
    if contact is not None:
        earlier = (
            session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(
                    Conversation.contact_id == contact,
                    Conversation.created_at < conversation.created_at,
                )
            )
            or 0
        )
    return {
        "tags": frozenset(tags.get(conversation.id, ())),
        "contact_known": earlier > 0,
        "contact_conversations": int(earlier),
        "contact_tags": frozenset(contact_tags.get(contact or 0, ())),
    }


def tags_by_owner(session: Session, owner: Any, ids: Sequence[int]) -> dict[int, set[str]]:
    """Tag names per conversation (`ConversationTag.conversation_id`) or contact
    (`ContactTag.contact_id`)."""
    link = owner.class_
    found: dict[int, set[str]] = {}
    for chunk in chunked(list(ids)):
        rows = session.execute(
            select(owner, Tag.name).join(Tag, Tag.id == link.tag_id).where(owner.in_(chunk))
        )
        for owner_id, name in rows:
            found.setdefault(owner_id, set()).add(name)
    return found


#: A conversation's context and first message id, read once for all its messages (replay).
Contexts = dict[int, tuple[dict[str, Any], int | None]]

#: The message columns facts are made of.
_COLUMNS = (
    "channel", "connector", "from_address", "from_name", "to_addresses", "cc_addresses",
    "subject", "new_text", "text", "headers", "language", "auto_submitted", "bulk", "list_mail",
)  # fmt: skip


def facts_of_message(
    session: Session, message: Message, now: datetime, contexts: Contexts | None = None
) -> Facts:
    """A stored message's facts, its conversation and contact as they are now (`inbox rules
    test --conversation`, `replay`, and the SLA policy recomputed after a change)."""
    conversation = message.conversation
    contexts = {} if contexts is None else contexts
    if conversation.id not in contexts:
        first_id = session.scalar(
            select(Message.id)
            .where(Message.conversation_id == conversation.id)
            .order_by(Message.id)
            .limit(1)
        )
        contexts[conversation.id] = (stored_context(session, conversation), first_id)
    context, first = contexts[conversation.id]
    columns = {column: getattr(message, column) for column in _COLUMNS}
    attachments = [
        {"content_type": a.content_type, "filename": a.filename} for a in message.attachments
    ]
    return facts_from_columns(
        columns, attachments, conversation, now=now, new_conversation=first == message.id, **context
    )
