"""`inbox conversations assign|unassign` as a person runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from inbox.cli import main
from inbox.store.models import Conversation, Event, OutboxItem
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.helpers import conversation_of, ingest, mail, make_pipeline, raw

pytestmark = BACKENDS

DESK = """\
    timezone: Europe/Helsinki
    agents:
      aino: {slack: U1, languages: [fi, en], capacity: 2}
      mart: {slack: U2, languages: [et, fi, en], capacity: 2}
      olga: {slack: U3, languages: [ru, en], teams: [billing]}
      pekka: {languages: [fi]}
      liisa: {slack: U5, away: true}
    teams:
      nordic: {members: [aino, mart]}
      loaded: {members: [aino, mart], strategy: least_loaded}
      billing: {members: [olga]}
    rules:
      - name: least-loaded
        when: {subject: {starts_with: "[loaded]"}}
        then: {assign: {team: loaded}}
        stop: true
"""

FINNISH = "Hei, teltan vetoketju meni rikki ensimmäisellä retkellä. Voitteko auttaa?\n"


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(DESK), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, rules_file: Path) -> Path:
    path = tmp_path / "inbox.toml"
    path.write_text(f'rules_file = "{rules_file.name}"\n', encoding="utf-8")
    return path


@pytest.fixture
def conversation_id(store: Store) -> int:
    """A conversation stored without rules: open, nobody's."""
    ingest(make_pipeline(store), raw(mail(message_id="c1", body=FINNISH)))
    return conversation_of(store, "c1").id


