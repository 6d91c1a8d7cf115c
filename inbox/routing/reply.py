"""An agent's reply or internal note, written into the conversation's history: the one writer
behind `inbox conversations reply`, a reply in the thread of a Slack ping and the web desk.

A reply is an outbound message (direction "out", delivery "queued") written in one transaction
with its outbox row; inbox/outbox/replies.py sends it after the commit through the connector
that received the conversation, and records what the provider said on the message. A note
(direction "note") is stored and never sent.

What the store learns from a reply: the conversation is pending (an agent answered; the
customer's next message opens it again), its first response time is set by the first reply
after the customer wrote, and its last agent reply moves on.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.routing.person import locked_conversation
from inbox.routing.sla import responded
from inbox.routing.writer import RoutingWriter
from inbox.store.models import Contact, Conversation, Message, utcnow
from inbox.store.outbox_kinds import ReplyToSend

#: A reply longer than this is refused rather than cut (a pasted log, a mistake).
MAX_REPLY_CHARS = 100_000


class CannotReply(ValueError):
    """Why this reply cannot be sent, in words for the agent (nothing was written)."""


class Duplicate(Exception):
    """This reply was written already (the same Slack event delivered again)."""


@dataclass(frozen=True)
class Written:
    message_id: int
    #: The outbox row's key ("" for a note, which is never sent).
    outbox_key: str
    channel: str = ""


def write_reply(
    session: Session,
    conversation_id: int,
    *,
    author: str,
    text: str,
    html: str = "",
    note: bool = False,
    now: datetime | None = None,
    source: str = "",
    automatic: str = "",
) -> Written:
    """Write the reply (or note) and its outbox row in the caller's transaction. `source`
    names where it was written when that place may deliver it twice (a Slack event's channel
    and ts): the second time, `Duplicate` is raised and nothing is written. `automatic`: the
    rule that sends it (an auto-reply): marked auto-submitted, it is no agent's response and
    leaves the conversation's status and SLA as they were."""
    now = now or utcnow()
    text = text.strip("\n")
    if not text.strip():
        raise CannotReply("the reply is empty")
    if len(text) > MAX_REPLY_CHARS:
        raise CannotReply(f"the reply has {len(text):,} characters; at most {MAX_REPLY_CHARS:,}")
    conversation = locked_conversation(session, conversation_id)
    writer = RoutingWriter(session, now)
    dedupe_key = hashlib.sha256(f"written:{source}".encode()).hexdigest() if source else ""
    if dedupe_key and session.scalar(select(Message.id).where(Message.dedupe_key == dedupe_key)):
        raise Duplicate(source)
    if note:
        message = _message(conversation, direction="note", author=author, text=text, now=now)
        message.dedupe_key = dedupe_key or message.dedupe_key
        session.add(message)
        session.flush()
        writer.event(conversation.id, "noted", f"person:{author}", {"message": message.id})
        writer.flush()
        return Written(message.id, "")
    answered = _last_from_customer(session, conversation.id)
    if answered is None:
        raise CannotReply(f"conversation {conversation.id} has no message from the customer")
    _check_reachable(session, conversation, answered)
    message = _message(conversation, direction="out", author=author, text=text, now=now)
    message.dedupe_key = dedupe_key or message.dedupe_key
    message.auto_submitted = bool(automatic)
    _address_reply(message, conversation, answered, html)
    session.add(message)
    session.flush()
    key = f"reply:{message.id}"
    writer.outbox(
        conversation.id,
        key=key,
        payload=ReplyToSend(
            message=message.id, connector=answered.connector, channel=message.channel
        ),
    )
    writer.event(
        conversation.id,
        "auto_replied" if automatic else "replied",
        f"rule:{automatic}" if automatic else f"person:{author}",
        {"message": message.id, "channel": message.channel, "to": message.to_addresses[0]},
        message_id=message.id,
    )
    writer.flush()
    conversation.last_message_at = now
    conversation.updated_at = now
    conversation.message_count += 1
    if automatic:
        return Written(message.id, key, message.channel)
    conversation.status = "pending"
    conversation.last_agent_reply_at = now
    if conversation.first_response_at is None:
        conversation.first_response_at = now
    responded(conversation, now)
    return Written(message.id, key, message.channel)


