"""What a rule can look at: one message, its conversation, its contact, and the time.

Facts are a snapshot taken before the rules run: every rule of a pass sees the same facts, so a
rule's outcome never depends on what an earlier rule in the same pass did (only conflicts and
`stop` depend on order; see rules/README.md). Built by the pipeline from the store, and by
`inbox rules test` from a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from inbox.normalize.types import NormalizedMessage


@dataclass(frozen=True, slots=True)
class Facts:
    now: datetime
    channel: str = "email"
    connector: str = ""
    from_address: str = ""
    from_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""
    #: What the customer just wrote: the new text of a reply, without quotes and signature.
    body: str = ""
    #: Lowercased header names to their decoded values.
    headers: Mapping[str, str] = field(default_factory=dict)
    attachment_types: tuple[str, ...] = ()
    attachment_names: tuple[str, ...] = ()
    language: str = ""
    auto_submitted: bool = False
    bulk: bool = False
    # The conversation, as it is with this message in it.
    new_conversation: bool = True
    status: str = "open"
    tags: frozenset[str] = frozenset()
    priority: str = "normal"
    assignee: str = ""
    team: str = ""
    message_count: int = 1
    age: timedelta = timedelta(0)
    # The contact.
    contact_known: bool = False
    #: Conversations the contact had before this one.
    contact_conversations: int = 0
    contact_tags: frozenset[str] = frozenset()

    @property
    def from_domain(self) -> str:
        return self.from_address.rpartition("@")[2] if "@" in self.from_address else ""


def message_facts(message: NormalizedMessage, now: datetime, **conversation: object) -> Facts:
    """Facts of a normalized message; the conversation and contact parts from keywords."""
    sender = message.sender
    return Facts(
        now=now,
        channel=message.channel,
        from_address=sender.address if sender else "",
        from_name=sender.name if sender else "",
        to=tuple(a.address for a in message.to),
        cc=tuple(a.address for a in message.cc),
        subject=message.subject,
        body=message.new_text or message.text,
        headers={name.lower(): value for name, value in message.headers},
        attachment_types=tuple(a.content_type for a in message.attachments),
        attachment_names=tuple(a.filename for a in message.attachments if a.filename),
        language=message.language,
        auto_submitted=message.flags.auto_submitted,
        bulk=message.flags.bulk or message.flags.list_mail,
        **conversation,  # type: ignore[arg-type]
    )
