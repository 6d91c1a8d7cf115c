"""The conversation store's tables, as SQLAlchemy 2 typed models.

Every schema change goes through an Alembic migration (alembic/versions); a test checks that
these models and the migrations agree. Types are chosen to work the same on SQLite and
PostgreSQL: JSON for small lists, LargeBinary for bytes, timezone-aware datetimes stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Explicit constraint names, so that migrations are the same on SQLite and PostgreSQL and
# constraints can be dropped by name later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends.

    SQLite has no time zones: SQLAlchemy hands back naive datetimes there. Storing UTC and
    re-attaching UTC on the way out keeps "time is UTC and aware inside" true everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is UTC:  # nearly always: every clock of ours is UTC
            return value
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        if value.tzinfo is UTC:
            return value
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}  # noqa: RUF012


class Contact(Base):
    """One customer, whatever channel they write from."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when they texted STOP (or its like), cleared by START: no SMS may go to them.
    sms_opted_out_at: Mapped[datetime | None] = mapped_column()

    identities: Mapped[list[Identity]] = relationship(back_populates="contact")


class Identity(Base):
    """An address a contact writes from: email (lowercased, IDNA), phone (E.164), Slack id."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="identities")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_contact_subject", "contact_id", "normalized_subject"),
        Index("ix_conversations_status_updated", "status", "updated_at"),
        # The surveys still to send: few rows, looked for every second by the timers' sweep.
        Index(
            "ix_conversations_survey_waiting",
            "closed_at",
            sqlite_where=text("csat_survey != '' AND csat_sent_at IS NULL"),
            postgresql_where=text("csat_survey != '' AND csat_sent_at IS NULL"),
        ),
        # The desk's queue (inbox/desk/queue.py): its pages by latest activity and by the
        # customer's wait, and its counts per team and priority from the index alone.
        Index("ix_conversations_status_last_message", "status", "last_message_at", "id"),
        Index("ix_conversations_status_waiting", "status", "last_customer_message_at", "id"),
        Index("ix_conversations_status_team_priority", "status", "team", "priority", "id"),
        # Each SLA due time while unmet (inbox/routing/sla.py sla_due_before): breached and
        # due-soon filters, and the health counts, without reading every conversation.
        Index(
            "ix_conversations_first_response_due",
            "first_response_due",
            sqlite_where=text("first_response_at IS NULL AND first_response_due IS NOT NULL"),
            postgresql_where=text("first_response_at IS NULL AND first_response_due IS NOT NULL"),
        ),
        Index(
            "ix_conversations_next_response_due",
            "next_response_due",
            sqlite_where=text("next_response_due IS NOT NULL"),
            postgresql_where=text("next_response_due IS NOT NULL"),
        ),
        Index(
            "ix_conversations_resolution_due",
            "resolution_due",
            sqlite_where=text("sla_paused_at IS NULL AND resolution_due IS NOT NULL"),
            postgresql_where=text("sla_paused_at IS NULL AND resolution_due IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Random, unguessable: carried by our own replies (subject tag, Message-ID) for threading.
    token: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    subject: Mapped[str] = mapped_column(Text, default="")
    normalized_subject: Mapped[str] = mapped_column(String(500), default="")
    #: For SMS and chat: the channel's own thread key (number pair, Slack channel + thread_ts).
    thread_key: Mapped[str | None] = mapped_column(String(300), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    team: Mapped[str | None] = mapped_column(String(100), index=True)
    assignee: Mapped[str | None] = mapped_column(String(100), index=True)
    language: Mapped[str] = mapped_column(String(16), default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    previous_conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime | None] = mapped_column()
    last_customer_message_at: Mapped[datetime | None] = mapped_column()
    first_response_due: Mapped[datetime | None] = mapped_column()
    #: The first agent reply after the customer's first message, and the latest one.
    first_response_at: Mapped[datetime | None] = mapped_column()
    last_agent_reply_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    #: Pending until then, by a person; open again at that time or when the customer writes.
    snoozed_until: Mapped[datetime | None] = mapped_column(index=True)
    #: What rules found in the messages (`extract`: an order number), for canned answers.
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The SLA policy in force ("" for none) and its due times (inbox/routing/sla.py):
    #: the reply to the customer's oldest unanswered message after the first response, and
    #: closing, whose clock stops while pending (since `sla_paused_at`).
    sla_policy: Mapped[str] = mapped_column(String(100), default="", server_default="")
    next_response_due: Mapped[datetime | None] = mapped_column()
    resolution_due: Mapped[datetime | None] = mapped_column()
    sla_paused_at: Mapped[datetime | None] = mapped_column()
    #: Satisfaction: the survey a rule asked for (an answer's name, sent once it is closed),
    #: when it went, and the customer's score (1-5) and when they gave it.
    csat_survey: Mapped[str] = mapped_column(String(100), default="", server_default="")
    csat_sent_at: Mapped[datetime | None] = mapped_column()
    csat_score: Mapped[int | None] = mapped_column(Integer)
    csat_answered_at: Mapped[datetime | None] = mapped_column()

    def unmet_sla(self) -> dict[str, datetime]:
        """Each SLA target still to be met, with its due time (resolution only while its
        clock runs; nothing once closed): what `conversations show`, pings and the timers go
        by."""
        if self.status == "closed":
            return {}  # closed: nothing more is owed
        dues = {
            "first_response": None if self.first_response_at else self.first_response_due,
            "next_response": self.next_response_due,
            "resolution": self.resolution_due if self.sla_paused_at is None else None,
        }
        return {target: due for target, due in dues.items() if due is not None}

    contact: Mapped[Contact | None] = relationship()
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.id"
    )
    tags: Mapped[list[Tag]] = relationship(secondary="conversation_tags", order_by="Tag.name")


class RawRecord(Base):
    """The bytes or payload exactly as fetched, kept even when parsing fails.

    Exactly-once per (connector, external_id): a refetch of the same item is recognised here.
    """

    __tablename__ = "raw_messages"
    __table_args__ = (UniqueConstraint("connector", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(500))
    folder: Mapped[str] = mapped_column(String(300), default="")
    channel: Mapped[str] = mapped_column(String(16))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column()
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Why the message could not be parsed (or was stored raw-only); empty when all went well.
    error: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )

    message: Mapped[Message | None] = relationship()


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_sent", "conversation_id", "sent_at"),
        # What an author sent lately: the auto-replies' hourly cap and per-contact window.
        Index("ix_messages_author_created", "author", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    connector: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(500))
    #: "in" from the customer, "out" an agent's reply, "note" an agent's internal note (never sent).
    direction: Mapped[str] = mapped_column(String(8), default="in")
    #: The agent who wrote an outbound message or a note ("" for the customer's).
    author: Mapped[str] = mapped_column(String(100), default="", server_default="")
    #: An outbound message's way to the customer: queued, sent, delivered, failed, undelivered
    #: ("" for what was not sent by us), and the provider's words about it.
    delivery: Mapped[str] = mapped_column(String(16), default="", server_default="")
    delivery_detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    sender_identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("identities.id", ondelete="SET NULL"), index=True
    )
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(300), default="")
    to_addresses: Mapped[list[str]] = mapped_column(default=list)
    cc_addresses: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    new_text: Mapped[str] = mapped_column(Text, default="")
    quoted_text: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    #: Message-ID without angle brackets; indexed because replies find their parent by it.
    message_id_header: Mapped[str] = mapped_column(String(998), default="", index=True)
    in_reply_to: Mapped[list[str]] = mapped_column(default=list)
    references: Mapped[list[str]] = mapped_column(default=list)
    #: Same mail delivered twice (two of our addresses, two connectors) has the same key.
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: Why this message joined its conversation ("in-reply-to <id>", "subject", "new", ...).
    thread_reason: Mapped[str] = mapped_column(String(300), default="")
    auto_submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    bulk: Mapped[bool] = mapped_column(Boolean, default=False)
    list_mail: Mapped[bool] = mapped_column(Boolean, default=False)
    bounce: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reasons: Mapped[list[str]] = mapped_column(default=list)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parse_errors: Mapped[list[str]] = mapped_column(default=list)
    sent_at: Mapped[datetime | None] = mapped_column()
    received_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id"
    )


class Blob(Base):
    """Content-addressed bytes (SHA-256): an attachment sent a hundred times is stored once.

    In the database rather than on disk so that it commits with the batch, on every server.
    """

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(1000), default="")
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str] = mapped_column(String(500), default="")

    message: Mapped[Message] = relationship(back_populates="attachments")


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class ConversationTag(Base):
    __tablename__ = "conversation_tags"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)


class ContactTag(Base):
    """Tags on a contact (`vip`), set by rules (`tag_contact`) and tested by them."""

    __tablename__ = "contact_tags"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)


class AssignmentPointer(Base):
    """Where a team's round-robin stands: the agent it gave the last conversation to. In the
    store, not in memory, so turns stay fair across restarts and between processes."""

    __tablename__ = "assignment_pointers"

    team: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_agent: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """The audit trail: what happened to a conversation, by whom or which rule, and why."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    # Set objects rather than ids while a batch is in memory: one flush at the end inserts all.
    conversation: Mapped[Conversation | None] = relationship()
    message: Mapped[Message | None] = relationship()


