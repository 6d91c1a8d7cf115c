"""`inbox conversations assign/unassign`: a person's decision, written by inbox/routing/ as the
rules' are (an event, the assignee, a ping through the outbox)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from inbox.cli.common import store_writers
from inbox.cli.context import AppContext, pass_app, person_name, rules_in_force
from inbox.routing.person import NoSuchConversation, assign_by_person, unassign_by_person
from inbox.store.db import transaction

if TYPE_CHECKING:
    from rules.model import RuleSet


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
    by = person_name(person)
    try:
        with transaction(store_writers(app)) as session:
            done = assign_by_person(
                session,
                ruleset,
                conversation_id,
                agent,
                team_name=team_name,
                person=by,
                note=note,
            )
    except NoSuchConversation as error:
        raise click.ClickException(str(error)) from None
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
    by = person_name(person)
    try:
        with transaction(store_writers(app)) as session:
            done = unassign_by_person(session, conversation_id, person=by)
    except NoSuchConversation as error:
        raise click.ClickException(str(error)) from None
    previous, team = done.previous, done.team
    if not previous:
        click.echo(f"conversation {conversation_id} is not assigned: nothing changed")
        return
    queue = f"; it waits in team {team}'s queue" if team else ""
    click.echo(f"conversation {conversation_id} unassigned from {previous}{queue}")


def _ruleset_in_force(app: AppContext) -> RuleSet:
    settings = app.config().settings
    if settings.rules_file is None:
        raise click.ClickException("no rules_file is configured: the agents are defined there")
    rules = rules_in_force(settings)
    assert rules is not None
    return rules.current.ruleset
