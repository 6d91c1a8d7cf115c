"""A person's assignment (`inbox conversations assign/unassign`, and the Slack buttons and web
desk to come): recorded as a rule's is, by the same writer (an event naming who decided, the
assignee, a ping through the outbox)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from inbox.routing.sla import pause, recheck
from inbox.routing.tagging import add_tags, remove_tags
from inbox.routing.workload import StoredWorkload
from inbox.routing.writer import RoutingWriter
from inbox.store.models import Conversation, utcnow
from rules.model import PRIORITIES, Agent, Assign, RuleSet

#: What a person may type as a tag: what a rules file's tags look like, in any script.
TAG_NAME = re.compile(r"^[\w][\w./:-]{0,99}$")


class NoSuchConversation(LookupError):
    def __init__(self, conversation_id: int) -> None:
        super().__init__(f"no conversation {conversation_id}")


@dataclass(frozen=True)
class Assigned:
    previous: str
    team: str
    #: Why a strategy would have passed the agent over ("off hours (...)"), or "".
    warning: str = ""
    changed: bool = True


def assign_by_person(
    session: Session,
    ruleset: RuleSet,
    conversation_id: int,
    agent: Agent,
    *,
    team_name: str | None,
    person: str,
    note: str,
) -> Assigned:
    """The assignee, the event and the ping, in the caller's transaction. Unlike a rule, a
    person may give it to an agent who is off hours, away or at capacity: the reason a strategy
    would have passed them over is returned and recorded as a warning."""
    conversation = locked_conversation(session, conversation_id)
    previous = conversation.assignee or ""
    if previous == agent.name:
        return Assigned(previous, conversation.team or "", changed=False)
    now = utcnow()
    warning = StoredWorkload(session, ruleset, now).why_not(
        agent, conversation.language, Assign(agent=agent.name)
    )
    team = team_name or team_for(ruleset, agent.name, conversation.team or "")
    detail: dict[str, Any] = {"agent": agent.name, "from": previous, "team": team, "note": note}
    if warning:
        detail["warning"] = warning
    writer = RoutingWriter(session, now)
    writer.assign(
        conversation,
        agent,
        team=team,
        actor=f"person:{person}",
        detail=detail,
        why=f"assigned by {person}",
        by=person,
        note=note,
    )
    writer.flush()
    if ruleset.sla:
        recheck(session, ruleset, conversation, now)  # another team may have other targets
    return Assigned(previous, team, warning)


def unassign_by_person(session: Session, conversation_id: int, *, person: str) -> Assigned:
    """Take the conversation from its agent: it waits in its team's queue. Nobody is pinged."""
    conversation = locked_conversation(session, conversation_id)
    team = conversation.team or ""
    writer = RoutingWriter(session, utcnow())
    previous = writer.unassign(conversation, actor=f"person:{person}")
    writer.flush()
    return Assigned(previous, team, changed=bool(previous))


def team_for(ruleset: RuleSet, agent: str, current: str) -> str:
    """The conversation's team if the agent is in it, else the agent's first team."""
    teams = [team.name for team in ruleset.teams.values() if agent in team.members]
    return current if current in teams or not teams else teams[0]


def locked_conversation(session: Session, conversation_id: int) -> Conversation:
    # Locked until the commit on PostgreSQL, so that the rules of a batch cannot assign it in
    # between (on SQLite the writer's transaction holds the whole database).
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise NoSuchConversation(conversation_id)
    return conversation


def set_priority_by_person(
    session: Session, conversation_id: int, priority: str, *, person: str
) -> bool:
    """False when it had that priority already (nothing is written)."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority {priority!r}: give one of {', '.join(PRIORITIES)}")
    conversation = locked_conversation(session, conversation_id)
    if conversation.priority == priority:
        return False
    now = utcnow()
    writer = RoutingWriter(session, now)
    detail = {"from": conversation.priority, "to": priority, "matched": f"set by {person}"}
    writer.event(conversation.id, "priority_set", f"person:{person}", detail)
    conversation.priority = priority
    conversation.updated_at = now
    writer.flush()
    return True


def tag_by_person(
    session: Session,
    conversation_id: int,
    *,
    add: Collection[str] = (),
    remove: Collection[str] = (),
    person: str,
) -> tuple[list[str], list[str]]:
    """The tags added and removed (those it had, or lacked, already are left out)."""
    for name in (*add, *remove):
        if not TAG_NAME.match(name):
            raise ValueError(f"tag {name!r}: letters, digits, '-', '_', '.', '/' or ':'")
    conversation = locked_conversation(session, conversation_id)
    writer = RoutingWriter(session, utcnow())
    actor, why = f"person:{person}", f"by {person}"
    added = add_tags(session, writer, conversation.id, list(add), actor=actor, matched=why)
    removed = remove_tags(session, writer, conversation.id, list(remove), actor=actor, matched=why)
    writer.flush()
    return added, removed


def close_by_person(
    session: Session, conversation_id: int, *, person: str, now: datetime | None = None
) -> bool:
    """Close it: answered, nothing more to do. The customer's next message opens it again
    (within the reopen window; after it, a new conversation links to this one). False when it
    was closed already (nothing is written)."""
    conversation = locked_conversation(session, conversation_id)
    if conversation.status == "closed":
        return False
    now = now or utcnow()
    writer = RoutingWriter(session, now)
    writer.event(conversation.id, "closed", f"person:{person}", {"was": conversation.status})
    conversation.status = "closed"
    conversation.closed_at = now
    conversation.snoozed_until = None
    pause(conversation, now)  # reopened, its resolution clock runs on from where it stopped
    conversation.updated_at = now
    writer.flush()
    return True
