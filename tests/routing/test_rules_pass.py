"""Rules in the pipeline, on SQLite and PostgreSQL: what agents and admins see in the store."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from inbox.store.models import Conversation, Event, Message, OutboxItem
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.helpers import conversation_of, ingest, mail, make_pipeline, message, raw

pytestmark = BACKENDS

#: A Wednesday, 12:00 in Helsinki: within office hours.
WORKDAY_NOON = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
#: The same Wednesday, 22:00 in Helsinki.
WORKDAY_NIGHT = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)

DESK = """\
    timezone: Europe/Helsinki
    tags: [urgent, billing, vip, nordic, security]
    calendars:
      office: {timezone: Europe/Helsinki, hours: {mon-fri: "08:00-17:00"}}
    agents:
      aino: {slack: U1, languages: [fi, en], capacity: 2, calendar: office}
      mart: {slack: U2, languages: [et, fi, en], capacity: 2, calendar: office}
      olga: {slack: U3, languages: [ru, en], skills: [security], calendar: office}
    teams:
      nordic: {members: [aino, mart], strategy: round_robin, slack_channel: "#nordic"}
      loaded: {members: [aino, mart], strategy: least_loaded}
      sticky: {members: [aino, mart], strategy: sticky, fallback: round_robin}
      security: {members: [olga], slack_channel: "#security"}
    rules:
      - name: urgent-words
        when: {body: {any_keyword: [kiire, urgent]}}
        then: {tag: urgent, priority: urgent}
      - name: vip
        when: {from_domain: bigcorp.example}
        then: {tag: vip, notify: {channel: "#vip", text: VIP}}
      - name: security
        when: {subject: {any_keyword: [phishing]}}
        then: {assign: {team: security, skills: [security]}, notify: {team: security}}
        stop: true
      - name: least-loaded
        when: {subject: {starts_with: "[loaded]"}}
        then: {assign: {team: loaded}}
        stop: true
      - name: sticky
        when: {subject: {starts_with: "[sticky]"}}
        then: {assign: {team: sticky}}
        stop: true
      - name: to-security
        when: {subject: {starts_with: "[security]"}}
        then: {assign: {team: security, reassign: true}}
        stop: true
      - name: take-over
        when: {subject: {starts_with: "[take]"}}
        then: {assign: {agent: mart, reassign: true}}
        stop: true
      - name: nordic
        when: {language: [fi, et]}
        then: {tag: nordic, assign: {team: nordic}}
