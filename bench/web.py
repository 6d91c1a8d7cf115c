"""The web desk's queue page at size: how long an agent waits for it, over real HTTP.

    python bench/web.py [--conversations 100000] [--requests 40] [--postgres URL | --sqlite]

Into a fresh store (PostgreSQL by default), N conversations (80% open, spread over five teams,
twelve agents, four priorities, three channels, six languages, a tag on one in ten, an SLA due
time on half, some of those past), each with its first message; then the daemon's web server
(waitress) with the desk mounted, an agent logged in with a session cookie as a browser would,
and `--requests` GETs of each page below, one after another. Printed: median, p95 and max per
page, and the p95 of them all.

A benchmark, not a test: it prints figures, and exits 1 only if a page answers other than 200
or shows no rows where it must.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
import requests
from _figures import spread
from _stores import postgres_schema
from sqlalchemy import insert, select

from inbox.config import DeskSettings
from inbox.desk.app import Desk
from inbox.desk.sessions import Sessions
from inbox.desk.users import Users, set_password
from inbox.log_setup import configure_logging
from inbox.service.web import WebServer
from inbox.store.db import make_engine, make_sessionmaker, transaction, upgrade
from inbox.store.models import Conversation, ConversationTag, Message, Tag
from rules.holder import RulesInForce

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
TEAMS = ("support", "billing", "returns", "b2b", "nordics")
AGENTS = [f"agent{n:02d}" for n in range(12)]
PRIORITIES = ("low", "normal", "normal", "normal", "high", "urgent")
LANGUAGES = ("fi", "et", "el", "ru", "en", "sv")
CHANNELS = ("email", "email", "sms", "chat")
PASSWORD = "benchmark password"
CHUNK = 5000
#: The pages an agent and a lead open most, as the desk's links write them.
PAGES = {
    "queue (open, newest)": "/desk/",
    "mine": "/desk/?assignee=me",
    "a team's": "/desk/?team=billing",
    "unassigned, waiting longest": "/desk/?assignee=none&sort=waiting",
    "SLA breached, soonest due": "/desk/?sla=breached&sort=due",
    "by priority": "/desk/?sort=priority",
    "a tag": "/desk/?tag=vip",
    "subject search": "/desk/?search=tilaus%20123",
    "page 40": "/desk/?page=40",
    "the polled rows": "/desk/queue/rows",
}


def rules_text() -> str:
    agents = "\n".join(f"  {name}: {{languages: [fi, en]}}" for name in AGENTS)
    teams = "\n".join(
        f"  {team}: {{members: [{', '.join(AGENTS[i :: len(TEAMS)])}]}}"
        for i, team in enumerate(TEAMS)
    )
    return f"agents:\n{agents}\nteams:\n{teams}\nrules: []\n"


def populate(writers: Any, count: int, now: datetime) -> None:
    with transaction(writers) as session:
        session.execute(insert(Tag), [{"name": "vip"}])
        vip = session.scalar(select(Tag.id).where(Tag.name == "vip"))
    for offset in range(0, count, CHUNK):
        conversations, messages, tags = [], [], []
        for number in range(offset + 1, min(count, offset + CHUNK) + 1):
            at = now - timedelta(minutes=number % 50_000)
            conversations.append(_conversation(number, at, now))
            messages.append(_message(number, at))
            if number % 10 == 3:
                tags.append({"conversation_id": number, "tag_id": vip})
        with transaction(writers) as session:
            session.execute(insert(Conversation), conversations)
            session.execute(insert(Message), messages)
            if tags:
                session.execute(insert(ConversationTag), tags)


def _conversation(number: int, at: datetime, now: datetime) -> dict[str, Any]:
    due = None
    if number % 2 == 0:
        due = now + timedelta(minutes=(number % 600) - 100)  # a sixth of them past
    return {
        "id": number,
        "channel": CHANNELS[number % len(CHANNELS)],
        "thread_key": f"bench:{number}",
        "token": f"W{number:011d}",
        "subject": f"Tilaus {number}: toimitus myöhässä",
        "normalized_subject": f"tilaus {number}: toimitus myöhässä",
        "status": "open" if number % 5 else "closed",
        "priority": PRIORITIES[number % len(PRIORITIES)],
        "team": TEAMS[number % len(TEAMS)],
        "assignee": None if number % 4 == 0 else AGENTS[number % len(AGENTS)],
        "language": LANGUAGES[number % len(LANGUAGES)],
        "message_count": 1,
        "created_at": at,
        "updated_at": at,
        "last_message_at": at,
        "last_customer_message_at": at,
        "sla_policy": "standard" if due else "",
        "first_response_due": due,
    }


def _message(number: int, at: datetime) -> dict[str, Any]:
    return {
        "conversation_id": number,
        "channel": "email",
        "connector": "bench",
        "external_id": f"w{number}",
        "direction": "in",
        "from_address": f"customer{number}@example.fi",
        "from_name": f"Asiakas {number}",
        "subject": f"Tilaus {number}: toimitus myöhässä",
        "text": "Hei, missä tilaukseni on?",
        "dedupe_key": f"web-bench-{number}",
        "received_at": at,
        "sent_at": at,
    }


def settle(engine: Any) -> None:
    """The statistics and visibility map a store in use has (autovacuum's work, which may be
    off or not have come round yet on a store just filled): without them the planner guesses
    a few rows where there are 80,000, and index-only scans read the table anyway."""
    vacuum = "VACUUM (ANALYZE)" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(vacuum)


def measure(base: str, requests_per_page: int) -> tuple[dict[str, list[float]], list[str]]:
    client = requests.Session()
    form = client.get(f"{base}/desk/login", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, form.text[:300]
    logged_in = client.post(
        f"{base}/desk/login",
        data={"name": AGENTS[1], "password": PASSWORD, "csrf": token.group(1), "next": "/desk/"},
        allow_redirects=False,
        timeout=30,
    )
    assert logged_in.status_code == 303, logged_in.text[:300]
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    problems: list[str] = []
    for _ in range(requests_per_page):
        for name, path in PAGES.items():
            started = time.perf_counter()
            response = client.get(f"{base}{path}", timeout=60)
            times[name].append(time.perf_counter() - started)
            if response.status_code != 200 or 'data-id="' not in response.text:
                problems.append(
                    f"{name}: {response.status_code}, rows: {'data-id' in response.text}"
                )
    return times, sorted(set(problems))


def run(label: str, url: str, args: argparse.Namespace, folder: Path) -> bool:
    upgrade(url)
    engine = make_engine(url)
    writers = make_sessionmaker(engine, writer=True)
    readers = make_sessionmaker(engine)
    now = datetime.now(UTC)
    started = time.perf_counter()
    populate(writers, args.conversations, now)
    print(
        f"{label}: {args.conversations:,} conversations written in "
        f"{time.perf_counter() - started:.1f} s"
    )
    settle(engine)
    rules_file = folder / "rules.yaml"
    rules_file.write_text(rules_text(), encoding="utf-8")
    rules = RulesInForce(rules_file)
    users_file = folder / "desk-users"
    set_password(users_file, AGENTS[1], "agent", PASSWORD)
    desk = Desk(
        DeskSettings(users_file=users_file),
        writers=writers,
        readers=readers,
        users=Users(users_file),
        sessions=Sessions("bench secret", max_age_seconds=3600),
        rules=rules,
    )
    server = WebServer({}, host="127.0.0.1", port=0, mounts={"/desk": desk}).start()
    try:
        times, problems = measure(server.url, args.requests)
    finally:
        server.stop()
        engine.dispose()
    everything: list[float] = []
    for name, values in times.items():
        everything += values
        print(f"  {name:<30} {spread(values)}")
    print(
        f"{label}: queue pages over {args.conversations:,} conversations, all: {spread(everything)}"
    )
    for problem in problems:
        print(f"  PROBLEM {problem}")
    return not problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument(
        "--postgres", default=os.environ.get("INBOX_TEST_DATABASE_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL.")
    args = parser.parse_args()
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory() as folder:
        if args.sqlite:
            ok = run("SQLite", f"sqlite:///{folder}/inbox.db", args, Path(folder))
        else:
            url, drop = postgres_schema(args.postgres)
            try:
                ok = run("PostgreSQL", url, args, Path(folder))
            finally:
                drop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
