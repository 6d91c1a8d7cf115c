"""SLA targets in business time, end to end through the routed pipeline on SQLite and
PostgreSQL with a hand-moved clock: the policy a message's conversation falls under (after the
rules: their priority counts), due times over a weekend and Finnish holidays, met by a reply,
the resolution clock stopped while pending; escalation before and at a breach, each once,
across two sweeps at once on PostgreSQL."""

from __future__ import annotations

import json
import textwrap
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from inbox.cli import main
from inbox.routing.person import assign_by_person, close_by_person
from inbox.routing.reply import write_reply
from inbox.routing.sla import fire_due
from inbox.service.health import sla_counts
from inbox.service.timers import Timers
from inbox.store.db import transaction
from inbox.store.models import Conversation, Event, OutboxItem, SlaTimer
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.helpers import Clock, arrive, conversation_of, ingest, mail, make_pipeline, raw

DESK = """\
    timezone: Europe/Helsinki
    calendars:
      office: {timezone: Europe/Helsinki, hours: {mon-fri: "08:00-17:00"}, country: FI}
    agents:
      esko: {slack: UESKO}
      mart: {slack: UMART}
    teams:
      support: {members: [esko], slack_channel: "#support"}
      tier2: {members: [mart]}
    rules:
      - name: vip
        when: {subject: {contains: VIP}}
        then: {priority: urgent}
      - name: to-support
        when: {channel: email}
        then: {assign: {team: support}}
    sla:
      - name: urgent
        when: {priority: urgent}
        first_response: 30m
        resolution: 8h
        escalate:
          - before: {first_response: 10m}
            then: {notify: {assignee: true, text: "Urgent: 10 minutes left to answer"}}
          - breached: first_response
            then: {notify: {team: support}, tag: sla-breached, assign: {team: tier2}}
      - name: standard
        calendar: office
        first_response: 4h
        next_response: 8h
        resolution: 3d
"""
#: Friday 11 December 2026, 15:00 in Helsinki (UTC+2): two office hours left this week.
FRIDAY_3PM = datetime(2026, 12, 11, 13, 0, tzinfo=UTC)


@pytest.fixture
def rules(tmp_path: Path) -> RulesInForce:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(DESK), encoding="utf-8")
    return RulesInForce(path)


def events(store: Store, kind: str) -> list[Event]:
    with store.readers() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


@BACKENDS
def test_due_times_count_office_hours_and_a_reply_meets_the_first_response(
    store: Store, rules: RulesInForce
) -> None:
    clock = Clock()
    clock.now = FRIDAY_3PM
    conversation = arrive(store, rules, clock, message_id="q1@example.fi")
    assert conversation.sla_policy == "standard"
    # Two hours on Friday, two on Monday from 08:00: Monday 10:00 in Helsinki.
    assert conversation.first_response_due == datetime(2026, 12, 14, 8, 0, tzinfo=UTC)
    assert conversation.resolution_due is not None
    assert conversation.next_response_due is None  # only once answered

    clock.now = datetime(2026, 12, 14, 7, 30, tzinfo=UTC)  # Monday 09:30: answered in time
    with transaction(store.writers) as session:
        write_reply(
            session, conversation.id, author="esko", text="Hei! Katsomme asiaa.", now=clock.now
        )
    timers = Timers(store.writers, clock=clock, ruleset=lambda: rules.current.ruleset)
    clock.now = datetime(2026, 12, 14, 9, 1, tzinfo=UTC)
    assert timers.run_once() == 0  # its first-response timer is met: dropped unfired
    assert events(store, "sla_breached") == []

    # Pending from 09:30 to her answer at 14:00 (Monday): resolution stopped for 4.5 h, so
    # its due time moves 4.5 office hours on; the next response is 8 office hours away.
    before = conversation.resolution_due
    clock.now = datetime(2026, 12, 14, 12, 0, tzinfo=UTC)
    answered = arrive(store, rules, clock, message_id="q2@example.fi", in_reply_to="q1@example.fi")
    assert answered.id == conversation.id and answered.status == "open"
    assert answered.sla_paused_at is None
    office = rules.current.ruleset.calendars["office"]
    paused = office.between(datetime(2026, 12, 14, 7, 30, tzinfo=UTC), clock.now)
    assert paused == timedelta(hours=4, minutes=30)
    assert answered.resolution_due == office.add(
        clock.now, office.between(datetime(2026, 12, 14, 7, 30, tzinfo=UTC), before)
    )
    # Monday 14:00 + 8 office hours: 3 on Monday, 5 on Tuesday: Tuesday 13:00 (11:00 UTC).
    assert answered.next_response_due == datetime(2026, 12, 15, 11, 0, tzinfo=UTC)


