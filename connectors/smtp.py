"""Replies by email: a reply composed as the customer's mail client expects it, handed to an
SMTP server (submission on 587 with STARTTLS, 465 with implicit TLS, or a local MTA).

An email connector (IMAP, Maildir) that has an `smtp` block answers its conversations through
it. Options:

- `host`, `port` (default 587 for `starttls`, 465 for `tls`, 25 for `none`), `security`, and
  `ca_file` for a private CA;
- `username` with `auth`: `login` (the server picks PLAIN or LOGIN) with `password`, or
  `xoauth2` with `token`, both secret sources like IMAP's; no `username`: no authentication (a
  local MTA);
- `from_address` (default: the address the customer wrote to) and `from_name`, the display name;
- `quote` (default false): the customer's message, quoted below the reply with its "On ...,
  X wrote:" line, as mail clients do;
- `markdown` (default true): a reply written in Markdown (emphasis, lists, links, headings,
  quotes, code) also goes as HTML, rendered with raw HTML escaped, beside the text as written.

What the customer receives: our own Message-ID (it carries the conversation's token, so their
answer threads even when their client drops References), In-Reply-To their last message,
References the chain, `Re: ` and the original subject, `Auto-Submitted: no` (a person wrote it:
their auto-responder may answer), text/plain in UTF-8, and an HTML alternative when given.

Exactly once: each SMTP reply is classified (4xx: later; 5xx: never, with the server's words);
a connection lost after the message was handed over (after DATA, before the server's answer)
is `unsure`, and the outbox does not send it again blindly (connectors/base.py, SendFailed).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import SMTPUTF8 as SMTPUTF8_POLICY
from email.utils import formatdate
from pathlib import Path
from typing import Literal, Protocol

from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.base import Delivery, Outgoing, SendFailed
from inbox.secrets import Secret, SecretError, SecretSource

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class SmtpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: Path | None = None
    username: str = ""
    auth: Literal["login", "xoauth2"] = "login"
    password: SecretSource | None = None
    token: SecretSource | None = None
    from_address: str = ""
    from_name: str = ""
    timeout_seconds: float = Field(default=30, gt=0)
    markdown: bool = True
    quote: bool = False

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @model_validator(mode="after")
    def _consistent(self) -> SmtpConfig:
        if self.username and self.auth == "login" and self.password is None:
            raise ValueError("smtp: auth = 'login' needs password (a {file|env|credential})")
        if self.username and self.auth == "xoauth2" and self.token is None:
            raise ValueError("smtp: auth = 'xoauth2' needs token (a {file|env|credential|command})")
        return self


def compose(outgoing: Outgoing, config: SmtpConfig) -> EmailMessage:
    """The reply as it goes on the wire (headers folded and encoded by the SMTP policy)."""
    message = EmailMessage(policy=SMTP_POLICY)
    sender = config.from_address or outgoing.from_address
    message["From"] = Address(config.from_name, addr_spec=sender) if config.from_name else sender
    message["To"] = (
        Address(outgoing.to_name, addr_spec=outgoing.to) if outgoing.to_name else outgoing.to
    )
    message["Subject"] = reply_subject(outgoing.subject)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{outgoing.message_id}>"
    if outgoing.in_reply_to:
        message["In-Reply-To"] = f"<{outgoing.in_reply_to}>"
    if outgoing.references:
        message["References"] = " ".join(f"<{ref}>" for ref in outgoing.references)
    if outgoing.automatic:
        # RFC 3834, and what Exchange honours: no out-of-office answer to an auto-reply.
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    else:
        message["Auto-Submitted"] = "no"
    text = outgoing.text
    if config.quote and outgoing.quoted:
        text = f"{text.rstrip()}\n\n{outgoing.quoted}\n"
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    html = outgoing.html or (markdown_html(text) if config.markdown else "")
    if html:
        message.add_alternative(html, subtype="html", charset="utf-8")
    return message


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True})
#: Rendered tags that plain prose also gives: with only these, the text was not Markdown.
_PLAIN_TAGS = re.compile(r"</?(?:p|br ?/?)>")


def markdown_html(text: str) -> str:
    """The HTML of a reply written in Markdown, or "" for plain prose (which needs none).
    Raw HTML in the text is escaped, never passed on: an agent's paste cannot inject markup."""
    rendered = _MARKDOWN.render(text)
    if not re.search(r"<[a-z]", _PLAIN_TAGS.sub("", rendered)):
        return ""
    return (
        f'<!DOCTYPE html>\n<html><body style="font-family: sans-serif">\n{rendered}</body></html>\n'
    )


def reply_subject(subject: str) -> str:
    """`Re: ` once: a customer's `Re: Re: AW:` is not made longer."""
    stripped = subject.strip()
    if stripped.lower().startswith(("re:", "re :")):
        return stripped
    return f"Re: {stripped}" if stripped else "Re: your message"


class SentBox(Protocol):
    """Where a sent reply's copy is kept and looked for (connectors/imap_sent.py)."""

    def keep(self, message: bytes) -> None: ...

    def holds(self, message_id: str) -> bool | None: ...