def invoke(store: Store, config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(
        main,
        ["--config", str(config), "--database-url", store.url, "conversations", *args],
        catch_exceptions=False,
    )


def state(store: Store, conversation_id: int) -> tuple[Conversation, list[Event], list[OutboxItem]]:
    with store.readers() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        events = session.scalars(
            select(Event)
            .where(Event.conversation_id == conversation_id, Event.actor.startswith("person:"))
            .order_by(Event.id)
        ).all()
        pings = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        return conversation, list(events), list(pings)


def test_assign_writes_the_assignee_an_event_and_one_pending_ping(
    store: Store, config: Path, conversation_id: int
) -> None:
    result = invoke(
        store, config, "assign", str(conversation_id), "aino", "--by", "esko", "--note", "VIP"
    )
    assert result.exit_code == 0, result.output
    assert f"conversation {conversation_id} assigned to aino in team nordic\n" in result.stdout
    assert "aino will get a Slack message" in result.stdout
    conversation, [event], [ping] = state(store, conversation_id)
    assert (conversation.assignee, conversation.team) == ("aino", "nordic")
    assert (event.kind, event.actor) == ("assigned", "person:esko")
    assert event.detail == {"agent": "aino", "from": "", "team": "nordic", "note": "VIP"}
    assert (ping.kind, ping.status, ping.conversation_id) == (
        "slack.assignment",
        "pending",
        conversation_id,
    )
    assert ping.idempotency_key == f"assign:{conversation_id}:person:{event.id}"
    assert ping.payload == {
        "agent": "aino",
        "slack_user": "U1",
        "previous_agent": "",
        "team": "nordic",
        "rule": "",
        "why": "assigned by esko",
        "by": "esko",
        "note": "VIP",
    }


def test_reassigning_pings_the_new_agent_naming_the_previous_one_every_time(
    store: Store, config: Path, conversation_id: int
) -> None:
    for agent in ("aino", "mart", "aino"):
        result = invoke(store, config, "assign", str(conversation_id), agent, "--by", "esko")
        assert result.exit_code == 0, result.output
    assert "assigned to aino in team nordic, taken from mart" in result.stdout
    conversation, events, pings = state(store, conversation_id)
    assert conversation.assignee == "aino"
    assert [(e.detail["from"], e.detail["agent"]) for e in events] == [
        ("", "aino"),
        ("aino", "mart"),
        ("mart", "aino"),
    ]
    assert [(p.payload["previous_agent"], p.payload["agent"]) for p in pings] == [
        ("", "aino"),
        ("aino", "mart"),
        ("mart", "aino"),
    ]
    assert len({p.idempotency_key for p in pings}) == 3


def test_an_unknown_agent_or_team_fails_with_the_closest_name_and_changes_nothing(
    store: Store, config: Path, conversation_id: int
) -> None:
    agent = invoke(store, config, "assign", str(conversation_id), "ainoo", "--by", "esko")
    assert agent.exit_code == 1
    assert "unknown agent 'ainoo', did you mean 'aino'?" in agent.output
    team = invoke(
        store, config, "assign", str(conversation_id), "aino", "--team", "nordc", "--by", "esko"
    )
    assert team.exit_code == 1
    assert "unknown team 'nordc', did you mean 'nordic'?" in team.output
    conversation, events, pings = state(store, conversation_id)
    assert (conversation.assignee, conversation.team, events, pings) == (None, None, [], [])


def test_assigning_to_the_current_agent_changes_nothing(
    store: Store, config: Path, conversation_id: int
) -> None:
    invoke(store, config, "assign", str(conversation_id), "mart", "--by", "esko")
    again = invoke(store, config, "assign", str(conversation_id), "mart", "--by", "esko")
    assert again.exit_code == 0, again.output
    assert f"conversation {conversation_id} is already mart's: nothing changed" in again.output
    _, events, pings = state(store, conversation_id)
    assert (len(events), len(pings)) == (1, 1)


def test_unassign_clears_the_agent_with_an_event_and_no_ping(
    store: Store, config: Path, conversation_id: int
) -> None:
    invoke(store, config, "assign", str(conversation_id), "aino", "--by", "esko")
    result = invoke(store, config, "unassign", str(conversation_id), "--by", "esko")
    assert result.exit_code == 0, result.output
    assert "unassigned from aino; it waits in team nordic's queue" in result.output
    conversation, events, pings = state(store, conversation_id)
    assert (conversation.assignee, conversation.team) == (None, "nordic")
    assert [(e.kind, e.detail["from"]) for e in events] == [
        ("assigned", ""),
        ("unassigned", "aino"),
    ]
    assert len(pings) == 1  # the assignment's, none for the unassignment
    again = invoke(store, config, "unassign", str(conversation_id), "--by", "esko")
    assert again.exit_code == 0
    assert "is not assigned: nothing changed" in again.output


def test_a_person_may_overrule_availability_and_is_warned(
    store: Store, config: Path, conversation_id: int
) -> None:
    result = invoke(store, config, "assign", str(conversation_id), "liisa", "--by", "esko")
    assert result.exit_code == 0, result.output
    assert "warning: liisa: away; assigned all the same" in result.output
    conversation, [event], _ = state(store, conversation_id)
    assert conversation.assignee == "liisa"
    assert event.detail["warning"] == "away"

    pipeline = make_pipeline(store)
    for number in (2, 3):
        ingest(pipeline, raw(mail(message_id=f"c{number}", sender=f"c{number}@example.fi")))
        invoke(
            store,
            config,
            "assign",
            str(conversation_of(store, f"c{number}").id),
            "mart",
            "--by",
            "esko",
        )
    full = invoke(store, config, "assign", str(conversation_id), "mart", "--by", "esko")
    assert "warning: mart: at capacity (2/2); assigned all the same" in full.output
    assert state(store, conversation_id)[0].assignee == "mart"


def test_an_agent_without_slack_is_assigned_without_a_ping(
    store: Store, config: Path, conversation_id: int
) -> None:
    result = invoke(store, config, "assign", str(conversation_id), "pekka", "--by", "esko")
    assert result.exit_code == 0, result.output
    assert "pekka has no Slack id in the rules: nobody is pinged" in result.output
    conversation, [_], pings = state(store, conversation_id)
    assert conversation.assignee == "pekka"
    assert pings == []


def test_the_team_is_the_given_one_or_the_agents_own(
    store: Store, config: Path, conversation_id: int
) -> None:
    invoke(store, config, "assign", str(conversation_id), "olga", "--by", "esko")
    assert state(store, conversation_id)[0].team == "billing"
    moved = invoke(
        store, config, "assign", str(conversation_id), "aino", "--team", "loaded", "--by", "esko"
    )
    assert moved.exit_code == 0, moved.output
    assert state(store, conversation_id)[0].team == "loaded"
    outside = invoke(
        store, config, "assign", str(conversation_id), "mart", "--team", "billing", "--by", "esko"
    )
    assert "warning: mart is not in team billing" in outside.output


def test_by_defaults_to_the_login_name(store: Store, config: Path, conversation_id: int) -> None:
    login = {"LOGNAME": "tester", "USER": "tester"}
    result = invoke(store, config, "assign", str(conversation_id), "aino", env=login)
    assert result.exit_code == 0, result.output
    _, [event], [ping] = state(store, conversation_id)
    assert event.actor == "person:tester"
    assert ping.payload["why"] == "assigned by tester"


def test_show_explains_the_persons_decision(
    store: Store, config: Path, conversation_id: int
) -> None:
    invoke(store, config, "assign", str(conversation_id), "aino", "--by", "esko", "--note", "VIP")
    shown = invoke(store, config, "show", str(conversation_id))
    assert "assigned to aino in team nordic: by esko (VIP)" in shown.output
    assert "assigned by person:esko: agent=aino" in shown.output
    invoke(store, config, "unassign", str(conversation_id), "--by", "sari")
    shown = invoke(store, config, "show", str(conversation_id))
    assert "unassigned from aino: by sari" in shown.output
    # Not rich's emoji code :sari: (🥻).
    assert "unassigned by person:sari: agent= from=aino team=nordic" in shown.output


def test_least_loaded_counts_what_a_person_assigned(
    store: Store, config: Path, rules_file: Path, conversation_id: int
) -> None:
    # Without the person's decision aino would get the first one: both at 0, aino first in turn.
    invoke(store, config, "assign", str(conversation_id), "aino", "--by", "esko")
    pipeline = make_pipeline(store, rules=RulesInForce(rules_file))
    ingest(pipeline, raw(mail(message_id="l1", sender="l1@example.fi", subject="[loaded] 1")))
    assert conversation_of(store, "l1").assignee == "mart"
    # Taken back from aino, she has fewer again.
    invoke(store, config, "unassign", str(conversation_id), "--by", "esko")
    ingest(pipeline, raw(mail(message_id="l2", sender="l2@example.fi", subject="[loaded] 2")))
    assert conversation_of(store, "l2").assignee == "aino"


def test_a_persons_assignment_reaches_the_agent_as_theirs_with_the_note(
    store: Store, config: Path, conversation_id: int
) -> None:
    from slack_sdk import WebClient

    from inbox.config import SlackSettings
    from inbox.outbox.notifier import Notifier
    from tests.fake_slack import FakeSlack

    invoke(store, config, "assign", str(conversation_id), "aino", "--by", "esko", "--note", "VIP")
    with FakeSlack() as slack:
        slack.add_user("U1", name="aino")
        client = WebClient(token=slack.bot_token, base_url=slack.url)
        assert Notifier(store.writers, SlackSettings(), client=client).run_once() == 1
        [ping] = slack.messages(slack.dm_channel("U1") or "")
    shown = str(ping["blocks"])
    assert "*Routed by*\\nesko" in shown
    assert "esko: VIP" in shown
    assert "Matched" not in shown
