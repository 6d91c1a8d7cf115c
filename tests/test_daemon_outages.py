"""A running daemon while Twilio's or Slack's API is down, refused, rate limited, failing or
slow: what their webhooks deliver is still stored within seconds, /healthz says that the
catch-up fails and why, the single daemon keeps its lease, and once the API is back the
catch-up fetches what only the API had. And an IMAP server that drops the connection in the
middle of a sync: the batches before the drop stay stored with their cursor, and the sync
resumes after them.

Each outage lasts until the daemon has failed OUTAGE_FAILURES catch-ups in a row: past the
point where it would hand its lease over, and the number of retries that, at the default
`ingest.retry_max_seconds` (300), spans minutes. The tests set it to 1 s so that the same
retries take seconds.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from connectors.base import Connector
from connectors.imap import ImapConfig, ImapConnector
from connectors.slack_chat import SlackChatConfig, SlackConnector
from connectors.twilio_sms import TwilioSmsConfig, TwilioSmsConnector
from inbox.config import Settings
from inbox.service.daemon import RELEASE_AFTER_FAILURES, Daemon
from inbox.store.models import ConnectorLease, Message
from tests.conftest import Store
from tests.cutting_proxy import CuttingProxy
from tests.dovecot import PASSWORD, USER, Dovecot
from tests.fake_slack import FakeSlack
from tests.fake_twilio import TWILIO_API, FakeTwilio
from tests.helpers import parsed
from tests.processes import wait_for

OUTAGE_FAILURES = RELEASE_AFTER_FAILURES + 2
#: What "within seconds" means for a webhook while the API is away.
STORED_WITHIN_SECONDS = 3.0
TWILIO_TOKEN_ENV = "INBOX_TEST_OUTAGE_TWILIO_TOKEN"
SLACK_TOKEN_ENV = "INBOX_TEST_OUTAGE_SLACK_TOKEN"
SLACK_SECRET_ENV = "INBOX_TEST_OUTAGE_SLACK_SECRET"
OURS = "+358942424242"
PUBLIC_URL = "https://desk.example.com/webhooks/twilio/sms"
CUSTOMERS = "C0SHARED"


class Running:
    """A daemon in a thread with one connector, its web server on a free loopback port."""

    def __init__(
        self, store: Store, tmp_path: Path, connector: Connector, **ingest: object
    ) -> None:
        settings = Settings(
            database_url=store.url,
            data_dir=tmp_path,
            ingest={"workers": 0, "retry_max_seconds": 1, **ingest},
            web={"listen": "127.0.0.1:0"},
        )
        self.daemon = Daemon(settings, [connector])
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.store = store

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.daemon.web is not None, "the receiver to listen", timeout=30)
        return self

    def __exit__(self, *_: object) -> None:
        self.daemon.stopping.set()
        self.daemon.wake.set()
        self.thread.join(30)
        assert not self.thread.is_alive()

    @property
    def url(self) -> str:
        assert self.daemon.web is not None
        return self.daemon.web.url

    def health(self) -> dict[str, Any]:
        """The connector's entry in /healthz, as an operator's monitoring reads it."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=5) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as error:  # 503: the store is away
            body = json.load(error)
        [connector] = body["connectors"]
        return dict(connector)

    def texts(self) -> list[str]:
        with self.store.readers() as session:
            return list(session.scalars(select(Message.text).order_by(Message.id)))

    def lease_holder(self) -> str | None:
        with self.store.readers() as session:
            lease = session.get(ConnectorLease, self.daemon.states[0].connector.name)
            return None if lease is None else lease.holder

    def wait_stored(self, text: str) -> float:
        return wait_for(lambda: text in self.texts(), f"{text!r} to be stored", state=self.texts)

    def wait_failures(self, count: int) -> dict[str, Any]:
        wait_for(
            lambda: self.health()["failures_in_a_row"] >= count,
            f"{count} failed catch-ups in a row",
            timeout=90,
            state=self.health,
        )
        return self.health()


@dataclass
class Outage:
    """How the fake API misbehaves, what /healthz must then say, and how it ends."""

    begin: Callable[[], None]
    end: Callable[[], None]
    said: str


def assert_outage_handled(
    running: Running,
    outage: Outage,
    deliver: Callable[[str], None],
    api_only: Callable[[str], None],
) -> None:
    """The behaviour every webhook connector owes its users while its API is away."""
    wait_for(lambda: running.health()["last_success_seconds_ago"] is not None, "a first poll")
    outage.begin()
    api_only("Written while the API was away, and no webhook came")
    deliver("Delivered at the start of the outage")
    took = running.wait_stored("Delivered at the start of the outage")
    assert took < STORED_WITHIN_SECONDS

    health = running.wait_failures(OUTAGE_FAILURES)
    assert health["state"] == "degraded"
    [failing] = health["failing"]
    assert failing.startswith(f"catch-up failed {health['failures_in_a_row']} times in a row")
    assert outage.said in failing
    assert health["spool"]["state"] == "ok"
    assert health["spool"]["waiting"] == 0
    # No other daemon stands by to take it: this one keeps the lease, and keeps storing.
    assert running.lease_holder() == running.daemon.leases.holder
    deliver("Delivered deep in the outage")
    took = running.wait_stored("Delivered deep in the outage")
    assert took < STORED_WITHIN_SECONDS

    outage.end()
    running.wait_stored("Written while the API was away, and no webhook came")
    wait_for(lambda: running.health()["state"] == "ok", "health to be ok again", timeout=30)
    assert running.health()["failing"] == []
    assert sorted(running.texts()) == sorted(
        [
            "Delivered at the start of the outage",
            "Delivered deep in the outage",
            "Written while the API was away, and no webhook came",
        ]
    )


