"""Replies by SMS through the real twilio Client against the fake Twilio API on loopback, on
SQLite and PostgreSQL: sent once from the number the customer wrote to, retried after a 429,
looked up after a 5xx instead of sent twice, refused with Twilio's words when it never will."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from connectors.twilio_send import segments
from connectors.twilio_sms import TwilioSmsConfig, TwilioSmsConnector
from inbox.outbox.delivery_reports import DeliveryReports
from inbox.outbox.replies import ReplySender
from inbox.routing.reply import write_reply
from inbox.service.web import WebServer
from inbox.store.db import transaction
from inbox.store.models import Conversation, Message, OutboxItem
from tests.conftest import BACKENDS, Store
from tests.fake_twilio import FakeTwilio
from tests.helpers import Clock, make_pipeline
from tests.processes import wait_for
from tests.test_daemon_outages import Running

TOKEN_ENV = "INBOX_TEST_REPLY_TWILIO_TOKEN"
OURS = "+358942424242"
CUSTOMER = "+358401234567"
ANSWER = "Hei! Tilauksesi 1042 lähti tänään, seurantakoodi JJFI123."


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    with FakeTwilio(numbers=(OURS,)) as fake:
        monkeypatch.setenv(TOKEN_ENV, fake.auth_token)
        yield fake


def sms_config(twilio: FakeTwilio, tmp_path: Path, **overrides: Any) -> TwilioSmsConfig:
    """Our number's connector on the fake Twilio, as a test needs it."""
    settings: dict[str, Any] = {
        "name": "sms",
        "type": "twilio",
        "account_sid": twilio.account_sid,
        "auth_token": {"env": TOKEN_ENV},
        "numbers": [OURS],
        "api_url": twilio.url,
        "spool_dir": tmp_path / "spool",
        "catchup_seconds": 0.01,
    }
    return TwilioSmsConfig(**{**settings, **overrides})


@pytest.fixture
def connector(twilio: FakeTwilio, tmp_path: Path) -> TwilioSmsConnector:
    return TwilioSmsConnector(sms_config(twilio, tmp_path))


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


# -- status callbacks: what became of a text ---------------------------------------------------

STATUS_URL = "https://desk.example.com/webhooks/twilio/status"


@pytest.fixture
def reporting(
    store: Store, twilio: FakeTwilio, tmp_path: Path
) -> Iterator[tuple[TwilioSmsConnector, WebServer]]:
    """The connector asking for status callbacks at STATUS_URL, which a proxy forwards to the
    web server here (Twilio signs the public URL, not ours)."""
    connector = TwilioSmsConnector(sms_config(twilio, tmp_path, status_url=STATUS_URL))
    reports = DeliveryReports(store.writers, slack_of={"esko": "U0ESKO"}.get)
    server = WebServer(connector.delivery_webhooks(reports.record), port=0).start()
    try:
        yield connector, server
    finally:
        server.stop()


def sent_sid(twilio: FakeTwilio) -> str:
    [sent] = twilio.outbound()
    return str(sent["sid"])


@BACKENDS
def test_delivery_reports_are_kept_on_the_reply_and_never_move_it_back(
    store: Store,
    twilio: FakeTwilio,
    reporting: tuple[TwilioSmsConnector, WebServer],
    reply_id: int,
) -> None:
    connector, server = reporting
    ReplySender(store.writers, {"sms": connector.sender()}).run_once()
    sid = sent_sid(twilio)
    assert twilio.status_callbacks[sid] == f"{STATUS_URL}?reply=reply%3A{reply_id}"
    assert twilio.report_status(sid, "sending", via=server.url)[0] == 200
    assert delivery(store, reply_id)[0] == "sent"
    assert twilio.report_status(sid, "delivered", via=server.url)[0] == 200
    state, status, detail = delivery(store, reply_id)
    assert (state, status) == ("delivered", "sent")
    assert detail == f"delivered (Twilio {sid})"
    # Twilio's callbacks come in any order: a late "sent" does not undo "delivered".
    assert twilio.report_status(sid, "sent", via=server.url)[0] == 200
    assert delivery(store, reply_id)[0] == "delivered"


@BACKENDS
def test_an_undelivered_text_says_why_and_tells_its_author(
    store: Store,
    twilio: FakeTwilio,
    reporting: tuple[TwilioSmsConnector, WebServer],
    reply_id: int,
) -> None:
    connector, server = reporting
    ReplySender(store.writers, {"sms": connector.sender()}).run_once()
    sid = sent_sid(twilio)
    twilio.report_status(sid, "undelivered", error_code="30003", via=server.url)
    state, _, detail = delivery(store, reply_id)
    assert state == "undelivered"
    assert "error 30003, unreachable destination handset" in detail
    with store.readers() as session:
        [told] = session.scalars(select(OutboxItem).where(OutboxItem.kind != "reply")).all()
    assert told.payload["slack_user"] == "U0ESKO"
    assert "did not reach the customer" in told.payload["text"]
    assert "30003" in told.payload["text"]


