"""Choosing an agent for a conversation: round-robin, least-loaded or sticky, within limits.

Every strategy picks only among team members who can take the conversation now: not away,
speaking its language (when it is known and the rule asks), having the skills the rule names,
within their working hours in their own time zone, and under their capacity of open and
pending conversations. When nobody can, the conversation waits in the team's queue, and the
reason for each member is recorded: "aino: off hours (sat 10:12 Europe/Helsinki)".

- round_robin: the member after the one who got the team's last conversation (the pointer is
  in the store, so turns are fair across restarts and processes).
- least_loaded: the member with the fewest open and pending conversations; ties go in
  round-robin order from the pointer.
- sticky: the contact's agent of their latest earlier conversation, if they can take it;
  otherwise the team's fallback strategy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inbox.store.models import AssignmentPointer, Conversation
from inbox.store.sql import chunked
from rules.model import Agent, Assign, RuleSet

LOADED_STATUSES = ("open", "pending")


@dataclass
class Choice:
    agent: str
    team: str
    strategy: str
    #: Members passed over, and why.
    skipped: dict[str, str] = field(default_factory=dict)
    note: str = ""


class Assigner:
    """One per batch: agents' loads and the pointers are read once and kept up to date."""

    def __init__(self, session: Session, ruleset: RuleSet, now: datetime) -> None:
        self.session = session
        self.ruleset = ruleset
        self.now = now
        self._loads: dict[str, int] | None = None
        self._pointers: dict[str, AssignmentPointer] = {}
        self._latest_assigned: dict[int, list[tuple[int, str]]] = {}
        #: The contacts of the batch: sticky assignment looks all of them up at once.
        self.contacts: set[int] = set()

    def load(self, agent: str) -> int:
        return self._all_loads().get(agent, 0)

    def _all_loads(self) -> dict[str, int]:
        """Open and pending conversations per agent: read once a batch, then kept up to date."""
        if self._loads is None:
            rows = self.session.execute(
                select(Conversation.assignee, func.count())
                .where(
                    Conversation.assignee.in_(list(self.ruleset.agents)),
                    Conversation.status.in_(LOADED_STATUSES),
                )
                .group_by(Conversation.assignee)
            )
            self._loads = {str(name): int(count) for name, count in rows}
        return self._loads

    def _add_load(self, agent: str, change: int) -> None:
        loads = self._all_loads()
        loads[agent] = max(0, loads.get(agent, 0) + change)

    def moved(self, conversation: Conversation, new_agent: str | None) -> None:
        """Keep the loads right within the batch as conversations change hands."""
        contact = conversation.contact_id
        if contact is not None and new_agent:
            # This conversation is now the contact's latest with an agent (after its history).
            self._load_latest_assigned({contact})
            others = [(c, a) for c, a in self._latest_assigned[contact] if c != conversation.id]
            self._latest_assigned[contact] = [(conversation.id, new_agent), *others]
        if conversation.assignee:
            self._add_load(conversation.assignee, -1)
        if new_agent:
            self._add_load(new_agent, 1)

    def status_changed(self, conversation: Conversation, before: str, after: str) -> None:
        """A rule closed (or reopened) an assigned conversation: its agent's load follows."""
        if conversation.assignee and (before in LOADED_STATUSES) != (after in LOADED_STATUSES):
            self._add_load(conversation.assignee, 1 if after in LOADED_STATUSES else -1)

    def why_not(self, agent: Agent, language: str, assign: Assign) -> str:
        """Why this agent cannot take the conversation now, or "" when they can."""
        if agent.away:
            return "away"
        if (
            assign.match_language
            and language
            and agent.languages
            and language not in agent.languages
        ):
            return f"does not speak {language}"
        missing = [skill for skill in assign.skills if skill not in agent.skills]
        if missing:
            return f"lacks skill {', '.join(missing)}"
        if agent.hours is not None and not agent.hours.is_open(self.now):
            return f"off hours ({agent.hours.describe(self.now)})"
        load = self.load(agent.name)
        if load >= agent.capacity:
            return f"at capacity ({load}/{agent.capacity})"
        return ""

    def choose(self, assign: Assign, conversation: Conversation) -> Choice:
        if assign.agent:
            agent = self.ruleset.agents[assign.agent]
            reason = self.why_not(agent, conversation.language, assign)
            note = f"assigned although {reason}" if reason else ""
            return Choice(agent.name, conversation.team or "", "direct", note=note)
        team = self.ruleset.teams[assign.team]
        strategy = assign.strategy or team.strategy
        skipped: dict[str, str] = {}
        eligible = []
        for name in team.members:
            reason = self.why_not(self.ruleset.agents[name], conversation.language, assign)
            if reason:
                skipped[name] = reason
            else:
                eligible.append(name)
        note = ""
        if strategy == "sticky":
            last = self._last_agent_of_contact(conversation)
            if last in eligible:
                return Choice(last, team.name, "sticky", skipped)
            note = (
                f"sticky: {last} {skipped.get(last, 'is not in the team')}, so {team.fallback}"
                if last
                else f"sticky: no earlier agent for this contact, so {team.fallback}"
            )
            strategy = team.fallback
        ordered = self._from_pointer(team.name, team.members, eligible)
        if not ordered:
            return Choice("", team.name, strategy, skipped, note)
        if strategy == "least_loaded":
            chosen = min(ordered, key=lambda name: (self.load(name), ordered.index(name)))
        else:
            chosen = ordered[0]
        self._advance(team.name, chosen)
        return Choice(chosen, team.name, strategy, skipped, note)

    def _from_pointer(self, team: str, members: tuple[str, ...], eligible: list[str]) -> list[str]:
        """Eligible members in turn order: starting after the one who had the last turn."""
        last = self._pointer(team)
        start = members.index(last) + 1 if last in members else 0
        rotated = members[start:] + members[:start]
        return [name for name in rotated if name in eligible]

    def _pointer(self, team: str) -> str:
        if team not in self._pointers:
            # Locked on PostgreSQL until the commit: two processes never give the same turn.
            row = self.session.get(AssignmentPointer, team, with_for_update=True)
            if row is None:
                row = AssignmentPointer(team=team, last_agent="", updated_at=self.now)
                self.session.add(row)
            self._pointers[team] = row
        return self._pointers[team].last_agent

    def _advance(self, team: str, agent: str) -> None:
        self._pointer(team)
        row = self._pointers[team]
        row.last_agent = agent
        row.updated_at = self.now

    def _load_latest_assigned(self, contacts: set[int]) -> None:
        wanted = sorted(contact for contact in contacts if contact not in self._latest_assigned)
        found: dict[int, list[tuple[Any, int, str]]] = {contact: [] for contact in wanted}
        for chunk in chunked(wanted):
            result = self.session.execute(
                select(
                    Conversation.contact_id,
                    Conversation.id,
                    Conversation.assignee,
                    Conversation.last_message_at,
                ).where(Conversation.contact_id.in_(chunk), Conversation.assignee.is_not(None))
            )
            for contact_id, conversation_id, assignee, last in result:
                if contact_id is not None:
                    found[contact_id].append((last, conversation_id, str(assignee)))
        for contact, rows in found.items():
            latest = sorted(rows, key=lambda row: (row[0] is not None, row[0], row[1]))[-2:]
            self._latest_assigned[contact] = [(cid, agent) for _, cid, agent in reversed(latest)]

    def _last_agent_of_contact(self, conversation: Conversation) -> str:
        """The agent of the contact's latest other conversation; the two latest are read once
        per batch for all its contacts (a query per message cost more than the rules)."""
        contact = conversation.contact_id
        if contact is None:
            return ""
        if contact not in self._latest_assigned:
            self._load_latest_assigned({contact, *self.contacts})
        for conversation_id, agent in self._latest_assigned.get(contact, []):
            if conversation_id != conversation.id:
                return agent
        return ""
