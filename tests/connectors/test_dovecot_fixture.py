"""The Dovecot test server itself: each promise of tests/dovecot.py, checked with a bare
`imapclient.IMAPClient` (not the helper's own `connect`), so that the IMAP connector's tests
can trust what they stand on."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import ssl
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, LoginError

from tests.dovecot import (
    HOST,
    Dovecot,
    DovecotError,
    DovecotNotInstalled,
    find_binary,
    free_port,
    port_open,
)


def message(number: int, subject: str = "Teltan vetoketju rikki") -> bytes:
    return (
        f"From: Aino Virtanen <aino@example.fi>\r\n"
        f"To: support@northwind.example\r\n"
        f"Subject: {subject} {number}\r\n"
        f"Message-ID: <m{number}@example.fi>\r\n"
        f"Date: Mon, 2 Nov 2026 09:{number % 60:02d}:00 +0200\r\n"
        "\r\n"
        f"Viesti numero {number}.\r\n"
    ).encode()


def login(server: Dovecot) -> IMAPClient:
    client = IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    client.login("support", "secret")
    return client


def message_ids(client: IMAPClient) -> list[bytes]:
    """Message-IDs of the selected folder, in UID order."""
    uids = client.search()
    if not uids:
        return []
    fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    key = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
    return [fetched[uid][key].split(b":", 1)[1].strip() for uid in sorted(fetched)]


def listening_addresses(pids: list[int]) -> set[str]:
    """Local addresses of the TCP sockets these processes listen on (from /proc)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue  # a short-lived child that just exited
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(fields[1])
    return addresses


def test_login_sees_delivered_messages_in_delivery_order(dovecot: Dovecot) -> None:
    for number in range(1, 4):
        dovecot.deliver(message(number))
    dovecot.deliver(message(4), flags="SF")

    client = login(dovecot)
    try:
        selected = client.select_folder("INBOX", readonly=True)
        assert selected[b"EXISTS"] == 4
        assert message_ids(client) == [
            b"<m1@example.fi>",
            b"<m2@example.fi>",
            b"<m3@example.fi>",
            b"<m4@example.fi>",
        ]
        flags = client.get_flags(client.search())
        assert [set(flags[uid]) & {b"\\Seen", b"\\Flagged"} for uid in sorted(flags)] == [
            set(),
            set(),
            set(),
            {b"\\Seen", b"\\Flagged"},
        ]
    finally:
        client.logout()
    # The files belong to the mail user (Dovecot will not serve mail as root), or Dovecot could
    # not move them from new/ to cur/.
    mail_user = pwd.getpwnam("dovecot").pw_uid if os.getuid() == 0 else os.getuid()
    files = [*dovecot.maildir.glob("new/*"), *dovecot.maildir.glob("cur/*")]
    assert len(files) == 4
    assert {path.stat().st_uid for path in files} == {mail_user}


def test_wrong_password_is_refused(dovecot: Dovecot) -> None:
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError):
            client.login("support", "not the password")
    finally:
        client.shutdown()


def test_folders_on_disk_are_listed_and_hold_their_mail(dovecot: Dovecot) -> None:
    dovecot.create_folder("Archive.2024")
    dovecot.deliver(message(1), folder="Archive.2024")
    dovecot.deliver(message(2), folder="Käsitelty")  # created on the fly, stored in UTF-7

    assert (dovecot.maildir / ".K&AOQ-sitelty" / "new").is_dir()
    client = login(dovecot)
    try:
        names = {name for _flags, _delimiter, name in client.list_folders()}
        assert {"INBOX", "Archive.2024", "Käsitelty"} <= names
        assert client.select_folder("Archive.2024")[b"EXISTS"] == 1
        assert message_ids(client) == [b"<m1@example.fi>"]
        assert client.select_folder("Käsitelty")[b"EXISTS"] == 1
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_deliver_many_is_fast_and_keeps_the_order(dovecot: Dovecot) -> None:
    started = time.monotonic()
    written = dovecot.deliver_many(message(n) for n in range(5000))
    elapsed = time.monotonic() - started

    assert written == 5000
    assert elapsed < 10, f"deliver_many took {elapsed:.1f} s for 5,000 messages"
    client = login(dovecot)
    try:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 5000
        ids = message_ids(client)
    finally:
        client.logout()
    assert ids == [f"<m{n}@example.fi>".encode() for n in range(5000)]


