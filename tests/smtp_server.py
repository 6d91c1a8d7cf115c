"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, with STARTTLS or implicit TLS
(certificates from a test CA), AUTH PLAIN/LOGIN, and answers scripted per message: a temporary
451, a permanent 550, or the connection dropped after DATA with the message kept (the case
where the sender cannot know whether it was accepted).

It runs in a thread of the test process (aiosmtpd's Controller) and stops with `stop()`.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
USER = "desk@northwind.example"
PASSWORD = "smtp-test-password"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    #: What to answer to the next messages, in order: "451", "550", "drop" (keep the message,
    #: then close the connection before answering). Empty: accept.
    script: deque[str] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            step = self.script.popleft() if self.script else "accept"
            self.counter += 1
            number = self.counter
        if step == "451":
            return "451 4.3.0 Try again later: the queue is full"
        if step == "550":
            rejected = envelope.rcpt_tos[0]
            return f"550 5.1.1 <{rejected}>: Recipient address rejected: no such user"
        data = bytes(envelope.original_content or b"")
        message = Received(str(envelope.mail_from), list(envelope.rcpt_tos), data)
        with self.lock:
            self.received.append(message)
        if step == "drop" and server.transport is not None:
            server.transport.abort()  # kept, but the client never hears so
            return "250 never said"
        return f"250 2.0.0 Ok: queued as T{number:05d}"


class _Authenticator:
    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        ):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class SmtpServer:
    """Start with `start()`; `security` is "starttls", "tls" or "none"; `auth` requires a login."""

    def __init__(self, directory: Path, *, security: str = "starttls", auth: bool = True) -> None:
        self.directory = directory
        self.security = security
        self.auth = auth
        self.handler = _Handler()
        self.port = _free_port()
        self.ca_file = directory / "smtp-ca.pem"
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        context = self._tls_context() if self.security != "none" else None
        kwargs: dict[str, Any] = {
            "auth_required": self.auth,
            # aiosmtpd sees only STARTTLS as TLS; an implicit TLS connection is one already.
            "auth_require_tls": self.security == "starttls",
            "authenticator": _Authenticator(),
        }
        if self.security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif self.security == "tls":
            kwargs["ssl_context"] = context
        self._controller = Controller(
            self.handler, hostname=HOST, port=self.port, ready_timeout=10, **kwargs
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def answer_next(self, *steps: str) -> None:
        with self.handler.lock:
            self.handler.script.extend(steps)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The `smtp` block of a connector that sends through this server."""
        values: dict[str, Any] = {
            "host": HOST,
            "port": self.port,
            "security": self.security,
            "timeout_seconds": 10,
        }
        if self.security != "none":
            values["ca_file"] = str(self.ca_file)
        if self.auth:
            values.update(username=USER, password={"env": "INBOX_TEST_SMTP_PASSWORD"})
        values.update(overrides)
        return values

    def _tls_context(self) -> ssl.SSLContext:
        authority = trustme.CA(organization_name="Inbox SMTP tests")
        authority.cert_pem.write_to_path(str(self.ca_file))
        certificate = authority.issue_cert(HOST, "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        return context


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
