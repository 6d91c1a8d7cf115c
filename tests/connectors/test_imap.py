"""The IMAP connector against a real Dovecot: sync, after-ingest actions, renumbering, faults."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from connectors.imap import ImapConfig, ImapConnector
from connectors.imap_session import ImapError
from connectors.maildir import MaildirConfig, MaildirConnector
from inbox.config import Settings
from inbox.pipeline.ingest import Pipeline
from inbox.service.daemon import Daemon
from inbox.store.models import Message, RawRecord
from tests.conftest import BACKENDS, Store
from tests.dovecot import Dovecot
from tests.helpers import count, mail, parsed
from tests.processes import wait_for

PASSWORD_ENV = "INBOX_TEST_IMAP_PASSWORD"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def imap_config(server: Dovecot, **overrides: Any) -> ImapConfig:
    values: dict[str, Any] = {
        "name": "mail",
        "type": "imap",
        "host": server.host,
        "port": server.port,
        "security": "none",
        "username": "support",
        "password": {"env": PASSWORD_ENV},
        "idle": False,
        "timeout_seconds": 10,
    }
    values.update(overrides)
    return ImapConfig(**values)


def settings_for(store: Store, **ingest: Any) -> Settings:
    return Settings(database_url=store.url, ingest={"workers": 0, "batch_size": 50, **ingest})


def sync(store: Store, connector: ImapConnector, settings: Settings | None = None) -> int:
    """What one poll of the daemon does; returns the messages fetched."""
    settings = settings or settings_for(store)
    pipeline = Pipeline(store.readers, store.writers, settings)
    fetched = 0
    try:
        batches = connector.fetch(pipeline.cursors(connector.name), settings.ingest.batch_size)
        for batch, _ in pipeline.ingest_many(batches):
            connector.acknowledge(batch)
            fetched += len(batch.messages)
    finally:
        pipeline.close()
    return fetched


def subjects(store: Store) -> list[str]:
    with store.readers() as session:
        return sorted(session.scalars(select(Message.subject)))


def server_view(server: Dovecot, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
    """UID -> flags, as a person's mail client would see the folder."""
    with IMAPClient(server.host, port=server.port, ssl=False) as client:
        client.login("support", "secret")
        client.select_folder(folder, readonly=True)
        uids = client.search()
        if not uids:
            return {}
        return {uid: data[b"FLAGS"] for uid, data in client.fetch(uids, ["FLAGS"]).items()}


def multilingual(n: int, start: int = 0) -> Iterator[bytes]:
    """Mail as customers send it: several languages and charsets."""
    samples = [
        ("Aino <aino@example.fi>", "Lasku on väärin", "Hei, laskussa on virhe.", "iso-8859-1"),
        ("Νίκος <nikos@example.gr>", "Πρόβλημα με την παραγγελία", "Καλησπέρα σας.", "iso-8859-7"),
        ("Ольга <olga@example.ru>", "Срочно: заказ не пришёл", "Здравствуйте!", "koi8-r"),
        ("Mart <mart@example.ee>", "Tellimus hilineb", "Tere, kus mu pakk on?", "utf-8"),
    ]
    for number in range(start, start + n):
        sender, subject, body, charset = samples[number % len(samples)]
        message = EmailMessage()
        message["From"] = sender
        message["To"] = "support@example.com"
        message["Subject"] = f"{subject} #{number}"
        message["Message-ID"] = f"<imap-{number}@example.test>"
        message.set_content(f"{body}\n\nTilaus {number}\n", charset=charset)
        yield bytes(message)


@BACKENDS
def test_initial_then_incremental_sync_stores_each_message_once_and_marks_nothing_read(
    store: Store, dovecot: Dovecot
) -> None:
    dovecot.deliver_many(multilingual(30))
    connector = ImapConnector(imap_config(dovecot))
    try:
        assert sync(store, connector) == 30
        assert count(store, Message) == 30
        assert "Срочно: заказ не пришёл #2" in subjects(store)
        assert "Πρόβλημα με την παραγγελία #1" in subjects(store)
        # Nothing new: nothing fetched, nothing stored twice.
        assert sync(store, connector) == 0
        dovecot.deliver_many(multilingual(5, start=30))
        assert sync(store, connector) == 5
    finally:
        connector.close()
    assert count(store, Message) == count(store, RawRecord) == 35
    flags = server_view(dovecot)
    assert len(flags) == 35
    assert not any(b"\\Seen" in f for f in flags.values()), "reading must not mark mail read"


