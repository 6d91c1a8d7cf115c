"""Threading email into conversations, and the open/pending/closed lifecycle."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from inbox.store.db import transaction
from inbox.store.models import Conversation, Event
from tests.conftest import BACKENDS, Store
from tests.helpers import BASE_TIME, conversation_of, ingest, mail, make_pipeline, message, raw

AINO = "Aino Virtanen <aino@example.fi>"


def set_status(store: Store, conversation_id: int, status: str, days_ago: float = 0) -> None:
    with transaction(store.writers) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.status = status
        if status == "closed":
            conversation.closed_at = BASE_TIME + timedelta(hours=1) - timedelta(days=days_ago)


@BACKENDS
def test_a_reply_with_in_reply_to_joins_and_says_why(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="q@example.fi")))
    ingest(pipeline, raw(mail(message_id="r@example.fi", in_reply_to="q@example.fi")))
    assert conversation_of(store, "r@example.fi").id == conversation_of(store, "q@example.fi").id
    assert message(store, "r@example.fi").thread_reason == "in-reply-to <q@example.fi>"


@BACKENDS
def test_a_rewritten_in_reply_to_still_joins_through_the_references_chain(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="root@example.fi")))
    ingest(
        pipeline,
        raw(
            mail(
                message_id="late@example.fi",
                in_reply_to="agents-own-client@northwind.example",
                references=["root@example.fi", "agents-own-client@northwind.example"],
            )
        ),
    )
    joined = conversation_of(store, "late@example.fi")
    assert joined.id == conversation_of(store, "root@example.fi").id
    assert "references <root@example.fi>" in message(store, "late@example.fi").thread_reason


@BACKENDS
def test_replies_in_one_batch_find_the_message_before_them(store: Store) -> None:
    ingest(
        make_pipeline(store),
        raw(mail(message_id="a@example.fi")),
        raw(mail(message_id="b@example.fi", in_reply_to="a@example.fi")),
    )
    assert conversation_of(store, "a@example.fi").id == conversation_of(store, "b@example.fi").id


@BACKENDS
def test_a_reply_with_a_finnish_vs_prefix_and_no_headers_joins_by_subject(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(sender=AINO, subject="Teltan vetoketju", message_id="t1@x")))
    ingest(pipeline, raw(mail(sender=AINO, subject="VS: Vs: Teltan vetoketju", message_id="t2@x")))
    assert conversation_of(store, "t2@x").id == conversation_of(store, "t1@x").id
    assert "subject" in message(store, "t2@x").thread_reason


@BACKENDS
def test_the_same_subject_from_another_customer_stays_apart(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(sender=AINO, subject="Invoice", message_id="i1@x")))
    ingest(pipeline, raw(mail(sender="olga@example.com", subject="Re: Invoice", message_id="i2@x")))
    assert conversation_of(store, "i2@x").id != conversation_of(store, "i1@x").id


@BACKENDS
def test_a_subject_match_older_than_the_window_opens_a_new_conversation(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(sender=AINO, subject="Sauna", message_id="s1@x", date=BASE_TIME)))
    late = BASE_TIME + timedelta(days=30)
    ingest(
        pipeline,
        raw(
            mail(sender=AINO, subject="Re: Sauna", message_id="s2@x", date=late),
            received_at=late,
        ),
    )
    assert conversation_of(store, "s2@x").id != conversation_of(store, "s1@x").id


@BACKENDS
def test_our_token_in_the_subject_joins_the_conversation(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(sender=AINO, subject="Takuu", message_id="k1@x")))
    token = conversation_of(store, "k1@x").token
    ingest(
        pipeline,
        raw(mail(sender="aino.work@example.com", subject=f"Re: [#{token}] x", message_id="k2@x")),
    )
    assert conversation_of(store, "k2@x").id == conversation_of(store, "k1@x").id
    assert message(store, "k2@x").thread_reason == f"subject token {token}"


@BACKENDS
def test_a_customer_reply_to_a_pending_conversation_opens_it(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="p1@x")))
    set_status(store, conversation_of(store, "p1@x").id, "pending")
    ingest(pipeline, raw(mail(message_id="p2@x", in_reply_to="p1@x")))
    assert conversation_of(store, "p2@x").status == "open"


@BACKENDS
def test_a_reply_within_the_reopen_window_reopens_a_closed_conversation(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="c1@x")))
    conversation_id = conversation_of(store, "c1@x").id
    set_status(store, conversation_id, "closed", days_ago=2)
    ingest(pipeline, raw(mail(message_id="c2@x", in_reply_to="c1@x")))
    reopened = conversation_of(store, "c2@x")
    assert (reopened.id, reopened.status) == (conversation_id, "open")
    with store.readers() as session:
        kinds = session.scalars(select(Event.kind).where(Event.conversation_id == conversation_id))
        assert "conversation_reopened" in set(kinds)


@BACKENDS
def test_a_reply_after_the_reopen_window_starts_a_new_linked_conversation(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="o1@x")))
    old = conversation_of(store, "o1@x")
    set_status(store, old.id, "closed", days_ago=30)
    ingest(pipeline, raw(mail(message_id="o2@x", in_reply_to="o1@x")))
    new = conversation_of(store, "o2@x")
    assert new.id != old.id
    assert new.previous_conversation_id == old.id
    assert conversation_of(store, "o1@x").status == "closed"


@BACKENDS
def test_an_auto_reply_never_reopens_a_closed_conversation(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="a1@x")))
    conversation_id = conversation_of(store, "a1@x").id
    set_status(store, conversation_id, "closed", days_ago=1)
    auto_reply = mail(
        subject="Poissa toimistolta: Re: Teltan vetoketju rikki",
        message_id="a2@x",
        in_reply_to="a1@x",
        extra_headers=[("Auto-Submitted", "auto-replied")],
    )
    ingest(pipeline, raw(auto_reply))
    joined = conversation_of(store, "a2@x")
    assert (joined.id, joined.status) == (conversation_id, "closed")


@BACKENDS
def test_auto_submitted_no_is_a_human_and_reopens(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="h1@x")))
    conversation_id = conversation_of(store, "h1@x").id
    set_status(store, conversation_id, "closed", days_ago=1)
    human = mail(message_id="h2@x", in_reply_to="h1@x", extra_headers=[("Auto-Submitted", "no")])
    ingest(pipeline, raw(human))
    assert conversation_of(store, "h2@x").status == "open"


def test_new_tokens_are_unguessable_and_readable() -> None:
    from inbox.store.threads import TOKEN_IN_SUBJECT, new_token

    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(TOKEN_IN_SUBJECT.fullmatch(f"[#{t}]") for t in tokens)
    assert not any(set(t) & set("IO01") for t in tokens)
