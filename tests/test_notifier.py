"""The notifier as agents and operators see it: mail goes through the real pipeline and rules,
the outbox rows they write go to a fake Slack through the real slack_sdk, on SQLite and
PostgreSQL. The notifier's clock is ours, so retries come due without sleeping."""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from inbox.config import SlackSettings
from inbox.outbox.notifier import LEASE, METADATA_EVENT, Notifier
from inbox.store.models import OutboxItem, utcnow
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.fake_slack import FakeSlack
from tests.helpers import conversation_of, ingest, mail, make_pipeline, raw

pytestmark = BACKENDS

#: A Wednesday, 12:00 in Helsinki: within office hours.
WORKDAY_NOON = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
#: The same Wednesday, 22:00 in Helsinki: nobody at work.
WORKDAY_NIGHT = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)

DESK = """\
    timezone: Europe/Helsinki
    calendars:
      office: {timezone: Europe/Helsinki, hours: {mon-fri: "08:00-17:00"}}
    agents:
      aino: {slack: U1, languages: [fi, en], calendar: office}
      mart: {slack: U2, languages: [fi, en], calendar: office}
    teams:
      nordic: {members: [aino, mart], strategy: round_robin, slack_channel: "#support-nordic"}
    rules:
      - name: urgent-words
        when: {body: {any_keyword: [kiire, urgent]}}
        then: {priority: urgent}
      - name: bigcorp-watch
        when: {from_domain: bigcorp.example}
        then: {notify: {channel: "#bigcorp-archived", text: Bigcorp wrote}}
      - name: take-over
        when: {subject: {starts_with: "[take]"}}
        then: {assign: {agent: mart, reassign: true}}
        stop: true
      - name: nordic
        when: {language: [fi]}
        then: {assign: {team: nordic}}
"""

FINNISH = "Hei, teltan vetoketju meni rikki ensimmäisellä retkellä. Voitteko auttaa?\n"


class Clock:
    """The notifier's clock, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def desk(tmp_path: Path) -> RulesInForce:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(DESK), encoding="utf-8")
    return RulesInForce(path)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_user("U1", name="aino", real_name="Aino Virtanen")
        fake.add_user("U2", name="mart", real_name="Mart Tamm")
        fake.add_channel("C0NORDIC", name="support-nordic")
        yield fake


def notifier_for(
    store: Store, slack: FakeSlack, clock: Clock, *, timeout: int = 30, **settings: Any
) -> Notifier:
    client = WebClient(token=slack.bot_token, base_url=slack.url, timeout=timeout)
    return Notifier(store.writers, SlackSettings(**settings), client=client, clock=clock)


def send_mail(
    store: Store, desk: RulesInForce, message_id: str, *, at: datetime = WORKDAY_NOON, **fields: Any
) -> None:
    """A customer's mail, written 25 minutes before the pipeline (clock `at`) takes it in."""
    fields.setdefault("body", FINNISH)
    written = at - timedelta(minutes=25)
    pipeline = make_pipeline(store, clock=lambda: at, rules=desk)
    ingest(pipeline, raw(mail(message_id=message_id, date=written, **fields), received_at=at))


def viestit(messages: list[dict[str, Any]]) -> list[str]:
    """The numbers of the "Viesti N" subjects pinged, in order of N."""
    return sorted(m["text"].split("Viesti ", 1)[1][0] for m in messages)


