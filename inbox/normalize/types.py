"""The normalized form of a message, the same for every channel.

Produced by the pure normalizers in this package and consumed by threading and the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: display name plus address, already normalized (lowercase, IDNA domain).

    `address` is what matches a sender to one identity; `written` keeps the local part as the
    sender wrote it (`"John.Doe."@docomo.ne.jp`) for what people read, where it differs."""

    address: str
    name: str = ""
    written: str = ""

    @property
    def shown(self) -> str:
        return self.written or self.address


@dataclass(frozen=True, slots=True)
class NormalizedAttachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    content: bytes = field(repr=False)
    inline: bool = False
    content_id: str = ""


@dataclass(frozen=True, slots=True)
class AutoFlags:
    """Why a message is not from a human waiting for an answer (RFC 3834 and friends).

    Auto-submitted, bulk, list and bounce mail never reopens a conversation and never triggers
    auto-replies; `reasons` says which header or sender decided it.
    """

    auto_submitted: bool = False
    bulk: bool = False
    list_mail: bool = False
    bounce: bool = False
    reasons: tuple[str, ...] = ()

    @property
    def automatic(self) -> bool:
        return self.auto_submitted or self.bulk or self.list_mail or self.bounce


@dataclass(frozen=True, slots=True)
class NormalizedMessage:
    """A parsed message. Never half-built: fields that could not be read are empty and the
    reason is in `errors`, so the message is still stored and visible."""

    channel: str
    sender: Address | None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    subject: str = ""
    sent_at: datetime | None = None
    message_id: str = ""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    #: The whole readable text (text/plain, else HTML turned into text).
    text: str = ""
    #: What the sender just wrote, without quoted history or signature.
    new_text: str = ""
    quoted_text: str = ""
    signature: str = ""
    html: str = ""
    language: str = ""
    attachments: tuple[NormalizedAttachment, ...] = ()
    flags: AutoFlags = AutoFlags()
    #: Selected headers kept for rules ("list-id", "x-mailer", ...), lowercase names.
    headers: tuple[tuple[str, str], ...] = ()
    #: Hash of the content that identifies the same mail delivered twice (Message-ID plus
    #: body), hex SHA-256.
    content_hash: str = ""
    errors: tuple[str, ...] = ()
    #: How the sender's address is known: "email", "phone" (E.164) or "slack" (a user id).
    sender_kind: str = "email"
    #: An email address the sender is also known by (a Slack profile's): a new chat or SMS
    #: sender with one joins the contact that already writes from it.
    sender_email: str = ""
    #: SMS and chat: the channel's own thread ("slack:C123:1700000000.000100"); messages with
    #: the same key belong to one conversation while it is open. Empty for email.
    thread_key: str = ""
    #: An edit or a deletion of an earlier message: ("edited" | "deleted", its external id).
    #: Recorded on that message's conversation, never a message of its own.
    revision: tuple[str, str] | None = None
