"""SLA timers at size: what a sweep costs over many open conversations, and how late a timer
fires after its time.

    python bench/sla.py [--conversations 100000] [--due 1000] [--window 30] [--burst 20000]
                        [--interval 1] [--postgres URL | --no-postgres]

Into a fresh store (SQLite, then PostgreSQL), N open conversations under one SLA policy
(first response 4 h, an escalation 30 min before it), each with its due time and its two
timers (2N rows in sla_timers), far ahead; then:

- **idle sweep**: the daemon's sweep (inbox/service/timers.py, as the daemon runs it: a look
  with a reader, no write lock) when nothing is due, 20 times;
- **firing delay**: `--due` conversations due over the next `--window` seconds, swept by the
  timers' thread every `--interval` seconds as the daemon runs it; for each breach, the time
  from its due time to the sweep that recorded it (median, p95, max), and whether each fired
  exactly once;
- **burst**: `--burst` conversations all due at once (a daemon back after an outage): how long
  the sweeps take to fire them all (a breach event and an escalation ping each), each once.

A benchmark, not a test: it prints figures, and exits 1 only if a timer fired twice or not at
all.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
from _figures import spread
from _stores import postgres_schema
from sqlalchemy import insert, select, update

from inbox.log_setup import configure_logging
from inbox.service.timers import SWEEP_SECONDS, Timers
from inbox.store.db import make_engine, make_sessionmaker, transaction, upgrade
from inbox.store.models import Conversation, Event, SlaTimer
from rules.holder import RulesInForce

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
RULES = """\
    agents:
      esko: {slack: UESKO}
    sla:
      - name: standard
        first_response: 4h
        escalate:
          - before: {first_response: 30m}
            then: {notify: {assignee: true}}
"""
CHUNK = 5000


def populate(writers: Any, count: int, start: datetime) -> None:
    """`count` open conversations due from a day ahead, with their two timers each."""
    with transaction(writers) as session:
        first_id = 1 + (
            session.scalar(select(Conversation.id).order_by(Conversation.id.desc())) or 0
        )
    for offset in range(0, count, CHUNK):
        ids = range(first_id + offset, first_id + min(count, offset + CHUNK))
        conversations, timers = [], []
        for number in ids:
            due = start + timedelta(days=1, seconds=number % 86400 * 10)
            conversations.append(_conversation(number, due, start))
            timers.append(_timer(number, -1, due, due))
            timers.append(_timer(number, 0, due, due - timedelta(minutes=30)))
        with transaction(writers) as session:
            session.execute(insert(Conversation), conversations)
            session.execute(insert(SlaTimer), timers)


def _conversation(number: int, due: datetime, now: datetime) -> dict[str, Any]:
    return {
        "id": number,
        "channel": "email",
        "thread_key": f"bench:{number}",
        "token": f"B{number:011d}",
        "subject": f"Tilaus {number}",
        "normalized_subject": f"tilaus {number}",
        "status": "open",
        "priority": "normal",
        "assignee": "esko",
        "language": "fi",
        "message_count": 1,
        "created_at": now,
        "updated_at": now,
        "last_message_at": now,
        "last_customer_message_at": now,
        "sla_policy": "standard",
        "first_response_due": due,
    }


def _timer(number: int, step: int, due: datetime, fire_at: datetime) -> dict[str, Any]:
    return {
        "conversation_id": number,
        "target": "first_response",
        "step": step,
        "due": due,
        "fire_at": fire_at,
    }


def make_due(writers: Any, ids: list[int], dues: list[datetime]) -> None:
    """These conversations' first response due at the given times, both their timers (the
    breach and its escalation) at that time: the delay measured is the breach's."""
    with transaction(writers) as session:
        for number, due in zip(ids, dues, strict=True):
            session.execute(
                update(Conversation).where(Conversation.id == number).values(first_response_due=due)
            )
            session.execute(
                update(SlaTimer)
                .where(SlaTimer.conversation_id == number)
                .values(due=due, fire_at=due)
            )


