"""What a connector hands to the pipeline: raw messages and the cursor that follows them.

These values cross the boundary between a connector (which knows only its upstream) and the
pipeline (which knows only the store), so they are plain frozen dataclasses with no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Channel = Literal["email", "sms", "chat"]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message exactly as the upstream gave it.

    `external_id` is unique within the connector (a Maildir key, an IMAP UIDVALIDITY:UID, a
    Twilio MessageSid); the store is exactly-once on (connector, external_id).
    """

    connector: str
    external_id: str
    channel: Channel
    payload: bytes
    received_at: datetime
    folder: str = ""
    #: Why the connector could not give the full payload (e.g. over the size cap); the payload
    #: may then be truncated or empty, and the message is stored raw-only with this note.
    note: str = ""


@dataclass(frozen=True, slots=True)
class Batch:
    """Raw messages plus the cursor that is valid once all of them are stored.

    The pipeline commits the messages and `cursor_after` in one transaction, so a crash between
    fetch and commit only means the same batch is fetched again.
    """

    connector: str
    messages: list[RawMessage]
    cursor_scope: str = ""
    cursor_after: str | None = None
    #: Opaque handles the connector needs after the commit (e.g. files to move).
    acknowledge: list[str] = field(default_factory=list)
    #: Messages the connector knows are still to come after this batch in this fetch (None:
    #: it cannot tell). Progress bars use it; nothing else depends on it.
    remaining: int | None = None