def outbox(store: Store) -> list[OutboxItem]:
    with store.readers() as session:
        return list(session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


def texts_of(message: dict[str, Any]) -> str:
    """Everything a person reads in a message's blocks."""
    parts: list[str] = []
    for block in message.get("blocks", []):
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(field["text"] for field in block.get("fields", []))
        for element in block.get("elements", []):
            label = element.get("text", "")  # a button's is a text object
            parts.append(label["text"] if isinstance(label, dict) else label)
    return "\n".join(parts)


def posted_keys(slack: FakeSlack) -> Counter[str]:
    """How many messages carrying each idempotency key are in Slack."""
    slack.wait_idle()
    return Counter(
        message["metadata"]["event_payload"]["key"]
        for message in slack.all_messages()
        if message.get("metadata", {}).get("event_type") == METADATA_EVENT
    )


def test_an_assignment_dms_the_agent_everything_needed_to_decide_and_is_recorded_sent(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    send_mail(
        store,
        desk,
        "a1",
        sender="Liisa Korhonen <liisa@example.fi>",
        subject="Teltan vetoketju rikki",
        body="Tämä on kiire! " + FINNISH,
    )
    conversation = conversation_of(store, "a1")
    assert conversation.assignee == "aino"

    assert notifier_for(store, slack, Clock(WORKDAY_NOON)).run_once() == 1

    [opened] = slack.calls_to("conversations.open")
    assert opened.args["users"] == "U1"
    dm = slack.dm_channel("U1")
    [ping] = slack.messages(dm or "")
    shown = texts_of(ping)
    assert f"Assigned to you:* #{conversation.id} Teltan vetoketju rikki" in shown
    for fact in [
        "*Customer*\nLiisa Korhonen &lt;liisa@example.fi&gt;",
        "*Channel*\nEmail",
        "*Priority*\n🔴 urgent",
        "*Language*\nfi",
        "*Waiting*\n25 min",
        "*Routed by*\nrule `nordic`",
        "> Tämä on kiire! Hei, teltan vetoketju",
    ]:
        assert fact in shown
    assert "Assigned to you" in ping["text"]
    [row] = outbox(store)
    assert ping["metadata"] == {
        "event_type": METADATA_EVENT,
        "event_payload": {"key": row.idempotency_key},
    }
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert row.result == {"channel": dm, "ts": ping["ts"]}
    assert row.sent_at is not None


def test_a_reassignment_updates_the_earlier_ping_and_pings_the_new_agent(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    notifier = notifier_for(store, slack, Clock(WORKDAY_NOON))
    send_mail(store, desk, "r1", subject="Teltan vetoketju")
    notifier.run_once()
    send_mail(store, desk, "r2", in_reply_to="r1", subject="[take] Re: Teltan vetoketju")
    assert conversation_of(store, "r2").assignee == "mart"
    notifier.run_once()

    [to_aino] = slack.messages(slack.dm_channel("U1") or "")
    [to_mart] = slack.messages(slack.dm_channel("U2") or "")
    assert "Reassigned to mart" in texts_of(to_aino)
    assert to_aino["text"].endswith("was reassigned to mart")
    assert "edited" in to_aino
    assert "Assigned to you" in texts_of(to_mart)
    assert "rule `take-over`" in texts_of(to_mart)
    assert [row.status for row in outbox(store)] == ["sent", "sent"]


def test_a_reassignment_in_the_same_pass_still_finds_the_first_ping(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    send_mail(store, desk, "s1", subject="Teltan vetoketju")
    send_mail(store, desk, "s2", in_reply_to="s1", subject="[take] Re: Teltan vetoketju")
    notifier_for(store, slack, Clock(WORKDAY_NOON)).run_once()
    [to_aino] = slack.messages(slack.dm_channel("U1") or "")
    assert "Reassigned to mart" in texts_of(to_aino)
    assert len(slack.messages(slack.dm_channel("U2") or "")) == 1


def test_a_team_with_nobody_free_hears_of_it_in_its_channel(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    send_mail(store, desk, "q1", at=WORKDAY_NIGHT, subject="Yöllinen kysymys")
    assert conversation_of(store, "q1").assignee is None
    notifier_for(store, slack, Clock(WORKDAY_NIGHT)).run_once()

    [posted] = slack.messages("C0NORDIC")
    shown = texts_of(posted)
    assert "Waiting for nordic, nobody free:*" in shown
    assert "Yöllinen kysymys" in shown
    assert "aino: off hours" in shown and "mart: off hours" in shown
    assert slack.calls_to("conversations.open") == []
    [row] = outbox(store)
    assert (row.kind, row.status, row.result["channel"]) == ("slack.queued", "sent", "C0NORDIC")


def test_a_429_waits_out_retry_after_without_counting_an_attempt_or_posting_twice(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    clock = Clock(WORKDAY_NOON)
    notifier = notifier_for(store, slack, clock)
    send_mail(store, desk, "l1")
    slack.fail_next("chat.postMessage", status=429, retry_after=3)

    notifier.run_once()
    [row] = outbox(store)
    assert (row.status, row.attempts) == ("pending", 0)
    assert "rate limited" in row.last_error
    assert row.next_attempt_at == WORKDAY_NOON + timedelta(seconds=3)
    clock.advance(2)
    assert notifier.run_once() == 0
    clock.advance(1)
    assert notifier.run_once() == 1

    [row] = outbox(store)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]
    assert list(posted_keys(slack).values()) == [1]


def test_a_429_holds_back_only_that_agent_until_retry_after(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    clock = Clock(WORKDAY_NOON)
    notifier = notifier_for(store, slack, clock, senders=1)
    send_mail(store, desk, "h1", subject="Ensimmäinen")  # round robin: aino
    notifier.run_once()
    slack.fail_next("chat.postMessage", status=429, retry_after=30)
    send_mail(store, desk, "h2", subject="Toinen")  # mart: rate limited
    send_mail(store, desk, "h3", subject="Kolmas")  # aino
    notifier.run_once()
    assert [row.status for row in outbox(store)] == ["sent", "pending", "sent"]
    # A new ping to mart waits behind the limit too, without a call to Slack; aino's goes.
    send_mail(store, desk, "h4", subject="Neljäs")  # mart
    send_mail(store, desk, "h5", subject="Viides")  # aino
    calls_before = len(slack.calls_to("chat.postMessage"))
    notifier.run_once()
    assert [row.status for row in outbox(store)] == ["sent", "pending", "sent", "pending", "sent"]
    assert len(slack.calls_to("chat.postMessage")) == calls_before + 1
    clock.advance(30)
    notifier.run_once()
    assert [row.status for row in outbox(store)] == ["sent"] * 5
    to_mart = slack.messages(slack.dm_channel("U2") or "")
    assert ["Toinen" in m["text"] for m in to_mart] == [True, False]


def test_pings_to_one_channel_go_at_slacks_pace_and_other_channels_are_not_held_back(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    clock = Clock(WORKDAY_NOON)
    notifier = notifier_for(store, slack, clock, per_channel_rate=1, per_channel_burst=2)
    for number in range(4):
        send_mail(store, desk, f"t{number}", subject=f"[take] Viesti {number}")  # mart
    send_mail(store, desk, "a1", subject="Ainolle")  # round robin: aino
    notifier.run_once()
    # A burst of two to mart, and aino's at once; mart's other two wait for the pace.
    assert [row.status for row in outbox(store)] == ["sent", "sent", "pending", "pending", "sent"]
    assert len(slack.calls_to("chat.postMessage")) == 3
    clock.advance(0.5)
    assert notifier.run_once() == 0
    clock.advance(0.5)  # one a second
    notifier.run_once()
    assert [row.status for row in outbox(store)] == ["sent", "sent", "sent", "pending", "sent"]
    clock.advance(1)
    notifier.run_once()
    assert [row.status for row in outbox(store)] == ["sent"] * 5
    # Pings of one pass go out side by side: in any order.
    assert viestit(slack.messages(slack.dm_channel("U2") or "")) == list("0123")


@pytest.mark.parametrize("paced", [True, False])
def test_a_burst_to_one_agent_meets_no_429_from_a_slack_that_limits_each_channel(
    store: Store, desk: RulesInForce, slack: FakeSlack, paced: bool
) -> None:
    # Real time: the fake Slack takes 5 posts a second to a channel, 2 at once; the notifier
    # keeps to half that (its pace is counted when a ping is claimed, before Slack counts it).
    slack.limit_posts_per_channel(5, burst=2)
    notifier = notifier_for(
        store, slack, Clock(WORKDAY_NOON), per_channel_rate=2.5 if paced else 0, per_channel_burst=2
    )
    notifier.clock = utcnow  # the pace is kept in real seconds here
    for number in range(6):
        send_mail(store, desk, f"b{number}", subject=f"[take] Viesti {number}")  # all mart
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(row.status != "sent" for row in outbox(store)):
        notifier.run_once()
        time.sleep(0.02)
    assert [row.status for row in outbox(store)] == ["sent"] * 6
    refused = [call for call in slack.calls_to("chat.postMessage") if call.status == 429]
    assert (len(refused) == 0) == paced
    assert viestit(slack.messages(slack.dm_channel("U2") or "")) == list("012345")


def test_a_5xx_backs_off_then_sends_once(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    clock = Clock(WORKDAY_NOON)
    notifier = notifier_for(store, slack, clock)
    send_mail(store, desk, "e1")
    slack.fail_next("chat.postMessage", status=503)

    notifier.run_once()
    [row] = outbox(store)
    assert (row.status, row.attempts, row.last_error) == (
        "pending",
        1,
        "Slack answered HTTP 503",
    )
    waited = row.next_attempt_at - WORKDAY_NOON
    assert timedelta(seconds=1) <= waited <= timedelta(seconds=2)
    assert notifier.run_once() == 0
    clock.advance(2)
    notifier.run_once()

    [row] = outbox(store)
    assert (row.status, row.attempts) == ("sent", 2)
    assert list(posted_keys(slack).values()) == [1]


def test_a_reassignment_waits_until_the_earlier_ping_is_out_so_it_can_update_it(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    clock = Clock(WORKDAY_NOON)
    notifier = notifier_for(store, slack, clock)
    send_mail(store, desk, "o1", subject="Teltan vetoketju")
    send_mail(store, desk, "o2", in_reply_to="o1", subject="[take] Re: Teltan vetoketju")
    slack.fail_next("chat.postMessage", status=429, retry_after=5)  # aino's ping
    notifier.run_once()
    assert [row.status for row in outbox(store)] == ["pending", "pending"]
    assert slack.dm_channel("U2") is None or slack.messages(slack.dm_channel("U2") or "") == []
    clock.advance(5)
    while notifier.run_once():
        pass
    [to_aino] = slack.messages(slack.dm_channel("U1") or "")
    [to_mart] = slack.messages(slack.dm_channel("U2") or "")
    assert "Reassigned to mart" in texts_of(to_aino)
    assert "Assigned to you" in texts_of(to_mart)
    assert [row.status for row in outbox(store)] == ["sent", "sent"]


def test_a_post_whose_answer_came_too_late_is_found_not_posted_again(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    clock = Clock(datetime.now(UTC))
    notifier = notifier_for(store, slack, clock, timeout=1)
    send_mail(store, desk, "w1")
    slack.delay_next("chat.postMessage", 1.5)  # Slack posts it; we stop waiting after 1 s
    notifier.run_once()
    [row] = outbox(store)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("Slack unreachable")
    assert slack.wait_idle()
    clock.advance(5)
    notifier.run_once()
    [row] = outbox(store)
    assert row.status == "sent"
    assert posted_keys(slack) == {row.idempotency_key: 1}
    [message] = slack.messages(slack.dm_channel("U1") or "")
    assert row.result["ts"] == message["ts"]


def test_a_connection_dropped_after_slack_posted_does_not_post_twice(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    clock = Clock(datetime.now(UTC))
    notifier = notifier_for(store, slack, clock)
    send_mail(store, desk, "x1")
    slack.drop_next("chat.postMessage")
    notifier.run_once()
    clock.advance(5)
    notifier.run_once()
    [row] = outbox(store)
    assert row.status == "sent"
    assert posted_keys(slack) == {row.idempotency_key: 1}


def test_a_ping_slack_refuses_for_good_is_dead_with_its_reason_and_the_rest_go_out(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    send_mail(store, desk, "d1", sender="Pekka <pekka@bigcorp.example>")
    send_mail(store, desk, "d2", subject="Toinen asia")
    notifier_for(store, slack, Clock(WORKDAY_NOON)).run_once()

    rows = {row.kind: row for row in outbox(store) if row.kind == "slack.notify"}
    assignments = [row for row in outbox(store) if row.kind == "slack.assignment"]
    dead = rows["slack.notify"]
    assert (dead.status, dead.last_error) == ("dead", "Slack refused it: channel_not_found")
    assert [row.status for row in assignments] == ["sent", "sent"]
    assert len(posted_keys(slack)) == 2


def test_a_ping_failing_max_attempts_times_is_dead(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    clock = Clock(WORKDAY_NOON)
    notifier = notifier_for(store, slack, clock, max_attempts=2)
    send_mail(store, desk, "m1")
    slack.fail_next("chat.postMessage", status=502, count=5)
    notifier.run_once()
    clock.advance(120)
    notifier.run_once()
    clock.advance(120)
    assert notifier.run_once() == 0

    [row] = outbox(store)
    assert (row.status, row.attempts) == ("dead", 2)
    assert row.last_error == "gave up after 2 attempts: Slack answered HTTP 502"
    assert len(slack.calls_to("chat.postMessage")) == 2


class Killed(Exception):
    """The process died: nothing after this point happened."""


def test_after_a_crash_a_ping_already_in_slack_is_found_and_one_that_is_not_is_sent_once(
    store: Store, desk: RulesInForce, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_mail(store, desk, "c1", subject="Ensimmäinen")
    send_mail(store, desk, "c2", subject="Toinen")
    # The first daemon posts c1's ping, Slack never gets c2's (the connection drops on the
    # way), and the process dies before recording either: both rows stay `sending`.
    clock = Clock(datetime.now(UTC))
    first = notifier_for(store, slack, clock, senders=1)
    answer = slack.handle

    def c2_lost(method: str, args: dict[str, Any], token: str) -> tuple[int, dict[str, str], bytes]:
        if method == "chat.postMessage" and "Toinen" in args.get("text", ""):
            return 502, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>"
        return answer(method, args, token)

    def die(outcomes: object) -> None:
        raise Killed

    monkeypatch.setattr(slack, "handle", c2_lost)
    monkeypatch.setattr(first, "_record", die)
    with pytest.raises(Killed):
        first.run_once()
    first.stop()
    monkeypatch.setattr(slack, "handle", answer)
    assert [row.status for row in outbox(store)] == ["sending", "sending"]
    assert len(posted_keys(slack)) == 1

    # Another daemon, once the lease has lapsed.
    clock.advance(LEASE.total_seconds() + 1)
    second = notifier_for(store, slack, clock)
    assert second.run_once() == 2

    rows = outbox(store)
    assert [row.status for row in rows] == ["sent", "sent"]
    assert rows[0].result.get("recovered") is True
    assert posted_keys(slack) == {row.idempotency_key: 1 for row in rows}
    assert slack.calls_to("conversations.history")
    [c1_message] = slack.messages(slack.dm_channel("U1") or "")
    assert rows[0].result["ts"] == c1_message["ts"]


def test_start_wake_stop_sends_in_the_background(
    store: Store, desk: RulesInForce, slack: FakeSlack
) -> None:
    notifier = notifier_for(store, slack, Clock(WORKDAY_NOON))
    notifier.start()
    try:
        send_mail(store, desk, "t1")
        notifier.wake()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and outbox(store)[0].status != "sent":
            time.sleep(0.02)
    finally:
        notifier.stop()
    assert outbox(store)[0].status == "sent"
    assert len(posted_keys(slack)) == 1
    assert notifier._thread is not None and not notifier._thread.is_alive()


def test_the_ping_says_when_the_sla_wants_an_answer(
    store: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(
        textwrap.dedent(DESK)
        + "sla:\n  - {name: standard, calendar: office, first_response: 2h}\n",
        encoding="utf-8",
    )
    send_mail(store, RulesInForce(path), "s1")
    clock = Clock(WORKDAY_NOON + timedelta(minutes=30))
    assert notifier_for(store, slack, clock).run_once() == 1
    [ping] = slack.messages(slack.dm_channel("U1") or "")
    assert "*SLA*\nfirst response due in 1 h 30 min" in texts_of(ping)