"""


@pytest.fixture
def desk(tmp_path: Path) -> RulesInForce:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(DESK), encoding="utf-8")
    return RulesInForce(path)


def at(moment: datetime) -> object:
    return lambda: moment


def events(store: Store, conversation_id: int, kind: str | None = None) -> list[Event]:
    with store.readers() as session:
        query = select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
        if kind:
            query = query.where(Event.kind == kind)
        return list(session.scalars(query))


def assignee_of(store: Store, message_id: str) -> str | None:
    return conversation_of(store, message_id).assignee


FINNISH = "Hei, teltan vetoketju meni rikki ensimmäisellä retkellä. Voitteko auttaa?\n"


def test_decisions_are_stored_with_the_rule_and_what_it_matched(
    store: Store, desk: RulesInForce
) -> None:
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    ingest(pipeline, raw(mail(message_id="k1", body="Tämä on kiire! " + FINNISH)))
    conversation = conversation_of(store, "k1")
    assert conversation.priority == "urgent"
    assert conversation.assignee == "aino"
    assert conversation.team == "nordic"
    added = events(store, conversation.id, "tag_added")
    assert {(e.actor, e.detail["tag"], e.detail["matched"]) for e in added} == {
        ("rule:urgent-words", "urgent", "body has keyword 'kiire'"),
        ("rule:nordic", "nordic", "language is 'fi'"),
    }
    [assigned] = events(store, conversation.id, "assigned")
    assert assigned.actor == "rule:nordic"
    assert assigned.detail["agent"] == "aino"
    assert assigned.detail["rules_version"] == desk.current.version
    with store.readers() as session:
        [ping] = session.scalars(select(OutboxItem))
    assert ping.kind == "slack.assignment"
    assert ping.payload["slack_user"] == "U1"
    assert ping.payload["rule"] == "nordic"


def test_round_robin_stays_fair_across_restarts(store: Store, desk: RulesInForce) -> None:
    given = []
    for number in range(4):
        # A new pipeline each time, as after a restart: the turn comes from the store.
        pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
        sender = f"Asiakas {number} <asiakas{number}@example.fi>"
        ingest(pipeline, raw(mail(message_id=f"rr{number}", sender=sender, body=FINNISH)))
        given.append(assignee_of(store, f"rr{number}"))
    assert given == ["aino", "mart", "aino", "mart"]


def test_turns_within_one_batch_follow_each_other(store: Store, desk: RulesInForce) -> None:
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    messages = [
        raw(mail(message_id=f"b{n}", sender=f"Asiakas {n} <b{n}@example.fi>", body=FINNISH))
        for n in range(4)
    ]
    ingest(pipeline, *messages)
    assert [assignee_of(store, f"b{n}") for n in range(4)] == ["aino", "mart", "aino", "mart"]
    # All in the batch's own pass: nothing had to be retried message by message.
    assert not events(store, conversation_of(store, "b0").id, "rules_failed")


def test_least_loaded_then_capacity_then_the_queue(store: Store, desk: RulesInForce) -> None:
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    order = []
    for number in range(5):
        sender = f"Asiakas {number} <load{number}@example.fi>"
        ingest(
            pipeline,
            raw(
                mail(
                    message_id=f"l{number}",
                    sender=sender,
                    subject=f"[loaded] {number}",
                    body=FINNISH,
                )
            ),
        )
        order.append(assignee_of(store, f"l{number}"))
    # Capacity 2 each: the fifth waits in the queue, and the reason is recorded.
    assert order == ["aino", "mart", "aino", "mart", None]
    waiting = conversation_of(store, "l4")
    assert waiting.team == "loaded"
    [queued] = events(store, waiting.id, "queued")
    assert queued.detail["skipped"] == {"aino": "at capacity (2/2)", "mart": "at capacity (2/2)"}


def test_nobody_at_work_means_the_queue_with_hours_in_the_agents_zone(
    store: Store, desk: RulesInForce
) -> None:
    pipeline = make_pipeline(store, clock=at(WORKDAY_NIGHT), rules=desk)  # type: ignore[arg-type]
    ingest(pipeline, raw(mail(message_id="night", body=FINNISH)))
    conversation = conversation_of(store, "night")
    assert conversation.assignee is None
    [queued] = events(store, conversation.id, "queued")
    assert queued.detail["skipped"] == {
        "aino": "off hours (wed 22:00 Europe/Helsinki)",
        "mart": "off hours (wed 22:00 Europe/Helsinki)",
    }


def test_language_and_skills_filter_the_team(store: Store, desk: RulesInForce) -> None:
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    russian = "Здравствуйте, мне пришло фишинговое письмо от вашего имени. Что делать?\n"
    ingest(pipeline, raw(mail(message_id="ph", subject="phishing?", body=russian)))
    conversation = conversation_of(store, "ph")
    assert conversation.assignee == "olga"
    with store.readers() as session:
        kinds = sorted(item.kind for item in session.scalars(select(OutboxItem)))
    assert kinds == ["slack.assignment", "slack.notify"]


def test_sticky_keeps_the_contacts_agent_and_falls_back_when_away(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(DESK), encoding="utf-8")
    rules = RulesInForce(path)
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=rules)  # type: ignore[arg-type]
    # The pointer moves to aino with a first customer, so mart is next in turn...
    ingest(pipeline, raw(mail(message_id="s0", sender="x@example.fi", subject="[sticky] a")))
    # ...and this customer's first conversation goes to mart.
    ingest(pipeline, raw(mail(message_id="s1", sender="pekka@example.fi", subject="[sticky] b")))
    assert assignee_of(store, "s1") == "mart"
    # A new conversation from the same customer goes back to mart, though aino is next in turn.
    ingest(pipeline, raw(mail(message_id="s2", sender="pekka@example.fi", subject="[sticky] c")))
    assert assignee_of(store, "s2") == "mart"
    # Mart goes on leave: the fallback strategy decides, and the note says why.
    path.write_text(
        textwrap.dedent(DESK).replace("mart: {slack: U2,", "mart: {away: true, slack: U2,"),
        encoding="utf-8",
    )
    assert rules.reload("test")
    ingest(pipeline, raw(mail(message_id="s3", sender="pekka@example.fi", subject="[sticky] d")))
    conversation = conversation_of(store, "s3")
    assert conversation.assignee == "aino"
    [assigned] = events(store, conversation.id, "assigned")
    assert assigned.detail["note"] == "sticky: mart away, so round_robin"


def test_a_follow_up_never_steals_unless_the_rule_says_reassign(
    store: Store, desk: RulesInForce
) -> None:
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    ingest(pipeline, raw(mail(message_id="f1", body=FINNISH)))
    assert assignee_of(store, "f1") == "aino"
    # A reply: the nordic rule matches again but the conversation keeps its agent, silently.
    ingest(
        pipeline, raw(mail(message_id="f2", in_reply_to="f1", subject="Re: Teltan", body=FINNISH))
    )
    conversation = conversation_of(store, "f2")
    assert conversation.assignee == "aino"
    assert len(events(store, conversation.id, "assigned")) == 1
    # A rule with reassign: true takes it, and both agents hear of it.
    ingest(
        pipeline,
        raw(mail(message_id="f3", in_reply_to="f2", subject="[take] Re: Teltan", body=FINNISH)),
    )
    conversation = conversation_of(store, "f3")
    assert conversation.assignee == "mart"
    assigned = events(store, conversation.id, "assigned")
    assert assigned[-1].detail["from"] == "aino"
    with store.readers() as session:
        pings = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
    assert [(p.payload["agent"], p.payload["previous_agent"]) for p in pings] == [
        ("aino", ""),
        ("mart", "aino"),
    ]


def test_a_reply_to_a_closed_conversation_is_assigned_again(
    store: Store, desk: RulesInForce
) -> None:
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    ingest(pipeline, raw(mail(message_id="c1", body=FINNISH)))
    first = conversation_of(store, "c1")
    with store.writers() as session, session.begin():
        closed = session.get(Conversation, first.id)
        assert closed is not None
        closed.status, closed.closed_at = "closed", WORKDAY_NOON - timedelta(days=1)
    ingest(
        pipeline, raw(mail(message_id="c2", in_reply_to="c1", subject="Re: Teltan", body=FINNISH))
    )
    again = conversation_of(store, "c2")
    assert again.id == first.id and again.status == "open"
    # Round-robin: the turn after aino is mart.
    assert again.assignee == "mart"


def test_replaying_a_batch_never_pings_twice(store: Store, desk: RulesInForce) -> None:
    from inbox.routing.rules_pass import run_rules
    from inbox.store.batch_writer import Arrival

    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    ingest(pipeline, raw(mail(message_id="v1", sender="ceo@bigcorp.example", body="Hello")))
    with store.writers() as session, session.begin():
        message = session.scalar(select(Message).where(Message.message_id_header == "v1"))
        assert message is not None
        arrival = Arrival(
            message.conversation,
            message.id,
            {"from_address": "ceo@bigcorp.example", "channel": "email"},
            [],
            new_conversation=True,
        )
        run_rules(session, desk.current, [arrival], now=WORKDAY_NOON, batch_started=WORKDAY_NOON)
    with store.readers() as session:
        notifications = session.scalars(
            select(OutboxItem).where(OutboxItem.kind == "slack.notify")
        ).all()
    assert len(notifications) == 1
    assert notifications[0].payload["slack_channel"] == "#vip"


def test_a_failing_rule_action_keeps_the_message_and_records_why(
    store: Store, desk: RulesInForce
) -> None:
    # The store refuses every tag on conversations: the rules cannot apply, the mail stays.
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_tags BEFORE INSERT ON conversation_tags "
                    "BEGIN SELECT RAISE(ABORT, 'tags refused'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_tags() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'tags refused'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_tags BEFORE INSERT ON conversation_tags "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_tags()"
                )
            )
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    result = ingest(
        pipeline,
        raw(mail(message_id="t1", body=FINNISH)),
        raw(mail(message_id="t2", body="No tags here, just English.")),
    )
    assert result.stored == 2
    tagged = conversation_of(store, "t1")
    [failed] = events(store, tagged.id, "rules_failed")
    assert "tags refused" in failed.detail["error"]
    assert tagged.assignee is None  # nothing of the failed pass was kept


def test_each_message_of_a_batch_is_judged_as_it_arrived(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "counts.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            tags: [first-message, newcomer, returning]
            rules:
              - {name: first, when: {message_count: 1}, then: {tag: first-message}}
              - {name: newcomer, when: {contact_conversations: 0}, then: {tag: newcomer}}
              - {name: returning, when: {contact_conversations: {gte: 1}}, then: {tag: returning}}
            """
        ),
        encoding="utf-8",
    )
    clock = iter(WORKDAY_NOON + timedelta(seconds=n) for n in range(1000))
    pipeline = make_pipeline(store, clock=lambda: next(clock), rules=RulesInForce(path))
    # One batch: a new customer's first mail, a quick follow-up, and a second topic.
    ingest(
        pipeline,
        raw(mail(message_id="n1", sender="uusi@example.fi", subject="Teltta")),
        raw(
            mail(message_id="n2", sender="uusi@example.fi", subject="Re: Teltta", in_reply_to="n1")
        ),
        raw(mail(message_id="n3", sender="uusi@example.fi", subject="Makuupussi")),
    )
    first, second = conversation_of(store, "n1"), conversation_of(store, "n3")
    assert sorted(e.detail["tag"] for e in events(store, first.id, "tag_added")) == [
        "first-message",
        "newcomer",
    ]
    assert sorted(e.detail["tag"] for e in events(store, second.id, "tag_added")) == [
        "first-message",
        "returning",
    ]
    # The follow-up was the conversation's second message when it arrived: `first` did not
    # match it, though both messages were judged after the batch had stored both.
    follow_up = message(store, "n2").id
    matched_by_follow_up = [
        e.actor for e in events(store, first.id, "rule_matched") if e.message_id == follow_up
    ]
    assert matched_by_follow_up == ["rule:newcomer"]


