"""A canned answer (rules/answers.py) filled for one conversation: in its language, with the
customer's and agent's names and what the rules extracted (`{order_number}`). The CLI's
`--answer`, the ping's menu and a thread's `!answer NAME` all take their text from here, so
that an answer reads the same wherever it is sent from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.routing.person import NoSuchConversation
from inbox.store.models import Contact, Conversation, Message
from rules.answers import Answers


@dataclass(frozen=True)
class Canned:
    text: str
    #: The language the answer was written in, and the conversation's (they differ when the
    #: answer had no file in the conversation's language and English was used).
    used: str
    language: str


def canned_answer(
    session: Session,
    answers: Answers,
    conversation_id: int,
    name: str,
    agent: str,
    *,
    extra: Mapping[str, str] | None = None,
) -> Canned:
    """AnswerError when the answer cannot be used here (say it to the agent as it is)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NoSuchConversation(conversation_id)
    contact = session.get(Contact, conversation.contact_id) if conversation.contact_id else None
    sender_name = session.scalar(
        select(Message.from_name)
        .where(Message.conversation_id == conversation_id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    )
    customer = (contact.name if contact else "") or sender_name or ""
    values = {
        **{str(k): str(v) for k, v in (conversation.attributes or {}).items()},
        "customer_name": customer,
        "customer_first_name": customer.split(" ")[0] if customer else "",
        "agent_name": agent,
        "conversation_id": str(conversation.id),
        "subject": conversation.subject,
        **(extra or {}),
    }
    language = conversation.language
    used, _ = answers.pick(name, language)
    return Canned(answers.render(name, language, values), used, language)
