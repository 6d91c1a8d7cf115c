"""The store side of assignment: the snapshot the strategies of rules/assignment.py decide from,
read from the store once a batch, kept up to date as conversations change hands, and the
teams' turn pointers written back (locked on PostgreSQL until the commit, so two processes
never give the same turn)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inbox.store.models import AssignmentPointer, Conversation
from inbox.store.sql import chunked
from rules.assignment import (
    LOADED_STATUSES,
    Candidate,
    Choice,
    Workload,
    choose,
    uses_contact_history,
    why_not,
)
from rules.model import Agent, Assign, RuleSet


class StoredWorkload:
    """One per batch: agents' loads are read once, pointers and contacts' latest agents when
    first needed, and all of it kept up to date through the batch."""

    def __init__(self, session: Session, ruleset: RuleSet, now: datetime) -> None:
        self.session = session
        self.ruleset = ruleset
        self.now = now
        self.workload = Workload()
        self._loads_read = False
        self._pointer_rows: dict[str, AssignmentPointer] = {}
        #: The contacts of the batch: sticky assignment looks all of them up at once.
        self.contacts: set[int] = set()

    def choose(self, assign: Assign, conversation: Conversation) -> Choice:
        self._read_loads()
        if assign.team:
            self._read_pointer(assign.team)
            contact = conversation.contact_id
            if uses_contact_history(self.ruleset, assign) and contact is not None:
                self._read_latest_assigned({contact, *self.contacts})
        candidate = Candidate(
            id=conversation.id,
            contact_id=conversation.contact_id,
            language=conversation.language,
            team=conversation.team or "",
        )
        choice = choose(self.ruleset, self.workload, assign, candidate, self.now)
        if assign.team:
            self._write_pointer(assign.team)
        return choice

    def why_not(self, agent: Agent, language: str, assign: Assign) -> str:
        self._read_loads()
        return why_not(agent, language, assign, self.workload.load(agent.name), self.now)

    def moved(self, conversation: Conversation, new_agent: str | None) -> None:
        """Keep the loads right within the batch as conversations change hands."""
        self._read_loads()
        contact = conversation.contact_id
        if contact is not None and new_agent:
            # This conversation is now the contact's latest with an agent (after its history).
            self._read_latest_assigned({contact})
        self.workload.moved(conversation.id, contact, conversation.assignee or "", new_agent or "")

    def status_changed(self, conversation: Conversation, before: str, after: str) -> None:
        """A rule closed (or reopened) an assigned conversation: its agent's load follows."""
        self._read_loads()
        self.workload.status_changed(conversation.assignee or "", before, after)

    # -- reading the snapshot ----------------------------------------------------------------

    def _read_loads(self) -> None:
        """Open and pending conversations per agent: read once a batch."""
        if self._loads_read:
            return
        rows = self.session.execute(
            select(Conversation.assignee, func.count())
            .where(
                Conversation.assignee.in_(list(self.ruleset.agents)),
                Conversation.status.in_(LOADED_STATUSES),
            )
            .group_by(Conversation.assignee)
        )
        self.workload.loads = {str(name): int(count) for name, count in rows}
        self._loads_read = True

    def _read_pointer(self, team: str) -> None:
        if team in self._pointer_rows:
            return
        # Locked on PostgreSQL until the commit: two processes never give the same turn.
        row = self.session.get(AssignmentPointer, team, with_for_update=True)
        if row is None:
            row = AssignmentPointer(team=team, last_agent="", updated_at=self.now)
            self.session.add(row)
        self._pointer_rows[team] = row
        self.workload.pointers[team] = row.last_agent

    def _write_pointer(self, team: str) -> None:
        row = self._pointer_rows[team]
        last = self.workload.pointers.get(team, "")
        if row.last_agent != last:
            row.last_agent = last
            row.updated_at = self.now

    def _read_latest_assigned(self, contacts: set[int]) -> None:
        """The two latest conversations with an agent of each contact not read yet (a query
        per message cost more than the rules)."""
        latest = self.workload.latest
        wanted = sorted(contact for contact in contacts if contact not in latest)
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
            two = sorted(rows, key=lambda row: (row[0] is not None, row[0], row[1]))[-2:]
            latest[contact] = [(cid, agent) for _, cid, agent in reversed(two)]
