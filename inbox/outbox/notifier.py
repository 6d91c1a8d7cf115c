"""The notifier: outbox rows out to Slack, each exactly once, none holding up the others.

Rows are written by routing (inbox/routing/writer.py) in the transaction of the decision, so a
ping exists if and only if its decision was committed. Here they are claimed, sent, and their
outcome recorded:

- **Claimed** in a short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
  daemons share the work): status `sending`, with a lease in `next_attempt_at`.
- **Sent** with slack_sdk's WebClient, several at once; the pings of one conversation go in
  order, so a reassignment always finds the ping it updates: a row is not claimed while an
  earlier row of its conversation waits for a retry, and one that fails holds back the rest.
- **Exactly once**: every message carries the row's idempotency key in Slack message metadata.
  A row still `sending` when its lease ran out (the daemon died between Slack's answer and our
  commit), or whose post got no answer (a timeout, a dropped connection, a 5xx: Slack may have
  posted it all the same), is looked up in the channel's history before it is sent again. For
  the same reason slack_sdk's own retry handlers are turned off: its ConnectionErrorRetryHandler
  re-sends a chat.postMessage whose connection dropped after Slack had posted it.
- **Failures**: a 429 waits out its Retry-After, and holds back only that Slack channel; a 5xx
  or a network error is retried with exponential backoff and jitter; an answer that cannot get
  better (channel_not_found, user_not_found, ...) or `max_attempts` failures mark the row
  `dead` with its reason (`inbox outbox list --status dead`; `inbox outbox retry ID`).
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from inbox.config import SlackSettings
from inbox.outbox import slack_messages
from inbox.outbox.pacing import Pacer
from inbox.outbox.slack_messages import ConversationView
from inbox.secrets import Secret
from inbox.store.db import transaction
from inbox.store.models import Contact, Conversation, Message, OutboxItem, PingThread, utcnow
from inbox.store.outbox_kinds import (
    SLACK_KINDS,
    AssignmentPing,
    NotifyPing,
    QueuedPing,
    SlackPing,
    ThreadFollowUp,
    read_slack_ping,
    slack_target,
)
from inbox.store.sql import insert_ignore_many

log = structlog.get_logger(__name__)

#: A claimed row not settled by then is presumed lost with its process, and recovered.
LEASE = timedelta(seconds=60)
#: How often the outbox is looked at when nobody woke the notifier.
POLL_SECONDS = 0.5
CLAIM_LIMIT = 100
MAX_BACKOFF = timedelta(minutes=30)
METADATA_EVENT = "inbox_ping"
#: Slack answers that no retry can change.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "user_not_found",
        "users_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_arguments",
        "cannot_dm_bot",
        "user_disabled",
        "account_inactive",
        "restricted_action",
        "message_not_found",
    }
)


@dataclass
class _Row:
    id: int
    kind: str
    key: str
    conversation_id: int | None
    payload: SlackPing
    attempts: int
    #: Set when an earlier attempt may have posted without our knowing (a lapsed lease, or a
    #: post that got no answer): when the first such attempt began.
    lapsed_since: datetime | None = None


@dataclass
class _Outcome:
    id: int
    status: str
    attempts: int
    next_attempt_at: datetime | None = None
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    #: A sent assignment ping's place in Slack, for ping_threads (agents answer in it).
    thread: dict[str, Any] = field(default_factory=dict)


class _Retry(Exception):
    def __init__(
        self,
        reason: str,
        *,
        after: timedelta | None = None,
        counts: bool = True,
        unsure_since: datetime | None = None,
    ):
        super().__init__(reason)
        self.after = after
        self.counts = counts
        #: A post that got no answer: Slack may have posted it (when that attempt began).
        self.unsure_since = unsure_since


class _Dead(Exception):
    pass


class Notifier:
    def __init__(
        self,
        writers: sessionmaker[Session],
        settings: SlackSettings,
        *,
        client: WebClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        answers: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self.writers = writers
        self.settings = settings
        self.clock = clock
        #: The canned answers' names, for the ping's menu (none: no menu).
        self.answers = answers
        if client is None:
            assert settings.bot_token is not None, "the notifier needs slack.bot_token"
            client = WebClient(
                token=Secret(settings.bot_token).get(),
                base_url=settings.api_url,
                timeout=int(settings.timeout_seconds),
            )
        # Retrying is ours to do, after a look at the history; see the module's docstring.
        client.retry_handlers = []
        self.client = client
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(settings.senders, thread_name_prefix="slack-send")
        self._thread: threading.Thread | None = None
        self._dm_of: dict[str, str] = {}
        #: Slack target (user or channel) -> not before: a 429 holds back that target only.
        self._holds: dict[str, datetime] = {}
        self._pacer = Pacer(settings.per_channel_rate, settings.per_channel_burst)
        self._lock = threading.Lock()
        self.log = log.bind(component="notifier")

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
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
            except Exception:
                # The store is away or a bug: never die, look again shortly.
                self.log.exception("notifier_pass_failed")
                handled = 0
            if not handled:
                self.wakeup.wait(self._idle_seconds())
                self.wakeup.clear()

    def _idle_seconds(self) -> float:
        """Until the next poll, or sooner when a 429's hold ends or a paced channel may have
        its next post: the pings held back are due then. Waiting out the poll instead cost 15%
        of the throughput with 5% of posts rate limited (bench/notify.py: 100-109 -> 123
        pings/s, p95 5.3 s -> 3.9 s)."""
        now = self.clock()
        with self._lock:
            ends = [until for until in self._holds.values() if until > now]
        paced = self._pacer.next_free(now)
        if paced is not None:
            ends.append(paced)
        if not ends:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.01, (min(ends) - now).total_seconds()))

    def run_once(self) -> int:
        """Claim what is due, send it, record the outcomes; the number of rows handled."""
        rows = self._claim()
        if not rows:
            return 0
        by_conversation: dict[int | None, list[_Row]] = defaultdict(list)
        for row in rows:
            by_conversation[row.conversation_id].append(row)
        with self.writers() as session:
            views = conversation_views(
                session, [c for c in by_conversation if c is not None], self.settings.desk_url
            )
        outcomes: list[_Outcome] = []
        for done in self._pool.map(
            lambda group: self._send_in_order(group, views), by_conversation.values()
        ):
            outcomes.extend(done)
        self._record(outcomes)
        return len(rows)

    # -- claiming and recording ---------------------------------------------------------------

    def _claim(self) -> list[_Row]:
        now = self.clock()
        claimed: list[_Row] = []
        earlier = aliased(OutboxItem)
        # An earlier row of the same conversation not due yet (a retry, or another daemon's
        # lease): this one waits for it, or a reassignment would find no ping to update.
        waits_behind = (
            select(earlier.id)
            .where(
                earlier.conversation_id == OutboxItem.conversation_id,
                earlier.id < OutboxItem.id,
                earlier.status.in_(("pending", "sending")),
                earlier.kind.in_(SLACK_KINDS),
                earlier.next_attempt_at > now,
            )
            .exists()
        )
        with transaction(self.writers) as session:
            query = (
                select(OutboxItem)
                .where(
                    OutboxItem.status.in_(("pending", "sending")),
                    OutboxItem.next_attempt_at <= now,
                    OutboxItem.kind.in_(SLACK_KINDS),
                    ~waits_behind,
                )
                .order_by(OutboxItem.id)
                .limit(CLAIM_LIMIT)
                .with_for_update(skip_locked=True)
            )
            held_conversations: set[int] = set()
            for item in session.scalars(query):
                payload = read_slack_ping(item.kind, item.payload)
                if (
                    item.conversation_id in held_conversations
                    or self._held(payload, now)
                    or not self._pacer.take(slack_target(payload), now)
                ):
                    if item.conversation_id is not None:
                        held_conversations.add(item.conversation_id)
                    continue
                lapsed = item.next_attempt_at - LEASE if item.status == "sending" else None
                unsure = _unsure_since(item.result)
                if unsure is not None and (lapsed is None or unsure < lapsed):
                    lapsed = unsure
                item.status = "sending"
                item.next_attempt_at = now + LEASE
                claimed.append(
                    _Row(
                        item.id,
                        item.kind,
                        item.idempotency_key,
                        item.conversation_id,
                        payload,
                        item.attempts,
                        lapsed,
                    )
                )
        return claimed

    def _record(self, outcomes: list[_Outcome]) -> None:
        """One executemany UPDATE by primary key for the whole pass (a load and a flush per
        row cost 0.66 ms each: a third of a ping's time, measured with bench/notify.py)."""
        now = self.clock()
        rows = [
            {
                "id": outcome.id,
                "status": outcome.status,
                "attempts": outcome.attempts,
                "last_error": outcome.error[:2000],
                "result": outcome.result,
                "sent_at": now if outcome.status == "sent" else None,
                "next_attempt_at": outcome.next_attempt_at or now,
            }
            for outcome in outcomes
        ]
        threads = [{**o.thread, "created_at": now} for o in outcomes if o.thread]
        if rows:
            with transaction(self.writers) as session:
                session.execute(update(OutboxItem), rows)
                insert_ignore_many(session, PingThread, threads, ["channel", "ts"])

    def _held(self, payload: SlackPing, now: datetime) -> bool:
        target = slack_target(payload)
        with self._lock:
            until = self._holds.get(target)
        return until is not None and until > now

    def _hold(self, target: str, until: datetime) -> None:
        with self._lock:
            self._holds[target] = max(until, self._holds.get(target, until))

    # -- sending ------------------------------------------------------------------------------

    def _send_in_order(
        self, rows: list[_Row], views: dict[int, ConversationView]
    ) -> list[_Outcome]:
        """One conversation's rows, in order. An assignment ping sent here is remembered (by
        agent) so that a reassignment later in the same pass can update it: it is not in the
        store until this pass records it."""
        outcomes: list[_Outcome] = []
        sent: dict[str, dict[str, Any]] = {}
        for number, row in enumerate(rows):
            view = views.get(row.conversation_id or 0) or _GONE
            outcome = self._send(row, view, sent)
            outcomes.append(outcome)
            if outcome.status == "sent" and isinstance(row.payload, AssignmentPing):
                sent[row.payload.agent] = outcome.result
            if outcome.status == "pending" and row.conversation_id is not None:
                # The rest wait for it: a reassignment sent first would have no ping to update.
                outcomes.extend(
                    _Outcome(
                        later.id,
                        "pending",
                        later.attempts,
                        outcome.next_attempt_at,
                        error=f"waiting for outbox row {row.id} to go first",
                        result=_unsure_result(later.lapsed_since),
                    )
                    for later in rows[number + 1 :]
                )
                break
        return outcomes

    def _send(self, row: _Row, view: ConversationView, sent: dict[str, dict[str, Any]]) -> _Outcome:
        now = self.clock()
        try:
            result = self._deliver(row, view, now, sent)
        except _Dead as dead:
            self.log.error("ping_dead", **_about(row), reason=str(dead))
            return _Outcome(row.id, "dead", row.attempts + 1, error=str(dead))
        except _Retry as retry:
            attempts = row.attempts + (1 if retry.counts else 0)
            if attempts >= self.settings.max_attempts:
                reason = f"gave up after {attempts} attempts: {retry}"
                self.log.error("ping_dead", **_about(row), reason=reason)
                return _Outcome(row.id, "dead", attempts, error=reason)
            delay = retry.after or _backoff(attempts)
            unsure = retry.unsure_since
            if row.lapsed_since is not None and (unsure is None or row.lapsed_since < unsure):
                unsure = row.lapsed_since
            self.log.warning(
                "ping_retry",
                **_about(row),
                reason=str(retry),
                attempts=attempts,
                retry_in_seconds=round(delay.total_seconds(), 1),
            )
            return _Outcome(
                row.id,
                "pending",
                attempts,
                now + delay,
                error=str(retry),
                result=_unsure_result(unsure),
            )
        self.log.info("ping_sent", **_about(row), channel=result.get("channel"))
        return _Outcome(
            row.id, "sent", row.attempts + 1, result=result, thread=_thread_of(row, result)
        )

    def _deliver(
        self, row: _Row, view: ConversationView, now: datetime, sent: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        payload = row.payload
        target = slack_target(payload)
        if not target:
            named = payload.target if isinstance(payload, NotifyPing) else ""
            raise _Dead(f"no Slack user or channel to send to ({named or row.kind})")
        posting = False
        try:
            channel = self._channel_for(payload)
            if row.lapsed_since is not None:
                found = self._already_posted(channel, row.key, row.lapsed_since)
                if found is not None:
                    self.log.info("ping_found_after_restart", **_about(row), ts=found)
                    return {"channel": channel, "ts": found, "recovered": True}
            message = _compose(payload, view, now, self.answers)
            posting = True
            answer = self.client.chat_postMessage(
                channel=channel,
                text=message["text"],
                blocks=message["blocks"],
                unfurl_links=False,
                thread_ts=payload.thread_ts if isinstance(payload, ThreadFollowUp) else None,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": row.key}},
            )
            posting = False
            result = {"channel": str(answer["channel"]), "ts": str(answer["ts"])}
            if isinstance(payload, AssignmentPing) and payload.previous_agent:
                self._update_earlier(row, payload, view, now, sent)
            return result
        except SlackApiError as error:
            problem = self._classify(error, target, now)
            if posting and isinstance(problem, _Retry) and error.response.status_code >= 500:
                problem.unsure_since = now
            raise problem from None
        except (SlackClientError, OSError, TimeoutError) as error:
            unsure = now if posting else None
            raise _Retry(f"Slack unreachable: {error}"[:300], unsure_since=unsure) from None

    def _channel_for(self, payload: SlackPing) -> str:
        user = "" if isinstance(payload, QueuedPing | ThreadFollowUp) else payload.slack_user
        if not user:
            return slack_target(payload)
        channel = self._dm_of.get(user)
        if channel is None:
            answer = self.client.conversations_open(users=user)
            channel = str(answer["channel"]["id"])
            self._dm_of[user] = channel
        return channel

    def _already_posted(self, channel: str, key: str, since: datetime) -> str | None:
        """The ts of our message carrying `key` posted to `channel` since `since`, if any."""
        oldest = f"{(since - timedelta(seconds=5)).timestamp():.6f}"
        cursor: str | None = None
        while True:
            answer = self.client.conversations_history(
                channel=channel, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
            )
            messages: list[dict[str, Any]] = answer.get("messages", [])
            for message in messages:
                metadata = message.get("metadata") or {}
                if (
                    metadata.get("event_type") == METADATA_EVENT
                    and (metadata.get("event_payload") or {}).get("key") == key
                ):
                    return str(message["ts"])
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None

    def _update_earlier(
        self,
        row: _Row,
        ping: AssignmentPing,
        view: ConversationView,
        now: datetime,
        sent: dict[str, dict[str, Any]],
    ) -> None:
        """Turn the previous agent's ping into "reassigned to ...". Best effort: the new
        agent's ping matters more than the old one's wording."""
        earlier = sent.get(ping.previous_agent) or self._earlier_ping(row, ping.previous_agent)
        if earlier is None:
            return
        message = slack_messages.reassigned(view, now, ping.agent)
        try:
            self.client.chat_update(
                channel=earlier["channel"],
                ts=earlier["ts"],
                text=message["text"],
                blocks=message["blocks"],
            )
        except (SlackApiError, SlackClientError, OSError) as error:
            self.log.warning("ping_update_failed", **_about(row), reason=str(error)[:300])

    def _earlier_ping(self, row: _Row, previous: str) -> dict[str, str] | None:
        with self.writers() as session:
            items = session.scalars(
                select(OutboxItem)
                .where(
                    OutboxItem.conversation_id == row.conversation_id,
                    OutboxItem.kind == AssignmentPing.KIND,
                    OutboxItem.status == "sent",
                    OutboxItem.id < row.id,
                )
                .order_by(OutboxItem.id.desc())
                .limit(20)
            )
            for item in items:
                if item.payload.get("agent") == previous and item.result.get("ts"):
                    return {"channel": item.result["channel"], "ts": item.result["ts"]}
        return None

    def _classify(self, error: SlackApiError, target: str, now: datetime) -> Exception:
        response = error.response
        status = response.status_code
        code = str(response.get("error", "")) if isinstance(response.data, dict) else ""
        if status == 429:
            after = timedelta(seconds=_retry_after(response.headers))
            self._hold(target, now + after)
            return _Retry(f"rate limited by Slack for {after.seconds} s", after=after, counts=False)
        if status >= 500:
            return _Retry(f"Slack answered HTTP {status}")
        if code in PERMANENT_ERRORS:
            return _Dead(f"Slack refused it: {code}")
        if code in ("invalid_auth", "not_authed", "token_revoked", "token_expired"):
            self.log.error("slack_token_refused", error=code)
        return _Retry(f"Slack answered {code or status}")


_GONE = ConversationView(0, "", "(conversation gone)", "normal", "", "", "", "", None)


def conversation_views(
    session: Session, conversation_ids: list[int], desk_url: str
) -> dict[int, ConversationView]:
    """What the pings of these conversations show, in three queries for all of them."""
    ids = sorted(set(conversation_ids))
    conversations = {
        c.id: c for c in session.scalars(select(Conversation).where(Conversation.id.in_(ids)))
    }
    contact_ids = {c.contact_id for c in conversations.values() if c.contact_id}
    contacts = {
        c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    newest = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(ids), Message.direction == "in")
        .group_by(Message.conversation_id)
    )
    lasts = {
        m.conversation_id: m for m in session.scalars(select(Message).where(Message.id.in_(newest)))
    }
    return {
        cid: _view_of(conversation, contacts, lasts.get(cid), desk_url)
        for cid, conversation in conversations.items()
    }


def _view_of(
    conversation: Conversation,
    contacts: dict[int, Contact],
    last: Message | None,
    desk_url: str,
) -> ConversationView:
    contact = contacts.get(conversation.contact_id) if conversation.contact_id else None
    customer = ""
    if last is not None:
        name, address = last.from_name, last.from_address
        customer = f"{name} <{address}>" if name and address else name or address
    if not customer and contact is not None:
        customer = contact.name
    unmet = conversation.unmet_sla()
    soonest = min(unmet.items(), key=lambda item: item[1]) if unmet else None
    waiting = conversation.last_customer_message_at
    if waiting is not None and waiting.tzinfo is None:
        waiting = waiting.replace(tzinfo=UTC)
    return ConversationView(
        id=conversation.id,
        channel=conversation.channel,
        subject=conversation.subject,
        priority=conversation.priority,
        language=conversation.language,
        status=conversation.status,
        customer=customer,
        snippet=(last.new_text or last.text) if last is not None else "",
        waiting_since=waiting,
        link=desk_url.format(id=conversation.id) if desk_url else "",
        sla_target=soonest[0] if soonest else "",
        sla_due=soonest[1] if soonest else None,
    )


def _compose(
    payload: SlackPing,
    view: ConversationView,
    now: datetime,
    answers: Callable[[], Sequence[str]],
) -> dict[str, Any]:
    match payload:
        case AssignmentPing():
            return slack_messages.assignment(
                view,
                now,
                payload.rule,
                payload.why,
                by=payload.by,
                note=payload.note,
                answers=answers(),
            )
        case QueuedPing():
            return slack_messages.queued(view, now, payload.team, payload.rule, payload.skipped)
        case NotifyPing():
            return slack_messages.notice(view, now, payload.text, payload.rule)
        case ThreadFollowUp():
            return slack_messages.follow_up(view, payload.sender, payload.text, payload.notice)


def _thread_of(row: _Row, result: dict[str, Any]) -> dict[str, Any]:
    """Where an assignment ping lives in Slack: an agent's answer in its thread is a reply to
    the conversation (inbox/service/agent_replies.py)."""
    channel, ts = result.get("channel"), result.get("ts")
    if not (isinstance(row.payload, AssignmentPing) and row.conversation_id and channel and ts):
        return {}
    return {
        "channel": str(channel),
        "ts": str(ts),
        "conversation_id": row.conversation_id,
        "agent": row.payload.agent,
    }


def _unsure_result(since: datetime | None) -> dict[str, Any]:
    """What a row keeps, until it is sent, of an attempt that may have posted."""
    return {"unsure_since": since.isoformat()} if since is not None else {}


def _unsure_since(result: dict[str, Any] | None) -> datetime | None:
    value = (result or {}).get("unsure_since")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _about(row: _Row) -> dict[str, Any]:
    """What every line about a ping says: which row, which conversation, which rule decided
    it ("" for a person's decision), so that a dead or late ping can be traced to both."""
    return {
        "outbox_id": row.id,
        "kind": row.kind,
        "conversation_id": row.conversation_id,
        "rule": "" if isinstance(row.payload, ThreadFollowUp) else row.payload.rule,
    }


def _retry_after(headers: Any) -> float:
    """Slack's Retry-After (seconds); 1 when absent or unreadable."""
    value = None
    if headers:
        for name, content in dict(headers).items():
            if str(name).lower() == "retry-after":
                value = content[0] if isinstance(content, list | tuple) else content
    try:
        return max(1.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


def _backoff(attempts: int) -> timedelta:
    seconds = min(MAX_BACKOFF.total_seconds(), 2.0 ** min(attempts, 20))
    return timedelta(seconds=seconds * random.uniform(0.5, 1.0))
