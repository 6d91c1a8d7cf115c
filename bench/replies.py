"""Agents' replies: from the commit that writes a reply to the provider that takes it.

    python bench/replies.py [--replies 1000] [--temporary 0.05] [--api-latency 0]

Stores a third of N customer conversations in each channel through the real connectors and
pipeline (email from a Maildir, SMS from the fake Twilio's log, chat from the fake Slack's
history) into a fresh SQLite store, writes a reply to each with inbox/routing/reply.py (as the
CLI and Slack threads do), and lets the real ReplySender send them: email to the aiosmtpd
server of the test suite over STARTTLS with a login, SMS through the twilio Client to the fake
Twilio, chat through slack_sdk to the fake Slack. A fraction of the attempts (--temporary,
default 5%) first meets a temporary failure: SMTP 451, Twilio 429, Slack 429. With
--api-latency, Twilio and Slack answer that many seconds late, as over the internet: replies to
different conversations are sent side by side (inbox/outbox/replies.py, PARALLEL), and this
shows what that buys.

It prints, per channel and in all, replies/s and the time from the reply's commit to the
moment the provider's answer was recorded on the message (median, p95, max), for every reply
and for those that met no failure, and whether each reply reached its provider exactly once
(Message-ID at the SMTP server, text in Twilio's log, metadata key in Slack): a reply missing
or sent twice makes the run exit 1. A benchmark, not a test: it prints figures and asserts only
exactly-once.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
from _figures import spread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Connector, Sender
from connectors.maildir import MaildirConfig, MaildirConnector
from connectors.slack_chat import SlackChatConfig, SlackConnector
from connectors.smtp import SmtpConfig, SmtpSender
from connectors.twilio_sms import TwilioSmsConfig, TwilioSmsConnector
from inbox.config import Settings
from inbox.log_setup import configure_logging
from inbox.outbox.replies import ReplySender
from inbox.pipeline.ingest import Pipeline, unrouted_pipeline
from inbox.routing.reply import write_reply
from inbox.store.db import transaction
from inbox.store.models import Conversation, Message, OutboxItem, utcnow
from tests.fake_slack import FakeSlack
from tests.fake_twilio import FakeTwilio
from tests.smtp_server import PASSWORD, SmtpServer

OURS = "+358942424242"
CHANNEL = "C0CUSTOMERS"


def customer_mail(number: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Customer {number} <customer{number}@example.com>"
    message["To"] = "support@desk.example"
    message["Subject"] = f"Question {number}"
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(f"q{number}", "example.com")
    message.set_content(f"Hello, my order {number} has not arrived. " * 3)
    return message.as_bytes()


def run(args: argparse.Namespace) -> bool:
    each = max(1, args.replies // 3)
    rng = random.Random(7)
    with (
        tempfile.TemporaryDirectory() as directory,
        SmtpServer(Path(directory)) as smtp,
        FakeTwilio(numbers=(OURS,)) as twilio,
        FakeSlack() as slack,
    ):
        root = Path(directory)
        os.environ["INBOX_TEST_SMTP_PASSWORD"] = PASSWORD
        os.environ["INBOX_BENCH_TWILIO_TOKEN"] = twilio.auth_token
        os.environ["INBOX_BENCH_SLACK_TOKEN"] = slack.bot_token
        maildir = root / "maildir"
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True)
        slack.add_channel(CHANNEL, name="customers")
        twilio.latency = slack.latency = args.api_latency
        slack.add_user("UCUSTOMER", name="customer", real_name="A Customer")
        for number in range(each):
            (maildir / "new" / f"{number}.M{number}P1.bench").write_bytes(customer_mail(number))
            twilio.receive(f"+35840{number:07d}", OURS, f"Where is order {number}?")
            slack.post(CHANNEL, f"Hi, order {number} is late", user="UCUSTOMER")
        mail = MaildirConnector(MaildirConfig(name="mail", type="maildir", path=maildir))
        sms = TwilioSmsConnector(
            TwilioSmsConfig(
                name="sms",
                type="twilio",
                account_sid=twilio.account_sid,
                auth_token={"env": "INBOX_BENCH_TWILIO_TOKEN"},
                numbers=[OURS],
                api_url=twilio.url,
                spool_dir=root / "spool-sms",
                catchup_seconds=0.01,
            )
        )
        chat = SlackConnector(
            SlackChatConfig(
                name="chat",
                type="slack",
                bot_token={"env": "INBOX_BENCH_SLACK_TOKEN"},
                channels=[CHANNEL],
                dms=False,
                api_url=slack.url,
                spool_dir=root / "spool-chat",
                catchup_seconds=0.01,
            )
        )
        settings = Settings(database_url=f"sqlite:///{root / 'inbox.db'}", ingest={"workers": 0})
        with unrouted_pipeline(settings) as wired:
            wired.migrate()
            for connector in (mail, sms, chat):
                store_all(wired.pipeline, connector)
            with wired.readers() as session:
                conversations = list(session.execute(select(Conversation.id, Conversation.channel)))
            # The temporary failures, spread over the attempts (retries included).
            smtp.answer_next(
                *("451" if rng.random() < args.temporary else "accept" for _ in range(each * 2))
            )
            if args.temporary:
                slack.fail_fraction("chat.postMessage", args.temporary, status=429, retry_after=1)
            senders: dict[str, Sender] = {
                "mail": SmtpSender(SmtpConfig(**smtp.settings())),
                "sms": sms.sender(),
                "chat": chat.sender(),
            }
            sender = ReplySender(wired.writers, senders)
            committed: dict[int, tuple[str, datetime]] = {}
            started = time.monotonic()
            sender.start()
            for conversation_id, channel in conversations:
                if channel == "sms" and rng.random() < args.temporary:
                    twilio.fail_next("Messages.json", status=429, retry_after=1)
                with transaction(wired.writers) as session:
                    written = write_reply(
                        session,
                        conversation_id,
                        author="bench",
                        text=f"Reply {conversation_id}: your order is on its way.",
                    )
                committed[written.message_id] = (channel, utcnow())
                sender.wake()
            writing = time.monotonic() - started
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and pending(wired.readers):
                time.sleep(0.05)
            seconds = time.monotonic() - started
            sender.stop()
            with wired.readers() as session:
                sent_at = dict(
                    session.execute(
                        select(Message.id, Message.sent_at).where(Message.direction == "out")
                    ).all()
                )
                attempts = {
                    int(payload["message"]): count
                    for payload, count in session.execute(
                        select(OutboxItem.payload, OutboxItem.attempts).where(
                            OutboxItem.kind == "reply"
                        )
                    )
                }
        print(f"replies written (one transaction each, the sender running): {writing:.2f} s")
        return report(committed, sent_at, attempts, seconds, smtp, twilio, slack)


def store_all(pipeline: Pipeline, connector: Connector) -> None:
    for batch, _ in pipeline.ingest_many(connector.fetch(pipeline.cursors(connector.name), 200)):
        connector.acknowledge(batch)


def pending(readers: sessionmaker[Session]) -> int:
    with readers() as session:
        rows = session.scalars(
            select(OutboxItem.id).where(OutboxItem.status.in_(("pending", "sending")))
        )
        return len(list(rows))


def report(
    committed: dict[int, tuple[str, datetime]],
    sent_at: dict[int, datetime | None],
    attempts: dict[int, int],
    seconds: float,
    smtp: SmtpServer,
    twilio: FakeTwilio,
    slack: FakeSlack,
) -> bool:
    copies: Counter[str] = Counter()
    for received in smtp.received:
        copies[f"email:{received.message['Message-ID']}"] += 1
    for message in twilio.outbound():
        copies[f"sms:{message['body']}"] += 1
    for message in slack.messages(CHANNEL):
        key = ((message.get("metadata") or {}).get("event_payload") or {}).get("key")
        if key:
            copies[f"chat:{key}"] += 1
    twice = [key for key, count in copies.items() if count > 1]
    missing = [mid for mid in committed if sent_at.get(mid) is None]
    delivered = len(committed) - len(missing)
    print(
        f"{len(committed):,} replies, {delivered:,} delivered in {seconds:.2f} s: "
        f"{delivered / max(seconds, 1e-9):,.0f} replies/s; "
        f"{sum(1 for mid in committed if attempts.get(mid, 1) > 1):,} met a temporary failure first"
    )
    for channel in ("email", "sms", "chat", "all"):
        every, clean = [], []
        for mid, (kind, at) in committed.items():
            done = sent_at.get(mid)
            if done is None or (channel != "all" and kind != channel):
                continue
            every.append((done - at).total_seconds())
            if attempts.get(mid, 1) == 1:
                clean.append((done - at).total_seconds())
        print(
            f"  {channel:<5} commit -> provider: {spread(every)}; no failure met: {spread(clean)}"
        )
    exact = not missing and not twice and len(copies) == len(committed)
    print(
        "  exactly once: "
        + (
            "yes"
            if exact
            else f"NO ({len(missing)} not delivered, {len(twice)} sent more than once, "
            f"{len(copies)} distinct at the providers)"
        )
    )
    return exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=1000)
    parser.add_argument("--temporary", type=float, default=0.05)
    parser.add_argument("--api-latency", type=float, default=0.0)
    args = parser.parse_args()
    configure_logging("error", "console")
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
