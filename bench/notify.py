"""Slack pings: from the commit that assigns a conversation to Slack's chat.postMessage.

    python bench/notify.py [--assignments 1000] [--agents 5] [--rate-limited 0.05]
                           [--batch-size 20] [--senders 4] [--per-channel-rate 0]

Stores N customer mails through the real pipeline with a rules file that assigns each new
conversation round-robin to one of the agents, into a fresh SQLite store, while the real
Notifier runs in its thread and sends to the fake Slack of the test suite (tests/fake_slack.py,
over HTTP with the real slack_sdk). Two runs:

- Slack answers at once (no failures);
- a fraction of chat.postMessage calls (--rate-limited, default 5%) answered 429 with
  Retry-After: 1, which holds back that agent's pings for a second.

For each it prints pings/s (first commit to last ping), the latency from the commit that wrote
a ping to the chat.postMessage that Slack accepted (median, p95, max), the same for the pings
that met no 429, and whether every ping was delivered exactly once (from the idempotency key in
each accepted message's metadata): a ping missing or sent twice makes the run exit 1. The
aim (from the issue): p95 under 1 s when Slack answers at once. A benchmark, not a test: it
prints figures and asserts only exactly-once.

The notifier's own pace per channel (slack.per_channel_rate, one post a second by default, as
Slack allows) is off here by default: 200 pings to each agent within seconds would measure the
pace, not the notifier. `--per-channel-rate 1` shows what it does to such a burst.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from collections import Counter
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
from _figures import spread
from slack_sdk import WebClient
from sqlalchemy import select

from inbox.config import Settings, SlackSettings
from inbox.log_setup import configure_logging
from inbox.outbox.notifier import Notifier
from inbox.pipeline.ingest import routed_pipeline
from inbox.raw import Batch, RawMessage
from inbox.store.models import OutboxItem, utcnow
from rules.holder import RulesInForce
from tests.fake_slack import FakeSlack

WORDS = "order invoice delivery refund account password login broken late missing".split()  # noqa: SIM905


def rules_text(agents: int) -> str:
    names = [f"agent{number}" for number in range(agents)]
    lines = [
        f"  {name}: {{slack: U{number:04d}, capacity: 100000}}" for number, name in enumerate(names)
    ]
    return textwrap.dedent(
        """\
        agents:
        {agents}
        teams:
          desk: {{members: [{members}], strategy: round_robin}}
        rules:
          - name: everything-to-the-desk
            when: {{channel: email}}
            then: {{assign: {{team: desk}}}}
        """
    ).format(agents="\n".join(lines), members=", ".join(names))


def customer_mail(number: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Customer {number} <customer{number}@example.com>"
    message["To"] = "support@desk.example"
    message["Subject"] = f"Question {number} about my {WORDS[number % len(WORDS)]}"
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(f"q{number}", "example.com")
    message.set_content(f"Hello, my {WORDS[(number * 7) % len(WORDS)]} needs help. " * 5)
    return message.as_bytes()


class Timed(FakeSlack):
    """The fake Slack, noting when it accepted each ping (by idempotency key)."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: dict[str, list[float]] = {}
        self.limited: set[str] = set()

    def handle(
        self, method: str, args: dict[str, Any], token: str
    ) -> tuple[int, dict[str, str], bytes]:
        answer = super().handle(method, args, token)
        if method == "chat.postMessage" and isinstance(args.get("metadata"), dict):
            key = str(args["metadata"].get("event_payload", {}).get("key") or "")
            if answer[0] == 200 and json.loads(answer[2]).get("ok"):
                self.accepted.setdefault(key, []).append(time.monotonic())
            elif answer[0] == 429:
                self.limited.add(key)
        return answer


def run(args: argparse.Namespace, rate_limited: float) -> bool:
    with tempfile.TemporaryDirectory() as directory, Timed() as slack:
        root = Path(directory)
        for number in range(args.agents):
            slack.add_user(f"U{number:04d}", name=f"agent{number}", real_name=f"Agent {number}")
        if rate_limited:
            slack.fail_fraction("chat.postMessage", rate_limited, status=429, retry_after=1)
        rules = root / "rules.yaml"
        rules.write_text(rules_text(args.agents), encoding="utf-8")
        url = f"sqlite:///{root / 'inbox.db'}"
        settings = Settings(database_url=url, ingest={"workers": 0})
        wired = routed_pipeline(settings, RulesInForce(rules))
        wired.migrate()
        notifier = Notifier(
            wired.writers,
            SlackSettings(senders=args.senders, per_channel_rate=args.per_channel_rate),
            client=WebClient(token=slack.bot_token, base_url=slack.url),
        )
        notifier.start()
        committed: dict[str, float] = {}
        last_id = 0
        started = time.monotonic()
        try:
            for start in range(0, args.assignments, args.batch_size):
                numbers = range(start, min(args.assignments, start + args.batch_size))
                batch = Batch(
                    connector="bench",
                    messages=[
                        RawMessage("bench", f"m{n}", "email", customer_mail(n), utcnow())
                        for n in numbers
                    ],
                )
                wired.pipeline.ingest(batch)
                now = time.monotonic()
                notifier.wake()
                with wired.readers() as session:
                    for item_id, key in session.execute(
                        select(OutboxItem.id, OutboxItem.idempotency_key).where(
                            OutboxItem.id > last_id
                        )
                    ):
                        committed[key] = now
                        last_id = max(last_id, item_id)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(slack.accepted) < len(committed):
                time.sleep(0.05)
        finally:
            notifier.stop()
            wired.close()
        return report(rate_limited, committed, slack, started)


def report(rate_limited: float, committed: dict[str, float], slack: Timed, started: float) -> bool:
    latencies = [slack.accepted[k][0] - t for k, t in committed.items() if k in slack.accepted]
    clean = [
        slack.accepted[k][0] - t
        for k, t in committed.items()
        if k in slack.accepted and k not in slack.limited
    ]
    counts = Counter({key: len(times) for key, times in slack.accepted.items()})
    missing = [key for key in committed if key not in slack.accepted]
    twice = [key for key, count in counts.items() if count > 1]
    last = max((times[0] for times in slack.accepted.values()), default=started)
    title = (
        f"{rate_limited:.0%} of postMessage answered 429"
        if rate_limited
        else "Slack answers at once"
    )
    print(f"{title}:")
    print(
        f"  {len(committed):,} pings committed, {len(slack.accepted):,} delivered in "
        f"{last - started:.2f} s: {len(slack.accepted) / max(1e-9, last - started):,.0f} pings/s"
    )
    print(f"  commit -> chat.postMessage, all pings:   {spread(latencies)}")
    print(f"  commit -> chat.postMessage, no 429 met:  {spread(clean)} ({len(clean):,} pings)")
    if rate_limited:
        print(f"  pings that met a 429: {len(slack.limited):,}")
    exact = not missing and not twice
    print(
        "  exactly once: "
        + ("yes" if exact else f"NO ({len(missing)} missing, {len(twice)} sent more than once)")
    )
    return exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--rate-limited", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--per-channel-rate", type=float, default=0.0)
    args = parser.parse_args()
    configure_logging("error", "console")
    ok = run(args, 0.0)
    ok = run(args, args.rate_limited) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
