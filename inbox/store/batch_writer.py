"""Writing one batch inside its transaction.

Measured first (bench/ingest.py): written the obvious way, one ORM flush and four lookups per
message, the store cost 7 ms a message and the pipeline ran at 130 messages/s. So a batch is
written the way a database likes: everything it may need (duplicates, senders, conversations
it may join) is loaded up front in a few IN queries, decisions are made in memory, and the new
rows go out as multi-row INSERTs at the end (`finish`). Now about 0.3 ms a message on SQLite.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from inbox.config import Settings
from inbox.normalize.prepare import Prepared
from inbox.normalize.subject import normalize_subject
from inbox.normalize.types import NormalizedMessage
from inbox.raw import RawMessage
from inbox.store.contacts import IdentityResolver
from inbox.store.models import (
    Attachment,
    Base,
    Blob,
    Contact,
    Conversation,
    Event,
    Message,
    RawRecord,
)
from inbox.store.sql import chunked, insert_ignore_many
from inbox.store.threads import TOKEN_IN_MESSAGE_ID, EmailThreader, ThreadDecision, new_token

log = structlog.get_logger(__name__)

#: Past this, a Date header is treated as wrong (clock skew, spam) and the arrival time is used.
MAX_FUTURE_SKEW = timedelta(days=1)


@dataclass
class BatchResult:
    """What happened to a batch; also the running totals of a daemon or an import."""

    stored: int = 0
    duplicates: int = 0
    already_stored: int = 0
    parse_errors: int = 0
    #: Stored as raw bytes only (over the size cap, or the normalizer failed).
    raw_only: int = 0
    #: The normalizer raised: a bug to fix, counted apart from raw-only by design.
    crashed: int = 0
    #: Edits and deletions of earlier messages (chat), recorded as events.
    revisions: int = 0
    #: The rules' decisions (events per rule) and assignments per agent, for /metrics.
    rule_decisions: Counter[str] = field(default_factory=Counter)
    assignments: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    #: The batch's own conversations (for its log line); running totals do not keep them, as
    #: a daemon's would grow by an id for every message it stores.
    conversation_ids: list[int] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.already_stored += other.already_stored
        self.parse_errors += other.parse_errors
        self.raw_only += other.raw_only
        self.crashed += other.crashed
        self.revisions += other.revisions
        self.rule_decisions.update(other.rule_decisions)
        self.assignments.update(other.assignments)
        self.seconds += other.seconds


@dataclass
class Arrival:
    """A message stored by this batch, as the rules see it (inbox/routing/rules_pass.py)."""

    conversation: Conversation
    message_id: int | None
    #: The message's stored columns (channel, from_address, subject, new_text, headers, ...).
    columns: dict[str, Any]
    attachments: list[dict[str, Any]]
    new_conversation: bool
    #: The message opened a closed conversation again.
    reopened: bool = False
    #: Messages in the conversation with this one, when it arrived (a later message of the
    #: same batch must not change what the rules saw for this one).
    message_count: int = 1


@dataclass(eq=False)
class _NewMessage:
    """A message of this batch, inserted by `finish` once its conversation has an id."""

    row: dict[str, Any]
    conversation: Conversation
    raw: RawMessage
    reason: str
    attachments: list[dict[str, Any]]
    id: int | None = None

    @property
    def conversation_id(self) -> int | None:
        return self.conversation.id


class BatchWriter:
    def __init__(
        self, session: Session, settings: Settings, clock: Callable[[], datetime], connector: str
    ) -> None:
        self.session = session
        self.settings = settings
        self.clock = clock
        self.connector = connector
        self.log = log.bind(connector=connector)
        self.result = BatchResult()
        self.conversations: list[Conversation] = []
        self._logged: list[_NewMessage] = []
        self._new_messages: list[_NewMessage] = []
        #: Rows whose ids come from the messages above: (row, message or None).
        self._raw_rows: list[tuple[dict[str, Any], Message | _NewMessage | None]] = []
        self._event_rows: list[tuple[dict[str, Any], Conversation | None, Any]] = []
        self._new_conversations: list[Conversation] = []
        #: Stored messages for the rules: (message, opened a new conversation, reopened one).
        self._arrivals: list[tuple[_NewMessage, bool, bool, int]] = []
        self._reset()

    def _reset(self) -> None:
        self.identities = IdentityResolver(self.session)
        self.threader = EmailThreader(self.session, self.settings.threading)
        self._by_key: dict[str, Message | _NewMessage] = {}
        #: Our own replies, by Message-ID, that this batch fetches back (a Cc, a Sent folder).
        self._ours: dict[str, Message] = {}
        self._contact_of: dict[str, int | None] = {}
        self._blobs_seen: set[str] = set()
        #: Messages that this batch's edits and deletions refer to, by external id.
        self._revised: dict[str, Message] = {}
        self._new_by_external: dict[str, _NewMessage] = {}
        #: New attachment contents, inserted (or found already there) by `finish`.
        self._blob_rows: list[dict[str, Any]] = []

    def prefetch(self, items: list[Prepared]) -> None:
        normalized = [item.normalized for item in items if item.normalized is not None]
        keys = sorted({n.content_hash for n in normalized})
        for chunk in chunked(keys):
            found = self.session.scalars(select(Message).where(Message.dedupe_key.in_(chunk)))
            self._by_key.update({message.dedupe_key: message for message in found})
        ours = sorted({n.message_id for n in normalized if TOKEN_IN_MESSAGE_ID.match(n.message_id)})
        for chunk in chunked(ours):
            for message in self.session.scalars(
                select(Message).where(
                    Message.message_id_header.in_(chunk), Message.direction == "out"
                )
            ):
                self._ours[message.message_id_header] = message
        senders: dict[str, dict[str, str]] = {}
        emails: dict[tuple[str, str], str] = {}
        for n in normalized:
            if n.sender and n.sender.address and n.revision is None:
                senders.setdefault(n.sender_kind, {})[n.sender.address[:320]] = n.sender.name[:300]
                if n.sender_email:
                    emails[(n.sender_kind, n.sender.address[:320])] = n.sender_email[:320]
        for kind, names in senders.items():
            self.identities.resolve_many(kind, names, also_email=emails)
            for address in names:
                identity = self.identities.resolve(kind, address)
                self._contact_of[f"{kind}:{address}"] = identity.contact_id
        self.threader.prefetch(
            [(n, _subject_key(n), self._contact(n)) for n in normalized if not n.thread_key]
        )
        self.threader.prefetch_keys({n.thread_key for n in normalized if n.thread_key})
        revised = sorted({n.revision[1] for n in normalized if n.revision is not None})
        for chunk in chunked(revised):
            for message in self.session.scalars(
                select(Message).where(
                    Message.connector == self.connector, Message.external_id.in_(chunk)
                )
            ):
                self._revised[message.external_id] = message

    def add(self, item: Prepared) -> None:
        self._add(item, self.result)

    def add_isolated(self, item: Prepared, remaining: list[Prepared]) -> None:
        """Store one message in a savepoint; if the store refuses it, keep it raw-only."""
        attempt = BatchResult()
        arrivals_before = len(self._arrivals)
        try:
            with self.session.begin_nested():
                self._add(item, attempt)
                self.finish()
        except (OperationalError, InterfaceError):
            raise
        except Exception as error:
            reason = f"could not be stored: {error!r}"[:500]
            self.log.error("message_refused", external_id=item.raw.external_id, error=reason)
            self._reset()  # the caches may hold rows the savepoint rolled back
            del self._arrivals[arrivals_before:]
            self.prefetch(remaining)
            with self.session.begin_nested():
                self._add(Prepared(item.raw, None, reason), self.result)
                self.finish()
            return
        self.result.add(attempt)

    def arrivals(self) -> list[Arrival]:
        """After `finish`: the stored messages, for the rules."""
        return [
            Arrival(
                conversation=message.conversation,
                message_id=message.id,
                columns=message.row,
                attachments=message.attachments,
                new_conversation=new,
                reopened=reopened,
                message_count=count,
            )
            for message, new, reopened, count in self._arrivals
        ]

    def log_stored(self) -> None:
        """After the flush, when the new rows have their ids."""
        for message in self._logged:
            self.log.debug(
                "message_stored",
                external_id=message.raw.external_id,
                conversation_id=message.conversation_id,
                message_id=message.id,
                thread=message.reason,
            )

    def finish(self) -> None:
        """Insert what `add` collected: the ORM flush first (conversations, which give the
        messages their conversation ids), then messages, attachments, raw records and events as
        multi-row INSERTs, without an ORM object per row (measured: the ORM unit of work was
        most of the store's cost)."""
        new_messages, self._new_messages = self._new_messages, []
        raw_rows, self._raw_rows = self._raw_rows, []
        event_rows, self._event_rows = self._event_rows, []
        self._number_new_conversations()
        self.session.flush()
        # Core statements on the tables: the ORM's bulk path inspects every row against the
        # mapper, which cost a third of the store's time (measured with cProfile).
        connection = self.session.connection()
        blob_rows, self._blob_rows = self._blob_rows, []
        # Blobs first (attachments refer to them); another worker may have stored one already.
        insert_ignore_many(self.session, Blob, blob_rows, ["sha256"])
        if new_messages:
            rows = [{**m.row, "conversation_id": m.conversation.id} for m in new_messages]
            # RETURNING rows come back in no set order, and asking SQLite for parameter order
            # makes SQLAlchemy send one INSERT per row: match them up by external id instead,
            # which is unique among the new messages of a batch (the pipeline dedupes it).
            messages = _table(Message)
            statement = insert(messages).returning(messages.c.id, messages.c.external_id)
            ids = {row.external_id: row.id for row in connection.execute(statement, rows)}
            for message in new_messages:
                message.id = ids[message.raw.external_id]
            attachments = [{**a, "message_id": m.id} for m in new_messages for a in m.attachments]
            if attachments:
                connection.execute(insert(_table(Attachment)), attachments)
        if raw_rows:
            connection.execute(
                insert(_table(RawRecord)),
                [
                    {**row, "message_id": message.id if message else None}
                    for row, message in raw_rows
                ],
            )
        if event_rows:
            connection.execute(
                insert(_table(Event)),
                [
                    {
                        **row,
                        "conversation_id": conversation.id if conversation else None,
                        "message_id": message.id if message is not None else None,
                    }
                    for row, conversation, message in event_rows
                ],
            )
        self._logged.extend(new_messages)

    def _number_new_conversations(self) -> None:
        """Give this batch's new conversations their ids before the flush, on SQLite.

        SQLite cannot tie the rows of a multi-row INSERT ... RETURNING to their parameter sets,
        so the ORM sends one INSERT per new conversation there. This writer holds SQLite's
        write lock for its whole transaction (BEGIN IMMEDIATE), so numbering from max(id) is
        what SQLite itself would do, and the flush becomes one executemany. PostgreSQL keeps
        its sequence: it batches ordered RETURNING fine.
        """
        new, self._new_conversations = self._new_conversations, []
        if not new or self.session.get_bind().dialect.name != "sqlite":
            return
        highest = self.session.scalar(select(func.max(Conversation.id))) or 0
        for offset, conversation in enumerate(new, start=1):
            conversation.id = highest + offset

    def _contact(self, normalized: NormalizedMessage) -> int | None:
        sender = normalized.sender
        if not sender:
            return None
        return self._contact_of.get(f"{normalized.sender_kind}:{sender.address[:320]}")

    def _add(self, item: Prepared, counts: BatchResult) -> None:
        raw = item.raw
        record = {
            "connector": raw.connector,
            "external_id": raw.external_id,
            "folder": raw.folder,
            "channel": raw.channel,
            "payload": raw.payload,
            "size": len(raw.payload),
            "sha256": hashlib.sha256(raw.payload).hexdigest(),
            "received_at": raw.received_at,
            "error": item.error,
        }
        if item.normalized is None:
            counts.raw_only += 1
            counts.crashed += int(item.crashed)
            self._raw_rows.append((record, None))
            self._event("stored_raw_only", None, None, {**_where(raw), "error": item.error})
            # A crash's reason quotes the exception, which may quote the message: stored, not
            # logged (normalize_crashed said where it happened).
            reason = "normalizer crashed" if item.crashed else item.error
            self.log.warning("stored_raw_only", external_id=raw.external_id, reason=reason)
            return
        normalized = item.normalized
        counts.parse_errors += bool(normalized.errors)
        if normalized.revision is not None:
            self._raw_rows.append((record, self._record_revision(normalized, raw)))
            counts.revisions += 1
            return
        ours = self._ours.get(normalized.message_id)
        if ours is not None:
            # Our reply, come back: kept with the outbound message, never a customer's.
            self._raw_rows.append((record, ours))
            counts.duplicates += 1
            self._event("own_reply_fetched", ours.conversation, ours, _where(raw))
            self.log.info("own_reply_fetched", external_id=raw.external_id, message_id=ours.id)
            return
        duplicate = self._by_key.get(normalized.content_hash)
        if duplicate is not None:
            self._raw_rows.append((record, duplicate))
            counts.duplicates += 1
            self._event("duplicate_delivery", duplicate.conversation, duplicate, _where(raw))
            self.log.info(
                "duplicate_delivery",
                external_id=raw.external_id,
                conversation_id=duplicate.conversation_id,
                message_id=duplicate.id,
            )
            return
        self._raw_rows.append((record, self._store_message(raw, normalized)))
        counts.stored += 1

    def _event(
        self,
        kind: str,
        conversation: Conversation | None,
        message: Message | _NewMessage | None,
        detail: dict[str, Any],
    ) -> None:
        row = {"kind": kind, "actor": "pipeline", "detail": detail, "created_at": self.clock()}
        self._event_rows.append((row, conversation, message))

    def _record_revision(
        self, normalized: NormalizedMessage, raw: RawMessage
    ) -> Message | _NewMessage | None:
        """An edit or a deletion: an event on the original's conversation, with the text
        before and after. The message keeps what it said when it arrived, which is what the
        rules and the agent saw; the event holds the rest."""
        assert normalized.revision is not None
        what, original_id = normalized.revision
        original = self._revised.get(original_id) or self._new_by_external.get(original_id)
        detail: dict[str, Any] = {
            **_where(raw),
            "original": original_id,
            "text": normalized.text[:4000] if what == "edited" else "",
        }
        if original is None:
            # The original came before this connector's history (or was never seen): keep
            # the raw event, say so, attach it to nothing.
            detail["note"] = "original message not in the store"
            self._event(f"message_{what}", None, None, detail)
            return None
        conversation = (
            original.conversation
            if isinstance(original, _NewMessage)
            else self.session.get(Conversation, original.conversation_id)
        )
        self._event(f"message_{what}", conversation, original, detail)
        self.log.info(f"message_{what}", original=original_id)
        return original

    def _store_message(self, raw: RawMessage, normalized: NormalizedMessage) -> _NewMessage:
        sender = normalized.sender
        contact_id = self._contact(normalized)
        identity = None
        if sender and sender.address:
            identity = self.identities.resolve(normalized.sender_kind, sender.address[:320])
        message_time = _message_time(normalized.sent_at, raw.received_at)
        subject_key = _subject_key(normalized)
        if normalized.thread_key:
            decision = self.threader.decide_keyed(normalized, message_time)
        else:
            decision = self.threader.decide(normalized, subject_key, contact_id, message_time)
        was_closed = decision.conversation is not None and decision.conversation.status == "closed"
        conversation = decision.conversation or self._open_conversation(
            normalized, subject_key, contact_id, message_time, decision
        )
        row: dict[str, Any] = dict(
            channel=raw.channel,
            connector=raw.connector,
            external_id=raw.external_id,
            direction="in",
            sender_identity_id=identity.id if identity else None,
            from_address=sender.shown[:320] if sender else "",
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
            created_at=self.clock(),
        )
        message = _NewMessage(
            row, conversation, raw, decision.reason, self._attachment_rows(normalized)
        )
        self._new_messages.append(message)
        # No event per arrival: the message row itself says when, from where and why it joined
        # (thread_reason); events are for decisions and for what happened besides a message.
        self._update_conversation(conversation, normalized, message_time, decision)
        if decision.csat is None:  # a survey's score is no request: the rules do not see it
            self._arrivals.append(
                (message, decision.conversation is None, was_closed, conversation.message_count)
            )
        self._record_sms_keyword(normalized, conversation, message, contact_id, message_time)
        self.threader.remember(normalized.message_id[:998], conversation)
        if normalized.thread_key:
            self.threader.remember_key(normalized.thread_key, conversation)
        self._by_key[normalized.content_hash] = message
        self._new_by_external[raw.external_id] = message
        self.conversations.append(conversation)
        return message

    def _record_sms_keyword(
        self,
        normalized: NormalizedMessage,
        conversation: Conversation,
        message: _NewMessage,
        contact_id: int | None,
        when: datetime,
    ) -> None:
        """STOP, START, HELP (and their like, see inbox/normalize/sms.py) on the contact, with
        an event saying which number they wrote to: nobody may text a customer who opted out."""
        word = dict(normalized.headers).get("x-sms-keyword", "")
        if not word or contact_id is None:
            return
        if word in ("stop", "start"):
            self.session.execute(
                update(Contact)
                .where(Contact.id == contact_id)
                .values(sms_opted_out_at=when if word == "stop" else None)
            )
        kind = {"stop": "sms_opted_out", "start": "sms_opted_in"}.get(word, "sms_help")
        ours = normalized.to[0].address if normalized.to else ""
        self._event(kind, conversation, message, {"keyword": normalized.text[:40], "to": ours})
        self.log.info(kind, conversation_id=conversation.id, contact_id=contact_id)

    def _open_conversation(
        self,
        normalized: NormalizedMessage,
        subject_key: str,
        contact_id: int | None,
        message_time: datetime,
        decision: ThreadDecision,
    ) -> Conversation:
        now = self.clock()
        conversation = Conversation(
            token=new_token(),
            channel=normalized.channel,
            thread_key=normalized.thread_key[:300] or None,
            contact_id=contact_id,
            subject=normalized.subject,
            normalized_subject=subject_key,
            status="open",
            priority="normal",
            language=normalized.language,
            message_count=0,
            previous_conversation_id=decision.previous.id if decision.previous else None,
            created_at=now,
            updated_at=now,
            last_message_at=message_time,
        )
        self.session.add(conversation)
        self._new_conversations.append(conversation)
        detail: dict[str, object] = {"reason": decision.reason}
        if decision.previous is not None:
            detail["previous_conversation_id"] = decision.previous.id
        self._event("conversation_opened", conversation, None, detail)
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
        if decision.csat is not None and conversation.csat_score is None:
            conversation.csat_score = decision.csat
            conversation.csat_answered_at = self.clock()
            self._event("csat_answered", conversation, None, {"score": decision.csat})
        elif decision.csat is not None:  # one vote: the first
            kept = {"score": decision.csat, "kept": conversation.csat_score}
            self._event("csat_answered_again", conversation, None, kept)
        if decision.reopen:
            previous_status = conversation.status
            conversation.status = "open"
            conversation.closed_at = None
            conversation.snoozed_until = None  # the customer wrote first
            detail = {"from": previous_status, "reason": decision.reason}
            self._event("conversation_reopened", conversation, None, detail)

    def _attachment_rows(self, normalized: NormalizedMessage) -> list[dict[str, Any]]:
        rows = []
        for attachment in normalized.attachments:
            if attachment.sha256 not in self._blobs_seen:
                self._blob_rows.append(
                    {
                        "sha256": attachment.sha256,
                        "size": attachment.size,
                        "data": attachment.content,
                    }
                )
                self._blobs_seen.add(attachment.sha256)
            rows.append(
                {
                    "filename": attachment.filename[:1000],
                    "content_type": attachment.content_type[:255],
                    "size": attachment.size,
                    "sha256": attachment.sha256,
                    "inline": attachment.inline,
                    "content_id": attachment.content_id[:500],
                }
            )
        return rows


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _subject_key(normalized: NormalizedMessage) -> str:
    return normalize_subject(normalized.subject)[:500]


def _message_time(sent_at: datetime | None, received_at: datetime) -> datetime:
    """When the customer wrote, as far as we can trust the Date header."""
    if sent_at is None or sent_at > received_at + MAX_FUTURE_SKEW:
        return received_at
    return sent_at


def _where(raw: RawMessage) -> dict[str, object]:
    return {"connector": raw.connector, "external_id": raw.external_id}
