"""An agent's reply and note in the store, on SQLite and PostgreSQL: what the history shows,
what waits in the outbox, and how the customer's answer threads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from inbox.routing.reply import CannotReply, write_reply
from inbox.store.db import transaction
from inbox.store.models import Contact, Conversation, Event, Message, OutboxItem
from tests.conftest import BACKENDS, Store
from tests.helpers import conversation_of, ingest, mail, make_pipeline, raw

pytestmark = BACKENDS

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ANSWER = "Hei Aino,\n\nuusi vetoketju lähtee huomenna.\n\nEsko"


@pytest.fixture
def conversation_id(store: Store) -> int:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="q1@example.fi")))
    ingest(
        pipeline,
        raw(
            mail(
                message_id="q2@example.fi",
                in_reply_to="q1@example.fi",
                references=["q1@example.fi"],
                subject="Re: Teltan vetoketju rikki",
                extra_headers=[("Reply-To", "Aino V <aino.private@example.fi>")],
            )
        ),
    )
    return conversation_of(store, "q1@example.fi").id


def reply(store: Store, conversation_id: int, **options: object) -> int:
    with transaction(store.writers) as session:
        written = write_reply(
            session,
            conversation_id,
            author=str(options.pop("author", "esko")),
            text=str(options.pop("text", ANSWER)),
            now=options.pop("now", NOW),  # type: ignore[arg-type]
            **options,  # type: ignore[arg-type]
        )
    return written.message_id


def test_a_reply_is_an_outbound_message_threaded_after_the_customers_last(
    store: Store, conversation_id: int
) -> None:
    message_id = reply(store, conversation_id)
    with store.readers() as session:
        sent = session.get(Message, message_id)
        conversation = session.get(Conversation, conversation_id)
        assert sent is not None and conversation is not None
        assert (sent.direction, sent.author, sent.delivery) == ("out", "esko", "queued")
        assert sent.text == ANSWER
        assert sent.connector == "mail"
        assert sent.to_addresses == ["aino.private@example.fi"]  # her Reply-To wins
        assert sent.from_address == "support@northwind.example"
        assert sent.in_reply_to == ["q2@example.fi"]
        assert sent.references == ["q1@example.fi", "q2@example.fi"]
        assert sent.message_id_header.startswith(f"inbox.{conversation.token}.")
        assert sent.message_id_header.endswith("@northwind.example")
        assert sent.quoted_text.startswith("On 2026-11-02 ")
        assert "Aino Virtanen wrote:\n> Hei, teltan vetoketju" in sent.quoted_text
        [row] = session.scalars(select(OutboxItem).where(OutboxItem.kind == "reply"))
        assert row.payload == {"message": message_id, "connector": "mail", "channel": "email"}
        assert row.status == "pending"
        event = session.scalars(select(Event).where(Event.kind == "replied")).one()
        assert event.actor == "person:esko"
        assert event.detail["to"] == "aino.private@example.fi"
        assert conversation.status == "pending"
        assert conversation.first_response_at == NOW
        assert conversation.last_agent_reply_at == NOW


def test_the_first_response_stays_and_the_last_reply_moves_on(
    store: Store, conversation_id: int
) -> None:
    reply(store, conversation_id)
    reply(
        store,
        conversation_id,
        text="Ja vielä: seurantakoodi on JJFI123.",
        now=NOW + timedelta(hours=2),
    )
    with store.readers() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        assert conversation.first_response_at == NOW
        assert conversation.last_agent_reply_at == NOW + timedelta(hours=2)


def test_a_note_is_stored_never_queued_and_changes_no_status(
    store: Store, conversation_id: int
) -> None:
    message_id = reply(
        store, conversation_id, text="Soitin asiakkaalle, lähetetään uusi.", note=True
    )
    with store.readers() as session:
        note = session.get(Message, message_id)
        conversation = session.get(Conversation, conversation_id)
        assert note is not None and conversation is not None
        assert (note.direction, note.delivery) == ("note", "")
        assert session.scalars(select(OutboxItem).where(OutboxItem.kind == "reply")).all() == []
        assert session.scalars(select(Event.actor).where(Event.kind == "noted")).all() == [
            "person:esko"
        ]
        assert conversation.status == "open"
        assert conversation.first_response_at is None


def test_the_customers_answer_to_our_reply_threads_in_and_opens_it_again(
    store: Store, conversation_id: int
) -> None:
    message_id = reply(store, conversation_id)
    with store.readers() as session:
        ours = session.get(Message, message_id)
        assert ours is not None
        our_id = ours.message_id_header
    # Her client keeps only In-Reply-To, and a subject of its own.
    answer = mail(message_id="a1@example.fi", in_reply_to=our_id, subject="Kiitos!")
    ingest(make_pipeline(store), raw(answer))
    joined = conversation_of(store, "a1@example.fi")
    assert joined.id == conversation_id
    assert joined.status == "open"


def test_no_text_goes_to_a_customer_who_opted_out_of_sms(
    store: Store, conversation_id: int
) -> None:
    with transaction(store.writers) as session:
        session.execute(update(Conversation).values(channel="sms"))
        session.execute(update(Contact).values(sms_opted_out_at=NOW))
    with pytest.raises(CannotReply, match="opted out of SMS"):
        reply(store, conversation_id)
    with store.readers() as session:
        assert session.scalars(select(Message).where(Message.direction == "out")).all() == []


def test_an_empty_reply_is_refused(store: Store, conversation_id: int) -> None:
    with pytest.raises(CannotReply, match="empty"):
        reply(store, conversation_id, text="\n  \n")