def breaches(readers: Any, since: datetime) -> list[tuple[int, datetime, datetime]]:
    with readers() as session:
        rows = session.execute(
            select(Event.conversation_id, Event.created_at, Event.detail).where(
                Event.kind == "sla_breached", Event.created_at >= since
            )
        ).all()
    return [(row[0], row[1], datetime.fromisoformat(str(row[2]["due"]))) for row in rows]


def run(label: str, url: str, args: argparse.Namespace, rules: RulesInForce) -> bool:
    upgrade(url)
    engine = make_engine(url)
    readers, writers = make_sessionmaker(engine), make_sessionmaker(engine, writer=True)
    ruleset = rules.current.ruleset
    ok = True
    try:
        began = time.perf_counter()
        start = datetime.now(UTC)
        populate(writers, args.conversations, start)
        print(
            f"{label}: {args.conversations:,} open conversations, {2 * args.conversations:,} "
            f"timers, written in {time.perf_counter() - began:.1f} s"
        )
        timers = Timers(writers, ruleset=lambda: ruleset, interval=args.interval, readers=readers)
        idle = []
        for _ in range(20):
            began = time.perf_counter()
            assert timers.run_once() == 0
            idle.append(time.perf_counter() - began)
        print(f"{label}: idle sweep over {2 * args.conversations:,} timers: {spread(idle)}")

        # Firing delay, with the sweep running in its thread as in the daemon.
        due_ids = list(range(1, args.due + 1))
        first_due = datetime.now(UTC) + timedelta(seconds=3)
        step = timedelta(seconds=args.window) / max(1, args.due)
        make_due(writers, due_ids, [first_due + step * index for index in range(args.due)])
        since = datetime.now(UTC)
        timers.start()
        deadline = time.monotonic() + args.window + 3 * args.interval + 30
        while time.monotonic() < deadline and len(breaches(readers, since)) < args.due:
            time.sleep(0.5)
        timers.stop()
        fired = breaches(readers, since)
        delays = [(at - due).total_seconds() for _, at, due in fired]
        once = Counter(number for number, _, _ in fired)
        exactly = len(once) == args.due and set(once.values()) == {1}
        ok = ok and exactly
        print(
            f"{label}: firing delay, {args.due:,} due over {args.window} s, sweep every "
            f"{args.interval:g} s: {spread(delays)}; {len(fired):,} of {args.due:,} fired, "
            f"exactly once: {'yes' if exactly else 'NO'}"
        )

        # A burst: all due at once.
        burst = list(
            range(args.due + 1, args.due + 1 + min(args.burst, args.conversations - args.due))
        )
        now = datetime.now(UTC) - timedelta(seconds=1)
        make_due(writers, burst, [now] * len(burst))
        since = datetime.now(UTC)
        began = time.perf_counter()
        sweeper = Timers(writers, ruleset=lambda: ruleset, readers=readers)
        while sweeper.run_once():
            pass
        seconds = time.perf_counter() - began
        fired = breaches(readers, since)
        once = Counter(number for number, _, _ in fired)
        exactly = len(once) == len(burst) and set(once.values()) == {1}
        ok = ok and exactly
        print(
            f"{label}: burst of {len(burst):,} due at once: fired in {seconds:.1f} s "
            f"({len(burst) / seconds:,.0f} conversations/s, a breach and an escalation each), "
            f"exactly once: {'yes' if exactly else 'NO'}"
        )
    finally:
        engine.dispose()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--window", type=float, default=30)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--interval", type=float, default=SWEEP_SECONDS)
    parser.add_argument(
        "--postgres", default=os.environ.get("INBOX_TEST_DATABASE_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    configure_logging("error", "console")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_text(textwrap.dedent(RULES), encoding="utf-8")
        rules = RulesInForce(path)
        ok = run("SQLite", f"sqlite:///{folder}/inbox.db", args, rules)
        if not args.no_postgres:
            url, drop = postgres_schema(args.postgres)
            try:
                ok = run("PostgreSQL", url, args, rules) and ok
            finally:
                drop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
