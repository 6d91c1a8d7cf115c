"""Replies to customers who wrote in Slack, through the real slack_sdk against the fake Slack
API on loopback, on SQLite and PostgreSQL: posted once in the customer's thread, found again
when Slack's answer was lost, and never read back as a customer's message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from connectors.slack_chat import SlackChatConfig, SlackConnector
from inbox.outbox.replies import ReplySender
from inbox.routing.person import close_by_person
from inbox.routing.reply import write_reply
from inbox.routing.survey import send_surveys
from inbox.store.db import transaction
from inbox.store.models import Conversation, Message, OutboxItem
from inbox.webhook import WebRequest
from rules.answers import load_answers
from tests.conftest import BACKENDS, Store
from tests.fake_slack import FakeSlack
from tests.helpers import Clock, make_pipeline

pytestmark = BACKENDS

TOKEN_ENV = "INBOX_TEST_REPLY_SLACK_TOKEN"
CUSTOMERS = "C0SHARED"
ANSWER = "Hei Anna! Uusi vetoketju lähtee huomenna."


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        monkeypatch.setenv(TOKEN_ENV, fake.bot_token)
        fake.add_channel(CUSTOMERS, name="acme-support")
        fake.add_user("UANNA", name="anna", real_name="Anna Virtanen")
        yield fake


@pytest.fixture
def connector(slack: FakeSlack, tmp_path: Path) -> SlackConnector:
    config = SlackChatConfig(
        name="slack",
        type="slack",
        bot_token={"env": TOKEN_ENV},
        channels=[CUSTOMERS],
        dms=False,
        api_url=slack.url,
        spool_dir=tmp_path / "spool",
        catchup_seconds=0.01,
    )
    return SlackConnector(config)


def sync(store: Store, connector: SlackConnector) -> None:
    pipeline = make_pipeline(store)
    try:
        for batch, _ in pipeline.ingest_many(connector.fetch(pipeline.cursors("slack"), 50)):
            connector.acknowledge(batch)
    finally:
        pipeline.close()


@pytest.fixture
def asked(store: Store, slack: FakeSlack, connector: SlackConnector) -> tuple[str, int]:
    """Anna asks in the shared channel; the reply to her is written. (her ts, reply's id)"""
    ts = slack.post(CUSTOMERS, "Teltan vetoketju meni rikki, voitteko auttaa?", user="UANNA")
    sync(store, connector)
    with store.readers() as session:
        conversation_id = session.scalars(select(Conversation.id)).one()
    with transaction(store.writers) as session:
        written = write_reply(session, conversation_id, author="esko", text=ANSWER)
    return ts, written.message_id


def ours(slack: FakeSlack) -> list[dict[str, object]]:
    return [m for m in slack.messages(CUSTOMERS) if m.get("bot_id") == slack.bot_id]


def delivery(store: Store, message_id: int) -> tuple[str, str, str]:
    with store.readers() as session:
        message = session.get(Message, message_id)
        row = session.scalars(select(OutboxItem).where(OutboxItem.kind == "reply")).one()
        assert message is not None
        return message.delivery, row.status, message.delivery_detail


def test_the_reply_is_posted_once_in_the_customers_thread_and_not_read_back(
    store: Store, slack: FakeSlack, connector: SlackConnector, asked: tuple[str, int]
) -> None:
    customer_ts, reply_id = asked
    sender = ReplySender(store.writers, {"slack": connector.sender()})
    assert sender.run_once() == 1
    assert sender.run_once() == 0

    [posted] = ours(slack)
    assert posted["text"] == ANSWER
    assert posted["thread_ts"] == customer_ts
    assert delivery(store, reply_id)[:2] == ("sent", "sent")

    sync(store, connector)  # the catch-up sees our post in the thread
    with store.readers() as session:
        incoming = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert incoming == 1


def test_a_429_waits_out_retry_after_then_posts_once(
    store: Store, slack: FakeSlack, connector: SlackConnector, asked: tuple[str, int]
) -> None:
    _, reply_id = asked
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    clock = Clock()
    sender = ReplySender(store.writers, {"slack": connector.sender()}, clock=clock)
    sender.run_once()
    state, status, detail = delivery(store, reply_id)
    assert (state, status) == ("queued", "pending") and "rate limited by Slack for 7 s" in detail
    clock.now += timedelta(seconds=6)
    assert sender.run_once() == 0
    clock.now += timedelta(seconds=2)
    assert sender.run_once() == 1
    assert len(ours(slack)) == 1
    assert delivery(store, reply_id)[:2] == ("sent", "sent")


def test_a_post_whose_answer_was_lost_is_found_not_posted_again(
    store: Store, slack: FakeSlack, connector: SlackConnector, asked: tuple[str, int]
) -> None:
    _, reply_id = asked
    slack.drop_next("chat.postMessage")  # Slack posts it, the connection closes unanswered
    ReplySender(store.writers, {"slack": connector.sender()}).run_once()
    assert len(ours(slack)) == 1
    state, status, detail = delivery(store, reply_id)
    assert (state, status) == ("sent", "sent")
    assert detail.startswith("found sent after")


def test_an_archived_channel_fails_the_reply_with_slacks_reason(
    store: Store, slack: FakeSlack, connector: SlackConnector, asked: tuple[str, int]
) -> None:
    _, reply_id = asked
    slack.refuse("chat.postMessage", "is_archived")
    ReplySender(store.writers, {"slack": connector.sender()}).run_once()
    state, status, detail = delivery(store, reply_id)
    assert (state, status) == ("failed", "dead")
    assert "is_archived" in detail


def test_a_survey_in_slack_has_buttons_and_a_click_is_the_customers_score(
    store: Store, slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOX_TEST_REPLY_SLACK_SECRET", slack.signing_secret)
    connector = SlackConnector(
        SlackChatConfig(
            name="slack",
            type="slack",
            bot_token={"env": TOKEN_ENV},
            signing_secret={"env": "INBOX_TEST_REPLY_SLACK_SECRET"},
            channels=[CUSTOMERS],
            dms=False,
            api_url=slack.url,
            spool_dir=tmp_path / "spool",
            catchup_seconds=0.01,
        )
    )
    customer_ts = slack.post(CUSTOMERS, "Teltan vetoketju meni rikki.", user="UANNA")
    sync(store, connector)
    folder = tmp_path / "answers"
    folder.mkdir()
    (folder / "csat.en.md").write_text("How did we do? Pick 1-5.", encoding="utf-8")
    answers, _ = load_answers(folder)
    closed_at = datetime.now(UTC) - timedelta(minutes=10)
    with transaction(store.writers) as session:
        conversation = session.scalars(select(Conversation)).one()
        conversation.csat_survey = "csat"
        close_by_person(session, conversation.id, person="esko", now=closed_at)
    with transaction(store.writers) as session:
        assert send_surveys(session, datetime.now(UTC), answers) == [conversation.id]
    ReplySender(store.writers, {"slack": connector.sender()}).run_once()
    [survey] = ours(slack)
    assert survey["thread_ts"] == customer_ts
    [actions] = [block for block in survey["blocks"] if block["type"] == "actions"]
    assert [button["value"] for button in actions["elements"]] == ["1", "2", "3", "4", "5"]

    # Anna clicks 4: Slack posts the click, signed, to the app's Interactivity URL.
    click = {
        "type": "block_actions",
        "team": {"id": slack.team_id},
        "user": {"id": "UANNA"},
        "channel": {"id": CUSTOMERS},
        "container": {"type": "message", "channel_id": CUSTOMERS, "message_ts": survey["ts"]},
        "message": {"ts": survey["ts"], "thread_ts": customer_ts, "type": "message"},
        "actions": [{**actions["elements"][3], "action_ts": "1765432100.000400"}],
    }
    body = urlencode({"payload": json.dumps(click)}).encode()
    headers = {key.lower(): value for key, value in slack.sign(body).items()}
    request = WebRequest("POST", "/webhooks/slack/chat-actions", headers, body)
    handler = connector.webhooks()["/webhooks/slack/chat-actions"]
    assert handler(request).status == 200
    assert handler(request).body == b"duplicate\n"  # Slack delivering it again
    forged = WebRequest(
        "POST", "/webhooks/slack/chat-actions", {**headers, "x-slack-signature": "v0=0"}, body
    )
    assert handler(forged).status == 401
    pipeline = make_pipeline(store)
    try:
        for batch, _ in pipeline.ingest_many(connector.fetch_spooled(50)):
            connector.acknowledge(batch)
    finally:
        pipeline.close()
    with store.readers() as session:
        scored = session.get(Conversation, conversation.id)
        assert scored is not None
        assert (scored.status, scored.csat_score) == ("closed", 4)
