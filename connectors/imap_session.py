"""Opening an authenticated IMAP session: TLS, STARTTLS, LOGIN or XOAUTH2, clear reasons.

Every way a connection can fail becomes an `ImapError` whose message an operator can act on
("TLS certificate of imap.example.com not trusted: unable to get local issuer certificate",
"login refused for support@example.com: [AUTHENTICATIONFAILED] ..."), and never carries the
password or the token.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import TYPE_CHECKING

import imapclient
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from connectors.base import UpstreamError
from inbox.secrets import Secret, SecretError

if TYPE_CHECKING:
    from connectors.imap_config import ImapConfig


class ImapError(UpstreamError):
    """A connection, TLS, login or protocol failure, said for an operator."""


#: What a dropped connection looks like from imapclient: the socket's errors, TLS errors, and
#: imaplib's abort (a BYE or an EOF in the middle of a command).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    IMAPClient.AbortError,
    IMAPClient.Error,
    IMAPClientError,
)


#: Everything a session can fail with, said or not.
FAILURES: tuple[type[BaseException], ...] = (ImapError, *CONNECTION_ERRORS)


class Credentials:
    """The password or token source of one connector, shared by its sessions."""

    def __init__(self, config: ImapConfig) -> None:
        self.config = config
        source = config.password if config.auth == "login" else config.token
        assert source is not None  # the config model requires the one its `auth` needs
        self.secret = Secret(source)


def open_session(config: ImapConfig, credentials: Credentials) -> IMAPClient:
    """A logged-in client, or ImapError with the reason."""
    where = f"{config.host}:{config.effective_port}"
    context = tls_context(config)
    try:
        client = IMAPClient(
            config.host,
            port=config.effective_port,
            ssl=config.security == "tls",
            ssl_context=context,
            timeout=imapclient.SocketTimeout(config.timeout_seconds, config.timeout_seconds),
        )
    except ssl.SSLCertVerificationError as error:
        raise ImapError(f"TLS certificate of {where} not trusted: {error.verify_message}") from None
    except TimeoutError:
        seconds = config.timeout_seconds
        raise ImapError(f"cannot reach {where}: no answer in {seconds:g} s") from None
    except ssl.SSLError as error:
        raise ImapError(f"TLS with {where} failed: {error.reason or error}") from None
    except OSError as error:
        raise ImapError(f"cannot reach {where}: {error.strerror or error}") from None
    try:
        if config.security == "starttls":
            try:
                client.starttls(context)
            except ssl.SSLCertVerificationError as error:
                raise ImapError(
                    f"TLS certificate of {where} not trusted: {error.verify_message}"
                ) from None
            except (IMAPClientError, ssl.SSLError) as error:
                raise ImapError(f"STARTTLS with {where} failed: {error}") from None
        _login(client, config, credentials)
        client.normalise_times = False  # INTERNALDATE with its zone, not in local time
        return client
    except BaseException:
        _quietly_close(client)
        raise


def tls_context(config: ImapConfig) -> ssl.SSLContext | None:
    if config.security == "none":
        return None
    # create_default_context checks the certificate and the host name; a private CA is added
    # with ca_file, never by turning the checks off.
    cafile = str(config.ca_file.expanduser()) if config.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except OSError as error:
        raise ImapError(f"cannot read ca_file {cafile}: {error.strerror or error}") from None


def _login(client: IMAPClient, config: ImapConfig, credentials: Credentials) -> None:
    secret = credentials.secret
    for attempt in (1, 2):
        try:
            value = secret.get()
        except SecretError as error:
            raise ImapError(f"no {_what(config)} for {config.username}: {error}") from None
        try:
            if config.auth == "xoauth2":
                client.oauth2_login(config.username, value)
            else:
                client.login(config.username, value)
            return
        except (LoginError, IMAPClientError) as error:
            reason = _server_text(error)
            if config.auth == "xoauth2" and attempt == 1 and secret.source.command is not None:
                # The token may have expired before the command said it would: ask again once.
                secret.forget()
                continue
            raise ImapError(f"login refused for {config.username}: {reason}") from None
        except CONNECTION_ERRORS as error:
            raise ImapError(
                f"connection lost while logging in as {config.username}: {error}"
            ) from None


def _what(config: ImapConfig) -> str:
    return "OAuth token" if config.auth == "xoauth2" else "password"


def _server_text(error: BaseException) -> str:
    text = str(error)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text[:300] or type(error).__name__


def _quietly_close(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # already gone: nothing left to close
        client.shutdown()


def close_session(client: IMAPClient | None) -> None:
    """LOGOUT if the server still listens, else just the socket."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:
        _quietly_close(client)