def test_since_limits_the_first_sync_by_arrival_date(store: Store, dovecot: Dovecot) -> None:
    old = [*multilingual(3, start=100)]
    new = [*multilingual(2, start=200)]
    dovecot.deliver_many(old)
    for path in (dovecot.maildir / "new").iterdir():
        os.utime(path, (1_600_000_000, 1_600_000_000))  # INTERNALDATE: September 2020
    dovecot.deliver_many(new)
    connector = ImapConnector(imap_config(dovecot, since="2024-01-01"))
    try:
        assert sync(store, connector) == 2
    finally:
        connector.close()
    assert all("#2" in subject for subject in subjects(store))


def test_after_ingest_seen_flags_what_was_stored(store: Store, dovecot: Dovecot) -> None:
    dovecot.deliver_many(multilingual(7))
    connector = ImapConnector(imap_config(dovecot, after_ingest="seen"))
    try:
        sync(store, connector, settings_for(store, batch_size=3))
    finally:
        connector.close()
    flags = server_view(dovecot)
    assert len(flags) == 7 and all(b"\\Seen" in f for f in flags.values())


def test_after_ingest_move_empties_the_inbox_into_the_target(
    store: Store, dovecot: Dovecot
) -> None:
    dovecot.deliver_many(multilingual(12))
    connector = ImapConnector(imap_config(dovecot, after_ingest="move", move_to="Processed"))
    try:
        sync(store, connector, settings_for(store, batch_size=5))
        dovecot.deliver_many(multilingual(1, start=50))
        sync(store, connector)
    finally:
        connector.close()
    assert server_view(dovecot) == {}
    assert len(server_view(dovecot, "Processed")) == 13
    assert count(store, Message) == 13


def test_a_new_uidvalidity_refetches_the_folder_without_storing_duplicates(
    store: Store, dovecot: Dovecot
) -> None:
    dovecot.deliver_many(multilingual(20))
    connector = ImapConnector(imap_config(dovecot))
    try:
        assert sync(store, connector) == 20
        connector.close()
        dovecot.change_uidvalidity()
        dovecot.deliver_many(multilingual(3, start=20))
        assert sync(store, connector) == 23  # the whole folder again: it was renumbered
    finally:
        connector.close()
    assert count(store, Message) == count(store, RawRecord) == 23


def test_a_message_over_the_cap_is_kept_raw_only_with_its_header(
    store: Store, dovecot: Dovecot
) -> None:
    big = mail(subject="Liite", body="x" * 20_000 + "\n", message_id="big@example.test")
    dovecot.deliver_many([big, *multilingual(2)])
    connector = ImapConnector(imap_config(dovecot, max_message_bytes=4096))
    try:
        assert sync(store, connector) == 3
    finally:
        connector.close()
    with store.readers() as session:
        records = list(session.scalars(select(RawRecord).where(RawRecord.message_id.is_(None))))
    assert len(records) == 1
    record = records[0]
    assert b"Message-ID: <big@example.test>" in record.payload
    assert len(record.payload) < 1000  # the header only: the body stays on the server
    assert "over max_message_bytes" in (record.error or "")
    assert count(store, Message) == 2


