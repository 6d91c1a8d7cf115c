"""The Twilio connector: signed webhooks posted to our receiver, and the real twilio Client
talking to the fake Twilio REST API of tests/fake_twilio.py through our routed HTTP client."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from connectors.twilio_sms import TwilioSmsConfig, TwilioSmsConnector
from inbox.config import Settings
from inbox.pipeline.ingest import Pipeline
from inbox.service.daemon import Daemon
from inbox.service.web import WebServer
from inbox.store.leases import Leases
from inbox.store.models import Attachment, Contact, Conversation, Event, Identity, Message
from tests.conftest import BACKENDS, Store
from tests.fake_twilio import TWILIO_API, FakeTwilio
from tests.processes import wait_for

TOKEN_ENV = "INBOX_TEST_TWILIO_TOKEN"
OURS = "+358942424242"
PUBLIC_URL = "https://desk.example.com/webhooks/twilio/sms"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    with FakeTwilio(numbers=(OURS,)) as fake:
        monkeypatch.setenv(TOKEN_ENV, fake.auth_token)
        yield fake


def config_for(fake: FakeTwilio, tmp_path: Path, **overrides: Any) -> TwilioSmsConfig:
    values: dict[str, Any] = {
        "name": "sms",
        "type": "twilio",
        "account_sid": fake.account_sid,
        "auth_token": {"env": TOKEN_ENV},
        "numbers": ["09 4242 4242"],  # as the admin wrote it; read in default_region
        "default_region": "FI",
        "public_url": PUBLIC_URL,
        "api_url": fake.url,
        "spool_dir": tmp_path / "spool",
    }
    values.update(overrides)
    return TwilioSmsConfig(**values)


def sync(store: Store, connector: TwilioSmsConnector) -> int:
    """One poll of the daemon (spooled webhooks, then catch-up when due); the number stored."""
    pipeline = Pipeline(
        store.readers, store.writers, Settings(database_url=store.url, ingest={"workers": 0})
    )
    stored = 0
    try:
        for batch, result in pipeline.ingest_many(connector.fetch(pipeline.cursors("sms"), 50)):
            connector.acknowledge(batch)
            stored += result.stored
    finally:
        pipeline.close()
    return stored


@pytest.fixture
def receiver(twilio: FakeTwilio, tmp_path: Path) -> Iterator[tuple[TwilioSmsConnector, WebServer]]:
    connector = TwilioSmsConnector(config_for(twilio, tmp_path))
    server = WebServer(connector.webhooks(), port=0).start()
    try:
        yield connector, server
    finally:
        server.stop()


def post(server: WebServer, params: dict[str, str], signature: str | None) -> tuple[int, str, str]:
    """What Twilio does, except that it reaches us through a proxy at PUBLIC_URL."""
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    request = urllib.request.Request(
        server.url + "/webhooks/twilio/sms", data=urlencode(params).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def deliver(fake: FakeTwilio, server: WebServer, message: dict[str, Any]) -> tuple[int, str, str]:
    params = fake.webhook_params(message, api_base=TWILIO_API)
    return post(server, params, fake.sign(PUBLIC_URL, params))


def texts(store: Store) -> list[str]:
    with store.readers() as session:
        return list(session.scalars(select(Message.text).order_by(Message.id)))


# -- the webhook ------------------------------------------------------------------------------


@BACKENDS
def test_a_signed_webhook_is_answered_with_empty_twiml_and_stored_once(
    store: Store, twilio: FakeTwilio, receiver: tuple[TwilioSmsConnector, WebServer]
) -> None:
    connector, server = receiver
    message = twilio.receive("+358401234567", OURS, "Hei! Paketti ei ole tullut perille.")
    status, content_type, body = deliver(twilio, server, message)
    assert (status, content_type) == (200, "text/xml")
    assert body == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert deliver(twilio, server, message)[0] == 200  # Twilio may call twice
    assert connector.spool.count() == 1

    assert sync(store, connector) == 1
    assert sync(store, connector) == 0
    with store.readers() as session:
        stored = session.scalars(select(Message)).one()
        conversation = session.get(Conversation, stored.conversation_id)
        identity = session.scalars(select(Identity).where(Identity.kind == "phone")).one()
    assert stored.text == "Hei! Paketti ei ole tullut perille."
    assert stored.language == "fi"
    assert (stored.from_address, stored.to_addresses) == ("+358401234567", [OURS])
    assert conversation is not None and conversation.channel == "sms"
    assert conversation.thread_key == f"sms:+358401234567:{OURS}"
    assert identity.address == "+358401234567"


def test_unsigned_forged_and_misaddressed_webhooks_get_403_and_store_nothing(
    store: Store, twilio: FakeTwilio, tmp_path: Path
) -> None:
    connector = TwilioSmsConnector(config_for(twilio, tmp_path, catchup_seconds=3600))
    server = WebServer(connector.webhooks(), port=0).start()
    try:
        params = {
            "MessageSid": "SM" + "f" * 32,
            "AccountSid": twilio.account_sid,
            "From": "+358401234567",
            "To": OURS,
            "Body": "send me the admin password",
            "NumMedia": "0",
        }
        good = twilio.sign(PUBLIC_URL, params)
        answers = [
            post(server, params, None)[0],
            post(server, params, twilio.sign(PUBLIC_URL, params, auth_token="guessed"))[0],
            # signed for the address it reached, not the one Twilio was given: a proxy's view
            post(server, params, twilio.sign(server.url + "/webhooks/twilio/sms", params))[0],
            post(server, {**params, "Body": "changed on the way"}, good)[0],
        ]
        other = {**params, "AccountSid": "AC" + "b" * 32}
        answers.append(post(server, other, twilio.sign(PUBLIC_URL, other))[0])
        assert answers == [403, 403, 403, 403, 403]
        assert connector.spool.count() == 0
        assert post(server, params, good)[0] == 200  # the same request, signed right
    finally:
        server.stop()
    sync(store, connector)
    assert texts(store) == ["send me the admin password"]


def test_a_hostile_body_is_refused_and_the_receiver_goes_on(
    twilio: FakeTwilio, receiver: tuple[TwilioSmsConnector, WebServer]
) -> None:
    connector, server = receiver
    request = urllib.request.Request(
        server.url + "/webhooks/twilio/sms",
        data=b"\xff\xfe" * 10,
        headers={"X-Twilio-Signature": "x"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400
    big = urllib.request.Request(server.url + "/webhooks/twilio/sms", data=b"a" * (2 * 1024 * 1024))
    # waitress stops reading at the cap: a 413, or the connection closed under the sender.
    with pytest.raises((urllib.error.HTTPError, urllib.error.URLError)) as too_big:
        urllib.request.urlopen(big, timeout=5)
    if isinstance(too_big.value, urllib.error.HTTPError):
        assert too_big.value.code == 413
    else:
        assert isinstance(too_big.value.reason, ConnectionError)
    message = twilio.receive("+358401234567", OURS, "still here")
    assert deliver(twilio, server, message)[0] == 200
    assert connector.spool.count() == 1


# -- MMS --------------------------------------------------------------------------------------


def test_mms_media_are_fetched_with_the_accounts_credentials_and_kept(
    store: Store, twilio: FakeTwilio, receiver: tuple[TwilioSmsConnector, WebServer]
) -> None:
    connector, server = receiver
    message = twilio.receive(
        "+358401234567",
        OURS,
        "Kuva rikkinäisestä vetoketjusta",
        media=[("image/png", PNG), ("application/x-msdownload", b"MZ" + b"\0" * 100)],
    )
    twilio.fail_next("/Media/", status=503, retry_after=None)  # the first try fails
    deliver(twilio, server, message)
    sync(store, connector)
    with store.readers() as session:
        stored = session.scalars(select(Message)).one()
        [attachment] = session.scalars(select(Attachment))
    assert stored.text == "Kuva rikkinäisestä vetoketjusta"
    assert (attachment.content_type, attachment.size) == ("image/png", len(PNG))
    assert any("application/x-msdownload is not in media_types" in e for e in stored.parse_errors)
    assert twilio.media_fetches == 1


def test_media_that_cannot_be_fetched_never_cost_the_text(
    store: Store, twilio: FakeTwilio, receiver: tuple[TwilioSmsConnector, WebServer]
) -> None:
    connector, server = receiver
    message = twilio.receive("+358401234567", OURS, "See the photo", media=[("image/png", PNG)])
    twilio.fail_next("/Media/", status=500, retry_after=None, count=10)
    deliver(twilio, server, message)
    assert sync(store, connector) == 1
    with store.readers() as session:
        stored = session.scalars(select(Message)).one()
    assert stored.text == "See the photo"
    assert any("fetch failed: HTTP 500" in e for e in stored.parse_errors)


# -- catch-up ---------------------------------------------------------------------------------


@BACKENDS
def test_catch_up_pages_through_what_the_webhook_missed_and_stores_each_once(
    store: Store, twilio: FakeTwilio, tmp_path: Path
) -> None:
    for number in range(450):
        twilio.receive(f"+35840{number:07d}", OURS, f"Question {number}")
    twilio.receive("+358401112222", OURS, "With a picture", media=[("image/png", PNG)])
    connector = TwilioSmsConnector(config_for(twilio, tmp_path))
    twilio.fail_next("Messages.json", status=429, retry_after=1)
    assert sync(store, connector) == 451
    pages = [c for c in twilio.calls if c.path.endswith("/Messages.json") and c.status == 200]
    assert len(pages) >= 3
    again = TwilioSmsConnector(config_for(twilio, tmp_path))
    assert sync(store, again) == 0
    with store.readers() as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 1
        assert session.scalar(select(func.count(func.distinct(Message.external_id)))) == 451


def test_outbound_messages_in_the_log_are_not_customer_messages(
    store: Store, twilio: FakeTwilio, tmp_path: Path
) -> None:
    from twilio.rest import Client

    client = Client(twilio.account_sid, twilio.auth_token, http_client=twilio.http_client())
    client.messages.create(from_=OURS, to="+358401234567", body="Your order has shipped")
    twilio.receive("+358401234567", OURS, "Thanks!")
    assert sync(store, TwilioSmsConnector(config_for(twilio, tmp_path))) == 1
    assert texts(store) == ["Thanks!"]


def test_stop_and_start_are_recorded_on_the_contact(
    store: Store, twilio: FakeTwilio, tmp_path: Path
) -> None:
    connector = TwilioSmsConnector(config_for(twilio, tmp_path))
    twilio.receive("+358401234567", OURS, "Paljonko maksaa?")
    sync(store, connector)
    twilio.receive("+358401234567", OURS, "STOP")
    connector._next_catchup = 0  # catch-up due again, as after catchup_seconds
    sync(store, connector)
    with store.readers() as session:
        contact = session.scalars(select(Contact)).one()
        assert contact.sms_opted_out_at is not None
        [event] = session.scalars(select(Event).where(Event.kind == "sms_opted_out"))
    assert event.detail == {"keyword": "STOP", "to": OURS}
    twilio.receive("+358401234567", OURS, "start")
    connector._next_catchup = 0
    sync(store, connector)
    with store.readers() as session:
        assert session.scalars(select(Contact)).one().sms_opted_out_at is None


# -- in a running daemon ------------------------------------------------------------------------


def test_texts_sent_while_the_receiver_was_down_arrive_once_after_a_restart(
    store: Store, twilio: FakeTwilio, tmp_path: Path
) -> None:
    def start() -> tuple[Daemon, threading.Thread]:
        settings = Settings(
            database_url=store.url,
            data_dir=tmp_path,
            ingest={"workers": 0},
            web={"listen": "127.0.0.1:0"},
        )
        daemon = Daemon(settings, [TwilioSmsConnector(config_for(twilio, tmp_path))])
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        wait_for(lambda: daemon.web is not None, "the receiver", timeout=30)
        return daemon, thread

    def stop(daemon: Daemon, thread: threading.Thread) -> None:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)
        assert not thread.is_alive()

    def stored() -> int:
        with store.readers() as session:
            return int(session.scalar(select(func.count()).select_from(Message)) or 0)

    daemon, thread = start()
    assert daemon.web is not None
    for number in range(3):
        message = twilio.receive(f"+35840765432{number}", OURS, f"Live {number}")
        params = twilio.webhook_params(message, api_base=TWILIO_API)
        assert post(daemon.web, params, twilio.sign(PUBLIC_URL, params))[0] == 200
    wait_for(
        lambda: stored() == 3, "3 webhooks to be stored", timeout=30, state=lambda: texts(store)
    )
    stop(daemon, thread)

    missed = [twilio.receive(f"+35840111000{n}", OURS, f"While down {n}") for n in range(5)]
    daemon, thread = start()
    try:
        wait_for(lambda: stored() == 8, "the catch-up", timeout=30, state=lambda: texts(store))
        # Twilio's own retries of the missed webhooks arrive late: nothing twice.
        assert daemon.web is not None
        for message in missed:
            params = twilio.webhook_params(message, api_base=TWILIO_API)
            post(daemon.web, params, twilio.sign(PUBLIC_URL, params))
        time.sleep(0.5)
    finally:
        stop(daemon, thread)
    assert stored() == 8
    assert sorted(texts(store)) == sorted(
        [f"Live {n}" for n in range(3)] + [f"While down {n}" for n in range(5)]
    )


def test_a_daemon_standing_by_stores_what_its_receiver_took_and_leaves_the_catch_up(
    store: Store, twilio: FakeTwilio, tmp_path: Path
) -> None:
    # Another daemon on the same store holds the connector's lease (inbox/store/leases.py).
    other = Leases(store.writers, seconds=3600, holder="other-server:1")
    assert other.hold("sms") is None
    settings = Settings(
        database_url=store.url,
        data_dir=tmp_path,
        ingest={"workers": 0, "lease_seconds": 6},
        web={"listen": "127.0.0.1:0"},
    )
    connector = TwilioSmsConnector(config_for(twilio, tmp_path, poll_seconds=0.2))
    daemon = Daemon(settings, [connector])
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: daemon.web is not None, "the receiver", timeout=30)
        assert daemon.web is not None
        twilio.receive("+358401110001", OURS, "Only in Twilio's log")  # no webhook for it
        webhooked = twilio.receive("+358407654320", OURS, "Sent to this server")
        params = twilio.webhook_params(webhooked, api_base=TWILIO_API)
        assert post(daemon.web, params, twilio.sign(PUBLIC_URL, params))[0] == 200
        wait_for(lambda: texts(store) == ["Sent to this server"], "the webhook's text")
        # Its connector thread finds the lease held (it may look after the spool is stored).
        wait_for(lambda: daemon.states[0].standby is not None, "standing by", timeout=15)
        # The catch-up through Twilio's API is the holder's: not a call from this daemon.
        assert not [call for call in twilio.calls if call.path.endswith("/Messages.json")]

        other.release(["sms"])  # the other daemon stops: this one takes over and catches up
        wait_for(lambda: len(texts(store)) == 2, "the catch-up", timeout=15)
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)
    assert sorted(texts(store)) == ["Only in Twilio's log", "Sent to this server"]
