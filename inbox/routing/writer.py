"""The one writer of routing decisions: events, outbox rows and assignments, for the rules of a
batch and for a person alike, so that an assignment reads the same in the history and pings
the same whoever made it.

Rows are collected and written together by `flush` (a statement per row cost more than the
rules themselves in a batch of a thousand messages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from inbox.store.models import Conversation, Event, OutboxItem
from inbox.store.outbox_kinds import AssignmentPing, NotifyPing, OutboxPayload, stored
from inbox.store.sql import insert_ignore_many
from rules.model import Agent, RuleSet

log = structlog.get_logger(__name__)


class RoutingWriter:
    """Everything routing writes in one transaction: changes to conversations at once, event
    and outbox rows at `flush`."""

    def __init__(self, session: Session, now: datetime, *, rules_version: str = "") -> None:
        self.session = session
        self.now = now
        self.rules_version = rules_version
        self.events: list[dict[str, Any]] = []
        self.outbox_rows: list[dict[str, Any]] = []

    def event(
        self,
        conversation_id: int,
        kind: str,
        actor: str,
        detail: dict[str, Any],
        *,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        if self.rules_version:
            detail = {**detail, "rules_version": self.rules_version}
        row = {
            "conversation_id": conversation_id,
            "message_id": message_id,
            "kind": kind,
            "actor": actor[:200],
            "detail": detail,
            "created_at": self.now,
        }
        self.events.append(row)
        return row

    def outbox(self, conversation_id: int, *, key: str, payload: OutboxPayload) -> None:
        """Idempotent on its key: replaying a batch after a crash never pings twice. The
        payload's type says the row's kind (inbox/store/outbox_kinds.py)."""
        self.outbox_rows.append(
            {
                "kind": payload.KIND,
                "idempotency_key": key[:200],
                "conversation_id": conversation_id,
                "payload": stored(payload),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": self.now,
                "last_error": "",
                "result": {},
                "created_at": self.now,
            }
        )

    def assign(
        self,
        conversation: Conversation,
        agent: Agent,
        *,
        team: str,
        actor: str,
        detail: dict[str, Any],
        rule: str = "",
        why: str,
        ping_key: str | None = None,
        by: str = "",
        note: str = "",
        message_id: int | None = None,
    ) -> str:
        """Give the conversation to `agent` in `team`, with an `assigned` event and a ping to
        the agent, the same whether a rule decided or a person did (`by`, with their `note`).
        Returns the previous assignee ("" for none).

        `ping_key` keys the ping; None keys it by the event, written at once for its id: each
        decision of a person pings once, however often they assign the same conversation."""
        previous = conversation.assignee or ""
        conversation.assignee = agent.name
        conversation.team = team or None
        # "agent" and "from" come last unless the caller placed them: `conversations show`
        # prints the detail in its order.
        detail = {**detail, "agent": agent.name, "from": previous}
        row = self.event(conversation.id, "assigned", actor, detail, message_id=message_id)
        if ping_key is None:
            if not agent.slack:
                return previous  # nobody to ping; the event is written with the rest
            self.events.remove(row)
            event_id = self.session.execute(
                insert(cast(Table, Event.__table__)).returning(Event.id), row
            ).scalar_one()
            ping_key = f"assign:{conversation.id}:person:{event_id}"
        ping = AssignmentPing(
            agent=agent.name,
            slack_user=agent.slack,
            previous_agent=previous,
            team=team,
            rule=rule,
            why=why,
            by=by,
            note=note,
        )
        self.outbox(conversation.id, key=ping_key, payload=ping)
        return previous

    def unassign(self, conversation: Conversation, *, actor: str) -> str:
        """Take the conversation from its agent; it waits in its team's queue. Nobody is
        pinged. Returns who had it ("" when nobody did, and nothing is written)."""
        previous = conversation.assignee or ""
        if previous:
            conversation.assignee = None
            detail = {"agent": "", "from": previous, "team": conversation.team or ""}
            self.event(conversation.id, "unassigned", actor, detail)
        return previous

    def flush(self) -> None:
        insert_ignore_many(self.session, OutboxItem, self.outbox_rows, ["idempotency_key"])
        if self.events:
            self.session.execute(insert(cast(Table, Event.__table__)), self.events)
        self.outbox_rows = []
        self.events = []


def notify_ping(
    ruleset: RuleSet, conversation: Conversation, target: str, text: str, rule: str, why: str
) -> NotifyPing | None:
    """A `notify` action's ping: to an agent, a team's channel, a channel, or the
    conversation's assignee (None when it has none, or they have no Slack id)."""
    kind, _, name = target.partition(":")
    slack_user = slack_channel = ""
    if kind == "assignee":
        agent = ruleset.agents.get(conversation.assignee or "")
        if agent is None or not agent.slack:
            return None
        target, slack_user = f"agent:{agent.name}", agent.slack
    elif kind == "agent":
        slack_user = ruleset.agents[name].slack
    elif kind == "team":
        slack_channel = ruleset.teams[name].slack_channel
    else:
        slack_channel = name
    return NotifyPing(
        target=target,
        text=text,
        rule=rule,
        why=why,
        slack_user=slack_user,
        slack_channel=slack_channel,
    )