def test_wrong_password_is_a_clear_error_that_never_shows_the_password(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    connector = ImapConnector(imap_config(dovecot))
    with pytest.raises(ImapError, match="login refused for support") as raised:
        list(connector.fetch({}, 10))
    assert "not-the-password" not in str(raised.value)


def test_an_unreachable_server_is_a_clear_error(dovecot: Dovecot) -> None:
    dovecot.stop()
    connector = ImapConnector(imap_config(dovecot))
    with pytest.raises(ImapError, match=f"cannot reach 127.0.0.1:{dovecot.port}"):
        list(connector.fetch({}, 10))


def _run_daemon(daemon: Daemon) -> threading.Thread:
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return thread


def test_a_failing_login_never_blocks_another_connector(
    store: Store, dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    maildir = tmp_path / "local"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.local").write_bytes(mail(message_id="local@example.test"))
    settings = settings_for(store)
    daemon = Daemon(
        settings,
        [
            ImapConnector(imap_config(dovecot)),
            MaildirConnector(MaildirConfig(name="local", type="maildir", path=maildir)),
        ],
    )
    thread = _run_daemon(daemon)
    try:
        wait_for(lambda: count(store, Message) == 1, "the Maildir's message", timeout=20)
        wait_for(lambda: daemon.states[0].failures > 0, "the IMAP failure", timeout=20)
        assert "login refused" in daemon.states[0].last_error
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)
    assert not thread.is_alive()


def test_a_server_that_never_answers_holds_back_only_its_own_connector(
    store: Store, tmp_path: Path
) -> None:
    maildir = tmp_path / "local"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections complete; no greeting ever comes
        stuck = ImapConfig(
            name="mail",
            type="imap",
            host="127.0.0.1",
            port=silent.getsockname()[1],
            security="none",
            username="support",
            password={"env": PASSWORD_ENV},
            idle=False,
            timeout_seconds=10,
        )
        local = MaildirConfig(name="local", type="maildir", path=maildir, poll_seconds=0.2)
        daemon = Daemon(settings_for(store), [ImapConnector(stuck), MaildirConnector(local)])
        thread = _run_daemon(daemon)
        try:
            time.sleep(0.5)  # the IMAP connector is now waiting for its greeting
            (maildir / "new" / "1.local").write_bytes(mail(message_id="local@example.test"))
            started = time.monotonic()
            wait_for(lambda: count(store, Message) == 1, "the Maildir's message", timeout=10)
            assert time.monotonic() - started < 5
            assert daemon.states[0].last_success == 0  # still waiting on the silent server
        finally:
            daemon.stopping.set()
            daemon.wake.set()
            thread.join(60)
        assert not thread.is_alive()


def test_server_stopped_and_restarted_during_a_sync_loses_and_doubles_nothing(
    store: Store, dovecot: Dovecot
) -> None:
    total = 3000
    dovecot.deliver_many(multilingual(total))
    settings = settings_for(store, batch_size=10)
    daemon = Daemon(settings, [ImapConnector(imap_config(dovecot, poll_seconds=0.5))])
    thread = _run_daemon(daemon)
    try:
        wait_for(lambda: count(store, RawRecord) >= 100, "the sync to start", timeout=60)
        began = time.monotonic()
        dovecot.stop()
        stopped_at = count(store, RawRecord)
        print(f"stopped at {stopped_at} in {time.monotonic() - began:.2f} s")
        wait_for(lambda: daemon.states[0].failures > 0, "the connector to notice", timeout=30)
        said = daemon.states[0].last_error  # in words, not an exception's repr
        assert "failed" in said or "cannot reach" in said, said
        dovecot.start()
        wait_for(lambda: count(store, RawRecord) == total, "the sync to finish", timeout=120)
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)
    assert stopped_at < total, "the server stopped after the sync ended: nothing was tested"
    with store.readers() as session:
        ids = list(session.scalars(select(RawRecord.external_id)))
        headers = list(session.scalars(select(Message.message_id_header)))
    assert len(ids) == len(set(ids)) == total
    assert len(headers) == len(set(headers)) == total


def test_internaldate_becomes_the_received_time(store: Store, dovecot: Dovecot) -> None:
    dovecot.deliver_many(multilingual(1))
    (path,) = (dovecot.maildir / "new").iterdir()
    os.utime(path, (1_767_225_600, 1_767_225_600))  # 2026-01-01 00:00 UTC
    connector = ImapConnector(imap_config(dovecot))
    try:
        sync(store, connector)
    finally:
        connector.close()
    with store.readers() as session:
        received = session.scalar(select(func.min(RawRecord.received_at)))
    assert received is not None
    assert received.replace(tzinfo=UTC) == datetime(2026, 1, 1, tzinfo=UTC)


def test_without_move_the_server_gets_copy_then_expunge(store: Store, dovecot_old: Dovecot) -> None:
    dovecot_old.deliver_many(multilingual(6))
    connector = ImapConnector(imap_config(dovecot_old, after_ingest="move", move_to="Done"))
    try:
        with dovecot_old.session() as client:
            assert not client.has_capability("MOVE")
        sync(store, connector, settings_for(store, batch_size=4))
    finally:
        connector.close()
    assert server_view(dovecot_old) == {}
    assert len(server_view(dovecot_old, "Done")) == 6


