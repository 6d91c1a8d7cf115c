"""The bundled demo Maildir goes through the real connector and pipeline and comes out as a
support desk would expect: readable in every encoding, threaded, flagged, deduplicated."""

from __future__ import annotations

import email
from email import policy

from sqlalchemy import select

from connectors.maildir import MaildirConfig, MaildirConnector
from inbox.demo import DEMO_MAILDIR
from inbox.demo.generate import generate_messages
from inbox.store.models import Attachment, Conversation, Message
from tests.conftest import BACKENDS, Store
from tests.helpers import make_pipeline


def ingest_demo(store: Store) -> None:
    connector = MaildirConnector(MaildirConfig(name="demo", type="maildir", path=DEMO_MAILDIR))
    pipeline = make_pipeline(store)
    for batch in connector.fetch({}, 200):
        pipeline.ingest(batch)


def by_subject(store: Store, subject: str) -> Message:
    with store.readers() as session:
        found = session.scalars(select(Message).where(Message.subject == subject)).one()
        return found


@BACKENDS
def test_the_demo_is_stored_threaded_and_deduplicated(store: Store) -> None:
    ingest_demo(store)
    with store.readers() as session:
        assert len(session.scalars(select(Message)).all()) == 35  # 36 files, one delivered twice
        assert len(session.scalars(select(Conversation)).all()) == 27
        languages = set(session.scalars(select(Message.language)))
        assert {"fi", "et", "sv", "el", "ru", "de", "en"} <= languages
    # Replies by References, and replies that lost them and thread by localized subject.
    for first, reply in [
        ("Teltan vetoketju rikki", "VS: Teltan vetoketju rikki"),
        ("Arve on vale", "Vs: Arve on vale"),
        ("Επείγον: η παραγγελία δεν έφτασε", "ΑΠ: Επείγον: η παραγγελία δεν έφτασε"),
        ("Срочно: палатка порвалась", "Ответ: Срочно: палатка порвалась"),
    ]:
        assert by_subject(store, first).conversation_id == by_subject(store, reply).conversation_id
    assert by_subject(store, "Vs: Arve on vale").thread_reason.startswith("same contact")


@BACKENDS
def test_every_encoding_in_the_demo_reads_right(store: Store) -> None:
    ingest_demo(store)
    expectations = {
        "Возврат спального мешка": "Хочу вернуть спальный мешок",  # windows-1251, no label
        "Kysymys takuusta": "Kuinka pitkä takuu",  # Latin-1 labelled us-ascii
        "テントの交換について": "ファスナーが壊れました",  # ISO-2022-JP
        "Срочно: палатка порвалась": "Палатка порвалась",  # KOI8-R, 8bit
        "Fel storlek på sovsäcken": "Jag beställde en sovsäck",  # Latin-1 quoted-printable
        "Tilaus ei näy sivuilla": "tilaukseni ei näy tililläni",  # broken multipart, raw header
    }
    for subject, words in expectations.items():
        assert words in by_subject(store, subject).text, subject
    reply = by_subject(store, "VS: Teltan vetoketju rikki")
    assert reply.new_text == "Kiitos nopeasta vastauksesta! Lähetän teltan huomenna postissa."
    assert reply.signature == "Lähetetty iPhonesta"


@BACKENDS
def test_automatic_mail_and_attachments_in_the_demo(store: Store) -> None:
    ingest_demo(store)
    assert by_subject(store, "Poissa toimistolta: Re: Tarjous").auto_submitted
    newsletter = by_subject(store, "Winter sale: 30% off sleeping bags")
    assert newsletter.bulk and newsletter.list_mail
    assert by_subject(store, "Undelivered Mail Returned to Sender").bounce
    with store.readers() as session:
        names = set(session.scalars(select(Attachment.filename)))
    assert {"lasku_kesäkuu.pdf", "Счёт.pdf", "Rechnung_März.pdf", "teltta.png"} <= names


def test_the_generator_is_deterministic_and_varied() -> None:
    first = list(generate_messages(300, seed=3))
    assert first == list(generate_messages(300, seed=3))
    assert first != list(generate_messages(300, seed=4))
    parsed = [email.message_from_bytes(m, policy=policy.compat32) for m in first]
    ids = [m["Message-ID"] for m in parsed]
    assert len(set(ids)) == 300
    charsets = {part.get_content_charset() for m in parsed for part in m.walk()}
    assert {"utf-8", "iso-8859-1", "iso-8859-7", "koi8-r", "windows-1251"} <= charsets
    assert any(m.get_content_type() == "multipart/mixed" for m in parsed)
    assert any(m["In-Reply-To"] for m in parsed)
