"""`inbox conversations assign/unassign`: a person's decision, recorded as the rules' are
(an event, the assignee, a ping through the outbox)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.orm import Session

from inbox.cli.common import store_writers
from inbox.cli.context import AppContext, pass_app, rules_in_force
from inbox.store.db import transaction
from inbox.store.models import Conversation, Event, OutboxItem, utcnow

if TYPE_CHECKING:
    from rules.model import Agent, RuleSet


@click.command("assign")
@click.argument("conversation_id", type=int)
@click.argument("agent_name", metavar="AGENT")
@click.option("--team", "team_name", help="Its team (default: the agent's team).")
@click.option("--by", "person", help="Who decides, for the history (default: your login name).")
@click.option("--note", default="", help="Why, for the history.")
@pass_app
def assign_conversation(
    app: AppContext,
    conversation_id: int,
    agent_name: str,
    team_name: str | None,
    person: str | None,
    note: str,
) -> None:
    """Give a conversation to AGENT, an agent of the rules in force, and ping them on Slack.

    Unlike a rule, a person may give it to an agent who is off hours, away or at capacity: the
    command warns and assigns."""
    from rules.errors import unknown

    ruleset = _ruleset_in_force(app)
    agent = ruleset.agents.get(agent_name)
    if agent is None:
        raise click.ClickException(unknown("agent", agent_name, ruleset.agents))
    if team_name is not None:
        team = ruleset.teams.get(team_name)
        if team is None:
            raise click.ClickException(unknown("team", team_name, ruleset.teams))
        if agent.name not in team.members:
            click.echo(f"warning: {agent.name} is not in team {team.name}", err=True)
    by = _person(person)
    with transaction(store_writers(app)) as session:
        done = _assign(session, ruleset, conversation_id, agent, team_name, by, note)
    if not done.changed:
        click.echo(f"conversation {conversation_id} is already {agent.name}'s: nothing changed")
        return
    if done.warning:
        click.echo(f"warning: {agent.name}: {done.warning}; assigned all the same", err=True)
    team_part = f" in team {done.team}" if done.team else ""
    taken = f", taken from {done.previous}" if done.previous else ""
    click.echo(f"conversation {conversation_id} assigned to {agent.name}{team_part}{taken}")
    if agent.slack:
        click.echo(f"{agent.name} will get a Slack message")
    else:
        click.echo(f"{agent.name} has no Slack id in the rules: nobody is pinged")


@click.command("unassign")
@click.argument("conversation_id", type=int)
@click.option("--by", "person", help="Who decides, for the history (default: your login name).")
@pass_app
def unassign_conversation(app: AppContext, conversation_id: int, person: str | None) -> None:
    """Take a conversation from its agent: it waits in its team's queue. Nobody is pinged."""
    by = _person(person)
    with transaction(store_writers(app)) as session:
        conversation = _locked(session, conversation_id)
        previous = conversation.assignee or ""
        team = conversation.team or ""
        if previous:
            conversation.assignee = None
            session.add(
                Event(
                    conversation_id=conversation.id,
                    kind="unassigned",
                    actor=f"person:{by}"[:200],
                    detail={"agent": "", "from": previous, "team": team},
                    created_at=utcnow(),
                )
            )
    if not previous:
        click.echo(f"conversation {conversation_id} is not assigned: nothing changed")
        return
    queue = f"; it waits in team {team}'s queue" if team else ""
    click.echo(f"conversation {conversation_id} unassigned from {previous}{queue}")


@dataclass(frozen=True)
class _Assigned:
    previous: str
    team: str
    #: Why a strategy would have passed the agent over ("off hours (...)"), or "".
    warning: str = ""
    changed: bool = True


def _assign(
    session: Session,
    ruleset: RuleSet,
    conversation_id: int,
    agent: Agent,
    team_name: str | None,
    person: str,
    note: str,
) -> _Assigned:
    """The assignee, the event and the ping, in the caller's transaction."""
    from rules.apply import assignment_payload
    from rules.assignment import Assigner
    from rules.model import Assign

    conversation = _locked(session, conversation_id)
    previous = conversation.assignee or ""
    if previous == agent.name:
        return _Assigned(previous, conversation.team or "", changed=False)
    now = utcnow()
    warning = Assigner(session, ruleset, now).why_not(
        agent, conversation.language, Assign(agent=agent.name)
    )
    team = team_name or _team_for(ruleset, agent.name, conversation.team or "")
    conversation.assignee = agent.name
    conversation.team = team or None
    detail: dict[str, Any] = {"agent": agent.name, "from": previous, "team": team, "note": note}
    if warning:
        detail["warning"] = warning
    event = Event(
        conversation_id=conversation.id,
        kind="assigned",
        actor=f"person:{person}"[:200],
        detail=detail,
        created_at=now,
    )
    session.add(event)
    session.flush()  # the event's id keys the ping: each decision of a person pings once
    if agent.slack:
        payload = assignment_payload(
            agent, previous=previous, team=team, rule="", why=f"assigned by {person}"
        )
        session.add(
            OutboxItem(
                kind="slack.assignment",
                idempotency_key=f"assign:{conversation.id}:person:{event.id}",
                conversation_id=conversation.id,
                payload={**payload, "by": person, "note": note},
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return _Assigned(previous, team, warning)


def _team_for(ruleset: RuleSet, agent: str, current: str) -> str:
    """The conversation's team if the agent is in it, else the agent's first team."""
    teams = [team.name for team in ruleset.teams.values() if agent in team.members]
    return current if current in teams or not teams else teams[0]


def _locked(session: Session, conversation_id: int) -> Conversation:
    # Locked until the commit on PostgreSQL, so that the rules of a batch cannot assign it in
    # between (on SQLite the writer's transaction holds the whole database).
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise click.ClickException(f"no conversation {conversation_id}")
    return conversation


def _ruleset_in_force(app: AppContext) -> RuleSet:
    settings = app.config().settings
    if settings.rules_file is None:
        raise click.ClickException("no rules_file is configured: the agents are defined there")
    rules = rules_in_force(settings)
    assert rules is not None
    return rules.current.ruleset


def _person(given: str | None) -> str:
    if given is None:
        try:
            given = getpass.getuser()
        except (OSError, KeyError):  # neither $USER nor a passwd entry, as in a bare container
            raise click.UsageError("cannot tell who you are: give --by NAME") from None
    name = given.strip()
    if not name:
        raise click.UsageError("--by needs a name")
    return name
