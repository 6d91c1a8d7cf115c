"""Snooze: a person puts a conversation aside until a time (`inbox conversations snooze`, the
ping's Snooze menu). It is pending until then, and open again when the time comes or when the
customer writes, whichever is first (the batch writer reopens a pending conversation and clears
the snooze). When the time comes its assignee is told in the thread of their ping.

The end of snoozes is swept by the daemon every few seconds (inbox/service/timers.py): due rows
are claimed with `FOR UPDATE SKIP LOCKED`, so that of several daemons on PostgreSQL each
conversation wakes once, and a daemon that was down wakes what fell due meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta, tzinfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from inbox.routing.person import locked_conversation
from inbox.routing.sla import pause, policy_named, resume, schedule
from inbox.routing.writer import RoutingWriter
from inbox.store.models import Conversation, PingThread, utcnow
from inbox.store.outbox_kinds import NotifyPing, ThreadFollowUp
from rules.matchers import parse_duration
from rules.model import RuleSet

#: Conversations woken in one transaction.
WAKE_LIMIT = 200
#: When "tomorrow" and "monday" begin, in the snoozer's time zone.
MORNING = time(9, 0)


class CannotSnooze(ValueError):
    pass


def snooze_until(when: str, now: datetime, zone: tzinfo) -> datetime:
    """`2h` (any duration), `tomorrow` or `monday` (09:00 in `zone`), or a date and time
    (`2026-12-08 14:00`, in `zone` unless it says its offset)."""
    word = when.strip().lower()
    local = now.astimezone(zone)
    if word in ("tomorrow", "monday"):
        days = 1 if word == "tomorrow" else (7 - local.weekday()) or 7
        day = local.date() + timedelta(days=days)
        return datetime.combine(day, MORNING, zone)
    try:
        return now + parse_duration(word)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(when.strip())
    except ValueError:
        raise CannotSnooze(
            f"{when!r} is not a time: give a duration (2h, 3d), tomorrow, monday, "
            "or a date and time (2026-12-08 14:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def snooze_by_person(
    session: Session,
    conversation_id: int,
    *,
    person: str,
    until: datetime,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    if until <= now:
        raise CannotSnooze(f"{until:%Y-%m-%d %H:%M} UTC is not in the future")
    conversation = locked_conversation(session, conversation_id)
    if conversation.status == "closed":
        raise CannotSnooze(f"conversation {conversation_id} is closed")
    writer = RoutingWriter(session, now)
    writer.event(
        conversation.id,
        "snoozed",
        f"person:{person}",
        {"until": until.isoformat(), "was": conversation.status},
    )
    conversation.status = "pending"
    pause(conversation, now)
    conversation.snoozed_until = until
    conversation.updated_at = now
    writer.flush()


def snooze_over(now: datetime) -> ColumnElement[bool]:
    """Conversations whose snooze has ended by `now`."""
    return Conversation.snoozed_until <= now


def wake_snoozed(
    session: Session,
    now: datetime,
    *,
    slack_of: Callable[[str], str] = lambda agent: "",
    ruleset: RuleSet | None = None,
    limit: int = WAKE_LIMIT,
) -> list[int]:
    """Open what is due, in the caller's transaction; the conversations woken."""
    due = list(
        session.scalars(
            select(Conversation)
            .where(snooze_over(now))
            .order_by(Conversation.snoozed_until)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    writer = RoutingWriter(session, now)
    for conversation in due:
        until = conversation.snoozed_until
        conversation.snoozed_until = None
        if conversation.status != "pending":
            continue  # closed meanwhile, or opened by hand: nothing to wake
        conversation.status = "open"
        conversation.updated_at = now
        policy = policy_named(ruleset, conversation.sla_policy)
        if resume(conversation, policy, now) and policy is not None:
            schedule(session, conversation, policy)  # resolution's clock runs again
        writer.event(conversation.id, "snooze_ended", "timer", {"until": _iso(until)})
        _tell_assignee(session, writer, conversation, slack_of)
    writer.flush()
    return [conversation.id for conversation in due]


def _tell_assignee(
    session: Session,
    writer: RoutingWriter,
    conversation: Conversation,
    slack_of: Callable[[str], str],
) -> None:
    agent = conversation.assignee or ""
    if not agent:
        return
    text = "The snooze is over: this conversation is open again."
    key = f"snooze-ended:{conversation.id}:{writer.now.isoformat()}"
    thread = session.scalars(
        select(PingThread)
        .where(PingThread.conversation_id == conversation.id, PingThread.agent == agent)
        .order_by(PingThread.created_at.desc(), PingThread.ts.desc())
        .limit(1)
    ).first()
    if thread is not None:
        payload: ThreadFollowUp | NotifyPing = ThreadFollowUp(
            slack_channel=thread.channel, thread_ts=thread.ts, text=text, notice=True
        )
    else:
        slack_user = slack_of(agent)
        if not slack_user:
            return
        payload = NotifyPing(
            target=f"agent:{agent}", text=text, why="snooze ended", slack_user=slack_user
        )
    writer.outbox(conversation.id, key=key, payload=payload)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""