def assert_lease_kept(lines: io.StringIO) -> None:
    events = [line["event"] for line in parsed(lines)]
    assert "connector_lease_released" not in events
    assert events.count("connector_lease_kept") == 1
    assert "connector_failed" in events


# -- Twilio -----------------------------------------------------------------------------------


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    with FakeTwilio(numbers=(OURS,)) as fake:
        monkeypatch.setenv(TWILIO_TOKEN_ENV, fake.auth_token)
        yield fake


def twilio_outage(fake: FakeTwilio, kind: str) -> Outage:
    def refuse() -> None:
        port[0] = fake.port
        fake.stop()

    port = [0]
    statuses = {"401": 401, "429": 429, "500": 500}
    if kind == "refused":
        return Outage(refuse, lambda: fake.start(port[0]), "Connection refused")
    if kind == "slow":
        return Outage(lambda: setattr(fake, "latency", 3.0), fake.recover, "no answer in time")
    status = statuses[kind]
    return Outage(
        lambda: fake.fail_next("/Messages", status=status, count=10**9),
        fake.recover,
        f"HTTP {status}",
    )


@pytest.mark.parametrize("kind", ["refused", "401", "429", "500", "slow"])
def test_twilio_webhooks_are_stored_while_the_api_fails_and_the_rest_is_caught_up_after(
    store: Store, twilio: FakeTwilio, tmp_path: Path, log_lines: io.StringIO, kind: str
) -> None:
    connector = TwilioSmsConnector(
        TwilioSmsConfig(
            name="sms",
            type="twilio",
            account_sid=twilio.account_sid,
            auth_token={"env": TWILIO_TOKEN_ENV},
            numbers=[OURS],
            public_url=PUBLIC_URL,
            api_url=twilio.url,
            spool_dir=tmp_path / "spool",
            poll_seconds=0.3,
            catchup_seconds=0.5,
            timeout_seconds=1,
        )
    )
    senders = iter(f"+35840765{n:04d}" for n in range(100))

    def deliver(text: str) -> None:
        # The message as Twilio's log holds it (so a catch-up would find it too), then the
        # webhook, signed as Twilio signs it for the public URL.
        message = twilio.receive(next(senders), OURS, text)
        params = twilio.webhook_params(message, api_base=TWILIO_API)
        request = urllib.request.Request(
            running.url + "/webhooks/twilio/sms",
            data=urlencode(params).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio.sign(PUBLIC_URL, params),
            },
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200

    def api_only(text: str) -> None:
        twilio.receive(next(senders), OURS, text)

    with Running(store, tmp_path, connector) as running:
        assert_outage_handled(running, twilio_outage(twilio, kind), deliver, api_only)
    assert_lease_kept(log_lines)


# -- Slack ------------------------------------------------------------------------------------


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        monkeypatch.setenv(SLACK_TOKEN_ENV, fake.bot_token)
        monkeypatch.setenv(SLACK_SECRET_ENV, fake.signing_secret)
        fake.add_channel(CUSTOMERS, name="acme-support")
        fake.add_user("UANNA", name="anna", real_name="Anna Virtanen", email="anna@acme.example")
        yield fake


def slack_outage(fake: FakeSlack, kind: str) -> Outage:
    def refuse() -> None:
        port[0] = fake.port
        fake.stop()

    port = [0]
    if kind == "refused":
        return Outage(refuse, lambda: fake.start(port[0]), "Connection refused")
    if kind == "slow":
        return Outage(
            lambda: setattr(fake, "latency", 3.0),
            lambda: setattr(fake, "latency", 0.0),
            "no answer in time",
        )
    if kind in ("invalid_auth", "missing_scope"):
        fields = {"needed": "channels:history", "provided": "chat:write"}
        return Outage(
            lambda: fake.refuse("*", kind, **(fields if kind == "missing_scope" else {})),
            lambda: fake.refuse("*", None),
            {
                "invalid_auth": "invalid_auth",
                "missing_scope": "missing_scope",
            }[kind],
        )
    status = int(kind)
    return Outage(
        lambda: fake.fail_fraction("*", 1.0, status=status),
        lambda: fake.fail_fraction("*", 0),
        {429: "rate limited", 500: "HTTP 500"}[status],
    )


