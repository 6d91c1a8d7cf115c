"""Agents' replies leave here: each `reply` row of the outbox goes out through the sender of the
connector that received the conversation (connectors/base.py, Sender), exactly once.

How "once" holds:

- A row is claimed (status `sending`, a lease) in its own commit before the provider is called,
  so two daemons never send the same row, and a row still `sending` after its lease means an
  attempt began and was never recorded: this process or another died in the middle.
- What the provider answered is recorded on the row and on the message in the commit right
  after; a retry happens only for a failure the provider said was temporary.
- When it cannot be known whether the provider took it (a lapsed attempt, or a connection lost
  after the message was handed over), the sender is asked (`was_sent`: for email, our
  Message-ID in the Sent folder). If it cannot tell, the row is `held`: the message says it may
  have been sent, and a person decides (`inbox outbox retry ID` sends it again). A duplicate
  reply to a customer is the one mistake this never makes on its own.

Temporary failures (SMTP 4xx, 429, 5xx, refused connections) are retried with backoff for
`GIVE_UP_AFTER`, then the row is `dead`; permanent ones (SMTP 5xx, an unknown number) are dead
at once. The message's `delivery` and `delivery_detail` always say where it stands, in the
provider's words.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Delivery, Outgoing, Sender, SendFailed
from inbox.outbox.delivery_reports import moves_on, tell_author
from inbox.store.db import transaction
from inbox.store.models import Message, OutboxItem, utcnow
from inbox.store.outbox_kinds import ReplyToSend, read_payload

log = structlog.get_logger(__name__)

LEASE = timedelta(minutes=2)
CLAIM_LIMIT = 40
#: Replies sent side by side (different conversations; bench/replies.py measures it).
PARALLEL = 4
POLL_SECONDS = 1.0
MAX_BACKOFF = timedelta(minutes=15)
#: A reply still not taken after this long is dead: the agent should know, not wait.
GIVE_UP_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class _Claimed:
    row_id: int
    key: str
    payload: ReplyToSend
    conversation_id: int | None
    attempts: int
    created_at: datetime
    #: An earlier attempt began and was never recorded.
    lapsed: bool


@dataclass(frozen=True)
class _Outcome:
    status: str  # sent | pending | held | dead
    delivery: str  # the message's: sent | queued | unsure | failed
    detail: str
    result: dict[str, str]
    retry_at: datetime | None = None


class ReplySender:
    def __init__(
        self,
        writers: sessionmaker[Session],
        senders: Mapping[str, Sender],
        *,
        clock: Callable[[], datetime] = utcnow,
        slack_of: Callable[[str], str] = lambda agent: "",
        parallel: int = PARALLEL,
    ) -> None:
        self.writers = writers
        self.senders = dict(senders)
        self.clock = clock
        #: An agent's Slack user id ("" for none), to tell them their reply failed.
        self.slack_of = slack_of
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="reply-send")
        self.log = log.bind(component="replies")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="replies", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self.wakeup.set()

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                handled = self.run_once()
            except Exception:  # the store is away, or a bug: never die, look again shortly
                self.log.exception("replies_pass_failed")
                handled = 0
            if not handled:
                self.wakeup.wait(POLL_SECONDS)
                self.wakeup.clear()

    def run_once(self) -> int:
        """Claim what is due, send it, record each outcome; the number of rows handled."""
        claimed = self._claim()
        by_conversation: dict[int | None, list[_Claimed]] = defaultdict(list)
        for row in claimed:
            by_conversation[row.conversation_id].append(row)
        # Conversations side by side (a reply waits on its provider, not on the CPU); one
        # conversation's replies in order, so that the customer reads them as written.
        list(self._pool.map(self._send_in_order, by_conversation.values()))
        return len(claimed)

    def _send_in_order(self, rows: list[_Claimed]) -> None:
        for row in rows:
            outgoing = self._outgoing(row)
            outcome = self._attempt(row, outgoing) if outgoing is not None else self._gone(row)
            self._record(row, outcome)

    # -- claiming -----------------------------------------------------------------------------

    def _claim(self) -> list[_Claimed]:
        now = self.clock()
        claimed: list[_Claimed] = []
        with transaction(self.writers) as session:
            query = (
                select(OutboxItem)
                .where(
                    OutboxItem.kind == ReplyToSend.KIND,
                    OutboxItem.status.in_(("pending", "sending")),
                    OutboxItem.next_attempt_at <= now,
                )
                .order_by(OutboxItem.id)
                .limit(CLAIM_LIMIT)
                .with_for_update(skip_locked=True)
            )
            for item in session.scalars(query):
                payload = read_payload(item.kind, item.payload)
                assert isinstance(payload, ReplyToSend)
                lapsed = item.status == "sending"
                item.status = "sending"
                item.attempts += 1
                item.next_attempt_at = now + LEASE
                claimed.append(
                    _Claimed(
                        item.id,
                        item.idempotency_key,
                        payload,
                        item.conversation_id,
                        item.attempts,
                        item.created_at,
                        lapsed,
                    )
                )
        return claimed

    def _outgoing(self, row: _Claimed) -> Outgoing | None:
        with self.writers() as session:
            message = session.get(Message, row.payload.message)
            if message is None:
                return None
            return Outgoing(
                key=row.key,
                channel=message.channel,  # type: ignore[arg-type]
                to=message.to_addresses[0] if message.to_addresses else "",
                text=message.text,
                from_address=message.from_address,
                subject=message.subject,
                message_id=message.message_id_header,
                in_reply_to=message.in_reply_to[0] if message.in_reply_to else "",
                references=tuple(message.references),
                html=message.html,
                thread=str((message.headers or {}).get("thread", "")),
                quoted=message.quoted_text,
                automatic=message.auto_submitted,
                choices=tuple(str(c) for c in (message.headers or {}).get("choices") or ()),
            )

    # -- sending ------------------------------------------------------------------------------

    def _attempt(self, row: _Claimed, outgoing: Outgoing) -> _Outcome:
        sender = self.senders.get(row.payload.connector)
        if sender is None:
            return _Outcome(
                "dead",
                "failed",
                f"connector {row.payload.connector!r} cannot send replies "
                "(no such connector, or it has no sending configured)",
                {},
            )
        if row.lapsed:
            known = self._was_sent(sender, outgoing)
            if known is None:
                return self._held(row, "an earlier attempt was cut off before its outcome was kept")
            if known:
                return _Outcome("sent", "sent", "found sent after an interrupted attempt", {})
        try:
            delivery = sender.send(outgoing)
        except SendFailed as failed:
            return self._failed(row, sender, outgoing, failed)
        except Exception as error:  # a sender's bug must not kill the loop, nor resend blindly
            self.log.exception("reply_sender_crashed", outbox_id=row.row_id)
            return self._held(row, f"the sender crashed: {error!r}"[:300])
        return _sent(delivery)

    def _failed(
        self, row: _Claimed, sender: Sender, outgoing: Outgoing, failed: SendFailed
    ) -> _Outcome:
        reason = str(failed)
        if failed.unsure:
            known = self._was_sent(sender, outgoing)
            if known:
                return _Outcome("sent", "sent", f"found sent after: {reason}"[:2000], {})
            if known is None:
                return self._held(row, reason)
        if not failed.temporary:
            return _Outcome("dead", "failed", reason, {})
        now = self.clock()
        if now - row.created_at >= GIVE_UP_AFTER:
            return _Outcome(
                "dead", "failed", f"gave up after {row.attempts} attempts: {reason}", {}
            )
        delay = (
            timedelta(seconds=failed.retry_after) if failed.retry_after else _backoff(row.attempts)
        )
        return _Outcome("pending", "queued", reason, {}, retry_at=now + delay)

    def _was_sent(self, sender: Sender, outgoing: Outgoing) -> bool | None:
        try:
            return sender.was_sent(outgoing)
        except Exception:
            self.log.warning("reply_lookup_failed", key=outgoing.key, exc_info=True)
            return None

    def _held(self, row: _Claimed, reason: str) -> _Outcome:
        detail = (
            f"may have been sent ({reason}); not sent again on its own: check the mailbox's "
            f"Sent folder, then `inbox outbox retry {row.row_id}` to send it again"
        )
        return _Outcome("held", "unsure", detail[:2000], {})

    def _gone(self, row: _Claimed) -> _Outcome:
        return _Outcome("dead", "failed", f"message {row.payload.message} is no longer stored", {})

    # -- recording ----------------------------------------------------------------------------

    def _record(self, row: _Claimed, outcome: _Outcome) -> None:
        now = self.clock()
        with transaction(self.writers) as session:
            item = session.get(OutboxItem, row.row_id)
            if item is not None:
                item.status = outcome.status
                item.last_error = "" if outcome.status == "sent" else outcome.detail
                item.result = outcome.result
                item.next_attempt_at = outcome.retry_at or now
                item.sent_at = now if outcome.status == "sent" else None
            message = session.get(Message, row.payload.message, with_for_update=True)
            if message is not None:
                # A status callback may have come first (delivered): it is further than "sent".
                if outcome.status != "sent" or not moves_on(outcome.delivery, message.delivery):
                    message.delivery = outcome.delivery
                    message.delivery_detail = outcome.detail[:2000]
                if outcome.status == "sent":
                    message.sent_at = now
                if outcome.status in ("dead", "held") and message.author:
                    what = (
                        "could not be sent"
                        if outcome.status == "dead"
                        else "may not have been sent"
                    )
                    tell_author(
                        session,
                        message,
                        f"{what}: {outcome.detail}",
                        key=f"reply-{outcome.status}:{message.id}:{row.attempts}",
                        slack_user=self.slack_of(message.author),
                        now=now,
                    )
        level = "info" if outcome.status in ("sent", "pending") else "warning"
        getattr(self.log, level)(
            f"reply_{outcome.status}",
            outbox_id=row.row_id,
            message_id=row.payload.message,
            connector=row.payload.connector,
            attempts=row.attempts,
            detail=outcome.detail[:300],
        )


def _sent(delivery: Delivery) -> _Outcome:
    result = {"provider_id": delivery.provider_id, "answer": delivery.answer}
    return _Outcome("sent", "sent", delivery.answer, result)


def _backoff(attempts: int) -> timedelta:
    seconds = min(MAX_BACKOFF.total_seconds(), 5 * 2.0 ** min(attempts - 1, 12))
    return timedelta(seconds=seconds * random.uniform(0.5, 1.0))