def test_a_reassign_that_finds_nobody_keeps_the_agent_and_says_so(
    store: Store, desk: RulesInForce
) -> None:
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=desk)  # type: ignore[arg-type]
    ingest(pipeline, raw(mail(message_id="r1", body=FINNISH)))
    assert assignee_of(store, "r1") == "aino"
    night = make_pipeline(store, clock=at(WORKDAY_NIGHT), rules=desk)  # type: ignore[arg-type]
    ingest(
        night,
        raw(mail(message_id="r2", in_reply_to="r1", subject="[security] Re: Teltan", body=FINNISH)),
    )
    conversation = conversation_of(store, "r2")
    # Olga (security) cannot take it: aino keeps it, in her own team, and the history says why.
    assert (conversation.assignee, conversation.team) == ("aino", "nordic")
    [kept] = events(store, conversation.id, "assignment_kept")
    assert kept.detail["reason"] == "nobody else can"
    assert kept.detail["skipped"] == {"olga": "does not speak fi"}


def test_closing_by_rule_frees_the_agent_within_the_batch(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "capacity.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            agents:
              aino: {capacity: 1}
              mart: {capacity: 1}
            teams:
              desk: {members: [aino, mart], strategy: least_loaded}
            rules:
              - {name: done, when: {subject: {contains: "[done]"}}, then: {status: closed}}
              - {name: route, when: {new_conversation: true}, then: {assign: {team: desk}}}
            """
        ),
        encoding="utf-8",
    )
    pipeline = make_pipeline(store, clock=at(WORKDAY_NOON), rules=RulesInForce(path))  # type: ignore[arg-type]
    ingest(
        pipeline,
        raw(mail(message_id="c1", sender="a@example.fi", subject="Teltta")),
        raw(mail(message_id="c2", sender="b@example.fi", subject="Reppu")),
        raw(
            mail(
                message_id="c3",
                sender="a@example.fi",
                subject="Re: Teltta [done]",
                in_reply_to="c1",
            )
        ),
        raw(mail(message_id="c4", sender="c@example.fi", subject="Kengät")),
    )
    assert conversation_of(store, "c1").status == "closed"
    # Both agents were full until c3 closed aino's conversation: c4 goes to her, not the queue.
    assert [assignee_of(store, m) for m in ("c1", "c2", "c4")] == ["aino", "mart", "aino"]