def test_without_uidplus_a_move_expunges_only_when_no_one_else_marked_mail_deleted(
    store: Store, dovecot_oldest: Dovecot, log_lines: io.StringIO
) -> None:
    server = dovecot_oldest
    server.deliver_many(multilingual(2, start=100))
    for path in (server.maildir / "new").iterdir():
        os.utime(path, (1_600_000_000, 1_600_000_000))  # before `since`: not ours to fetch
    with server.session() as client:
        assert not client.has_capability("UIDPLUS")
        client.select_folder("INBOX")
        [kept, taken_back] = client.search()
        # A person deleted one in a mail client that does not expunge, and may take it back.
        client.add_flags([kept], [rb"\Deleted"])
    server.deliver_many(multilingual(3))
    connector = ImapConnector(
        imap_config(server, since="2024-01-01", after_ingest="move", move_to="Done")
    )
    try:
        sync(store, connector)
        left = server_view(server)
        assert len(server_view(server, "Done")) == 3
        # Nothing expunged: the person's deleted mail is still there, and ours stay marked.
        assert set(left) >= {kept, taken_back} and len(left) == 5
        assert all(rb"\Deleted" in flags for uid, flags in left.items() if uid != taken_back)
        [skipped] = [line for line in parsed(log_lines) if line["event"] == "imap_expunge_skipped"]
        assert (skipped["connector"], skipped["others_marked_deleted"]) == ("mail", 1)

        with server.session() as client:  # the person takes it back: ours are all then
            client.select_folder("INBOX")
            client.remove_flags([kept], [rb"\Deleted"])
        server.deliver_many(multilingual(1, start=10))
        sync(store, connector)
    finally:
        connector.close()
    assert set(server_view(server)) == {kept, taken_back}
    assert len(server_view(server, "Done")) == 4


def test_several_folders_each_with_its_own_cursor(store: Store, dovecot: Dovecot) -> None:
    dovecot.create_folder("Asiakkaat")
    dovecot.deliver_many(multilingual(4))
    dovecot.deliver_many(multilingual(3, start=10), folder="Asiakkaat")
    connector = ImapConnector(imap_config(dovecot, folders=["INBOX", "Asiakkaat"]))
    pipeline = Pipeline(store.readers, store.writers, settings_for(store))
    try:
        assert sync(store, connector) == 7
        dovecot.deliver_many(multilingual(2, start=20), folder="Asiakkaat")
        assert sync(store, connector) == 2
        cursors = pipeline.cursors("mail")
    finally:
        connector.close()
        pipeline.close()
    assert set(cursors) == {"INBOX", "Asiakkaat"}
    with store.readers() as session:
        folders = sorted(session.scalars(select(RawRecord.folder)))
    assert folders == ["Asiakkaat"] * 5 + ["INBOX"] * 4


def test_a_server_that_never_answers_times_out_with_a_clear_reason() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the connection; nobody ever writes a greeting
        port = silent.getsockname()[1]
        config = ImapConfig(
            name="mail",
            type="imap",
            host="127.0.0.1",
            port=port,
            security="none",
            username="support",
            password={"env": PASSWORD_ENV},
            timeout_seconds=0.5,
        )
        started = time.monotonic()
        reason = rf"cannot reach 127\.0\.0\.1:{port}: no answer in 0\.5 s"
        with pytest.raises(ImapError, match=reason):
            list(ImapConnector(config).fetch({}, 10))
        assert time.monotonic() - started < 5


def test_a_long_first_sync_takes_turns_with_the_other_connectors(
    store: Store, dovecot: Dovecot, tmp_path: Path
) -> None:
    total = 2000
    dovecot.deliver_many(multilingual(total))
    maildir = tmp_path / "local"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.local").write_bytes(mail(message_id="local@example.test"))
    imap = ImapConnector(imap_config(dovecot))
    local = MaildirConnector(MaildirConfig(name="local", type="maildir", path=maildir))
    daemon = Daemon(settings_for(store, batch_size=10), [imap, local])
    thread = _run_daemon(daemon)
    try:
        wait_for(lambda: daemon.states[1].totals.stored == 1, "the Maildir's message", timeout=60)
        imap_done_then = daemon.states[0].totals.stored
        wait_for(lambda: daemon.states[0].totals.stored == total, "the IMAP sync", timeout=120)
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)
    assert imap_done_then < total, "the Maildir waited for the whole IMAP backlog"
    assert count(store, Message) == total + 1