class Cursor(Base):
    """How far a connector got, per scope (folder, channel); advanced only in the commit that
    stores what it covers."""

    __tablename__ = "cursors"

    connector: Mapped[str] = mapped_column(String(100), primary_key=True)
    scope: Mapped[str] = mapped_column(String(300), primary_key=True, default="")
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConnectorLease(Base):
    """Which daemon polls a connector's upstream: several `inbox run` processes can share one
    store, and each account must be polled by one of them at a time (inbox/store/leases.py)."""

    __tablename__ = "connector_leases"

    connector: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: The daemon holding it: host and the id kept in its data_dir (plus a PID for one-off
    #: runs such as `inbox sync`), inbox/store/leases.py.
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: A daemon standing by to take it, and until when that look holds: a holder that cannot
    #: reach the upstream hands the lease over only to a daemon that is there to take it.
    standby_holder: Mapped[str | None] = mapped_column(String(200))
    standby_until: Mapped[datetime | None]


class PingThread(Base):
    """Where an assignment ping was posted in Slack: an agent's message in its thread is their
    reply to the conversation (inbox/service/agent_replies.py)."""

    __tablename__ = "ping_threads"

    channel: Mapped[str] = mapped_column(String(50), primary_key=True)
    ts: Mapped[str] = mapped_column(String(50), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    #: The agent the ping went to.
    agent: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaTimer(Base):
    """When an SLA target comes near or passes: claimed by one daemon's sweep (SKIP LOCKED),
    acted on and deleted in one transaction, so each fires once. `due` is the target's due
    time it was made for: a timer whose target moved or was met is deleted unfired."""

    __tablename__ = "sla_timers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    #: first_response | next_response | resolution
    target: Mapped[str] = mapped_column(String(20))
    #: The policy's escalation step (its index), or -1 for the breach itself.
    step: Mapped[int] = mapped_column(Integer)
    due: Mapped[datetime] = mapped_column()
    fire_at: Mapped[datetime] = mapped_column(index=True)


class OutboxItem(Base):
    """A side effect waiting to leave (a Slack ping, later a reply), written in the same
    transaction as the decision that caused it and sent after the commit."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
