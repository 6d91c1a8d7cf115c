"""Replies by SMS through the real twilio Client against the fake Twilio API on loopback, on
SQLite and PostgreSQL: sent once from the number the customer wrote to, retried after a 429,
looked up after a 5xx instead of sent twice, refused with Twilio's words when it never will."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.twilio_send import segments
from connectors.twilio_sms import TwilioSmsConfig, TwilioSmsConnector
from inbox.outbox.replies import ReplySender
from inbox.routing.reply import write_reply
from inbox.store.db import transaction
from inbox.store.models import Conversation, Message, OutboxItem
from tests.conftest import BACKENDS, Store
from tests.fake_twilio import FakeTwilio
from tests.helpers import Clock, make_pipeline

TOKEN_ENV = "INBOX_TEST_REPLY_TWILIO_TOKEN"
OURS = "+358942424242"
CUSTOMER = "+358401234567"
ANSWER = "Hei! Tilauksesi 1042 lähti tänään, seurantakoodi JJFI123."


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    with FakeTwilio(numbers=(OURS,)) as fake:
        monkeypatch.setenv(TOKEN_ENV, fake.auth_token)
        yield fake


@pytest.fixture
def connector(twilio: FakeTwilio, tmp_path: Path) -> TwilioSmsConnector:
    config = TwilioSmsConfig(
        name="sms",
        type="twilio",
        account_sid=twilio.account_sid,
        auth_token={"env": TOKEN_ENV},
        numbers=[OURS],
        api_url=twilio.url,
        spool_dir=tmp_path / "spool",
        catchup_seconds=0.01,
    )
    return TwilioSmsConnector(config)


@pytest.fixture
def reply_id(store: Store, twilio: FakeTwilio, connector: TwilioSmsConnector) -> int:
    twilio.receive(CUSTOMER, OURS, "Missä tilaukseni 1042 on?")
    pipeline = make_pipeline(store)
    try:
        for batch, _ in pipeline.ingest_many(connector.fetch(pipeline.cursors("sms"), 50)):
            connector.acknowledge(batch)
    finally:
        pipeline.close()
    with store.readers() as session:
        conversation_id = session.scalars(select(Conversation.id)).one()
    with transaction(store.writers) as session:
        return write_reply(session, conversation_id, author="esko", text=ANSWER).message_id


def delivery(store: Store, message_id: int) -> tuple[str, str, str]:
    with store.readers() as session:
        message = session.get(Message, message_id)
        row = session.scalars(select(OutboxItem).where(OutboxItem.kind == "reply")).one()
        assert message is not None
        return message.delivery, row.status, message.delivery_detail


@BACKENDS
def test_the_text_goes_once_from_the_number_the_customer_wrote_to(
    store: Store, twilio: FakeTwilio, connector: TwilioSmsConnector, reply_id: int
) -> None:
    sender = ReplySender(store.writers, {"sms": connector.sender()})
    assert sender.run_once() == 1
    assert sender.run_once() == 0
    [sent] = twilio.outbound()
    assert (sent["from"], sent["to"], sent["body"]) == (OURS, CUSTOMER, ANSWER)
    state, status, detail = delivery(store, reply_id)
    assert (state, status) == ("sent", "sent")
    assert sent["sid"] in detail


@BACKENDS
def test_a_429_is_retried_and_a_5xx_looked_up_before_sending_again(
    store: Store, twilio: FakeTwilio, connector: TwilioSmsConnector, reply_id: int
) -> None:
    twilio.fail_next("Messages.json", status=429)
    clock = Clock()
    sender = ReplySender(store.writers, {"sms": connector.sender()}, clock=clock)
    sender.run_once()
    assert delivery(store, reply_id)[:2] == ("queued", "pending")
    twilio.fail_next("Messages.json", status=503)  # the fake changes nothing on a failure
    clock.now += timedelta(minutes=1)
    sender.run_once()
    state, status, detail = delivery(store, reply_id)
    assert (state, status) == ("queued", "pending") and "HTTP 503" in detail
    assert twilio.outbound() == []  # the look-up found nothing: it is safe to send again
    clock.now += timedelta(minutes=1)
    sender.run_once()
    assert len(twilio.outbound()) == 1
    assert delivery(store, reply_id)[:2] == ("sent", "sent")


@BACKENDS
def test_a_number_twilio_will_never_send_from_fails_the_reply_with_its_words(
    store: Store, twilio: FakeTwilio, connector: TwilioSmsConnector, reply_id: int
) -> None:
    with transaction(store.writers) as session:
        message = session.get(Message, reply_id)
        assert message is not None
        message.from_address = "+358900000000"  # not one of the account's numbers
    ReplySender(store.writers, {"sms": connector.sender()}).run_once()
    state, status, detail = delivery(store, reply_id)
    assert (state, status) == ("failed", "dead")
    assert "error 21606" in detail
    assert twilio.outbound() == []


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("ä" * 160, 1),  # Finnish letters are in GSM-7
        ("Привет" * 11, 1),  # 66 characters of Cyrillic: one UCS-2 segment
        ("Привет" * 12, 2),
    ],
)
def test_the_segment_count_of_a_text(text: str, count: int) -> None:
    assert segments(text) == count
