"""Replies and the mailbox's Sent folder, against a real Dovecot and a real SMTP server: the
copy kept for the team's mail clients, and the look-up that decides whether a reply whose SMTP
answer was lost went out (on SQLite: the store's part is tested on both elsewhere)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from connectors.imap import ImapConnector
from connectors.imap_config import ImapConfig
from inbox.outbox.replies import ReplySender
from inbox.routing.reply import write_reply
from inbox.store.db import transaction
from inbox.store.models import Message, OutboxItem
from tests.conftest import Store
from tests.dovecot import Dovecot
from tests.helpers import conversation_of, ingest, mail, make_pipeline, raw
from tests.smtp_server import SmtpServer

PASSWORD_ENV = "INBOX_TEST_IMAP_SENT_PASSWORD"


@pytest.fixture(autouse=True)
def imap_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def connector(dovecot: Dovecot, smtp: SmtpServer, **overrides: Any) -> ImapConnector:
    dovecot.create_folder("Sent")
    values: dict[str, Any] = {
        "name": "mail",
        "type": "imap",
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "none",
        "username": "support",
        "password": {"env": PASSWORD_ENV},
        "idle": False,
        "timeout_seconds": 10,
        "smtp": smtp.settings(),
        "sent_folder": "Sent",
    }
    values.update(overrides)
    return ImapConnector(ImapConfig(**values))


@pytest.fixture
def reply_id(store: Store) -> int:
    ingest(make_pipeline(store), raw(mail(message_id="q1@example.fi")))
    conversation_id = conversation_of(store, "q1@example.fi").id
    with transaction(store.writers) as session:
        return write_reply(session, conversation_id, author="esko", text="Hei!").message_id


def state(store: Store, message_id: int) -> tuple[str, str]:
    with store.readers() as session:
        message = session.get(Message, message_id)
        row = session.scalars(select(OutboxItem).where(OutboxItem.kind == "reply")).one()
        assert message is not None
        return message.delivery, row.status


def sent_ids(dovecot: Dovecot) -> list[tuple[str, bool]]:
    with dovecot.session() as client:
        client.select_folder("Sent", readonly=True)
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", "FLAGS"])
    return [
        (
            data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip(),
            b"\\Seen" in data[b"FLAGS"],
        )
        for data in fetched.values()
    ]


def test_a_sent_reply_is_kept_read_in_the_sent_folder(
    store: Store, dovecot: Dovecot, smtp: SmtpServer, reply_id: int
) -> None:
    ReplySender(store.writers, {"mail": connector(dovecot, smtp).sender()}).run_once()
    assert state(store, reply_id) == ("sent", "sent")
    our_id = smtp.received[0].message["Message-ID"]
    assert sent_ids(dovecot) == [(our_id, True)]


def test_a_lost_answer_is_settled_by_the_servers_own_sent_copy(
    store: Store, dovecot: Dovecot, smtp: SmtpServer, reply_id: int
) -> None:
    """Gmail files what its SMTP server takes: found there, the reply went out."""
    imap = connector(dovecot, smtp, server_saves_sent=True)
    smtp.answer_next("drop")
    sender = ReplySender(store.writers, {"mail": imap.sender()})
    # The server took it and filed it (here by hand, as Gmail would), then the line dropped.
    original = smtp.handler.handle_DATA

    async def and_file(server: Any, session: Any, envelope: Any) -> str:
        dovecot.append(bytes(envelope.original_content), folder="Sent", flags=["\\Seen"])
        return await original(server, session, envelope)

    smtp.handler.handle_DATA = and_file  # type: ignore[method-assign]
    sender.run_once()
    assert state(store, reply_id) == ("sent", "sent")
    assert len(smtp.received) == 1


def test_without_the_servers_copy_a_lost_answer_is_held_for_a_person(
    store: Store, dovecot: Dovecot, smtp: SmtpServer, reply_id: int
) -> None:
    smtp.answer_next("drop")
    ReplySender(store.writers, {"mail": connector(dovecot, smtp).sender()}).run_once()
    assert state(store, reply_id) == ("unsure", "held")
    assert len(smtp.received) == 1
    assert sent_ids(dovecot) == []  # no copy of what may not have gone out