@BACKENDS
def test_an_urgent_conversation_escalates_before_and_at_its_breach_once(
    store: Store, rules: RulesInForce, tmp_path: Path
) -> None:
    clock = Clock()
    # An hour ago, so that the CLI at the end, on the real clock, sees it breached.
    start = clock.now = datetime.now(UTC) - timedelta(hours=1)
    conversation = arrive(
        store, rules, clock, message_id="v1@example.fi", subject="VIP: tilaus puuttuu"
    )
    # The rules made it urgent before the SLA was chosen: round the clock, 30 minutes.
    assert (conversation.priority, conversation.sla_policy) == ("urgent", "urgent")
    assert conversation.first_response_due == start + timedelta(minutes=30)
    # As the daemon has it: looking with a reader first, writing only when something is due.
    timers = Timers(
        store.writers,
        clock=clock,
        ruleset=lambda: rules.current.ruleset,
        readers=store.readers,
    )

    clock.now = start + timedelta(minutes=19)
    assert timers.run_once() == 0
    clock.now = start + timedelta(minutes=20)
    assert timers.run_once() == 1
    with store.readers() as session:
        [warning] = session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.notify"))
    assert warning.payload["slack_user"] == "UESKO"
    assert warning.payload["text"] == "Urgent: 10 minutes left to answer"
    [escalated] = events(store, "sla_escalated")
    assert (escalated.actor, escalated.detail["step"]) == (
        "sla:urgent",
        "first_response due in 10 min",
    )

    clock.now = start + timedelta(minutes=31)
    assert timers.run_once() == 1
    assert timers.run_once() == 0
    [breach] = events(store, "sla_breached")
    assert breach.detail["target"] == "first_response"
    assert timers.breaches == {("first_response", "support"): 1}
    with store.readers() as session:
        channels = [
            row.payload["slack_channel"]
            for row in session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.notify"))
        ]
        tagged = session.get(Conversation, conversation.id)
        assert tagged is not None and [t.name for t in tagged.tags] == ["sla-breached"]
        assert (tagged.assignee, tagged.team) == ("mart", "tier2")  # escalated to tier 2
        pinged = session.scalars(
            select(OutboxItem.payload).where(OutboxItem.kind == "slack.assignment")
        ).all()
        assert [p["agent"] for p in pinged] == ["esko", "mart"]
        assert sla_counts(session, clock.now) == (1, 0)
    assert channels == ["", "#support"]

    # What an operator sees.
    url = store.url
    listed = CliRunner().invoke(
        main, ["--database-url", url, "conversations", "list", "--breached", "--json"]
    )
    assert listed.exit_code == 0, listed.output
    assert [c["id"] for c in json.loads(listed.output)] == [conversation.id]
    shown = CliRunner().invoke(
        main, ["--database-url", url, "conversations", "show", str(conversation.id)]
    )
    assert "SLA urgent: first_response breached" in shown.output


@pytest.mark.parametrize("empty_store_url", ["postgresql"], indirect=True)
def test_two_daemons_sweeping_at_once_fire_each_timer_once(
    store: Store, rules: RulesInForce
) -> None:
    clock = Clock()
    clock.now = FRIDAY_3PM
    arrive(store, rules, clock, message_id="v1@example.fi", subject="VIP: apua")
    later = FRIDAY_3PM + timedelta(hours=2)
    ruleset = rules.current.ruleset
    with transaction(store.writers) as first:
        fired = fire_due(first, later, ruleset)
        with transaction(store.writers) as second:
            assert fire_due(second, later, ruleset) == []
    assert sorted(f.what for f in fired) == [
        "breached",
        "first_response breached",  # the escalation step at the breach
        "first_response due in 10 min",
    ]
    assert len(events(store, "sla_breached")) == 1
    with store.readers() as session:
        left = list(session.scalars(select(SlaTimer.target)))
    assert left == ["resolution"]  # 8 h, not due yet


