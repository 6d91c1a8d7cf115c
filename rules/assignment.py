"""Choosing an agent for a conversation: round-robin, least-loaded or sticky, within limits.

Every strategy picks only among team members who can take the conversation now: not away,
speaking its language (when it is known and the rule asks), having the skills the rule names,
within their working hours in their own time zone, and under their capacity of open and
pending conversations. When nobody can, the conversation waits in the team's queue, and the
reason for each member is recorded: "aino: off hours (sat 10:12 Europe/Helsinki)".

- round_robin: the member after the one who got the team's last conversation (the pointer is
  kept in the store, so turns are fair across restarts and processes).
- least_loaded: the member with the fewest open and pending conversations; ties go in
  round-robin order from the pointer.
- sticky: the contact's agent of their latest earlier conversation, if they can take it;
  otherwise the team's fallback strategy.

The strategies decide from a `Workload`, a snapshot of the agents' loads, the teams' pointers
and the contacts' latest agents that is handed to them: they read no store, so they are tested
with plain values. inbox/routing/workload.py reads the snapshot from the store, keeps it up to
date through a batch and writes the pointers back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass(frozen=True)
class Candidate:
    """What the strategies need to know of the conversation being assigned."""

    id: int | None = None
    contact_id: int | None = None
    language: str = ""
    team: str = ""


@dataclass
class Workload:
    """The agents' loads, the teams' turn pointers and each contact's latest agents.

    A strategy's choice changes it (the pointer advances; `moved` and `status_changed` keep the
    loads right), so one snapshot serves a whole batch of conversations."""

    #: Open and pending conversations per agent.
    loads: dict[str, int] = field(default_factory=dict)
    #: The member who had each team's last turn ("" or absent: nobody yet).
    pointers: dict[str, str] = field(default_factory=dict)
    #: Per contact, their two latest conversations with an agent, latest first:
    #: (conversation id, agent). Two, so that the conversation being assigned can be skipped.
    latest: dict[int, list[tuple[int, str]]] = field(default_factory=dict)

    def load(self, agent: str) -> int:
        return self.loads.get(agent, 0)

    def add_load(self, agent: str, change: int) -> None:
        self.loads[agent] = max(0, self.loads.get(agent, 0) + change)

    def moved(
        self, conversation_id: int, contact_id: int | None, old_agent: str, new_agent: str
    ) -> None:
        """The conversation changed hands: loads and the contact's latest agent follow."""
        if contact_id is not None and new_agent:
            others = [(c, a) for c, a in self.latest.get(contact_id, []) if c != conversation_id]
            self.latest[contact_id] = [(conversation_id, new_agent), *others]
        if old_agent:
            self.add_load(old_agent, -1)
        if new_agent:
            self.add_load(new_agent, 1)

    def status_changed(self, assignee: str, before: str, after: str) -> None:
        """A conversation was closed (or reopened): its agent's load follows."""
        if assignee and (before in LOADED_STATUSES) != (after in LOADED_STATUSES):
            self.add_load(assignee, 1 if after in LOADED_STATUSES else -1)

    def last_agent_of_contact(self, contact_id: int | None, conversation_id: int | None) -> str:
        """The agent of the contact's latest conversation other than this one, or ""."""
        if contact_id is None:
            return ""
        for other, agent in self.latest.get(contact_id, []):
            if other != conversation_id:
                return agent
        return ""


def why_not(agent: Agent, language: str, assign: Assign, load: int, now: datetime) -> str:
    """Why this agent cannot take the conversation now, or "" when they can."""
    if agent.away:
        return "away"
    if assign.match_language and language and agent.languages and language not in agent.languages:
        return f"does not speak {language}"
    missing = [skill for skill in assign.skills if skill not in agent.skills]
    if missing:
        return f"lacks skill {', '.join(missing)}"
    if agent.hours is not None and not agent.hours.is_open(now):
        return f"off hours ({agent.hours.describe(now)})"
    if load >= agent.capacity:
        return f"at capacity ({load}/{agent.capacity})"
    return ""


def choose(
    ruleset: RuleSet, workload: Workload, assign: Assign, candidate: Candidate, now: datetime
) -> Choice:
    """The agent the rule's assignment gives the conversation to, or "" with why nobody.

    A team's pointer in `workload` advances to the chosen member."""
    if assign.agent:
        agent = ruleset.agents[assign.agent]
        reason = why_not(agent, candidate.language, assign, workload.load(agent.name), now)
        note = f"assigned although {reason}" if reason else ""
        return Choice(agent.name, candidate.team, "direct", note=note)
    team = ruleset.teams[assign.team]
    strategy = assign.strategy or team.strategy
    skipped: dict[str, str] = {}
    eligible = []
    for name in team.members:
        agent = ruleset.agents[name]
        reason = why_not(agent, candidate.language, assign, workload.load(name), now)
        if reason:
            skipped[name] = reason
        else:
            eligible.append(name)
    note = ""
    if strategy == "sticky":
        last = workload.last_agent_of_contact(candidate.contact_id, candidate.id)
        if last in eligible:
            return Choice(last, team.name, "sticky", skipped)
        note = (
            f"sticky: {last} {skipped.get(last, 'is not in the team')}, so {team.fallback}"
            if last
            else f"sticky: no earlier agent for this contact, so {team.fallback}"
        )
        strategy = team.fallback
    ordered = _from_pointer(workload.pointers.get(team.name, ""), team.members, eligible)
    if not ordered:
        return Choice("", team.name, strategy, skipped, note)
    if strategy == "least_loaded":
        chosen = min(ordered, key=lambda name: (workload.load(name), ordered.index(name)))
    else:
        chosen = ordered[0]
    workload.pointers[team.name] = chosen
    return Choice(chosen, team.name, strategy, skipped, note)


def uses_contact_history(ruleset: RuleSet, assign: Assign) -> bool:
    """Whether choosing for this assignment reads the contact's latest agents (sticky)."""
    if assign.agent:
        return False
    return (assign.strategy or ruleset.teams[assign.team].strategy) == "sticky"


def _from_pointer(last: str, members: tuple[str, ...], eligible: list[str]) -> list[str]:
    """Eligible members in turn order: starting after the one who had the last turn."""
    start = members.index(last) + 1 if last in members else 0
    rotated = members[start:] + members[:start]
    return [name for name in rotated if name in eligible]