@BACKENDS
def test_a_report_that_overtakes_the_senders_own_record_is_kept(
    store: Store,
    twilio: FakeTwilio,
    reporting: tuple[TwilioSmsConnector, WebServer],
    reply_id: int,
) -> None:
    connector, server = reporting
    # Twilio calls back before it answers the create: the outbox has not recorded the send yet.
    twilio.report_before_answer = ("sent", "delivered")
    # The callback goes to the public URL; here that is the server itself.
    sender = connector.sender()
    sender.status_callback = server.url + connector.config.status_path
    connector.config.status_url = sender.status_callback
    ReplySender(store.writers, {"sms": sender}).run_once()
    state, status, detail = delivery(store, reply_id)
    assert (state, status) == ("delivered", "sent")
    assert sent_sid(twilio) in detail


def test_forged_or_foreign_status_callbacks_change_nothing(
    store: Store,
    twilio: FakeTwilio,
    reporting: tuple[TwilioSmsConnector, WebServer],
    reply_id: int,
) -> None:
    connector, server = reporting
    ReplySender(store.writers, {"sms": connector.sender()}).run_once()
    sid = sent_sid(twilio)
    params = twilio.status_params(sid, "failed", "30005")
    target = server.url + f"/webhooks/twilio/status?reply=reply%3A{reply_id}"
    signed_url = f"{STATUS_URL}?reply=reply%3A{reply_id}"
    forged = twilio.sign(signed_url, params, auth_token="not-the-token")
    assert twilio._post_signed(target, params, forged)[0] == 403
    # Signed for another reply than the one in the URL: the signature covers the query.
    other = twilio.sign(f"{STATUS_URL}?reply=reply%3A999", params)
    assert twilio._post_signed(target, params, other)[0] == 403
    assert delivery(store, reply_id)[0] == "sent"
    # A text we did not send with a key (sent from Twilio's console): noted, nothing kept.
    bare = twilio.sign(STATUS_URL, params)
    assert twilio._post_signed(server.url + "/webhooks/twilio/status", params, bare)[0] == 200
    assert delivery(store, reply_id)[0] == "sent"


def test_a_report_the_store_cannot_take_is_answered_503_for_twilio_to_call_again(
    twilio: FakeTwilio, tmp_path: Path
) -> None:
    public = "https://desk.example.com/webhooks/twilio/sms"
    connector = TwilioSmsConnector(sms_config(twilio, tmp_path, public_url=public))
    assert connector.status_url == STATUS_URL  # from public_url's host and status_path
    gone = create_engine(f"sqlite:///{tmp_path}/missing/inbox.db")
    reports = DeliveryReports(sessionmaker(gone))
    server = WebServer(connector.delivery_webhooks(reports.record), port=0).start()
    try:
        message = twilio.send_outbound(OURS, CUSTOMER, "Kiitos!")
        twilio.status_callbacks[message["sid"]] = f"{STATUS_URL}?reply=reply%3A1"
        assert twilio.report_status(message["sid"], "delivered", via=server.url)[0] == 503
    finally:
        server.stop()
        gone.dispose()


def test_in_a_running_daemon_a_text_in_is_answered_and_its_delivery_reported(
    store: Store, twilio: FakeTwilio, tmp_path: Path
) -> None:
    connector = TwilioSmsConnector(
        sms_config(
            twilio,
            tmp_path,
            public_url="https://desk.example.com/webhooks/twilio/sms",
            poll_seconds=0.2,
            catchup_seconds=0.2,
        )
    )
    twilio.receive(CUSTOMER, OURS, "Missä tilaukseni 1042 on?")
    with Running(store, tmp_path, connector) as running:
        running.wait_stored("Missä tilaukseni 1042 on?")
        with store.readers() as session:
            conversation_id = session.scalars(select(Conversation.id)).one()
        with transaction(store.writers) as session:
            reply_id = write_reply(session, conversation_id, author="esko", text=ANSWER).message_id
        running.daemon.replies.wake()
        wait_for(lambda: twilio.outbound(), "the reply to reach Twilio")
        sid = sent_sid(twilio)
        assert twilio.report_status(sid, "delivered", via=running.url)[0] == 200
        wait_for(
            lambda: delivery(store, reply_id)[0] == "delivered",
            "the delivery to be recorded",
            state=lambda: delivery(store, reply_id),
        )
