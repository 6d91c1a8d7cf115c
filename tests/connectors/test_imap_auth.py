"""TLS, STARTTLS and XOAUTH2 against a real Dovecot, with a test CA and a fake token service."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from connectors.imap import ImapConnector
from connectors.imap_session import ImapError
from inbox.store.models import Message
from tests.conftest import Store
from tests.connectors.test_imap import PASSWORD_ENV, imap_config, multilingual, sync
from tests.dovecot import Dovecot
from tests.helpers import count


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def test_implicit_tls_with_a_private_ca(store: Store, dovecot_tls: Dovecot) -> None:
    dovecot_tls.deliver_many(multilingual(3))
    connector = ImapConnector(
        imap_config(
            dovecot_tls, port=dovecot_tls.tls_port, security="tls", ca_file=dovecot_tls.ca_file
        )
    )
    try:
        assert sync(store, connector) == 3
    finally:
        connector.close()
    assert count(store, Message) == 3


def test_starttls_with_a_private_ca(store: Store, dovecot_tls: Dovecot) -> None:
    dovecot_tls.deliver_many(multilingual(2))
    connector = ImapConnector(
        imap_config(dovecot_tls, security="starttls", ca_file=dovecot_tls.ca_file)
    )
    try:
        assert sync(store, connector) == 2
    finally:
        connector.close()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_certificate_from_an_unknown_ca_is_refused_and_said_so(
    dovecot_tls: Dovecot, security: str
) -> None:
    port = dovecot_tls.tls_port if security == "tls" else dovecot_tls.port
    connector = ImapConnector(
        imap_config(dovecot_tls, port=port, security=security, ca_file=dovecot_tls.wrong_ca_file)
    )
    with pytest.raises(ImapError, match=r"TLS certificate of 127\.0\.0\.1:[0-9]+ not trusted"):
        list(connector.fetch({}, 10))


def test_the_system_trust_store_alone_refuses_a_private_ca(dovecot_tls: Dovecot) -> None:
    connector = ImapConnector(imap_config(dovecot_tls, port=dovecot_tls.tls_port, security="tls"))
    with pytest.raises(ImapError, match="not trusted"):
        list(connector.fetch({}, 10))


def _token_command(tmp_path: Path, tokens: list[str]) -> list[str]:
    """A command that prints the next token as OAuth JSON, one per run, and counts its runs."""
    state = tmp_path / "tokens.json"
    state.write_text(json.dumps(tokens), encoding="utf-8")
    script = (
        "import json, sys; p = sys.argv[1]; t = json.load(open(p)); "
        "print(json.dumps({'access_token': t.pop(0), 'expires_in': 3600})); "
        "json.dump(t, open(p, 'w'))"
    )
    return [sys.executable, "-c", script, str(state)]


def test_xoauth2_with_a_token_command_asks_again_when_the_token_is_refused(
    store: Store, dovecot_oauth: Dovecot, tmp_path: Path
) -> None:
    dovecot_oauth.grant_token("token-1")
    dovecot_oauth.deliver_many(multilingual(2))
    command = _token_command(tmp_path, ["token-1", "token-2", "token-3"])
    config = imap_config(dovecot_oauth, auth="xoauth2", password=None, token={"command": command})
    connector = ImapConnector(config)
    try:
        assert sync(store, connector) == 2
        connector.close()
        # The provider revoked the first token before its announced expiry.
        dovecot_oauth.revoke_token("token-1")
        dovecot_oauth.grant_token("token-2")
        dovecot_oauth.deliver_many(multilingual(1, start=2))
        assert sync(store, connector) == 1  # refused once, the command ran again, logged in
    finally:
        connector.close()
    assert count(store, Message) == 3


def test_xoauth2_with_a_refused_token_file_is_a_clear_error(
    dovecot_oauth: Dovecot, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("expired-token\n", encoding="utf-8")
    connector = ImapConnector(
        imap_config(dovecot_oauth, auth="xoauth2", password=None, token={"file": token_file})
    )
    with pytest.raises(ImapError, match="login refused for support") as raised:
        list(connector.fetch({}, 10))
    assert "expired-token" not in str(raised.value)
    # A refreshed file (an external refresher rewrote it) is read at the next connection.
    dovecot_oauth.grant_token("fresh-token")
    token_file.write_text("fresh-token\n", encoding="utf-8")
    try:
        assert list(connector.fetch({}, 10)) == []
    finally:
        connector.close()