@BACKENDS
def test_a_rules_reload_and_a_persons_assignment_choose_the_policy_again(
    store: Store, rules: RulesInForce
) -> None:
    clock = Clock()
    clock.now = FRIDAY_3PM
    conversation = arrive(store, rules, clock, message_id="q1@example.fi")
    assert conversation.sla_policy == "standard"
    timers = Timers(store.writers, clock=clock, ruleset=lambda: rules.current.ruleset)
    timers.run_once()  # the rules it started with

    # The admin tightens the standard first response to 1 h and reloads.
    rules.path.write_text(
        rules.path.read_text(encoding="utf-8").replace("first_response: 4h", "first_response: 1h"),
        encoding="utf-8",
    )
    assert rules.reload("test")
    timers.run_once()
    timers.run_once()  # the recheck is done: nothing more to do
    with store.readers() as session:
        again = session.get(Conversation, conversation.id)
        assert again is not None
        due = again.first_response_due
        targets = sorted(session.scalars(select(SlaTimer.target)))
    assert due == FRIDAY_3PM + timedelta(hours=1)  # within Friday's office hours
    assert targets == ["first_response", "resolution"]

    # An urgent one handed to another team by a person: still urgent, same policy, same due.
    urgent = arrive(store, rules, clock, message_id="v9@example.fi", subject="VIP: apua")
    with transaction(store.writers) as session:
        ruleset = rules.current.ruleset
        assign_by_person(
            session,
            ruleset,
            urgent.id,
            ruleset.agents["esko"],
            team_name=None,
            person="lead",
            note="",
        )
    assert conversation_of(store, "v9@example.fi").first_response_due == urgent.first_response_due


@BACKENDS
def test_a_closed_conversation_owes_nothing_and_reopened_goes_on_from_where_it_was(
    store: Store, rules: RulesInForce
) -> None:
    clock = Clock()
    clock.now = datetime(2026, 12, 9, 8, 0, tzinfo=UTC)  # Wednesday 10:00 in Helsinki
    conversation = arrive(store, rules, clock, message_id="q1@example.fi")
    office = rules.current.ruleset.calendars["office"]
    assert conversation.resolution_due is not None
    left = office.between(datetime(2026, 12, 9, 9, 0, tzinfo=UTC), conversation.resolution_due)
    clock.now = datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    with transaction(store.writers) as session:
        close_by_person(session, conversation.id, person="esko", now=clock.now)
    with store.readers() as session:
        closed = session.get(Conversation, conversation.id)
        assert closed is not None and closed.unmet_sla() == {}
        assert sla_counts(session, clock.now + timedelta(days=30)) == (0, 0)
    clock.now = datetime(2026, 12, 10, 8, 0, tzinfo=UTC)  # Thursday 10:00: she writes again
    reopened = arrive(store, rules, clock, message_id="q2@example.fi", in_reply_to="q1@example.fi")
    assert reopened.status == "open"
    assert reopened.resolution_due == office.add(clock.now, left)


@pytest.mark.parametrize("empty_store_url", ["postgresql"], indirect=True)
def test_two_daemons_sweeping_side_by_side_fire_every_escalation_once(
    store: Store, rules: RulesInForce
) -> None:
    clock = Clock()
    clock.now = FRIDAY_3PM
    pipeline = make_pipeline(store, clock=clock, rules=rules)
    try:
        for number in range(40):
            subject = f"VIP: tilaus {number}"
            message = raw(
                mail(message_id=f"v{number}@example.fi", subject=subject), received_at=clock.now
            )
            ingest(pipeline, message)
    finally:
        pipeline.close()
    clock.now = FRIDAY_3PM + timedelta(hours=1)
    daemons = [
        Timers(store.writers, clock=clock, ruleset=lambda: rules.current.ruleset) for _ in range(2)
    ]
    threads = [threading.Thread(target=daemon.run_once) for daemon in daemons]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    escalated = Counter(e.conversation_id for e in events(store, "sla_escalated"))
    breached = Counter(e.conversation_id for e in events(store, "sla_breached"))
    # Two escalation steps (10 min before, and at the breach) and one breach each, once.
    assert len(escalated) == 40 and set(escalated.values()) == {2}
    assert len(breached) == 40 and set(breached.values()) == {1}
    fired = sum(sum(daemon.breaches.values()) for daemon in daemons)
    assert fired == 40
