"""The pipeline: one batch, one transaction; exactly-once storage; nothing lost."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import func, select

from inbox.store.models import (
    Attachment,
    Blob,
    Contact,
    Conversation,
    Cursor,
    Event,
    Identity,
    Message,
    RawRecord,
    utcnow,
)
from tests.conftest import BACKENDS, Store
from tests.helpers import count, ingest, mail, make_pipeline, raw


@BACKENDS
def test_a_message_becomes_a_conversation_with_contact_raw_bytes_event_and_cursor(
    store: Store,
) -> None:
    payload = mail(sender="Aino Virtanen <Aino.Virtanen@EXAMPLE.fi>", message_id="first@example.fi")
    result = ingest(make_pipeline(store), raw(payload, external_id="k1"), cursor='{"n": 1}')
    assert result.stored == 1
    with store.readers() as session:
        stored = session.scalars(select(Message)).one()
        assert stored.text.startswith("Hei, teltan vetoketju")
        assert stored.subject == "Teltan vetoketju rikki"
        assert stored.from_address == "Aino.Virtanen@example.fi"  # as written; the domain canonical
        identity = session.scalars(select(Identity)).one()
        assert (identity.kind, identity.address) == ("email", "aino.virtanen@example.fi")
        conversation = session.get(Conversation, stored.conversation_id)
        assert conversation is not None
        assert conversation.status == "open"
        assert conversation.contact_id == identity.contact_id
        assert conversation.message_count == 1
        record = session.scalars(select(RawRecord)).one()
        assert record.payload == payload
        assert record.message_id == stored.id
        kinds = set(session.scalars(select(Event.kind)))
        assert kinds == {"conversation_opened"}
        assert session.get(Cursor, ("mail", "")).value == '{"n": 1}'  # type: ignore[union-attr]


@BACKENDS
def test_the_same_batch_twice_stores_nothing_twice(store: Store) -> None:
    pipeline = make_pipeline(store)
    batch = [raw(mail(), external_id="a"), raw(mail(), external_id="b")]
    first = ingest(pipeline, *batch)
    second = ingest(pipeline, *batch)
    assert (first.stored, second.stored, second.already_stored) == (2, 0, 2)
    assert count(store, Message) == 2
    assert count(store, RawRecord) == 2


@BACKENDS
def test_one_mail_delivered_to_two_of_our_addresses_is_one_message(store: Store) -> None:
    body = mail(message_id="twice@example.fi")
    to_support = b"Delivered-To: support@northwind.example\r\nReceived: from a by b\r\n" + body
    to_sales = b"Delivered-To: sales@northwind.example\r\nReceived: from c by d\r\n" + body
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(to_support, connector="support", external_id="1"))
    result = ingest(pipeline, raw(to_sales, connector="sales", external_id="1"))
    assert result.duplicates == 1
    assert count(store, Message) == 1
    assert count(store, Conversation) == 1
    assert count(store, RawRecord) == 2  # both deliveries kept as they came
    with store.readers() as session:
        assert session.scalar(select(Event).where(Event.kind == "duplicate_delivery")) is not None


@BACKENDS
def test_a_reused_message_id_with_new_content_is_not_dropped(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(message_id="reused@example.fi", body="First question\n")))
    ingest(pipeline, raw(mail(message_id="reused@example.fi", body="Another question\n")))
    assert count(store, Message) == 2


@BACKENDS
def test_a_crash_before_commit_stores_nothing_and_keeps_the_old_cursor(store: Store) -> None:
    calls = itertools.count()

    def clock_that_fails_on_the_third_message() -> datetime:
        if next(calls) > 6:
            raise RuntimeError("power cut")
        return utcnow()

    pipeline = make_pipeline(store, clock=clock_that_fails_on_the_third_message)
    batch = [raw(mail(subject=f"question {n}")) for n in range(5)]
    with pytest.raises(RuntimeError, match="power cut"):
        ingest(pipeline, *batch, cursor='{"n": 5}')
    assert count(store, Message) == 0
    assert count(store, RawRecord) == 0
    assert count(store, Cursor) == 0
    result = ingest(make_pipeline(store), *batch, cursor='{"n": 5}')
    assert result.stored == 5


@BACKENDS
def test_a_message_over_the_size_cap_is_kept_raw_only_and_visible(store: Store) -> None:
    payload = mail(body="x" * 2000)
    result = ingest(make_pipeline(store), raw(payload, note="over max_message_bytes"))
    assert (result.stored, result.raw_only, result.crashed) == (0, 1, 0)
    with store.readers() as session:
        record = session.scalars(select(RawRecord)).one()
        assert record.payload == payload
        assert "max_message_bytes" in record.error
        assert session.scalar(select(Event).where(Event.kind == "stored_raw_only")) is not None


@BACKENDS
def test_attachments_are_stored_once_by_content(store: Store) -> None:
    def with_pdf(message_id: str) -> bytes:
        return (
            f"From: olga@example.com\r\nTo: support@northwind.example\r\n"
            f"Subject: invoice {message_id}\r\nMessage-ID: <{message_id}>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
            "--XX\r\nContent-Type: application/pdf\r\n"
            "Content-Disposition: attachment; filename*=utf-8''lasku_kes%C3%A4kuu.pdf\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n--XX--\r\n"
        ).encode()

    pipeline = make_pipeline(store)
    ingest(pipeline, raw(with_pdf("p1@example.com")), raw(with_pdf("p2@example.com")))
    assert count(store, Attachment) == 2
    assert count(store, Blob) == 1
    with store.readers() as session:
        attachment = session.scalars(select(Attachment)).first()
        assert attachment is not None
        assert attachment.filename == "lasku_kesäkuu.pdf"
        blob = session.get(Blob, attachment.sha256)
        assert blob is not None and blob.data.startswith(b"%PDF-1.4")


@BACKENDS
def test_one_customer_writing_twice_is_one_contact(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(sender="mart@EXAMPLE.ee", subject="Arve")))
    ingest(pipeline, raw(mail(sender="Mart Tamm <Mart@example.ee>", subject="Tarne")))
    assert count(store, Contact) == 1
    assert count(store, Conversation) == 2


@BACKENDS
def test_idna_domains_are_one_identity_in_either_spelling(store: Store) -> None:
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(mail(sender="ivan@пример.рф", subject="Палатка")))
    ingest(pipeline, raw(mail(sender="ivan@xn--e1afmkfd.xn--p1ai", subject="Другое")))
    assert count(store, Identity) == 1


def refuse_subject_in_database(store: Store, subject: str) -> None:
    """A database trigger that refuses one message, as a constraint or a full column would."""
    with store.engine.begin() as connection:
        if store.backend == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages "
                f"WHEN NEW.subject = '{subject}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.subject = '{subject}' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


@BACKENDS
def test_a_message_the_store_refuses_is_kept_raw_and_the_batch_goes_on(store: Store) -> None:
    refuse_subject_in_database(store, "poison")
    batch = [
        raw(mail(subject="fine one"), external_id="q1"),
        raw(mail(subject="poison"), external_id="q2"),
        raw(mail(subject="fine two"), external_id="q3"),
    ]
    result = ingest(make_pipeline(store), *batch, cursor='{"n": 3}')
    assert (result.stored, result.raw_only) == (2, 1)
    with store.readers() as session:
        refused = session.scalars(select(RawRecord).where(RawRecord.message_id.is_(None))).one()
        assert refused.external_id == "q2"
        assert "could not be stored" in refused.error
        assert session.get(Cursor, ("mail", "")) is not None


@BACKENDS
def test_ingest_many_normalizes_ahead_in_a_worker_and_stores_in_order(store: Store) -> None:
    from inbox.config import Settings
    from inbox.raw import Batch

    pipeline = make_pipeline(store, Settings(database_url=store.url, ingest={"workers": 1}))
    batches = [
        Batch("mail", [raw(mail(message_id="w1@x"))], cursor_after='{"n": 1}'),
        Batch("mail", [raw(mail(message_id="w2@x", in_reply_to="w1@x"))], cursor_after='{"n": 2}'),
        Batch("mail", [raw(mail(message_id="w3@x", in_reply_to="w2@x"))], cursor_after='{"n": 3}'),
    ]
    try:
        results = list(pipeline.ingest_many(batches))
        assert pipeline._pool is not None  # the later batches went through the worker
    finally:
        pipeline.close()
    assert [batch.cursor_after for batch, _ in results] == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    assert [result.stored for _, result in results] == [1, 1, 1]
    with store.readers() as session:
        assert len(set(session.scalars(select(Message.conversation_id)))) == 1
        assert session.get(Cursor, ("mail", "")).value == '{"n": 3}'  # type: ignore[union-attr]


@BACKENDS
def test_batches_fetched_before_a_connector_fails_are_stored_then_its_error_raised(
    store: Store,
) -> None:
    """A connection dropped after three batches: the batches normalized ahead (two workers
    take two ahead) are stored with their cursors, and only then is the failure raised."""
    from inbox.config import Settings
    from inbox.raw import Batch

    def dropped_after_three() -> Iterator[Batch]:
        for n in range(1, 4):
            yield Batch("mail", [raw(mail(message_id=f"d{n}@x"))], cursor_after=f'{{"n": {n}}}')
        raise ConnectionResetError("the server closed the connection")

    pipeline = make_pipeline(store, Settings(database_url=store.url, ingest={"workers": 2}))
    stored: list[str | None] = []
    try:
        with pytest.raises(ConnectionResetError, match="closed the connection"):
            for batch, result in pipeline.ingest_many(dropped_after_three()):
                assert result.stored == 1
                stored.append(batch.cursor_after)
    finally:
        pipeline.close()
    assert stored == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    with store.readers() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 3
        assert session.get(Cursor, ("mail", "")).value == '{"n": 3}'  # type: ignore[union-attr]
