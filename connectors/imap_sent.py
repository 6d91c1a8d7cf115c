"""The mailbox's Sent folder, for replies sent over SMTP: where a copy of each reply is kept (so
that the team's mail clients show it), and where a reply whose SMTP answer was lost is looked
for by its Message-ID before it is sent again.

Gmail and Microsoft 365 file what their SMTP servers take into Sent themselves
(`server_saves_sent = true`): then nothing is appended, and a reply not found there was not
taken. Elsewhere we append the copy after the server said 250, so a reply missing from Sent
may still have been taken (the process died between the two): the look-up then proves only
that it was sent, never that it was not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from imapclient.imapclient import SEEN

from connectors.imap_session import FAILURES, Credentials, close_session, open_session

if TYPE_CHECKING:
    from connectors.imap_config import ImapConfig

log = structlog.get_logger(__name__)


class SentFolder:
    def __init__(self, config: ImapConfig, credentials: Credentials) -> None:
        self.config = config
        self.credentials = credentials
        self.folder = config.sent_folder
        #: The server files submitted mail into the folder itself.
        self.server_saves = config.server_saves_sent

    def keep(self, message: bytes) -> None:
        """Append our copy (read, as a sent mail is), unless the server does; a failure is
        logged: the reply went out, and the copy is only for people."""
        if self.server_saves:
            return
        try:
            client = open_session(self.config, self.credentials)
            try:
                client.append(self.folder, message, flags=(SEEN,))
            finally:
                close_session(client)
        except FAILURES as error:
            log.warning("sent_copy_not_kept", folder=self.folder, reason=str(error)[:300])

    def holds(self, message_id: str) -> bool | None:
        """Whether a mail with this Message-ID is in the folder; None when the folder cannot
        be read. Found: it was sent. Not found: it was not, only if the server saves."""
        try:
            client = open_session(self.config, self.credentials)
            try:
                client.select_folder(self.folder, readonly=True)
                found = client.search(["HEADER", "Message-ID", f"<{message_id}>"])
            finally:
                close_session(client)
        except FAILURES as error:
            log.warning("sent_folder_unreadable", folder=self.folder, reason=str(error)[:300])
            return None
        if found:
            return True
        return False if self.server_saves else None
