"""From a connector's batch to stored conversations: normalize, thread, store, in one commit.

One batch is one transaction: the raw records, the messages, their conversations, the audit
events and the connector's new cursor commit together or not at all. A crash anywhere before
the commit leaves the old cursor, so the same batch is fetched again; the unique constraint on
(connector, external_id) and the check of what is already stored make the store exactly-once.

Normalizing is pure and runs before the transaction opens, so the write lock is held only for
the inserts.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from inbox.config import Settings
from inbox.contacts import IdentityResolver
from inbox.db import transaction
from inbox.models import (
    Attachment,
    Blob,
    Conversation,
    Cursor,
    Event,
    Message,
    RawRecord,
    utcnow,
)
from inbox.normalize.email import normalize_email
from inbox.normalize.subject import normalize_subject
from inbox.normalize.types import NormalizedMessage
from inbox.raw import Batch, RawMessage
from inbox.store_utils import insert_ignore
from inbox.threading import EmailThreader, ThreadDecision, new_token

log = structlog.get_logger(__name__)

#: Past this, a Date header is treated as wrong (clock skew, spam) and the arrival time is used.
MAX_FUTURE_SKEW = timedelta(days=1)


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    already_stored: int = 0
    parse_errors: int = 0
    #: Stored as raw bytes only (over the size cap, or the normalizer failed).
    raw_only: int = 0
    #: The normalizer raised: a bug to fix, counted apart from raw-only by design.
    crashed: int = 0
    seconds: float = 0.0
    conversation_ids: list[int] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.already_stored += other.already_stored
        self.parse_errors += other.parse_errors
        self.raw_only += other.raw_only
        self.crashed += other.crashed
        self.seconds += other.seconds
        self.conversation_ids.extend(other.conversation_ids)


@dataclass(frozen=True, slots=True)
class _Prepared:
    raw: RawMessage
    normalized: NormalizedMessage | None
    error: str
    crashed: bool = False


class Pipeline:
    def __init__(
        self,
        readers: sessionmaker[Session],
        writers: sessionmaker[Session],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.readers = readers
        self.writers = writers
        self.settings = settings
        self.clock = clock

    def ingest(self, batch: Batch) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult()
        known = self._already_stored(self.readers, batch.connector, batch.messages)
        fresh = [raw for raw in batch.messages if raw.external_id not in known]
        prepared = [self._prepare(raw) for raw in _unique(fresh)]
        try:
            result = self._write(batch, prepared, careful=False)
        except (OperationalError, InterfaceError):
            raise  # the database is away or locked: the daemon retries the batch later
        except Exception as error:
            # One message the store refuses must not block its connector forever: store the
            # batch again one message per savepoint, keeping the refused one raw-only.
            log.warning(
                "batch_failed_retrying_one_by_one",
                connector=batch.connector,
                error=repr(error)[:300],
            )
            result = self._write(batch, prepared, careful=True)
        result.already_stored = (
            len(batch.messages) - result.stored - result.duplicates - result.raw_only
        )
        result.seconds = time.perf_counter() - started
        log.info(
            "batch_stored",
            connector=batch.connector,
            stored=result.stored,
            duplicates=result.duplicates,
            already_stored=result.already_stored,
            parse_errors=result.parse_errors,
            raw_only=result.raw_only,
            crashed=result.crashed,
            seconds=round(result.seconds, 3),
        )
        return result

    def _write(self, batch: Batch, prepared: list[_Prepared], *, careful: bool) -> BatchResult:
        result = BatchResult()
        with transaction(self.writers) as session:
            # Another process may have stored some since the first look.
            known_now = self._already_stored(session, batch.connector, [p.raw for p in prepared])
            store = _BatchWriter(session, self.settings, self.clock, batch.connector)
            for item in prepared:
                if item.raw.external_id in known_now:
                    continue
                if careful:
                    store.add_isolated(item, result)
                else:
                    store.add(item, result)
            if batch.cursor_after is not None:
                session.merge(
                    Cursor(
                        connector=batch.connector,
                        scope=batch.cursor_scope,
                        value=batch.cursor_after,
                        updated_at=self.clock(),
                    )
                )
        return result

    def _already_stored(
        self, source: sessionmaker[Session] | Session, connector: str, raws: Sequence[RawMessage]
    ) -> set[str]:
        ids = [raw.external_id for raw in raws]
        if not ids:
            return set()
        if isinstance(source, Session):
            return _known_ids(source, connector, ids)
        with source() as session:
            return _known_ids(session, connector, ids)

    def _prepare(self, raw: RawMessage) -> _Prepared:
        if raw.note:
            return _Prepared(raw, None, raw.note)
        try:
            normalized = normalize_email(raw.payload, languages=self.settings.ingest.languages)
        except Exception as error:  # the normalizer must never raise; if it does, keep the bytes
            log.error(
                "normalize_crashed",
                connector=raw.connector,
                external_id=raw.external_id,
                error=repr(error),
                traceback=traceback.format_exc(limit=5),
            )
            return _Prepared(raw, None, f"normalizer crashed: {error!r}", crashed=True)
        return _Prepared(raw, normalized, "")


def _known_ids(session: Session, connector: str, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        known.update(
            session.scalars(
                select(RawRecord.external_id).where(
                    RawRecord.connector == connector, RawRecord.external_id.in_(chunk)
                )
            )
        )
    return known


def _unique(raws: list[RawMessage]) -> list[RawMessage]:
    """A connector may list one item twice in a batch (a file seen in new/ and cur/)."""
    seen: set[str] = set()
    unique = []
    for raw in raws:
        if raw.external_id not in seen:
            seen.add(raw.external_id)
            unique.append(raw)
    return unique


class _BatchWriter:
    """Writes one batch inside its transaction; holds the per-batch caches."""

    def __init__(
        self, session: Session, settings: Settings, clock: Callable[[], datetime], connector: str
    ) -> None:
        self.session = session
        self.clock = clock
        self.identities = IdentityResolver(session)
        self.threader = EmailThreader(session, settings.threading)
        self.log = log.bind(connector=connector)
        self._blobs_seen: set[str] = set()

    def add_isolated(self, item: _Prepared, result: BatchResult) -> None:
        """Store one message in a savepoint; if the store refuses it, keep it raw-only."""
        attempt = BatchResult()
        try:
            with self.session.begin_nested():
                self.add(item, attempt)
        except (OperationalError, InterfaceError):
            raise
        except Exception as error:
            self.identities = IdentityResolver(self.session)  # may hold rolled-back rows
            self._blobs_seen.clear()
            reason = f"could not be stored: {error!r}"[:500]
            self.log.error("message_refused", external_id=item.raw.external_id, error=reason)
            with self.session.begin_nested():
                self.add(_Prepared(item.raw, None, reason), result)
            return
        result.add(attempt)

    def add(self, item: _Prepared, result: BatchResult) -> None:
        raw = item.raw
        record = RawRecord(
            connector=raw.connector,
            external_id=raw.external_id,
            folder=raw.folder,
            channel=raw.channel,
            payload=raw.payload,
            size=len(raw.payload),
            sha256=hashlib.sha256(raw.payload).hexdigest(),
            received_at=raw.received_at,
            error=item.error,
        )
        self.session.add(record)
        if item.normalized is None:
            result.raw_only += 1
            result.crashed += int(item.crashed)
            self.session.add(
                Event(kind="stored_raw_only", actor="pipeline", detail=_where(raw, item.error))
            )
            self.log.warning("stored_raw_only", external_id=raw.external_id, reason=item.error)
            return
        normalized = item.normalized
        if normalized.errors:
            result.parse_errors += 1
        duplicate = self.session.scalar(
            select(Message).where(Message.dedupe_key == normalized.content_hash)
        )
        if duplicate is not None:
            record.message_id = duplicate.id
            result.duplicates += 1
            self.session.add(
                Event(
                    kind="duplicate_delivery",
                    actor="pipeline",
                    conversation_id=duplicate.conversation_id,
                    message_id=duplicate.id,
                    detail=_where(raw, ""),
                )
            )
            self.log.info(
                "duplicate_delivery",
                external_id=raw.external_id,
                conversation_id=duplicate.conversation_id,
                message_id=duplicate.id,
            )
            return
        message = self._store_message(raw, normalized)
        record.message_id = message.id
        result.stored += 1
        result.conversation_ids.append(message.conversation_id)

    def _store_message(self, raw: RawMessage, normalized: NormalizedMessage) -> Message:
        sender = normalized.sender
        identity = (
            self.identities.resolve("email", sender.address[:320], sender.name[:300])
            if sender and sender.address
            else None
        )
        contact_id = identity.contact_id if identity else None
        message_time = _message_time(normalized.sent_at, raw.received_at)
        normalized_subject = normalize_subject(normalized.subject)[:500]
        decision = self.threader.decide(normalized, normalized_subject, contact_id, message_time)
        conversation = decision.conversation or self._open_conversation(
            normalized, normalized_subject, contact_id, message_time, decision
        )
        message = Message(
            conversation=conversation,
            channel=raw.channel,
            connector=raw.connector,
            external_id=raw.external_id,
            direction="in",
            sender_identity_id=identity.id if identity else None,
            from_address=sender.address[:320] if sender else "",
            from_name=sender.name[:300] if sender else "",
            to_addresses=[a.address for a in normalized.to],
            cc_addresses=[a.address for a in normalized.cc],
            subject=normalized.subject,
            text=normalized.text,
            new_text=normalized.new_text,
            quoted_text=normalized.quoted_text,
            signature=normalized.signature,
            html=normalized.html,
            language=normalized.language,
            message_id_header=normalized.message_id[:998],
            in_reply_to=list(normalized.in_reply_to),
            references=list(normalized.references),
            dedupe_key=normalized.content_hash,
            thread_reason=decision.reason[:300],
            auto_submitted=normalized.flags.auto_submitted,
            bulk=normalized.flags.bulk,
            list_mail=normalized.flags.list_mail,
            bounce=normalized.flags.bounce,
            flag_reasons=list(normalized.flags.reasons),
            headers=dict(normalized.headers),
            parse_errors=list(normalized.errors),
            sent_at=normalized.sent_at,
            received_at=raw.received_at,
        )
        self.session.add(message)
        self._store_attachments(message, normalized)
        self.session.flush()
        self._update_conversation(conversation, normalized, message_time, decision)
        self.session.add(
            Event(
                kind="message_received",
                actor="pipeline",
                conversation_id=conversation.id,
                message_id=message.id,
                detail={**_where(raw, ""), "thread": decision.reason},
            )
        )
        self.log.debug(
            "message_stored",
            external_id=raw.external_id,
            conversation_id=conversation.id,
            message_id=message.id,
            thread=decision.reason,
        )
        return message

    def _open_conversation(
        self,
        normalized: NormalizedMessage,
        normalized_subject: str,
        contact_id: int | None,
        message_time: datetime,
        decision: ThreadDecision,
    ) -> Conversation:
        conversation = Conversation(
            token=new_token(),
            channel="email",
            contact_id=contact_id,
            subject=normalized.subject,
            normalized_subject=normalized_subject,
            status="open",
            priority="normal",
            language=normalized.language,
            message_count=0,
            previous_conversation_id=decision.previous.id if decision.previous else None,
            created_at=self.clock(),
            updated_at=self.clock(),
            last_message_at=message_time,
        )
        self.session.add(conversation)
        self.session.flush()
        detail: dict[str, object] = {"reason": decision.reason}
        if decision.previous is not None:
            detail["previous_conversation_id"] = decision.previous.id
        self.session.add(
            Event(
                kind="conversation_opened",
                actor="pipeline",
                conversation_id=conversation.id,
                detail=detail,
            )
        )
        return conversation

    def _update_conversation(
        self,
        conversation: Conversation,
        normalized: NormalizedMessage,
        message_time: datetime,
        decision: ThreadDecision,
    ) -> None:
        conversation.message_count = (conversation.message_count or 0) + 1
        conversation.updated_at = self.clock()
        if conversation.last_message_at is None or message_time > conversation.last_message_at:
            conversation.last_message_at = message_time
        if not normalized.flags.automatic:
            conversation.last_customer_message_at = message_time
        if not conversation.language and normalized.language:
            conversation.language = normalized.language
        if decision.reopen:
            previous_status = conversation.status
            conversation.status = "open"
            conversation.closed_at = None
            self.session.add(
                Event(
                    kind="conversation_reopened",
                    actor="pipeline",
                    conversation_id=conversation.id,
                    detail={"from": previous_status, "reason": decision.reason},
                )
            )

    def _store_attachments(self, message: Message, normalized: NormalizedMessage) -> None:
        for attachment in normalized.attachments:
            if attachment.sha256 not in self._blobs_seen:
                insert_ignore(
                    self.session,
                    Blob,
                    {
                        "sha256": attachment.sha256,
                        "size": attachment.size,
                        "data": attachment.content,
                    },
                    ["sha256"],
                )
                self._blobs_seen.add(attachment.sha256)
            message.attachments.append(
                Attachment(
                    filename=attachment.filename[:1000],
                    content_type=attachment.content_type[:255],
                    size=attachment.size,
                    sha256=attachment.sha256,
                    inline=attachment.inline,
                    content_id=attachment.content_id[:500],
                )
            )


def _message_time(sent_at: datetime | None, received_at: datetime) -> datetime:
    """When the customer wrote, as far as we can trust the Date header."""
    if sent_at is None or sent_at > received_at + MAX_FUTURE_SKEW:
        return received_at
    return sent_at


def _where(raw: RawMessage, error: str) -> dict[str, object]:
    detail: dict[str, object] = {"connector": raw.connector, "external_id": raw.external_id}
    if error:
        detail["error"] = error
    return detail