def test_append_over_imap_returns_the_uid(dovecot: Dovecot) -> None:
    first = dovecot.append(message(1))
    second = dovecot.append(message(2), flags=["\\Seen"])

    assert first is not None and second == first + 1
    client = login(dovecot)
    try:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags([first, second])
    finally:
        client.logout()
    assert b"\\Seen" not in flags[first]
    assert b"\\Seen" in flags[second]


def test_implicit_tls_trusting_the_test_ca(dovecot_tls: Dovecot) -> None:
    context = ssl.create_default_context(cafile=str(dovecot_tls.ca_file))
    client = IMAPClient(HOST, port=dovecot_tls.tls_port, ssl=True, ssl_context=context, timeout=10)
    try:
        client.login("support", "secret")
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        assert client.socket().version() in {"TLSv1.2", "TLSv1.3"}
    finally:
        client.logout()


def test_starttls_on_the_plain_port(dovecot_tls: Dovecot) -> None:
    context = ssl.create_default_context(cafile=str(dovecot_tls.ca_file))
    client = IMAPClient(HOST, port=dovecot_tls.port, ssl=False, timeout=10)
    try:
        assert b"STARTTLS" in client.capabilities()
        client.starttls(context)
        assert isinstance(client.socket(), ssl.SSLSocket)
        client.login("support", "secret")
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_plain_login_without_tls_still_works_when_tls_is_on(dovecot_tls: Dovecot) -> None:
    client = login(dovecot_tls)
    client.logout()


