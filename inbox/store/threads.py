"""Which conversation an email belongs to, and why.

In order of trust (DESIGN.md, "Threading"):

1. Any Message-ID in In-Reply-To or References that we know. The whole chain is walked, newest
   first, because an agent replying from their own client may rewrite In-Reply-To while the
   older References survive.
2. A conversation token that our own replies carry (subject tag `[#TOKEN]`, or our Message-ID
   `<inbox.TOKEN....>` quoted back in References). Tokens are random, so a token in a subject
   cannot join a stranger's mail to someone else's conversation, unlike a sequential ticket
   number.
3. The same contact with the same normalized subject, within a window, while the conversation
   is open or pending. Scoped to the contact so that "Invoice" from two customers stays apart.

Then the lifecycle: a customer's message to a pending conversation opens it again; to a closed
one it reopens it within the reopen window, else starts a new conversation linked to the old.
Automatic mail (auto-replies, bounces, bulk) joins but never reopens.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from inbox.config import ThreadingSettings
from inbox.normalize.csat import parse_score
from inbox.normalize.types import NormalizedMessage
from inbox.store.models import Conversation, Message
from inbox.store.sql import chunked

TOKEN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
TOKEN_LENGTH = 10
TOKEN_IN_SUBJECT = re.compile(r"\[#([A-HJ-NP-Z2-9]{10})\]")
TOKEN_IN_MESSAGE_ID = re.compile(r"^inbox\.([A-HJ-NP-Z2-9]{10})\.")
OPEN_STATUSES = ("open", "pending")


def new_token() -> str:
    """About 50 bits of randomness, in an alphabet without look-alikes (no I, O, 0, 1)."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    """The conversation to join (None: open a new one) and the reason, for the audit trail."""

    conversation: Conversation | None
    reason: str
    #: The conversation was closed or pending and this message opens it again.
    reopen: bool = False
    #: A closed conversation found past the reopen window: the new one links to it.
    previous: Conversation | None = None
    #: The customer's score for the survey the closed conversation sent (it stays closed).
    csat: int | None = None


class EmailThreader:
    """Decides for one batch. `prefetch` loads, in a few queries, every conversation the batch
    may join; `decide` then answers from memory, and `remember` adds what the batch creates, so
    a reply later in the same batch finds a message stored earlier in it."""

    def __init__(self, session: Session, settings: ThreadingSettings) -> None:
        self.session = session
        self.subject_window = timedelta(days=settings.subject_window_days)
        self.reopen_window = timedelta(days=settings.reopen_window_days)
        self._by_message_id: dict[str, Conversation] = {}
        self._by_token: dict[str, Conversation] = {}
        self._by_subject: dict[tuple[int, str], list[Conversation]] = {}
        self._by_key: dict[str, Conversation] = {}

    def prefetch(self, wanted: Sequence[tuple[NormalizedMessage, str, int | None]]) -> None:
        """`wanted`: each message with its normalized subject and its contact id."""
        message_ids = {i for m, _, _ in wanted for i in (*m.in_reply_to, *m.references) if i}
        conversation_of_message: dict[str, int] = {}
        for chunk in chunked(sorted(message_ids)):
            rows = self.session.execute(
                select(Message.message_id_header, Message.conversation_id).where(
                    Message.message_id_header.in_(chunk)
                )
            )
            conversation_of_message.update({row[0]: row[1] for row in rows})
        loaded = self._load(Conversation.id, set(conversation_of_message.values()))
        by_id = {conversation.id: conversation for conversation in loaded}
        for message_id, conversation_id in conversation_of_message.items():
            self._by_message_id[message_id] = by_id[conversation_id]
        tokens = {token for m, _, _ in wanted for token, _ in _tokens(m)}
        for conversation in self._load(Conversation.token, tokens):
            self._by_token[conversation.token] = conversation
        # Pairs, not contacts x subjects: a regular customer has many conversations, and the
        # cross product loaded three conversations a message that no message could join.
        pairs = {(contact, subject) for _, subject, contact in wanted if contact and subject}
        for pair_chunk in chunked(sorted(pairs)):
            candidates = self.session.scalars(
                select(Conversation).where(
                    tuple_(Conversation.contact_id, Conversation.normalized_subject).in_(
                        pair_chunk
                    ),
                    Conversation.status.in_(OPEN_STATUSES),
                    Conversation.channel == "email",
                )
            )
            for conversation in candidates:
                self._remember_subject(conversation)

    def prefetch_keys(self, keys: set[str]) -> None:
        """SMS and chat: the conversations these thread keys belong to, newest first."""
        for chunk in chunked(sorted(keys)):
            rows = self.session.scalars(
                select(Conversation)
                .where(Conversation.thread_key.in_(chunk))
                .order_by(Conversation.id.desc())
            )
            for conversation in rows:
                assert conversation.thread_key is not None
                self._by_key.setdefault(conversation.thread_key, conversation)

    def remember_key(self, key: str, conversation: Conversation) -> None:
        self._by_key[key] = conversation

    def decide_keyed(self, message: NormalizedMessage, message_time: datetime) -> ThreadDecision:
        """A message of a channel that names its own thread (a Slack thread, an SMS number
        pair) joins the latest conversation of that thread, with the same lifecycle as email:
        a closed one reopens within the window, else a new conversation links to it."""
        conversation = self._by_key.get(message.thread_key)
        if conversation is None:
            return ThreadDecision(None, "new conversation")
        return self._apply_lifecycle(conversation, "same thread", message, message_time)

    def remember(self, message_id: str, conversation: Conversation) -> None:
        if message_id:
            self._by_message_id[message_id] = conversation
        self._by_token.setdefault(conversation.token, conversation)
        self._remember_subject(conversation)

    def decide(
        self,
        message: NormalizedMessage,
        normalized_subject: str,
        contact_id: int | None,
        message_time: datetime,
    ) -> ThreadDecision:
        found = self._by_message_ids(message) or self._by_tokens(message)
        if found is None and contact_id is not None and normalized_subject:
            found = self._by_same_subject(contact_id, normalized_subject, message_time)
        if found is None:
            return ThreadDecision(None, "new conversation")
        conversation, reason = found
        return self._apply_lifecycle(conversation, reason, message, message_time)

    def _load(self, column: Any, values: set[Any]) -> list[Conversation]:
        loaded: list[Conversation] = []
        for chunk in chunked(sorted(values)):
            loaded.extend(self.session.scalars(select(Conversation).where(column.in_(chunk))))
        return loaded

    def _remember_subject(self, conversation: Conversation) -> None:
        if conversation.contact_id is None or not conversation.normalized_subject:
            return
        key = (conversation.contact_id, conversation.normalized_subject)
        known = self._by_subject.setdefault(key, [])
        if conversation not in known:
            known.append(conversation)

    def _by_message_ids(self, message: NormalizedMessage) -> tuple[Conversation, str] | None:
        chain = [*message.in_reply_to, *reversed(message.references)]
        for position, message_id in enumerate(dict.fromkeys(i for i in chain if i)):
            conversation = self._by_message_id.get(message_id)
            if conversation is not None:
                header = "in-reply-to" if message_id in message.in_reply_to else "references"
                hop = "" if position == 0 else f" (hop {position + 1} of the chain)"
                return conversation, f"{header} <{message_id}>{hop}"
        return None

    def _by_tokens(self, message: NormalizedMessage) -> tuple[Conversation, str] | None:
        for token, where in _tokens(message):
            conversation = self._by_token.get(token)
            if conversation is not None:
                return conversation, f"{where} {token}"
        return None

    def _by_same_subject(
        self, contact_id: int, normalized_subject: str, message_time: datetime
    ) -> tuple[Conversation, str] | None:
        candidates = self._by_subject.get((contact_id, normalized_subject), [])
        for conversation in sorted(candidates, key=_latest_first):
            if conversation.status not in OPEN_STATUSES or conversation.channel != "email":
                continue
            last = conversation.last_message_at or conversation.created_at
            if abs(message_time - last) <= self.subject_window:
                return conversation, f"same contact and subject '{normalized_subject}'"
        return None

    def _apply_lifecycle(
        self,
        conversation: Conversation,
        reason: str,
        message: NormalizedMessage,
        message_time: datetime,
    ) -> ThreadDecision:
        automatic = message.flags.automatic
        if conversation.status == "closed" and not automatic:
            score = _survey_answer(conversation, message)
            if score is not None:
                return ThreadDecision(conversation, f"{reason}; a satisfaction score", csat=score)
            closed_at = conversation.closed_at or conversation.updated_at
            if message_time - closed_at > self.reopen_window:
                return ThreadDecision(
                    None, f"{reason}; closed past the reopen window", previous=conversation
                )
            return ThreadDecision(conversation, reason, reopen=True)
        if conversation.status == "pending" and not automatic:
            return ThreadDecision(conversation, reason, reopen=True)
        return ThreadDecision(conversation, reason)


def _tokens(message: NormalizedMessage) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    match = TOKEN_IN_SUBJECT.search(message.subject)
    if match:
        found.append((match.group(1), "subject token"))
    for message_id in (*message.in_reply_to, *message.references):
        id_match = TOKEN_IN_MESSAGE_ID.match(message_id)
        if id_match:
            found.append((id_match.group(1), "reference token"))
    return found


def _latest_first(conversation: Conversation) -> float:
    last = conversation.last_message_at or conversation.created_at
    return -last.timestamp()


def _survey_answer(conversation: Conversation, message: NormalizedMessage) -> int | None:
    """The score, when this answers the survey the conversation sent: a bare score is never a
    new request (a second click on a survey's button, a "5" sent twice), so it never opens the
    conversation; only the first counts (inbox/store/batch_writer.py)."""
    if conversation.csat_sent_at is None:
        return None
    return parse_score(message.new_text or message.text)
