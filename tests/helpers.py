"""Building test mail and feeding it through the real pipeline."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sqlalchemy import func, select

from inbox.config import Settings
from inbox.pipeline.ingest import BatchResult, Pipeline
from inbox.raw import Batch, RawMessage
from inbox.store.models import Conversation, Message
from rules.holder import RulesInForce
from tests.conftest import Store

_counter = itertools.count(1)
BASE_TIME = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def mail(
    *,
    sender: str = "Aino Virtanen <aino@example.fi>",
    to: str = "support@northwind.example",
    subject: str = "Teltan vetoketju rikki",
    body: str = "Hei, teltan vetoketju meni rikki ensimmäisellä retkellä.\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    date: datetime | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A plain UTF-8 message, as a mail client would send it."""
    number = next(_counter)
    headers = [
        ("From", sender),
        ("To", to),
        ("Subject", subject),
        ("Date", format_datetime(date or BASE_TIME + timedelta(minutes=number))),
        ("Message-ID", f"<{message_id or f'm{number}@example.fi'}>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "8bit"),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", f"<{in_reply_to}>"))
    if references:
        headers.append(("References", " ".join(f"<{r}>" for r in references)))
    headers.extend(extra_headers)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("utf-8") + b"\r\n" + body.replace("\n", "\r\n").encode("utf-8")


def raw(
    payload: bytes,
    *,
    connector: str = "mail",
    external_id: str | None = None,
    received_at: datetime | None = None,
    note: str = "",
) -> RawMessage:
    return RawMessage(
        connector=connector,
        external_id=external_id or f"x{next(_counter)}",
        channel="email",
        payload=payload,
        received_at=received_at or BASE_TIME + timedelta(hours=1),
        note=note,
    )


def make_pipeline(
    store: Store,
    settings: Settings | None = None,
    clock: Callable[[], datetime] | None = None,
    rules: RulesInForce | None = None,
) -> Pipeline:
    settings = settings or Settings(database_url=store.url)
    if clock is None:
        return Pipeline(store.readers, store.writers, settings, rules=rules)
    return Pipeline(store.readers, store.writers, settings, clock=clock, rules=rules)


def ingest(pipeline: Pipeline, *messages: RawMessage, cursor: str | None = None) -> BatchResult:
    connector = messages[0].connector if messages else "mail"
    return pipeline.ingest(Batch(connector=connector, messages=list(messages), cursor_after=cursor))


def count(store: Store, model: type) -> int:
    with store.readers() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def conversation_of(store: Store, message_id: str) -> Conversation:
    with store.readers() as session:
        message = session.scalar(select(Message).where(Message.message_id_header == message_id))
        assert message is not None, f"no message {message_id}"
        conversation = session.get(Conversation, message.conversation_id)
        assert conversation is not None
        return conversation


def message(store: Store, message_id: str) -> Message:
    with store.readers() as session:
        found = session.scalar(select(Message).where(Message.message_id_header == message_id))
        assert found is not None, f"no message {message_id}"
        return found


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


class Clock:
    """A clock a test moves by hand (`clock.now += timedelta(...)`), starting now."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def arrive(store: Store, rules: RulesInForce, clock: Clock, **options: object) -> Conversation:
    """A customer's mail (`mail(**options)`, with its message_id) routed by `rules` at the
    clock's time, received then; its conversation as stored after."""
    pipeline = make_pipeline(store, clock=clock, rules=rules)
    try:
        ingest(pipeline, raw(mail(**options), received_at=clock.now))  # type: ignore[arg-type]
    finally:
        pipeline.close()
    return conversation_of(store, str(options["message_id"]))
