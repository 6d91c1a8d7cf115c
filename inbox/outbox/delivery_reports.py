"""What a provider says of a reply after it took it (Twilio's status callbacks), kept on the
reply's message: delivered, undelivered, failed, read.

Reports come in any order and may come before the outbox has recorded the send (Twilio can call
back within a second, while the sending thread is still on its way to the store), so a state
only ever moves forward (`moves_on`), here and in inbox/outbox/replies.py. A reply that did not
reach the customer is said to its author in Slack, as a reply that could not be sent is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import DeliveryReport
from inbox.store.db import transaction
from inbox.store.models import Message, OutboxItem, utcnow
from inbox.store.outbox_kinds import NotifyPing, ReplyToSend, read_payload, stored
from inbox.store.sql import insert_ignore_many

log = structlog.get_logger(__name__)

#: How far a reply has got. Delivered, undelivered and failed are each an end; read (WhatsApp,
#: RCS) comes after delivered.
PROGRESS = {
    "": 0,
    "queued": 0,
    "unsure": 0,
    "sent": 1,
    "delivered": 2,
    "undelivered": 2,
    "failed": 2,
    "read": 3,
}
#: Reports that the customer did not get it.
NOT_RECEIVED = frozenset({"undelivered", "failed"})


def moves_on(current: str, new: str) -> bool:
    return PROGRESS.get(new, 0) > PROGRESS.get(current, 0)


class DeliveryReports:
    """The daemon's `ReportDelivery` (connectors/base.py): one report, one transaction."""

    def __init__(
        self,
        writers: sessionmaker[Session],
        *,
        slack_of: Callable[[str], str] = lambda agent: "",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.writers = writers
        self.slack_of = slack_of
        self.clock = clock

    def record(self, report: DeliveryReport) -> None:
        with transaction(self.writers) as session:
            item = session.scalars(
                select(OutboxItem).where(
                    OutboxItem.kind == ReplyToSend.KIND, OutboxItem.idempotency_key == report.key
                )
            ).first()
            payload = read_payload(item.kind, item.payload) if item is not None else None
            message = (
                session.get(Message, payload.message, with_for_update=True)
                if isinstance(payload, ReplyToSend)
                else None
            )
            if message is None:
                log.warning("delivery_report_unknown", key=report.key[:100], state=report.state)
                return
            if not moves_on(message.delivery, report.state):
                log.info(
                    "delivery_report_behind",
                    message_id=message.id,
                    state=report.state,
                    already=message.delivery,
                )
                return
            message.delivery = report.state
            message.delivery_detail = report.detail[:2000]
            if report.state in NOT_RECEIVED:
                tell_author(
                    session,
                    message,
                    f"did not reach the customer: {report.detail}",
                    key=f"reply-{report.state}:{message.id}",
                    slack_user=self.slack_of(message.author) if message.author else "",
                    now=self.clock(),
                )
        log.info(
            "reply_delivery_reported",
            message_id=message.id,
            state=report.state,
            provider_id=report.provider_id,
        )


def tell_author(
    session: Session, message: Message, what: str, *, key: str, slack_user: str, now: datetime
) -> None:
    """A Slack message to who wrote the reply, through the outbox like any ping, in the same
    transaction as what it says: a reply that failed must not wait for someone to look."""
    if not slack_user:
        return
    ping = NotifyPing(
        target=f"agent:{message.author}",
        text=f"Your reply to {', '.join(message.to_addresses)} {what}"[:1500],
        why=f"reply {message.id} {message.delivery}",
        slack_user=slack_user,
    )
    item = {
        "kind": ping.KIND,
        "idempotency_key": key,
        "conversation_id": message.conversation_id,
        "payload": stored(ping),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
        "result": {},
        "created_at": now,
    }
    insert_ignore_many(session, OutboxItem, [item], ["idempotency_key"])
