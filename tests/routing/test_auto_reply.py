"""Out-of-hours auto-replies through the routed pipeline on SQLite and PostgreSQL: the
customer is told in their language when the desk opens, with their reference, over their own
channel, marked automatic (RFC 3834) at the real SMTP server; and nothing automatic, no machine,
no address of ours, nobody twice within the window and nobody past the hourly cap is answered,
each skip in the history with its reason."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.smtp import SmtpConfig, SmtpSender
from inbox.outbox.replies import ReplySender
from inbox.store.models import Event, Message
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.helpers import Clock, arrive
from tests.smtp_server import PASSWORD, SmtpServer

pytestmark = BACKENDS

DESK = """\
    timezone: Europe/Helsinki
    calendars:
      office: {timezone: Europe/Helsinki, hours: {mon-fri: "08:00-17:00"}, country: FI}
    rules:
      - name: closed
        when: {out_of_hours: office}
        then: {auto_reply: {answer: closed, calendar: office, per_hour: 3}}
"""
ANSWERS = {
    "closed.fi.md": "Hei {customer_first_name}! Olemme kiinni, avaamme {next_open}. "
    "Viitteesi on #{conversation_id}.",
    "closed.en.md": "We are closed until {next_open}. Your reference is #{conversation_id}.",
}
#: Saturday 12 December 2026, 12:00 in Helsinki: closed until Monday 08:00.
SATURDAY = datetime(2026, 12, 12, 10, 0, tzinfo=UTC)


@pytest.fixture
def rules(tmp_path: Path) -> RulesInForce:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(DESK), encoding="utf-8")
    (tmp_path / "answers").mkdir()
    for name, text in ANSWERS.items():
        (tmp_path / "answers" / name).write_text(text, encoding="utf-8")
    return RulesInForce(tmp_path / "rules.yaml")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    monkeypatch.setenv("INBOX_TEST_SMTP_PASSWORD", PASSWORD)
    with SmtpServer(tmp_path) as running:
        yield running


def auto_replies(store: Store) -> list[Message]:
    with store.readers() as session:
        return list(
            session.scalars(
                select(Message).where(Message.author == "auto-reply").order_by(Message.id)
            )
        )


def skips(store: Store) -> list[str]:
    with store.readers() as session:
        rows = session.scalars(
            select(Event).where(Event.kind == "auto_reply_skipped").order_by(Event.id)
        )
        return [str(event.detail["reason"]) for event in rows]


def test_out_of_hours_the_customer_is_told_when_the_desk_opens_in_their_language(
    store: Store, rules: RulesInForce, server: SmtpServer
) -> None:
    clock = Clock()
    clock.now = SATURDAY
    conversation = arrive(store, rules, clock, message_id="q1@example.fi")
    [reply] = auto_replies(store)
    assert reply.text == (
        "Hei Aino! Olemme kiinni, avaamme maanantaina 08:00 (Europe/Helsinki). "
        f"Viitteesi on #{conversation.id}."
    )
    assert reply.auto_submitted and reply.to_addresses == ["aino@example.fi"]
    # No agent answered: the conversation still waits for one.
    assert (conversation.status, conversation.first_response_at) == ("open", None)

    smtp = SmtpSender(SmtpConfig(**server.settings()))
    ReplySender(store.writers, {"mail": smtp}, clock=clock).run_once()
    [sent] = server.received
    assert sent.message["Auto-Submitted"] == "auto-replied"
    assert sent.message["X-Auto-Response-Suppress"] == "All"
    assert sent.message["In-Reply-To"] == "<q1@example.fi>"

    # In office hours the rule does not match: nothing automatic.
    clock.now = datetime(2026, 12, 14, 8, 0, tzinfo=UTC)  # Monday 10:00
    arrive(store, rules, clock, message_id="q2@example.fi", sender="Mart <mart@example.ee>")
    assert len(auto_replies(store)) == 1


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"extra_headers": [("Auto-Submitted", "auto-replied")]}, "the message is automatic"),
        ({"extra_headers": [("Precedence", "bulk")]}, "bulk mail"),
        ({"extra_headers": [("List-Id", "<news.example.fi>")]}, "mailing list"),
        ({"extra_headers": [("X-Auto-Response-Suppress", "OOF")]}, "the sender asks for none"),
        ({"sender": "MAILER-DAEMON@mx.example.fi"}, "the message is a bounce"),
        ({"sender": "Tilaus <do-not-reply@kauppa.example>"}, "a machine's address"),
        ({"sender": "Kauppa <no-reply@kauppa.example>"}, "a machine's address"),
        ({"sender": "support@northwind.example"}, "is our own address"),
    ],
)
def test_what_gets_no_auto_reply_and_says_why(
    store: Store, rules: RulesInForce, options: dict[str, object], reason: str
) -> None:
    clock = Clock()
    clock.now = SATURDAY
    arrive(store, rules, clock, message_id="x1@example.fi", **options)
    assert auto_replies(store) == []
    [said] = skips(store)
    assert reason in said


def test_once_per_contact_within_the_window_and_no_more_than_the_hourly_cap(
    store: Store, rules: RulesInForce
) -> None:
    clock = Clock()
    clock.now = SATURDAY
    arrive(store, rules, clock, message_id="a1@example.fi", subject="Teltta")
    clock.now += timedelta(hours=1)
    arrive(store, rules, clock, message_id="a2@example.fi", subject="Makuupussi")
    assert len(auto_replies(store)) == 1
    assert skips(store) == ["the contact got an auto-reply at 2026-12-12 10:00 UTC (once per 4 h)"]
    clock.now += timedelta(hours=3, minutes=1)  # past the window: answered again
    arrive(store, rules, clock, message_id="a3@example.fi", subject="Retkikeitin")
    assert len(auto_replies(store)) == 2

    # Three more people within the hour: a3 and two of them make three, the third waits.
    for number in range(3):
        sender = f"b{number}@example.fi"
        arrive(store, rules, clock, message_id=f"b{number}@example.fi", sender=sender)
    assert len(auto_replies(store)) == 4
    assert skips(store)[-1] == "3 auto-replies went out in the last hour (per_hour: 3)"
