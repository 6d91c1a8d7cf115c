"""The typed form of a rules file: what the loader builds and the engine runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rules.calendars import Calendar
from rules.conditions import Condition
from rules.errors import Mark
from rules.facts import Facts

PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("open", "pending", "closed")
STRATEGIES = ("round_robin", "least_loaded", "sticky")
#: What an SLA measures: the first agent reply, the reply after each customer message, closing.
SLA_TARGETS = ("first_response", "next_response", "resolution")


@dataclass(frozen=True)
class Agent:
    name: str
    display_name: str = ""
    slack: str = ""
    email: str = ""
    teams: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    capacity: int = 10
    #: Working hours; None: always available.
    hours: Calendar | None = None
    #: On leave: never picked by a strategy.
    away: bool = False


@dataclass(frozen=True)
class Team:
    name: str
    members: tuple[str, ...]
    strategy: str = "round_robin"
    #: What `sticky` falls back to when the contact's last agent cannot take it.
    fallback: str = "least_loaded"
    slack_channel: str = ""


@dataclass(frozen=True)
class Assign:
    agent: str = ""
    team: str = ""
    #: Overrides the team's strategy for this rule.
    strategy: str = ""
    skills: tuple[str, ...] = ()
    #: Only agents who speak the conversation's language (when it is known).
    match_language: bool = True
    #: Take the conversation from its current assignee. Off by default: rules never steal.
    reassign: bool = False

    def describe(self) -> str:
        return f"agent {self.agent}" if self.agent else f"team {self.team}"


@dataclass(frozen=True)
class Notify:
    """A Slack message: to an agent (DM), to a team's channel, to a channel by name, or to
    whoever the conversation is assigned to (`assignee`, an escalation's usual first step)."""

    agent: str = ""
    team: str = ""
    channel: str = ""
    text: str = ""
    assignee: bool = False

    def target(self) -> str:
        if self.assignee:
            return "assignee"
        if self.agent:
            return f"agent:{self.agent}"
        if self.team:
            return f"team:{self.team}"
        return f"channel:{self.channel}"


@dataclass(frozen=True)
class Extract:
    """`extract: {order_number: PATTERN}`: the first match of an RE2 pattern in the subject,
    else in what the customer wrote (its first group when it has one), remembered on the
    conversation for canned answers' placeholders (`{order_number}`)."""

    name: str
    pattern: str
    regex: Any = field(compare=False, repr=False)

    def find(self, subject: str, body: str) -> str:
        for text in (subject, body):
            match = self.regex.search(text)
            if match is not None:
                found = match.group(1) if self.regex.groups else match.group(0)
                return str(found or "").strip()[:200]
        return ""


@dataclass(frozen=True)
class AutoReply:
    """`auto_reply: ANSWER`: a canned answer sent at once over the customer's channel ("we are
    closed until Monday 08:00"), with the guards against loops (inbox/routing/auto_reply.py):
    at most one per contact per `per_contact`, and `per_hour` in all."""

    answer: str
    #: Whose next opening `{next_open}` says (none: the conversation's SLA calendar, if any).
    calendar: Calendar | None = None
    per_contact: timedelta = timedelta(hours=4)
    per_hour: int = 100


@dataclass(frozen=True)
class Actions:
    tag: tuple[str, ...] = ()
    untag: tuple[str, ...] = ()
    tag_contact: tuple[str, ...] = ()
    priority: str = ""
    status: str = ""
    assign: Assign | None = None
    notify: tuple[Notify, ...] = ()
    extract: tuple[Extract, ...] = ()
    auto_reply: AutoReply | None = None
    #: A satisfaction survey (an answer's name) to send once the conversation is closed.
    survey: str = ""

    def empty(self) -> bool:
        return self == Actions()


@dataclass(frozen=True, eq=False)
class Rule:
    name: str
    when: Condition
    then: Actions
    mark: Mark
    stop: bool = False
    description: str = ""
    #: Position in the final order (0 first), set by the loader.
    index: int = 0


@dataclass(frozen=True)
class Escalation:
    """What happens when a target comes near (`before` it) or passes (`before` None)."""

    target: str
    before: timedelta | None
    then: Actions

    def describe(self) -> str:
        if self.before is None:
            return f"{self.target} breached"
        minutes = int(self.before.total_seconds() // 60)
        return f"{self.target} due in {minutes} min"


@dataclass(frozen=True, eq=False)
class SlaPolicy:
    """Targets for the conversations its condition matches (the first policy that matches
    applies), counted in its calendar's business time (none: round the clock)."""

    name: str
    when: Condition
    calendar: Calendar | None
    #: SLA_TARGETS name -> how long.
    targets: dict[str, timedelta]
    escalate: tuple[Escalation, ...] = ()
    mark: Mark | None = None


@dataclass(eq=False)
class RuleSet:
    """A whole, valid rules file: what is in force, or a candidate under test."""

    rules: tuple[Rule, ...]
    agents: dict[str, Agent]
    teams: dict[str, Team]
    calendars: dict[str, Calendar]
    tags: dict[str, str]
    zone: ZoneInfo
    #: The files it was read from, and a hash of their text: recorded with every decision.
    files: tuple[str, ...] = ()
    version: str = ""
    #: Include patterns with a glob: a file newly matching one changes the rules.
    watch_globs: tuple[str, ...] = field(default=())
    #: SLA policies in file order.
    sla: tuple[SlaPolicy, ...] = ()

    def sla_for(self, facts: Facts) -> SlaPolicy | None:
        """The first SLA policy whose condition the conversation meets, as the rules left it
        (their priority, team and tags count)."""
        for policy in self.sla:
            if policy.when.matches(facts, {}):
                return policy
        return None

    def extracted_names(self) -> frozenset[str]:
        """What the rules' `extract` actions may fill: placeholders canned answers may use."""
        return frozenset(item.name for rule in self.rules for item in rule.then.extract)

    def team_members(self, team: str) -> tuple[str, ...]:
        return self.teams[team].members