def _message(
    conversation: Conversation, *, direction: str, author: str, text: str, now: datetime
) -> Message:
    unique = secrets.token_hex(8)
    return Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        connector="",
        external_id=f"{direction}:{unique}",
        direction=direction,
        author=author[:100],
        text=text,
        new_text=text,
        dedupe_key=hashlib.sha256(f"{direction}:{conversation.id}:{unique}".encode()).hexdigest(),
        thread_reason=f"written by {author}"[:300],
        delivery="queued" if direction == "out" else "",
        received_at=now,
        created_at=now,
    )


def _address_reply(
    message: Message, conversation: Conversation, answered: Message, html: str
) -> None:
    """To the customer, from what they wrote to, threaded after what they wrote."""
    message.connector = answered.connector
    message.to_addresses = [_customer_address(answered)]
    message.from_address = answered.to_addresses[0] if answered.to_addresses else ""
    message.subject = conversation.subject
    message.html = html
    if message.channel == "chat":
        # In the customer's thread (a channel's top-level message) or their DM with the bot.
        _, _, where = (conversation.thread_key or "").partition(":")
        channel, _, thread = where.partition(":")
        message.to_addresses = [channel]
        message.headers = {"thread": thread} if thread else {}
    if message.channel == "email":
        domain = message.from_address.rpartition("@")[2] or "inbox.invalid"
        # The token first: threads.py finds the conversation by it when a client keeps only
        # our Message-ID (In-Reply-To) and drops the rest of the chain.
        message.message_id_header = f"inbox.{conversation.token}.{secrets.token_hex(6)}@{domain}"
        message.external_id = f"out:{message.message_id_header}"
        # What the customer wrote, for a sender that quotes it below the reply.
        when = answered.sent_at or answered.received_at
        who = answered.from_name or answered.from_address
        message.quoted_text = f"On {when:%Y-%m-%d %H:%M} UTC, {who} wrote:\n" + "\n".join(
            f"> {line}" for line in (answered.new_text or answered.text).splitlines()
        )
        chain = [*answered.references, answered.message_id_header]
        message.in_reply_to = [answered.message_id_header] if answered.message_id_header else []
        message.references = [ref for ref in dict.fromkeys(chain) if ref][-20:]


def _customer_address(answered: Message) -> str:
    """Where a reply goes: for email the customer's Reply-To when they set one (the first
    address of it), else the sender; for SMS and chat the sender as stored."""
    if answered.channel != "email":
        return answered.from_address.strip()
    for value in ((answered.headers or {}).get("reply-to", ""), answered.from_address):
        for _, address in getaddresses([str(value)]):
            if "@" in address:
                return address.strip()
    return ""


def _check_reachable(session: Session, conversation: Conversation, answered: Message) -> None:
    if conversation.channel == "sms" and conversation.contact_id is not None:
        opted_out = session.scalar(
            select(Contact.sms_opted_out_at).where(Contact.id == conversation.contact_id)
        )
        if opted_out is not None:
            raise CannotReply(
                f"the customer opted out of SMS (STOP on {opted_out:%Y-%m-%d}): no text may be "
                "sent until they write START"
            )
    if conversation.channel == "chat" and not (conversation.thread_key or "").startswith("slack:"):
        raise CannotReply("the conversation has no Slack channel to answer in")
    if not _customer_address(answered):
        raise CannotReply("the customer's message has no address to answer")


def _last_from_customer(session: Session, conversation_id: int) -> Message | None:
    return session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == "in")
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(1)
    ).first()


def respond_elsewhere(
    session: Session,
    conversation_id: int,
    *,
    person: str,
    note: str = "",
    now: datetime | None = None,
) -> bool:
    """A response made outside Inbox (a phone call, a letter): it meets the first and next
    response targets as a reply does, and the conversation waits on the customer. False when
    the conversation is closed (nothing is written)."""
    now = now or utcnow()
    conversation = locked_conversation(session, conversation_id)
    if conversation.status == "closed":
        return False
    writer = RoutingWriter(session, now)
    writer.event(conversation.id, "responded", f"person:{person}", {"note": note})
    writer.flush()
    conversation.status = "pending"
    conversation.last_agent_reply_at = now
    if conversation.first_response_at is None:
        conversation.first_response_at = now
    responded(conversation, now)
    conversation.updated_at = now
    return True
