"""What a customer writes next follows the conversation into Slack: each new message of a
conversation that has an assignment ping is posted in the thread of its assignee's latest
ping (none while it is nobody's, or the new assignee's ping has not gone out: that ping shows
the latest message itself), where the agent answers it (inbox/service/agent_replies.py). Written
in the batch's transaction, sent by the notifier like any ping; automatic mail (auto-replies,
bounces, lists) is not posted: nobody answers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox.routing.writer import RoutingWriter
from inbox.store.batch_writer import Arrival
from inbox.store.models import PingThread
from inbox.store.outbox_kinds import ThreadFollowUp
from inbox.store.sql import chunked


def follow_up_pings(session: Session, arrivals: Sequence[Arrival], now: datetime) -> int:
    """Queue a thread post for each arrival in a conversation with a ping; how many."""
    wanted = [
        arrival
        for arrival in arrivals
        if not arrival.new_conversation
        and arrival.message_id is not None
        and not (arrival.columns.get("auto_submitted") or arrival.columns.get("bulk"))
    ]
    if not wanted:
        return 0
    latest: dict[int, PingThread] = {}
    ids = sorted({arrival.conversation.id for arrival in wanted})
    for chunk in chunked(ids):
        for ping in session.scalars(
            select(PingThread)
            .where(PingThread.conversation_id.in_(chunk))
            .order_by(PingThread.created_at, PingThread.ts)
        ):
            latest[ping.conversation_id] = ping
    writer = RoutingWriter(session, now)
    posted = 0
    for arrival in wanted:
        thread = latest.get(arrival.conversation.id)
        if thread is None or thread.agent != arrival.conversation.assignee:
            # Nobody's, or someone else's now: the new agent's ping says it all.
            continue
        columns = arrival.columns
        payload = ThreadFollowUp(
            slack_channel=thread.channel,
            thread_ts=thread.ts,
            sender=str(columns.get("from_name") or columns.get("from_address") or ""),
            text=str(columns.get("new_text") or columns.get("text") or ""),
        )
        key = f"thread:{arrival.message_id}:{thread.channel}:{thread.ts}"
        writer.outbox(arrival.conversation.id, key=key, payload=payload)
        posted += 1
    writer.flush()
    return posted
