"""The whole Slack loop in a running daemon: a customer writes in a shared channel, the event
reaches our receiver, the message is stored and routed, and the agent gets a DM, in seconds."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.slack_chat import SlackChatConfig, SlackConnector
from inbox.config import Settings
from inbox.service.daemon import Daemon
from inbox.store.models import Message, OutboxItem
from rules.holder import RulesInForce
from tests.conftest import Store
from tests.fake_slack import FakeSlack
from tests.processes import wait_for

TOKEN_ENV = "INBOX_TEST_SLACK_TOKEN"
SECRET_ENV = "INBOX_TEST_SLACK_SIGNING_SECRET"
CUSTOMERS = "C0SHARED"
RULES = """\
agents:
  aino: {name: Aino Agent, slack: UAINO, email: aino@desk.example, languages: [fi, en], capacity: 5}
teams:
  support: {members: [aino], strategy: round_robin}
rules:
  - name: slack-to-support
    when: {channel: chat}
    then: {assign: {team: support}}
"""


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        monkeypatch.setenv(TOKEN_ENV, fake.bot_token)
        monkeypatch.setenv(SECRET_ENV, fake.signing_secret)
        fake.add_channel(CUSTOMERS, name="acme-support")
        fake.add_user("UANNA", name="anna", real_name="Anna Virtanen", email="anna@acme.example")
        fake.add_user("UAINO", name="aino", real_name="Aino Agent")
        yield fake


class Running:
    """A daemon in a thread, stopped (and its thread joined) at the end of the test."""

    def __init__(self, store: Store, fake: FakeSlack, tmp_path: Path) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES)
        self.settings = Settings(
            database_url=store.url,
            data_dir=tmp_path,
            rules_file=rules,
            ingest={"workers": 0},
            slack={"bot_token": {"env": TOKEN_ENV}, "api_url": fake.url},
            web={"listen": "127.0.0.1:0"},
        )
        connector = SlackConnector(
            SlackChatConfig(
                name="slack",
                type="slack",
                bot_token={"env": TOKEN_ENV},
                signing_secret={"env": SECRET_ENV},
                channels=[CUSTOMERS],
                dms=False,
                api_url=fake.url,
                spool_dir=tmp_path / "spool",
                # Long on purpose: only the receiver's wake-up can make it quick.
                poll_seconds=60,
                catchup_seconds=600,
            )
        )
        self.daemon = Daemon(self.settings, [connector], rules=RulesInForce(rules))
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.daemon.web is not None, "the receiver to listen")
        return self

    def __exit__(self, *_: object) -> None:
        self.daemon.stopping.set()
        self.daemon.wake.set()
        self.thread.join(30)
        assert not self.thread.is_alive()

    @property
    def events_url(self) -> str:
        assert self.daemon.web is not None
        return self.daemon.web.url + "/webhooks/slack/events"


def dm_texts(fake: FakeSlack, user: str) -> list[str]:
    channel = fake.dm_channel(user)
    return [m.get("text", "") for m in fake.messages(channel)] if channel else []


def test_a_customer_message_in_slack_pings_the_assigned_agent_within_seconds(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    with Running(store, slack, tmp_path) as running:
        wait_for(lambda: slack.calls_to("conversations.history"), "the first catch-up")
        ts = slack.post(CUSTOMERS, "Hei, tilini on lukittu enkä pääse kirjautumaan", user="UANNA")
        event = slack.event(
            {
                "type": "message",
                "channel": CUSTOMERS,
                "channel_type": "channel",
                "user": "UANNA",
                "text": "Hei, tilini on lukittu enkä pääse kirjautumaan",
                "ts": ts,
            }
        )
        body = json.dumps(event).encode()
        request = urllib.request.Request(
            running.events_url,
            data=body,
            headers={"Content-Type": "application/json", **slack.sign(body)},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200
        took = wait_for(lambda: dm_texts(slack, "UAINO"), "the agent's DM")
        assert took < 5.0
    [ping] = dm_texts(slack, "UAINO")
    assert "Assigned to you" in ping
    dm = slack.messages(slack.dm_channel("UAINO") or "")[0]
    shown = json.dumps(dm["blocks"], ensure_ascii=False)
    assert "Anna Virtanen" in shown
    assert "tilini on lukittu" in shown
    assert "slack-to-support" in shown
    with store.readers() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1
        [item] = session.scalars(select(OutboxItem))
    assert item.status == "sent"
    assert item.result["ts"] == dm["ts"]


def test_messages_written_while_the_daemon_was_down_arrive_when_it_starts(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    for number in range(3):
        slack.post(CUSTOMERS, f"Question {number} while you were away", user="UANNA")

    def stored() -> int:
        with store.readers() as session:
            return int(session.scalar(select(func.count()).select_from(Message)) or 0)

    with Running(store, slack, tmp_path):
        wait_for(lambda: stored() == 3, "the catch-up to store 3 messages")
        wait_for(lambda: len(dm_texts(slack, "UAINO")) == 3, "three pings")