@pytest.mark.parametrize("kind", ["refused", "invalid_auth", "missing_scope", "429", "500", "slow"])
def test_slack_events_are_stored_while_the_api_fails_and_the_rest_is_caught_up_after(
    store: Store, slack: FakeSlack, tmp_path: Path, log_lines: io.StringIO, kind: str
) -> None:
    connector = SlackConnector(
        SlackChatConfig(
            name="slack",
            type="slack",
            bot_token={"env": SLACK_TOKEN_ENV},
            signing_secret={"env": SLACK_SECRET_ENV},
            channels=[CUSTOMERS],
            dms=False,
            api_url=slack.url,
            spool_dir=tmp_path / "spool",
            poll_seconds=0.3,
            catchup_seconds=0.5,
            timeout_seconds=1,
        )
    )
    clock = iter(range(1, 100))

    def ts() -> str:
        return f"{int(time.time())}.{next(clock):06d}"

    def deliver(text: str) -> None:
        # An event for a message that the API's history does not hold (Slack's own
        # history would, but then a catch-up could hide a lost event).
        event = slack.event(
            {
                "type": "message",
                "channel": CUSTOMERS,
                "channel_type": "channel",
                "user": "UANNA",
                "text": text,
                "ts": ts(),
            }
        )
        body = json.dumps(event).encode()
        request = urllib.request.Request(
            running.url + "/webhooks/slack/events",
            data=body,
            headers={"Content-Type": "application/json", **slack.sign(body)},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200

    def api_only(text: str) -> None:
        slack.post(CUSTOMERS, text, user="UANNA")

    with Running(store, tmp_path, connector) as running:
        assert_outage_handled(running, slack_outage(slack, kind), deliver, api_only)
    assert_lease_kept(log_lines)


# -- IMAP ------------------------------------------------------------------------------------

IMAP_PASSWORD_ENV = "INBOX_TEST_OUTAGE_IMAP_PASSWORD"
IMAP_MAIL = 40
IMAP_BATCH = 10
#: About 4 KB a message: the drop falls inside the third batch's bodies.
IMAP_CUT_AFTER_BYTES = 100_000


def padded_mail(count: int) -> Iterator[bytes]:
    """Mail of about 4 KB each, in the languages customers write in."""
    lines = ["Hei, laskussa on virhe.", "Καλησπέρα σας.", "Здравствуйте!", "Tere, kus mu pakk on?"]
    for number in range(count):
        message = EmailMessage()
        message["From"] = f"Customer {number} <c{number}@example.fi>"
        message["To"] = "support@example.com"
        message["Subject"] = f"Tilaus #{number}"
        message["Message-ID"] = f"<cut-{number}@example.test>"
        body = "\n".join(f"{lines[(number + i) % 4]} {i}" for i in range(160))
        message.set_content(f"Order {number}\n{body}\n", charset="utf-8")
        yield bytes(message)


def test_imap_dropped_mid_sync_keeps_the_batches_before_and_resumes_after_them(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IMAP_PASSWORD_ENV, PASSWORD)
    with Dovecot() as dovecot, CuttingProxy(dovecot.host, dovecot.port) as proxy:
        dovecot.deliver_many(padded_mail(IMAP_MAIL))
        proxy.cut_after(IMAP_CUT_AFTER_BYTES)  # then the server stays away until up()
        config = ImapConfig(
            name="mail",
            type="imap",
            host=proxy.host,
            port=proxy.port,
            security="none",
            username=USER,
            password={"env": IMAP_PASSWORD_ENV},
            idle=False,
            poll_seconds=0.3,
            timeout_seconds=5,
        )
        connector = ImapConnector(config)
        with Running(store, tmp_path, connector, batch_size=IMAP_BATCH) as running:
            # The drop, then a reconnect refused: two failed polls in a row.
            health = running.wait_failures(2)
            assert health["state"] == "degraded"
            [failing] = health["failing"]
            assert failing.startswith(f"poll failed {health['failures_in_a_row']} times")
            stored = running.texts()
            # Whole batches, each committed with its cursor; the one being read was not.
            assert 0 < len(stored) < IMAP_MAIL
            assert len(stored) % IMAP_BATCH == 0
            [cursor] = running.daemon.pipeline.cursors("mail").values()
            assert json.loads(cursor)["uid"] == len(stored)  # a new mailbox: UIDs 1, 2, ...

            proxy.up()
            wait_for(
                lambda: len(running.texts()) == IMAP_MAIL,
                "the rest of the mailbox",
                state=lambda: len(running.texts()),
            )
            wait_for(lambda: running.health()["state"] == "ok", "health to be ok again")
        totals = running.daemon.states[0].totals
        # Resumed after the cursor: nothing before the drop was fetched again.
        assert (totals.stored, totals.already_stored, totals.duplicates) == (IMAP_MAIL, 0, 0)
        assert proxy.dropped >= 2
        orders = sorted(int(text.split()[1]) for text in running.texts())
        assert orders == list(range(IMAP_MAIL))
