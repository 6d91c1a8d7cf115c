"""Snooze, on SQLite and PostgreSQL with a hand-moved clock: until a time in the snoozer's time
zone (across DST), pending meanwhile, open again when the time comes (once, with a word in the
assignee's ping thread) or as soon as the customer writes; two sweeps at once on PostgreSQL
wake each conversation once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from inbox.routing.person import close_by_person
from inbox.routing.snooze import CannotSnooze, snooze_by_person, snooze_until, wake_snoozed
from inbox.service.timers import Timers
from inbox.store.db import transaction
from inbox.store.models import Conversation, Event, OutboxItem, PingThread
from tests.conftest import BACKENDS, Store
from tests.helpers import Clock, conversation_of, ingest, mail, make_pipeline, raw

HELSINKI = ZoneInfo("Europe/Helsinki")


@pytest.fixture
def conversation_id(store: Store) -> int:
    ingest(make_pipeline(store), raw(mail(message_id="q1@example.fi")))
    return conversation_of(store, "q1@example.fi").id


def state(store: Store, conversation_id: int) -> tuple[str, datetime | None]:
    with store.readers() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation.status, conversation.snoozed_until


@pytest.mark.parametrize(
    ("now", "when", "expected"),
    [
        # Saturday before the spring change: Sunday 09:00 is summer time (UTC+3).
        (datetime(2027, 3, 27, 20, 0, tzinfo=UTC), "tomorrow", datetime(2027, 3, 28, 6, 0)),
        # Saturday before the autumn change: Sunday 09:00 is winter time (UTC+2).
        (datetime(2026, 10, 24, 20, 0, tzinfo=UTC), "tomorrow", datetime(2026, 10, 25, 7, 0)),
        # Late on Sunday evening UTC is already Monday in Helsinki: next Monday, not today.
        (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), "monday", datetime(2026, 12, 14, 7, 0)),
        (datetime(2026, 12, 9, 12, 0, tzinfo=UTC), "monday", datetime(2026, 12, 14, 7, 0)),
        (datetime(2026, 12, 9, 12, 0, tzinfo=UTC), "90m", datetime(2026, 12, 9, 13, 30)),
        (datetime(2026, 12, 9, 12, 0, tzinfo=UTC), "2026-12-10 14:00", datetime(2026, 12, 10, 12)),
        (
            datetime(2026, 12, 9, 12, 0, tzinfo=UTC),
            "2026-12-10T14:00+00:00",
            datetime(2026, 12, 10, 14),
        ),
    ],
)
def test_snooze_until_a_time_in_the_snoozers_zone(
    now: datetime, when: str, expected: datetime
) -> None:
    assert snooze_until(when, now, HELSINKI) == expected.replace(tzinfo=UTC)


def test_a_time_snooze_cannot_read_says_what_it_takes() -> None:
    with pytest.raises(CannotSnooze, match="give a duration"):
        snooze_until("next week-ish", datetime.now(UTC), HELSINKI)


@BACKENDS
def test_a_snooze_ends_once_at_its_time_with_a_word_in_the_assignees_thread(
    store: Store, conversation_id: int
) -> None:
    clock = Clock()
    with transaction(store.writers) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.assignee = "esko"
        session.add(
            PingThread(
                channel="D1",
                ts="1.000100",
                conversation_id=conversation_id,
                agent="esko",
                created_at=clock.now,
            )
        )
        snooze_by_person(
            session,
            conversation_id,
            person="esko",
            until=clock.now + timedelta(hours=4),
            now=clock.now,
        )
    assert state(store, conversation_id)[0] == "pending"
    timers = Timers(store.writers, clock=clock)
    clock.now += timedelta(hours=3, minutes=59)
    assert timers.run_once() == 0
    assert state(store, conversation_id)[0] == "pending"
    clock.now += timedelta(minutes=2)
    assert timers.run_once() == 1
    assert timers.run_once() == 0
    assert state(store, conversation_id) == ("open", None)
    with store.readers() as session:
        kinds = list(session.scalars(select(Event.kind).order_by(Event.id)))
        [said] = session.scalars(select(OutboxItem).where(OutboxItem.kind == "slack.thread"))
    assert kinds[-2:] == ["snoozed", "snooze_ended"]
    assert (said.payload["slack_channel"], said.payload["thread_ts"]) == ("D1", "1.000100")
    assert said.payload["notice"] is True


@BACKENDS
def test_the_customer_writing_first_or_a_close_ends_the_snooze(
    store: Store, conversation_id: int
) -> None:
    now = datetime.now(UTC)
    with transaction(store.writers) as session:
        snooze_by_person(session, conversation_id, person="esko", until=now + timedelta(days=1))
    ingest(
        make_pipeline(store),
        raw(mail(message_id="q2@example.fi", in_reply_to="q1@example.fi")),
    )
    assert state(store, conversation_id) == ("open", None)

    with transaction(store.writers) as session:
        snooze_by_person(session, conversation_id, person="esko", until=now + timedelta(days=1))
        close_by_person(session, conversation_id, person="esko")
    with transaction(store.writers) as session:
        assert wake_snoozed(session, now + timedelta(days=2)) == []
    assert state(store, conversation_id) == ("closed", None)
    with transaction(store.writers) as session, pytest.raises(CannotSnooze, match="closed"):
        snooze_by_person(session, conversation_id, person="esko", until=now + timedelta(days=1))
    with transaction(store.writers) as session, pytest.raises(CannotSnooze, match="future"):
        snooze_by_person(session, conversation_id, person="esko", until=now - timedelta(days=1))


@pytest.mark.parametrize("empty_store_url", ["postgresql"], indirect=True)
def test_two_daemons_sweeping_at_once_wake_a_conversation_once(
    store: Store, conversation_id: int
) -> None:
    """SKIP LOCKED: what one sweep holds, the other passes by (SQLite's writers take turns)."""
    now = datetime.now(UTC)
    with transaction(store.writers) as session:
        snooze_by_person(session, conversation_id, person="esko", until=now + timedelta(hours=1))
    later = now + timedelta(hours=2)
    with transaction(store.writers) as first:
        assert wake_snoozed(first, later) == [conversation_id]
        with transaction(store.writers) as second:
            assert wake_snoozed(second, later) == []
    with store.readers() as session:
        ended = session.scalars(select(Event).where(Event.kind == "snooze_ended")).all()
    assert len(ended) == 1
