"""The settings of an IMAP connector (connectors/imap.py says what each means).

In a module of their own because the session, the IDLE watcher and the connector all read them:
kept in connectors/imap.py, the two helpers would import the module that imports them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from connectors.base import ConnectorConfig
from connectors.smtp import SmtpConfig
from inbox.secrets import SecretSource

#: RFC 2177: a client should renew its IDLE within 29 minutes, or the server may drop it.
IDLE_LIMIT_SECONDS = 29 * 60


class ImapConfig(ConnectorConfig):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: Path | None = None
    username: str
    auth: Literal["login", "xoauth2"] = "login"
    password: SecretSource | None = None
    token: SecretSource | None = None
    folders: list[str] = Field(default_factory=lambda: ["INBOX"], min_length=1)
    since: date | None = None
    after_ingest: Literal["leave", "seen", "move"] = "leave"
    move_to: str | None = None
    max_message_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    #: Bytes of mail one fetch may hold in memory (besides one message over it, alone).
    batch_bytes: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)
    idle: bool = True
    idle_renew_seconds: float = Field(default=25 * 60, gt=0, le=IDLE_LIMIT_SECONDS)
    #: With IDLE, polling is only the safety net for a watcher that went quiet.
    poll_seconds: float = Field(default=60, gt=0)
    timeout_seconds: float = Field(default=60, gt=0)
    #: Where replies to this mailbox's conversations are handed over (connectors/smtp.py).
    smtp: SmtpConfig | None = None
    #: The Sent folder: a copy of each reply is kept there, and a reply whose SMTP answer
    #: was lost is looked for there (connectors/imap_sent.py). "": neither.
    sent_folder: str = ""
    #: The SMTP server files what it takes into sent_folder itself (Gmail, Microsoft 365).
    server_saves_sent: bool = False

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)

    @model_validator(mode="after")
    def _consistent(self) -> ImapConfig:
        if self.auth == "login" and self.password is None:
            raise ValueError("auth = 'login' needs password (a {file|env|credential} source)")
        if self.auth == "xoauth2" and self.token is None:
            raise ValueError("auth = 'xoauth2' needs token (a {file|env|credential|command})")
        if self.after_ingest == "move" and not self.move_to:
            raise ValueError("after_ingest = 'move' needs move_to (a folder name)")
        if self.move_to and self.move_to in self.folders:
            raise ValueError(f"move_to '{self.move_to}' is one of the folders read")
        return self
