"""Satisfaction surveys on SQLite and PostgreSQL: asked for by a rule, sent once a few minutes
after the conversation is closed, in the customer's language, over their channel; their short
answer is a score kept on the conversation, which stays closed; anything longer opens it again
as the request it is."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from inbox.cli import main
from inbox.routing.person import close_by_person
from inbox.routing.reply import write_reply
from inbox.service.health import csat_by_team
from inbox.service.timers import Timers
from inbox.store.db import transaction
from inbox.store.models import Event, Message
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.helpers import Clock, arrive, conversation_of

pytestmark = BACKENDS

DESK = """\
    agents:
      esko: {slack: UESKO}
    teams:
      support: {members: [esko]}
    rules:
      - name: email-desk
        when: {channel: email}
        then: {assign: {team: support}, survey: csat}
"""
START = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)


@pytest.fixture
def rules(tmp_path: Path) -> RulesInForce:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(DESK), encoding="utf-8")
    (tmp_path / "answers").mkdir()
    (tmp_path / "answers" / "csat.fi.md").write_text(
        "Hei {customer_first_name}! Miten onnistuimme? Vastaa numerolla 1-5.", encoding="utf-8"
    )
    (tmp_path / "answers" / "csat.en.md").write_text(
        "How did we do? Answer with a number from 1 to 5.", encoding="utf-8"
    )
    return RulesInForce(tmp_path / "rules.yaml")


def test_a_survey_after_closing_and_the_customers_score(store: Store, rules: RulesInForce) -> None:
    clock = Clock()
    clock.now = START
    conversation = arrive(store, rules, clock, message_id="q1@example.fi")
    assert conversation.csat_survey == "csat"
    with transaction(store.writers) as session:
        write_reply(session, conversation.id, author="esko", text="Korjattu!", now=clock.now)
        close_by_person(session, conversation.id, person="esko", now=clock.now)
    timers = Timers(store.writers, clock=clock, answers=rules.answers.current, ruleset=lambda: None)
    clock.now = START + timedelta(minutes=1)
    timers.run_once()
    assert conversation_of(store, "q1@example.fi").csat_sent_at is None  # not settled yet
    clock.now = START + timedelta(minutes=6)
    timers.run_once()
    timers.run_once()
    with store.readers() as session:
        [survey] = session.scalars(select(Message).where(Message.author == "survey"))
    assert survey.text == "Hei Aino! Miten onnistuimme? Vastaa numerolla 1-5."
    assert survey.auto_submitted and survey.to_addresses == ["aino@example.fi"]
    closed = conversation_of(store, "q1@example.fi")
    assert closed.status == "closed" and closed.csat_sent_at is not None

    # Her answer: a score, and the conversation stays closed.
    clock.now = START + timedelta(minutes=30)
    answered = arrive(
        store,
        rules,
        clock,
        message_id="s1@example.fi",
        in_reply_to=survey.message_id_header,
        body="5\n\nterveisin Aino\n",
    )
    assert (answered.status, answered.csat_score) == ("closed", 5)
    with store.readers() as session:
        kinds = list(session.scalars(select(Event.kind).order_by(Event.id)))
    assert kinds[-1] == "csat_answered"
    assert "conversation_reopened" not in kinds
    with store.readers() as session:
        assert csat_by_team(session, START) == {"support": (1, 5)}  # /metrics
    shown = CliRunner().invoke(
        main, ["--database-url", store.url, "report", "--since", "1000w", "--by", "agent", "--json"]
    )
    [row] = json.loads(shown.output)
    assert (row["csat_responses"], row["csat_average"], row["csat_satisfied_percent"]) == (
        1,
        5.0,
        100.0,
    )

    # A second score (a second click, a "4" later) is no second vote, and no new request.
    clock.now = START + timedelta(hours=1)
    again = arrive(
        store, rules, clock, message_id="s2@example.fi", in_reply_to="q1@example.fi", body="4\n"
    )
    assert (again.status, again.csat_score) == ("closed", 5)
    # What she writes next is a request again: it opens the conversation.
    clock.now = START + timedelta(hours=2)
    request = arrive(
        store,
        rules,
        clock,
        message_id="s3@example.fi",
        in_reply_to="q1@example.fi",
        body="Vetoketju meni taas rikki, mitä nyt?\n",
    )
    assert (request.status, request.csat_score) == ("open", 5)


def test_a_long_answer_to_the_survey_is_a_new_request(store: Store, rules: RulesInForce) -> None:
    clock = Clock()
    clock.now = START
    conversation = arrive(store, rules, clock, message_id="q1@example.fi")
    with transaction(store.writers) as session:
        close_by_person(session, conversation.id, person="esko", now=clock.now)
    clock.now = START + timedelta(minutes=10)
    Timers(store.writers, clock=clock, answers=rules.answers.current).run_once()
    clock.now = START + timedelta(minutes=20)
    reopened = arrive(
        store,
        rules,
        clock,
        message_id="s1@example.fi",
        in_reply_to="q1@example.fi",
        body="1 more thing: the zipper broke again.\n",
    )
    assert (reopened.status, reopened.csat_score) == ("open", None)