class SmtpSender:
    """One connection per reply: replies are few, and a connection kept open would be dropped
    by the server's idle timeout between them anyway."""

    def __init__(self, config: SmtpConfig, *, sent: SentBox | None = None) -> None:
        self.config = config
        #: The mailbox's Sent folder, when the connector has one (connectors/imap_sent.py).
        self.sent = sent
        source = config.password if config.auth == "login" else config.token
        self.secret = Secret(source) if config.username and source is not None else None

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.effective_port}"

    def send(self, outgoing: Outgoing) -> Delivery:
        message = compose(outgoing, self.config)
        sender = str(message["From"].addresses[0].addr_spec)
        client = self._connect()
        try:
            self._login(client)
            international = not (sender.isascii() and outgoing.to.isascii())
            _check(client.mail(sender, ["SMTPUTF8"] if international else []), "MAIL FROM")
            _check(client.rcpt(outgoing.to), f"RCPT TO {outgoing.to}")
            # An address with non-ASCII in it (RFC 6531) goes as UTF-8; the rest as 7-bit MIME.
            payload = message.as_bytes(policy=SMTPUTF8_POLICY if international else SMTP_POLICY)
            try:
                code, answer = client.data(payload)
            except smtplib.SMTPResponseException as error:
                raise _refused(error.smtp_code, error.smtp_error, "DATA") from None
            except (smtplib.SMTPServerDisconnected, OSError) as error:
                raise SendFailed(
                    f"{self.where} dropped the connection after the message was handed over "
                    f"({error or 'no answer'}): it may have been accepted",
                    temporary=True,
                    unsure=True,
                ) from None
            if code >= 400:
                raise _refused(code, answer, "DATA")
            said = _text(answer)
            delivery = Delivery(provider_id=_queue_id(said), answer=f"{code} {said}"[:500])
        except smtplib.SMTPResponseException as error:
            raise _refused(error.smtp_code, error.smtp_error, "the session") from None
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise SendFailed(
                f"{self.where} dropped the connection: {error}", temporary=True
            ) from None
        finally:
            _quietly_quit(client)
        if self.sent is not None:
            self.sent.keep(payload)
        return delivery

    def was_sent(self, outgoing: Outgoing) -> bool | None:
        """An SMTP server keeps no record we can ask for; the mailbox's Sent folder may."""
        if self.sent is None:
            return None
        return self.sent.holds(outgoing.message_id)

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        context = _tls_context(config)
        try:
            if config.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    config.host,
                    config.effective_port,
                    timeout=config.timeout_seconds,
                    context=context,
                )
            else:
                client = smtplib.SMTP(
                    config.host, config.effective_port, timeout=config.timeout_seconds
                )
            client.ehlo()
            if config.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            return client
        except ssl.SSLCertVerificationError as error:
            raise SendFailed(
                f"TLS certificate of {self.where} not trusted: {error.verify_message}",
                temporary=True,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise SendFailed(f"{self.where} does not offer STARTTLS", temporary=True) from None
        except smtplib.SMTPResponseException as error:
            raise _refused(error.smtp_code, error.smtp_error, "the greeting") from None
        except TimeoutError:
            raise SendFailed(
                f"cannot reach {self.where}: no answer in {config.timeout_seconds:g} s",
                temporary=True,
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise SendFailed(f"cannot reach {self.where}: {reason}", temporary=True) from None

    def _login(self, client: smtplib.SMTP) -> None:
        config = self.config
        if self.secret is None:
            return
        try:
            value = self.secret.get()
        except SecretError as error:
            raise SendFailed(
                f"no SMTP secret for {config.username}: {error}", temporary=True
            ) from None
        try:
            if config.auth == "xoauth2":
                initial = f"user={config.username}\x01auth=Bearer {value}\x01\x01"
                client.auth("XOAUTH2", lambda challenge=None: "" if challenge else initial)
            else:
                client.login(config.username, value)
        except smtplib.SMTPAuthenticationError as error:
            if config.auth == "xoauth2":
                self.secret.forget()  # an expired token: the next attempt asks again
            said = _text(error.smtp_error)
            raise SendFailed(
                f"{self.where} refused the login of {config.username}: {error.smtp_code} {said}",
                temporary=True,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise SendFailed(
                f"{self.where} offers no AUTH for {config.username}", temporary=True
            ) from None


def _check(reply: tuple[int, bytes], step: str) -> None:
    code, answer = reply
    if code >= 400:
        raise _refused(code, answer, step)


def _refused(code: int, answer: bytes | str, step: str) -> SendFailed:
    return SendFailed(f"SMTP {step}: {code} {_text(answer)}"[:500], temporary=400 <= code < 500)


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer


def _queue_id(answer: str) -> str:
    """Postfix, Exim and most others say "queued as ID" (Exim: "id=ID"); else the answer."""
    lowered = answer.lower()
    for marker in ("queued as ", "id="):
        at = lowered.find(marker)
        if at >= 0:
            return answer[at + len(marker) :].split()[0].strip("<>()")[:200]
    return answer[:200]


def _tls_context(config: SmtpConfig) -> ssl.SSLContext | None:
    if config.security == "none":
        return None
    cafile = str(config.ca_file.expanduser()) if config.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except OSError as error:
        raise SendFailed(
            f"cannot read ca_file {cafile}: {error.strerror or error}", temporary=True
        ) from None


def _quietly_quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
