"""What a connector may do beyond `fetch` is a declared Protocol in connectors/base.py: the
built-in connectors declare what they offer, and a third party's connector that offers none of
it still runs in the daemon."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from sqlalchemy import select

from connectors.base import (
    DEFAULT_POLL_SECONDS,
    Answering,
    Configured,
    Connector,
    ConnectorConfig,
    DeliveryReporting,
    Watched,
    WebhookFed,
    WebhookReceiver,
    poll_seconds,
)
from connectors.imap import ImapConnector
from connectors.maildir import MaildirConfig, MaildirConnector
from connectors.slack_chat import SlackConnector
from connectors.twilio_sms import TwilioSmsConnector
from inbox.config import Settings
from inbox.raw import Batch, RawMessage
from inbox.service.daemon import Daemon
from inbox.store.models import Message
from tests.conftest import Store


def test_each_built_in_connector_declares_what_it_can_do() -> None:
    abilities = {
        cls.type_name: {
            ability.__name__
            for ability in (Watched, WebhookReceiver, WebhookFed, Answering, DeliveryReporting)
            if issubclass(cls, ability)
        }
        for cls in (ImapConnector, MaildirConnector, SlackConnector, TwilioSmsConnector)
    }
    assert abilities == {
        "imap": {"Watched", "Answering"},
        "maildir": {"Answering"},
        "slack": {"Watched", "WebhookReceiver", "WebhookFed", "Answering"},
        "twilio": {"Watched", "WebhookReceiver", "WebhookFed", "Answering", "DeliveryReporting"},
    }


def test_a_connector_is_polled_as_often_as_its_settings_say(tmp_path: Path) -> None:
    maildir = MaildirConnector(
        MaildirConfig(name="box", type="maildir", path=tmp_path, poll_seconds=7)
    )
    assert isinstance(maildir, Configured)
    assert poll_seconds(maildir) == 7
    assert maildir.sender() is None  # no `smtp` block: its conversations cannot be answered


class _Minimal:
    """A third party's connector with the bare protocol: no settings model kept, no watchers,
    no webhooks."""

    type_name: ClassVar[str] = "minimal"
    channel: ClassVar = "email"
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig

    def __init__(self) -> None:
        self.name = "third-party"
        self.acknowledged: list[Batch] = []

    def fetch(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        if cursors.get("all"):
            return
        payload = b"From: kari@example.fi\r\nSubject: Hei\r\n\r\nTilaus 42 puuttuu.\r\n"
        message = RawMessage(
            connector=self.name,
            external_id="one",
            channel="email",
            payload=payload,
            received_at=datetime(2026, 12, 1, tzinfo=UTC),
        )
        yield Batch(self.name, [message], cursor_scope="all", cursor_after="one")

    def acknowledge(self, batch: Batch) -> None:
        self.acknowledged.append(batch)

    def close(self) -> None:
        pass


def test_a_connector_with_no_optional_ability_runs_in_the_daemon(
    store: Store, tmp_path: Path
) -> None:
    connector = _Minimal()
    assert isinstance(connector, Connector)
    assert not isinstance(
        connector,
        Configured | Watched | WebhookReceiver | WebhookFed | Answering | DeliveryReporting,
    )
    assert poll_seconds(connector) == DEFAULT_POLL_SECONDS

    settings = Settings(database_url=store.url, data_dir=tmp_path, web={"enabled": False})
    totals = Daemon(settings, [connector]).run(once=True)

    assert totals.stored == 1
    assert len(connector.acknowledged) == 1
    with store.readers() as session:
        [text] = session.scalars(select(Message.text))
    assert text.strip() == "Tilaus 42 puuttuu."
