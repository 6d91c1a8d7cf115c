"""Replies leave through the outbox to a real SMTP server, exactly once, on SQLite and
PostgreSQL: what the customer receives, what the agent sees on the message, and what happens
when the server says later, says never, or drops the connection after taking the message."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connectors.smtp import SmtpConfig, SmtpSender
from inbox.cli import main
from inbox.outbox.replies import LEASE, ReplySender
from inbox.routing.reply import write_reply
from inbox.store.db import transaction
from inbox.store.models import Message, OutboxItem
from tests.conftest import BACKENDS, Store
from tests.helpers import Clock, conversation_of, ingest, mail, make_pipeline, raw
from tests.smtp_server import PASSWORD, SmtpServer

pytestmark = BACKENDS

ANSWER = "Hei Aino,\n\nuusi vetoketju lähtee huomenna.\n\nEsko"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    monkeypatch.setenv("INBOX_TEST_SMTP_PASSWORD", PASSWORD)
    with SmtpServer(tmp_path) as running:
        yield running


@pytest.fixture
def reply_id(store: Store) -> int:
    ingest(make_pipeline(store), raw(mail(message_id="q1@example.fi")))
    conversation_id = conversation_of(store, "q1@example.fi").id
    with transaction(store.writers) as session:
        return write_reply(session, conversation_id, author="esko", text=ANSWER).message_id


def sender_for(store: Store, server: SmtpServer, clock: Clock) -> ReplySender:
    smtp = SmtpSender(SmtpConfig(**server.settings(from_name="Northwind Support")))
    return ReplySender(store.writers, {"mail": smtp}, clock=clock)


def stored(store: Store, message_id: int) -> tuple[Message, OutboxItem]:
    with store.readers() as session:
        message = session.get(Message, message_id)
        row = session.scalars(select(OutboxItem).where(OutboxItem.kind == "reply")).one()
        assert message is not None
        return message, row


def test_a_reply_reaches_the_customer_once_and_the_message_says_so(
    store: Store, server: SmtpServer, reply_id: int
) -> None:
    clock = Clock()
    sender = sender_for(store, server, clock)
    assert sender.run_once() == 1
    clock.now += timedelta(hours=1)
    assert sender.run_once() == 0  # sent rows are never claimed again

    [received] = server.received
    assert received.recipients == ["aino@example.fi"]
    assert received.message["In-Reply-To"] == "<q1@example.fi>"
    assert received.message.get_content().replace("\r\n", "\n").rstrip("\n") == ANSWER
    message, row = stored(store, reply_id)
    assert (message.delivery, row.status) == ("sent", "sent")
    assert message.delivery_detail.startswith("250 2.0.0 Ok: queued as T00001")
    assert row.result["provider_id"] == "T00001"
    assert message.sent_at is not None


def test_a_451_is_retried_later_and_then_sent_once(
    store: Store, server: SmtpServer, reply_id: int
) -> None:
    server.answer_next("451")
    clock = Clock()
    sender = sender_for(store, server, clock)
    sender.run_once()
    message, row = stored(store, reply_id)
    assert (message.delivery, row.status) == ("queued", "pending")
    assert "451 4.3.0" in message.delivery_detail
    assert sender.run_once() == 0  # not before its backoff
    clock.now += timedelta(minutes=1)
    assert sender.run_once() == 1
    message, row = stored(store, reply_id)
    assert (message.delivery, row.status, row.attempts) == ("sent", "sent", 2)
    assert len(server.received) == 1


def test_a_550_fails_at_once_with_the_servers_reason(
    store: Store, server: SmtpServer, reply_id: int
) -> None:
    server.answer_next("550")
    sender_for(store, server, Clock()).run_once()
    message, row = stored(store, reply_id)
    assert (message.delivery, row.status) == ("failed", "dead")
    assert "550 5.1.1 <aino@example.fi>" in message.delivery_detail
    assert server.received == []


def test_a_drop_after_data_is_never_sent_again_by_itself_and_a_person_can_resend(
    store: Store, server: SmtpServer, reply_id: int, tmp_path: Path
) -> None:
    server.answer_next("drop")
    clock = Clock()
    sender = sender_for(store, server, clock)
    sender.run_once()
    message, row = stored(store, reply_id)
    assert (message.delivery, row.status) == ("unsure", "held")
    assert f"inbox outbox retry {row.id}" in message.delivery_detail
    clock.now += timedelta(hours=2)
    assert sender.run_once() == 0
    assert len(server.received) == 1  # the server had it: one copy, not two

    retried = CliRunner().invoke(
        main, ["--database-url", store.url, "outbox", "retry", str(row.id)]
    )
    assert retried.exit_code == 0, retried.output
    assert sender.run_once() == 1
    message, row = stored(store, reply_id)
    assert (message.delivery, row.status) == ("sent", "sent")
    assert len(server.received) == 2  # a person's decision


def test_an_attempt_cut_off_mid_way_is_held_not_sent_again(
    store: Store, server: SmtpServer, reply_id: int
) -> None:
    """A daemon that claimed the row and died (after the server took the message, or before:
    nobody can tell) leaves it `sending`; the next one, once the lease has run out, asks."""
    clock = Clock()
    with transaction(store.writers) as session:
        row = session.scalars(select(OutboxItem).where(OutboxItem.kind == "reply")).one()
        row.status, row.attempts, row.next_attempt_at = "sending", 1, clock.now + LEASE
    sender = sender_for(store, server, clock)
    assert sender.run_once() == 0  # another daemon's lease still holds
    clock.now += LEASE + timedelta(seconds=1)
    assert sender.run_once() == 1
    message, row = stored(store, reply_id)
    assert (message.delivery, row.status) == ("unsure", "held")
    assert server.received == []


def test_a_reply_through_a_connector_that_cannot_send_fails_with_the_reason(
    store: Store, reply_id: int
) -> None:
    ReplySender(store.writers, {}).run_once()
    message, row = stored(store, reply_id)
    assert (message.delivery, row.status) == ("failed", "dead")
    assert "connector 'mail' cannot send replies" in message.delivery_detail


def test_the_author_is_told_in_slack_when_a_reply_fails(
    store: Store, server: SmtpServer, reply_id: int
) -> None:
    server.answer_next("550")
    smtp = SmtpSender(SmtpConfig(**server.settings()))
    slack_ids = {"esko": "UESKO"}
    ReplySender(
        store.writers, {"mail": smtp}, slack_of=lambda name: slack_ids.get(name, "")
    ).run_once()
    with store.readers() as session:
        [ping] = session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.notify"))
    assert ping.status == "pending"  # the notifier sends it like any ping
    assert ping.payload["slack_user"] == "UESKO"
    assert ping.payload["text"].startswith("Your reply to aino@example.fi could not be sent: ")
    assert "550 5.1.1" in ping.payload["text"]
