"""The Slack connector against the fake Slack Web API (tests/fake_slack.py), with events
signed by the real scheme and posted over HTTP to our own receiver."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.slack_chat import SlackChatConfig, SlackConnector
from inbox.config import Settings
from inbox.pipeline.ingest import Pipeline
from inbox.service.web import WebServer
from inbox.store.models import Contact, Conversation, Event, Identity, Message, RawRecord
from tests.conftest import BACKENDS, Store
from tests.fake_slack import FakeSlack
from tests.helpers import ingest, mail, make_pipeline, raw

TOKEN_ENV = "INBOX_TEST_SLACK_TOKEN"
SECRET_ENV = "INBOX_TEST_SLACK_SIGNING_SECRET"
CUSTOMERS = "C0SHARED"


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        monkeypatch.setenv(TOKEN_ENV, fake.bot_token)
        monkeypatch.setenv(SECRET_ENV, fake.signing_secret)
        fake.add_channel(CUSTOMERS, name="acme-support")
        fake.add_user("UANNA", name="anna", real_name="Anna Virtanen", email="Anna@Example.fi")
        fake.add_user("UMART", name="mart", real_name="Mart Tamm")
        fake.add_user("UAGENT", name="aino", real_name="Aino Agent", email="aino@desk.example")
        yield fake


def connector_for(fake: FakeSlack, tmp_path: Path, **overrides: Any) -> SlackConnector:
    values: dict[str, Any] = {
        "name": "slack",
        "type": "slack",
        "bot_token": {"env": TOKEN_ENV},
        "signing_secret": {"env": SECRET_ENV},
        "channels": [CUSTOMERS],
        "dms": False,
        "api_url": fake.url,
        "spool_dir": tmp_path / "spool",
        "skip_users": ["UAGENT"],
    }
    values.update(overrides)
    return SlackConnector(SlackChatConfig(**values))


def settings_for(store: Store) -> Settings:
    return Settings(database_url=store.url, ingest={"workers": 0, "batch_size": 50})


def sync(store: Store, connector: SlackConnector) -> int:
    """One poll of the daemon (spooled events, then catch-up when due); the number stored."""
    pipeline = Pipeline(store.readers, store.writers, settings_for(store))
    stored = 0
    try:
        batches = connector.fetch(pipeline.cursors(connector.name), 50)
        for batch, result in pipeline.ingest_many(batches):
            connector.acknowledge(batch)
            stored += result.stored
    finally:
        pipeline.close()
    return stored


@pytest.fixture
def receiver(slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[SlackConnector, WebServer]]:
    connector = connector_for(slack, tmp_path)
    server = WebServer(connector.webhooks(), port=0).start()
    try:
        yield connector, server
    finally:
        server.stop()


def post_event(
    server: WebServer,
    fake: FakeSlack,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    request = urllib.request.Request(
        server.url + "/webhooks/slack/events",
        data=body,
        headers={
            "Content-Type": "application/json",
            **(fake.sign(body) if headers is None else headers),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def message_event(
    fake: FakeSlack, text: str, *, user: str = "UANNA", channel: str = CUSTOMERS, **extra: Any
) -> dict[str, Any]:
    """What Slack sends for a message that was just posted (it is in history too)."""
    ts = fake.post(channel, text, user=user, thread_ts=extra.pop("thread_ts", None))
    event = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "im" if channel.startswith("D") else "channel",
        **extra,
    }
    for stored in fake.messages(channel):
        if stored["ts"] == ts and stored.get("thread_ts"):
            event["thread_ts"] = stored["thread_ts"]
    return fake.event(event)


def stored_texts(store: Store) -> list[str]:
    with store.readers() as session:
        return list(session.scalars(select(Message.text).order_by(Message.id)))


def events_of(store: Store, kind: str) -> list[Event]:
    with store.readers() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


# -- the receiver -----------------------------------------------------------------------------


@BACKENDS
def test_a_signed_event_is_acknowledged_at_once_and_stored_readable(
    store: Store, slack: FakeSlack, receiver: tuple[SlackConnector, WebServer]
) -> None:
    connector, server = receiver
    text = (
        "Hei! Laskussa on virhe, &lt;summa&gt; on väärä: <https://acme.fi/lasku/7|lasku 7> <@UMART>"
    )
    body = json.dumps(message_event(slack, text)).encode()
    started = time.monotonic()
    status, answer = post_event(server, slack, body)
    assert (status, answer.strip()) == (200, "ok")
    assert time.monotonic() - started < 1.0  # Slack gives up after 3 s
    assert connector.spool.count() == 1

    assert sync(store, connector) == 1
    assert connector.spool.count() == 0
    with store.readers() as session:
        message = session.scalars(select(Message)).one()
        conversation = session.get(Conversation, message.conversation_id)
        identity = session.scalars(select(Identity).where(Identity.kind == "slack")).one()
    assert (
        message.text
        == "Hei! Laskussa on virhe, <summa> on väärä: lasku 7 (https://acme.fi/lasku/7) @UMART"
    )
    assert message.language == "fi"
    assert message.from_name == "Anna Virtanen"
    assert conversation is not None and conversation.channel == "chat"
    assert identity.address == "UANNA"


def test_url_verification_is_answered_with_the_challenge(
    slack: FakeSlack, receiver: tuple[SlackConnector, WebServer]
) -> None:
    _, server = receiver
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV"}).encode()
    assert post_event(server, slack, body) == (200, "3eZbrw1aBm2rZgRNFdxV")


def test_forged_stale_and_unsigned_events_are_refused_and_store_nothing(
    store: Store, slack: FakeSlack, receiver: tuple[SlackConnector, WebServer]
) -> None:
    connector, server = receiver
    body = json.dumps(message_event(slack, "Please refund me")).encode()
    forged = slack.sign(body, secret="not-the-signing-secret")
    stale = slack.sign(body, timestamp=int(time.time()) - 6 * 60)
    tampered_body = body.replace(b"refund", b"REFUND")
    assert post_event(server, slack, body, forged)[0] == 401
    assert post_event(server, slack, body, stale)[0] == 401
    assert post_event(server, slack, body, {})[0] == 401
    assert post_event(server, slack, tampered_body, slack.sign(body))[0] == 401
    assert connector.spool.count() == 0
    # The same message must still arrive, once, through catch-up: nothing was half-stored.
    assert sync(store, connector) == 1
    assert stored_texts(store) == ["Please refund me"]


def test_a_replayed_or_retried_event_is_stored_once(
    store: Store, slack: FakeSlack, receiver: tuple[SlackConnector, WebServer]
) -> None:
    connector, server = receiver
    body = json.dumps(message_event(slack, "Where is my order?")).encode()
    headers = slack.sign(body)
    assert post_event(server, slack, body, headers) == (200, "ok\n")
    assert post_event(server, slack, body, headers)[1].strip() == "duplicate"
    sync(store, connector)
    # After ingest too: a retry that comes late finds the event id already done.
    assert post_event(server, slack, body, {**headers, "X-Slack-Retry-Num": "1"})[1].strip() == (
        "duplicate"
    )
    sync(store, connector)
    assert stored_texts(store) == ["Where is my order?"]


def test_an_oversized_request_is_refused_before_it_is_read(
    slack: FakeSlack, tmp_path: Path
) -> None:
    connector = connector_for(slack, tmp_path)
    server = WebServer(connector.webhooks(), port=0, max_body_bytes=4096).start()
    try:
        body = json.dumps(message_event(slack, "x" * 10_000)).encode()
        assert post_event(server, slack, body)[0] == 413
        assert connector.spool.count() == 0
    finally:
        server.stop()


def test_an_event_that_cannot_be_read_is_kept_raw_and_the_rest_goes_on(
    store: Store, slack: FakeSlack, receiver: tuple[SlackConnector, WebServer]
) -> None:
    connector, server = receiver
    broken = slack.event({"type": "message"})
    broken["event"] = "not an object"
    assert post_event(server, slack, json.dumps(broken).encode())[0] == 200
    good = json.dumps(message_event(slack, "Hello, the app crashes")).encode()
    assert post_event(server, slack, good)[0] == 200
    sync(store, connector)
    assert stored_texts(store) == ["Hello, the app crashes"]
    with store.readers() as session:
        kept = session.scalars(select(RawRecord).where(RawRecord.message_id.is_(None))).one()
    assert "unreadable Slack event" in kept.error
    assert b"not an object" in kept.payload


# -- threads, edits, bots, contacts -------------------------------------------------------------


def test_thread_replies_join_their_thread_and_top_level_messages_start_conversations(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    connector = connector_for(slack, tmp_path)
    parent = slack.post(CUSTOMERS, "Our SSO login fails since this morning", user="UANNA")
    slack.post(CUSTOMERS, "Error code is 403", user="UANNA", thread_ts=parent)
    slack.post(CUSTOMERS, "Same for me", user="UMART", thread_ts=parent)
    slack.post(CUSTOMERS, "Unrelated: can we get an invoice copy?", user="UMART")
    assert sync(store, connector) == 4
    with store.readers() as session:
        rows = session.execute(select(Message.text, Message.conversation_id).order_by(Message.id))
        by_text = {text: conversation for text, conversation in rows}
    thread = by_text["Our SSO login fails since this morning"]
    assert by_text["Error code is 403"] == thread
    assert by_text["Same for me"] == thread
    assert by_text["Unrelated: can we get an invoice copy?"] != thread


def test_edits_and_deletions_are_recorded_on_the_conversation(
    store: Store, slack: FakeSlack, receiver: tuple[SlackConnector, WebServer]
) -> None:
    connector, server = receiver
    event = message_event(slack, "My order 1234 is late")
    post_event(server, slack, json.dumps(event).encode())
    sync(store, connector)
    ts = event["event"]["ts"]
    slack.edit(CUSTOMERS, ts, "My order 1243 is late")
    edited = next(m for m in slack.messages(CUSTOMERS) if m["ts"] == ts)
    changed = slack.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": CUSTOMERS,
            "channel_type": "channel",
            "hidden": True,
            "message": edited,
            "previous_message": {**edited, "text": "My order 1234 is late"},
            "ts": edited["edited"]["ts"],
        }
    )
    deleted = slack.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": CUSTOMERS,
            "channel_type": "channel",
            "hidden": True,
            "deleted_ts": ts,
            "previous_message": edited,
            "ts": str(float(ts) + 100),
        }
    )
    # An unfurl changes a message too, without an edit: nothing to record.
    unfurl = slack.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": CUSTOMERS,
            "channel_type": "channel",
            "message": {k: v for k, v in edited.items() if k != "edited"},
        }
    )
    for envelope in (changed, deleted, unfurl):
        assert post_event(server, slack, json.dumps(envelope).encode())[0] == 200
    sync(store, connector)
    [edit] = events_of(store, "message_edited")
    [deletion] = events_of(store, "message_deleted")
    with store.readers() as session:
        original = session.scalars(select(Message)).one()
    assert edit.conversation_id == deletion.conversation_id == original.conversation_id
    assert edit.detail["text"] == "My order 1243 is late"
    assert original.text == "My order 1234 is late"  # what the rules and the agent saw


def test_our_own_and_other_bots_messages_and_agents_are_skipped_unless_allowed(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    slack.post(CUSTOMERS, "Ping from our own bot", user=slack.bot_user, bot_id=slack.bot_id)
    slack.post(CUSTOMERS, "Deploy finished", bot_id="BCI", subtype="bot_message")
    slack.post(CUSTOMERS, "New form entry: refund request", bot_id="BFORM", subtype="bot_message")
    slack.post(CUSTOMERS, "I'll look into it", user="UAGENT")
    slack.post(CUSTOMERS, "Thanks, waiting", user="UANNA")
    slack.post(CUSTOMERS, "", user="UANNA", subtype="channel_join")
    connector = connector_for(slack, tmp_path, allow_bots=["BFORM"])
    sync(store, connector)
    assert stored_texts(store) == ["New form entry: refund request", "Thanks, waiting"]
    with store.readers() as session:
        form = session.scalars(select(Message).where(Message.text.like("New form%"))).one()
    assert form.auto_submitted


@BACKENDS
def test_a_slack_user_with_a_known_email_joins_the_contact_who_writes_by_mail(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    ingest(
        make_pipeline(store),
        raw(mail(sender="Anna <anna@example.fi>", subject="Invoice", body="About my invoice\n")),
    )
    slack.post(CUSTOMERS, "Hi, I wrote to you by mail too", user="UANNA")
    slack.post(CUSTOMERS, "Tere, mul on küsimus", user="UMART")  # no email in profile
    sync(store, connector_for(slack, tmp_path))
    with store.readers() as session:
        anna = session.scalars(
            select(Identity).where(Identity.kind == "email", Identity.address == "anna@example.fi")
        ).one()
        anna_slack = session.scalars(select(Identity).where(Identity.address == "UANNA")).one()
        mart = session.scalars(select(Identity).where(Identity.address == "UMART")).one()
        contacts = session.scalar(select(func.count()).select_from(Contact))
    assert anna_slack.contact_id == anna.contact_id
    assert mart.contact_id != anna.contact_id
    assert contacts == 2


# -- catch-up ---------------------------------------------------------------------------------


@BACKENDS
def test_catch_up_pages_through_history_and_threads_and_stores_each_message_once(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    old_parent = slack.post(CUSTOMERS, "Old question before the cursor", user="UANNA")
    connector = connector_for(slack, tmp_path)
    assert sync(store, connector) == 1
    # The daemon is down: 450 messages (more than two pages) and a reply to an old thread.
    for number in range(450):
        slack.post(CUSTOMERS, f"Message {number}", user="UMART")
    slack.post(CUSTOMERS, "A late answer in the old thread", user="UANNA", thread_ts=old_parent)
    restarted = connector_for(slack, tmp_path)
    assert sync(store, restarted) == 451
    assert len(slack.calls_to("conversations.history")) >= 4
    # Nothing new: a catch-up finds nothing to store twice.
    again = connector_for(slack, tmp_path)
    sync(store, again)
    texts = stored_texts(store)
    assert len(texts) == len(set(texts)) == 452
    with store.readers() as session:
        late = session.scalars(select(Message).where(Message.text.like("A late answer%"))).one()
        first = session.scalars(select(Message).where(Message.text.like("Old question%"))).one()
    assert late.conversation_id == first.conversation_id


def test_an_event_and_the_catch_up_of_the_same_message_store_it_once(
    store: Store, slack: FakeSlack, receiver: tuple[SlackConnector, WebServer]
) -> None:
    connector, server = receiver
    body = json.dumps(message_event(slack, "The export button does nothing")).encode()
    post_event(server, slack, body)
    sync(store, connector)  # the event, then the first catch-up sees it in history too
    sync(store, connector_for(slack, Path(connector.config.spool_dir or ".").parent))
    assert stored_texts(store) == ["The export button does nothing"]


def test_an_edit_made_while_the_daemon_was_down_is_found_by_catch_up(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    ts = slack.post(CUSTOMERS, "Delivery to Tallinn please", user="UMART")
    sync(store, connector_for(slack, tmp_path))
    slack.edit(CUSTOMERS, ts, "Delivery to Tartu please")
    sync(store, connector_for(slack, tmp_path))
    [edit] = events_of(store, "message_edited")
    assert edit.detail["text"] == "Delivery to Tartu please"


def test_a_rate_limited_catch_up_waits_for_retry_after_and_finishes(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    for number in range(5):
        slack.post(CUSTOMERS, f"Question {number}", user="UANNA")
    slack.fail_next("conversations.history", status=429, retry_after=1)
    slack.fail_next("users.info", status=503)
    started = time.monotonic()
    assert sync(store, connector_for(slack, tmp_path)) == 5
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in slack.calls_to("conversations.history")][:2] == [429, 200]


def test_direct_messages_to_the_bot_are_one_conversation_and_agents_dms_are_not_customers(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    slack.add_channel("D0ANNA", is_im=True, user="UANNA")
    slack.add_channel("D0AGENT", is_im=True, user="UAGENT")
    for number in range(3):
        slack.add_channel(f"D0X{number}", is_im=True, user="UMART")  # DMs with nothing in them
    slack.post("D0ANNA", "Hi, can I change my plan?", user="UANNA")
    slack.post("D0ANNA", "To the yearly one", user="UANNA")
    slack.post("D0AGENT", "Assigned to you: #7", user=slack.bot_user, bot_id=slack.bot_id)
    slack.post("D0AGENT", "thanks, on it", user="UAGENT")
    connector = connector_for(slack, tmp_path, dms=True, channels=[])
    assert sync(store, connector) == 2
    with store.readers() as session:
        conversations = set(session.scalars(select(Message.conversation_id)))
        channel = session.scalars(select(Conversation.thread_key)).one()
    assert len(conversations) == 1
    assert channel == "slack:D0ANNA"
    [listing, *_] = slack.calls_to("conversations.list")
    assert listing.args["types"] == "im"