def test_a_certificate_from_an_unknown_ca_is_refused(dovecot_tls: Dovecot) -> None:
    wrong = ssl.create_default_context(cafile=str(dovecot_tls.wrong_ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(HOST, port=dovecot_tls.tls_port, ssl=True, ssl_context=wrong, timeout=10)

    client = IMAPClient(HOST, port=dovecot_tls.port, ssl=False, timeout=10)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(wrong)
    finally:
        with contextlib.suppress(OSError):  # the failed handshake may have closed it already
            client.shutdown()


def test_the_certificate_names_localhost_too(dovecot_tls: Dovecot) -> None:
    context = ssl.create_default_context(cafile=str(dovecot_tls.ca_file))
    client = IMAPClient("localhost", port=dovecot_tls.tls_port, ssl=True, ssl_context=context)
    client.logout()


def test_xoauth2_with_a_granted_token_then_revoked(dovecot_oauth: Dovecot) -> None:
    dovecot_oauth.grant_token("token-1")

    client = IMAPClient(HOST, port=dovecot_oauth.port, ssl=False, timeout=10)
    assert b"AUTH=XOAUTH2" in client.capabilities()
    client.oauth2_login("support", "token-1")
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()
    assert dovecot_oauth.introspected == ["token-1"]

    dovecot_oauth.revoke_token("token-1")
    client = IMAPClient(HOST, port=dovecot_oauth.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
            client.oauth2_login("support", "token-1")
    finally:
        client.shutdown()
    # Refused because Dovecot asked again, not from some cache.
    assert dovecot_oauth.introspected == ["token-1", "token-1"]


def test_xoauth2_with_an_unknown_token_is_refused(dovecot_oauth: Dovecot) -> None:
    dovecot_oauth.grant_token("the-real-one")
    client = IMAPClient(HOST, port=dovecot_oauth.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
            client.oauth2_login("support", "made-up")
    finally:
        client.shutdown()
    assert dovecot_oauth.introspection_count == 1


def test_oauthbearer_and_password_login_on_the_same_server(dovecot_oauth: Dovecot) -> None:
    dovecot_oauth.grant_token("token-2")
    client = IMAPClient(HOST, port=dovecot_oauth.port, ssl=False, timeout=10)
    client.oauthbearer_login("support", "token-2")
    client.logout()

    client = login(dovecot_oauth)
    client.logout()
    # The password went to the passwd-file, not to the token endpoint.
    assert dovecot_oauth.introspected == ["token-2"]


@pytest.mark.parametrize("folder", ["INBOX", "Archive"])
def test_change_uidvalidity_keeps_the_messages(dovecot: Dovecot, folder: str) -> None:
    dovecot.deliver_many([message(n) for n in range(3)], folder=folder)
    client = login(dovecot)
    before = client.select_folder(folder, readonly=True)
    ids_before = message_ids(client)
    client.logout()

    new = dovecot.change_uidvalidity(folder)

    client = login(dovecot)
    try:
        after = client.select_folder(folder, readonly=True)
        assert after[b"UIDVALIDITY"] == new != before[b"UIDVALIDITY"]
        assert after[b"EXISTS"] == 3
        assert message_ids(client) == ids_before
    finally:
        client.logout()


def test_restart_keeps_ports_and_mail(dovecot_tls: Dovecot) -> None:
    dovecot_tls.deliver(message(1))
    port, tls_port = dovecot_tls.port, dovecot_tls.tls_port
    master = dovecot_tls.master_pid()
    assert master is not None

    dovecot_tls.stop()
    assert not port_open(port) and not port_open(tls_port)
    assert not Path(f"/proc/{master}").exists(), "the master must be gone, not a zombie"
    dovecot_tls.start()

    assert (dovecot_tls.port, dovecot_tls.tls_port) == (port, tls_port)
    assert dovecot_tls.master_pid() not in (None, master)
    client = login(dovecot_tls)
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
    finally:
        client.logout()
    dovecot_tls.restart()
    assert (dovecot_tls.port, dovecot_tls.tls_port) == (port, tls_port)
    assert port_open(port) and port_open(tls_port)


def test_stop_ends_open_sessions_too(dovecot: Dovecot) -> None:
    client = login(dovecot)
    client.select_folder("INBOX")

    started = time.monotonic()
    dovecot.stop()
    elapsed = time.monotonic() - started

    # Dovecot's master alone leaves a logged-in session serving its client for 10 s or more.
    assert elapsed < 5, f"stop took {elapsed:.1f} s"
    with pytest.raises((IMAPClientAbortError, OSError)):
        client.noop()
    with contextlib.suppress(OSError):
        client.shutdown()


def test_everything_listens_on_loopback_only(dovecot_tls: Dovecot) -> None:
    addresses = listening_addresses(dovecot_tls.pids())
    # /proc/net/tcp writes 127.0.0.1 as 0100007F and the port in hex.
    assert addresses == {
        f"0100007F:{dovecot_tls.port:04X}",
        f"0100007F:{dovecot_tls.tls_port:04X}",
    }


def test_stop_ends_every_process() -> None:
    server = Dovecot()
    try:
        server.start()
        pids = server.pids()
        assert pids, "Dovecot runs as children of its supervisor"
        server.stop()
        assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    finally:
        server.close()
    assert not server.directory.exists()


def test_a_failed_start_reports_the_log() -> None:
    server = Dovecot()
    try:
        with socket.socket() as taken:
            taken.bind((HOST, free_port()))
            taken.listen()
            server.port = taken.getsockname()[1]  # as after a first start: no new port
            with pytest.raises(DovecotError, match="Address already in use") as failure:
                server.start()
        assert str(server.log_path) in str(failure.value)
        assert not server.running
    finally:
        server.close()


def test_a_missing_binary_says_how_to_install_it() -> None:
    with pytest.raises(DovecotNotInstalled, match=r"apt-get install dovecot-imapd"):
        find_binary("dovecot-that-is-not-there")
