"""Agents answer from Slack, end to end in a running daemon, on SQLite and PostgreSQL: a
customer's mail arrives, the assigned agent's ping goes out (fake Slack), the agent replies in
the ping's thread (a signed Events API request), the reply reaches the SMTP server, and the
customer's answer threads into the same conversation."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connectors.maildir import MaildirConfig, MaildirConnector
from inbox.config import Settings
from inbox.service.daemon import Daemon
from inbox.store.models import Conversation, Event, Message, PingThread
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.fake_slack import FakeSlack
from tests.helpers import mail
from tests.processes import wait_for
from tests.smtp_server import SmtpServer

pytestmark = BACKENDS

TOKEN_ENV = "INBOX_TEST_AGENT_SLACK_TOKEN"
SECRET_ENV = "INBOX_TEST_AGENT_SLACK_SECRET"
RULES = """\
timezone: Europe/Helsinki
agents:
  esko: {slack: UESKO, languages: [fi, en]}
teams:
  support: {members: [esko]}
rules:
  - name: everything-to-support
    when: {channel: email}
    then:
      assign: {team: support}
      extract: {order_number: '(?i)(?:order|tilau)\\D{0,12}(\\d{4,10})'}
"""
ANSWERS = {
    "shipping.en.md": "Hi {customer_first_name}, order {order_number} left today. {agent_name}",
    "shipping.fi.md": "Hei {customer_first_name}, tilauksesi {order_number} lähti tänään.",
    "thanks.en.md": "Thank you, {customer_first_name}!",
}
ANSWER = "Hei Aino, uusi vetoketju lähtee huomenna."


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        monkeypatch.setenv(TOKEN_ENV, fake.bot_token)
        monkeypatch.setenv(SECRET_ENV, fake.signing_secret)
        fake.add_user("UESKO", name="esko", real_name="Esko Agent")
        fake.add_user("USTRANGER", name="visitor", real_name="Not An Agent")
        yield fake


class Running:
    def __init__(self, store: Store, slack: FakeSlack, smtp: SmtpServer, tmp_path: Path) -> None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES, encoding="utf-8")
        (tmp_path / "answers").mkdir()
        for name, answer in ANSWERS.items():
            (tmp_path / "answers" / name).write_text(answer, encoding="utf-8")
        self.maildir = tmp_path / "maildir"
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        settings = Settings(
            database_url=store.url,
            data_dir=tmp_path,
            rules_file=rules,
            ingest={"workers": 0},
            slack={
                "bot_token": {"env": TOKEN_ENV},
                "signing_secret": {"env": SECRET_ENV},
                "api_url": slack.url,
            },
            web={"listen": "127.0.0.1:0"},
        )
        connector = MaildirConnector(
            MaildirConfig(
                name="box",
                type="maildir",
                path=self.maildir,
                poll_seconds=0.2,
                smtp=smtp.settings(),
            )
        )
        self.daemon = Daemon(settings, [connector], rules=RulesInForce(rules))
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)
        self.slack = slack
        self.store = store

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.daemon.web is not None, "the receiver to listen")
        return self

    def __exit__(self, *_: object) -> None:
        self.daemon.stopping.set()
        self.daemon.wake.set()
        self.thread.join(30)
        assert not self.thread.is_alive()

    def pinged(self, payload: bytes) -> PingThread:
        """Deliver a customer's first mail; the thread of the ping it brings esko."""
        self.deliver("1.M1P1.test", payload)
        wait_for(lambda: _has_ping_thread(self.store), "the ping to esko", timeout=30)
        return ping_thread(self.store)

    def deliver(self, name: str, payload: bytes) -> None:
        (self.maildir / "tmp" / name).write_bytes(payload)
        (self.maildir / "tmp" / name).rename(self.maildir / "new" / name)

    def post_event(self, event: dict[str, object], *, sign: bool = True) -> tuple[int, str]:
        body = json.dumps(self.slack.event(event)).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            headers.update(self.slack.sign(body))
        else:
            headers.update({"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=forged"})
        assert self.daemon.web is not None
        request = urllib.request.Request(
            self.daemon.web.url + "/webhooks/slack/agents", data=body, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def click(self, user: str, action: str, value: str, *, sign: bool = True) -> tuple[int, str]:
        return self.interact(
            {
                "type": "block_actions",
                "user": {"id": user},
                "actions": [{"action_id": action, "value": value, "type": "button"}],
            },
            sign=sign,
        )

    def pick(self, user: str, action: str, value: str, thread: PingThread) -> tuple[int, str]:
        """A choice in a ping's menu, as Slack posts it: the message it was made on too."""
        return self.interact(
            {
                "type": "block_actions",
                "user": {"id": user},
                "container": {
                    "type": "message",
                    "message_ts": thread.ts,
                    "channel_id": thread.channel,
                    "is_ephemeral": False,
                },
                "channel": {"id": thread.channel},
                "message": {"ts": thread.ts, "type": "message"},
                "actions": [
                    {
                        "action_id": action,
                        "block_id": f"inbox_{thread.conversation_id}",
                        "type": "static_select",
                        "selected_option": {
                            "text": {"type": "plain_text", "text": value},
                            "value": value,
                        },
                        "action_ts": f"{time.time():.6f}",
                    }
                ],
            }
        )

    def interact(self, payload: dict[str, object], *, sign: bool = True) -> tuple[int, str]:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        headers.update(self.slack.sign(body) if sign else {"X-Slack-Signature": "v0=forged"})
        assert self.daemon.web is not None
        request = urllib.request.Request(
            self.daemon.web.url + "/webhooks/slack/actions", data=body, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def ping_thread(store: Store) -> PingThread:
    with store.readers() as session:
        found = session.scalars(select(PingThread)).first()
        assert found is not None
        return found


def test_an_agents_answer_in_the_pings_thread_reaches_the_customer_once(
    store: Store, slack: FakeSlack, smtp: SmtpServer, tmp_path: Path
) -> None:
    with Running(store, slack, smtp, tmp_path) as running:
        thread = running.pinged(mail(message_id="q1@example.fi"))
        assert thread.agent == "esko"

        ts = slack.post(thread.channel, ANSWER, user="UESKO", thread_ts=thread.ts)
        event = {
            "type": "message",
            "channel": thread.channel,
            "channel_type": "im",
            "user": "UESKO",
            "text": ANSWER,
            "ts": ts,
            "thread_ts": thread.ts,
        }
        assert running.post_event(event) == (200, "ok\n")
        assert running.post_event(event) == (200, "duplicate\n")  # Slack's retry
        wait_for(lambda: len(smtp.received) == 1, "the reply at the SMTP server", timeout=30)
        sent = smtp.received[0]
        assert sent.recipients == ["aino@example.fi"]
        assert sent.message["In-Reply-To"] == "<q1@example.fi>"

        note_ts = slack.post(
            thread.channel, "note: soitin hänelle", user="UESKO", thread_ts=thread.ts
        )
        status = running.post_event({**event, "ts": note_ts, "text": "note: soitin hänelle"})
        assert status == (200, "ok\n")

        our_id = sent.message["Message-ID"].strip("<>")
        running.deliver("2.M2P1.test", mail(message_id="a1@example.fi", in_reply_to=our_id))
        wait_for(
            lambda: _directions(store) == ["in", "out", "note", "in"], "the answer", timeout=30
        )
        with store.readers() as session:
            assert session.scalars(select(Conversation.status)).all() == ["open"]
        assert len(smtp.received) == 1  # the note was never sent, the reply once

        # Her answer follows into the thread, where esko can answer it in turn.
        def followed() -> list[str]:
            return [
                str(m.get("text"))
                for m in slack.messages(thread.channel)
                if m.get("bot_id") == slack.bot_id
                and m.get("thread_ts") == thread.ts
                and m["ts"] != thread.ts
            ]

        wait_for(lambda: followed(), "her answer in the ping's thread", timeout=30)
        [posted] = followed()
        assert posted.startswith("Aino Virtanen wrote: Hei, teltan vetoketju")


def test_a_forged_or_strangers_message_in_the_thread_writes_nothing(
    store: Store, slack: FakeSlack, smtp: SmtpServer, tmp_path: Path
) -> None:
    with Running(store, slack, smtp, tmp_path) as running:
        thread = running.pinged(mail(message_id="q1@example.fi"))
        event = {
            "type": "message",
            "channel": thread.channel,
            "channel_type": "im",
            "user": "UESKO",
            "text": "forged",
            "ts": "1700000000.000100",
            "thread_ts": thread.ts,
        }
        assert running.post_event(event, sign=False)[0] == 401
        assert running.post_event({**event, "user": "USTRANGER"}) == (200, "not an agent\n")
        assert _directions(store) == ["in"]


def _has_ping_thread(store: Store) -> bool:
    with store.readers() as session:
        return session.scalars(select(PingThread)).first() is not None


def _directions(store: Store) -> list[str]:
    with store.readers() as session:
        return list(session.scalars(select(Message.direction).order_by(Message.id)))


def test_the_pings_buttons_hand_back_claim_and_close(
    store: Store, slack: FakeSlack, smtp: SmtpServer, tmp_path: Path
) -> None:
    with Running(store, slack, smtp, tmp_path) as running:
        thread = running.pinged(mail(message_id="q1@example.fi"))
        [ping] = [m for m in slack.messages(thread.channel) if m["ts"] == thread.ts]
        elements = next(b for b in ping["blocks"] if b["type"] == "actions")["elements"]
        value = str(thread.conversation_id)
        assert [(b["action_id"], b["value"]) for b in elements if b["type"] == "button"] == [
            ("inbox_close", value),
            ("inbox_hand_back", value),
        ]
        menus = {b["action_id"]: b["options"] for b in elements if b["type"] == "static_select"}
        assert [o["value"] for o in menus["inbox_snooze"]] == [
            f"{value}:{choice}" for choice in ("1h", "4h", "tomorrow", "monday")
        ]
        assert [o["value"] for o in menus["inbox_answer"]] == [
            f"{value}:shipping",
            f"{value}:thanks",
        ]

        assert running.click("UESKO", "inbox_hand_back", value, sign=False)[0] == 401
        assert running.click("USTRANGER", "inbox_close", value) == (200, "not an agent\n")
        assert _conversation(store) == ("open", "esko")
        assert running.click("UESKO", "inbox_hand_back", value) == (200, "ok\n")
        assert _conversation(store) == ("open", None)
        assert running.click("UESKO", "inbox_claim", value) == (200, "ok\n")
        assert _conversation(store) == ("open", "esko")
        assert running.click("UESKO", "inbox_close", value) == (200, "ok\n")
        assert _conversation(store) == ("closed", "esko")
        with store.readers() as session:
            history = session.execute(
                select(Event.kind, Event.actor).where(Event.actor == "person:esko")
            ).all()
        assert [tuple(row) for row in history] == [
            ("unassigned", "person:esko"),
            ("assigned", "person:esko"),
            ("closed", "person:esko"),
        ]


def _conversation(store: Store) -> tuple[str, str | None]:
    with store.readers() as session:
        conversation = session.scalars(select(Conversation)).one()
        return conversation.status, conversation.assignee


def _notices(slack: FakeSlack, thread: PingThread) -> list[str]:
    return [
        str(m.get("text"))
        for m in slack.messages(thread.channel)
        if m.get("thread_ts") == thread.ts and m["ts"] != thread.ts and m.get("bot_id")
    ]


def test_snooze_from_the_ping_until_tomorrow_morning_in_the_agents_time_zone(
    store: Store, slack: FakeSlack, smtp: SmtpServer, tmp_path: Path
) -> None:
    with Running(store, slack, smtp, tmp_path) as running:
        thread = running.pinged(mail(message_id="q1@example.fi"))
        value = f"{thread.conversation_id}:tomorrow"
        assert running.pick("UESKO", "inbox_snooze", value, thread) == (200, "ok\n")
        with store.readers() as session:
            conversation = session.scalars(select(Conversation)).one()
        assert conversation.status == "pending"
        assert conversation.snoozed_until is not None
        helsinki = conversation.snoozed_until.astimezone(ZoneInfo("Europe/Helsinki"))
        tomorrow = datetime.now(ZoneInfo("Europe/Helsinki")).date() + timedelta(days=1)
        assert (helsinki.date(), helsinki.hour, helsinki.minute) == (tomorrow, 9, 0)
        wait_for(lambda: _notices(slack, thread), "the snooze said in the thread", timeout=30)
        assert _notices(slack, thread) == [
            f"Snoozed by esko until {helsinki:%a %d %b} 09:00 ({helsinki.tzname()})."
        ]

        # The customer writes before the time: open again at once, the snooze gone.
        running.deliver(
            "2.M2P1.test", mail(message_id="q2@example.fi", in_reply_to="q1@example.fi")
        )
        wait_for(lambda: _directions(store) == ["in", "in"], "her second mail", timeout=30)
        with store.readers() as session:
            conversation = session.scalars(select(Conversation)).one()
        assert (conversation.status, conversation.snoozed_until) == ("open", None)


def test_canned_answers_from_the_pings_menu_and_the_thread_in_the_customers_language(
    store: Store, slack: FakeSlack, smtp: SmtpServer, tmp_path: Path
) -> None:
    with Running(store, slack, smtp, tmp_path) as running:
        thread = running.pinged(
            mail(message_id="q1@example.fi", body="Hei, missä on tilaukseni nro 104233? Aino\n")
        )
        with store.readers() as session:
            conversation = session.scalars(select(Conversation)).one()
        assert conversation.attributes == {"order_number": "104233"}

        value = f"{thread.conversation_id}:shipping"
        assert running.pick("UESKO", "inbox_answer", value, thread) == (200, "ok\n")
        wait_for(lambda: len(smtp.received) == 1, "the answer at the SMTP server", timeout=30)
        sent = smtp.received[0].message
        assert sent.get_content().strip() == "Hei Aino, tilauksesi 104233 lähti tänään."
        wait_for(lambda: _notices(slack, thread), "what was sent, in the thread", timeout=30)
        assert _notices(slack, thread) == ["esko sent the answer 'shipping' (fi)."]

        # In the thread: `!answer NAME` sends one; an unknown name is refused with the reason.
        for text in ("!answer thanks", "!answer nosuch"):
            ts = slack.post(thread.channel, text, user="UESKO", thread_ts=thread.ts)
            event = {
                "type": "message",
                "channel": thread.channel,
                "user": "UESKO",
                "text": text,
                "ts": ts,
                "thread_ts": thread.ts,
            }
            assert running.post_event(event)[0] == 200
        wait_for(lambda: len(smtp.received) == 2, "the second answer", timeout=30)
        assert smtp.received[1].message.get_content().strip() == "Thank you, Aino!"
        wait_for(lambda: len(_notices(slack, thread)) == 2, "the refusal", timeout=30)
        refusal = _notices(slack, thread)[1]
        assert refusal.startswith("Not sent: no answer named 'nosuch'")
        time.sleep(0.5)
        assert len(smtp.received) == 2


def test_an_answer_needing_an_order_number_no_rule_found_is_not_sent(
    store: Store, slack: FakeSlack, smtp: SmtpServer, tmp_path: Path
) -> None:
    with Running(store, slack, smtp, tmp_path) as running:
        thread = running.pinged(mail(message_id="q1@example.fi"))
        value = f"{thread.conversation_id}:shipping"
        assert running.pick("UESKO", "inbox_answer", value, thread) == (200, "ok\n")
        wait_for(lambda: _notices(slack, thread), "the refusal in the thread", timeout=30)
        assert _notices(slack, thread) == [
            "Not done: answer 'shipping' needs {order_number}, which no rule found in this "
            "conversation"
        ]
        assert _directions(store) == ["in"]
