"""Ingest throughput: bare parsing, normalizing, and the whole pipeline into SQLite and PostgreSQL.

    python bench/ingest.py [--messages 10000] [--postgres URL | --no-postgres] [--batch-size 200]

Generates N varied messages (languages, charsets, HTML, attachments, replies) into a Maildir,
then in one run prints messages/s for:

- the bare `email.message_from_bytes(..., policy=compat32)` parse (the ceiling for Python),
- normalize only (our parser: charsets, HTML to text, reply split, language detection),
- the whole pipeline, Maildir connector to committed rows, into SQLite and into PostgreSQL,
  and into SQLite again with the example desk's rules (rules/examples/desk.yaml) applied,

with the resident memory sampled as the pipeline goes (it must stay flat as N grows) and the
peak. A benchmark, not a test: it prints figures, and checks only that each store holds every
message afterwards (a fast run that lost mail measures nothing; it exits 1 then).
"""

from __future__ import annotations

import argparse
import email
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from email import policy
from pathlib import Path

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
from _stores import postgres_schema
from sqlalchemy import func, select

from connectors.maildir import MaildirConfig, MaildirConnector
from inbox.config import Settings, default_workers
from inbox.demo.generate import write_maildir
from inbox.log_setup import configure_logging
from inbox.normalize.email import normalize_email
from inbox.pipeline.ingest import routed_pipeline
from inbox.store.models import Message
from rules import example_rules_path
from rules.holder import RulesInForce

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """RUSAGE_CHILDREN: the largest of the ended workers (their pools are shut down)."""
    return resource.getrusage(who).ru_maxrss / 1e3


def files(maildir: Path) -> Iterator[bytes]:
    for path in sorted((maildir / "new").iterdir()):
        yield path.read_bytes()


def rate(label: str, n: int, work: Callable[[], int | None]) -> float:
    """Runs `work` and prints its rate; a pipeline run returns how many messages its store
    holds afterwards, and a figure for a store that lost some is said to be worthless."""
    started = time.perf_counter()
    held = work()
    seconds = time.perf_counter() - started
    per_second = n / seconds
    checked = ""
    if held is not None:
        checked = "   store holds all" if held == n else f"   STORE HOLDS {held:,} OF {n:,}"
        if held != n:
            MISSING.append(label)
    print(f"{label:<34} {per_second:>8,.0f} msg/s   ({seconds:6.2f} s){checked}")
    return per_second


#: The runs whose store did not hold every message: the benchmark exits 1 if any.
MISSING: list[str] = []


def parse_bare(maildir: Path) -> None:
    for payload in files(maildir):
        email.message_from_bytes(payload, policy=policy.compat32)


def normalize_all(maildir: Path, languages: list[str]) -> None:
    for payload in files(maildir):
        normalize_email(payload, languages=languages)


def pipeline_into(
    url: str,
    maildir: Path,
    messages: int,
    batch_size: int,
    samples: list[str],
    workers: int,
    rules: RulesInForce | None = None,
) -> int:
    """The whole pipeline from the Maildir into a fresh store; the messages stored."""
    settings = Settings(database_url=url, ingest={"workers": workers})
    with routed_pipeline(settings, rules) as wired:
        wired.migrate()
        connector = MaildirConnector(MaildirConfig(name="bench", type="maildir", path=maildir))
        every = max(messages // 5, 1)
        done = 0
        next_sample = every
        for batch, _result in wired.pipeline.ingest_many(connector.fetch({}, batch_size)):
            done += len(batch.messages)
            if done >= next_sample:
                samples.append(f"{done}: {rss_mb():.0f} MB")
                next_sample += every
        with wired.readers() as session:
            return session.scalar(select(func.count()).select_from(Message)) or 0


def main() -> None:
    parser = argparse.ArgumentParser(description="Inbox ingest throughput")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument(
        "--postgres", default=os.environ.get("INBOX_TEST_DATABASE_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="normalizing worker processes (default, as in the config: one per CPU, up to 4)",
    )
    args = parser.parse_args()
    configure_logging("warning", "console")
    languages = Settings().ingest.languages
    with tempfile.TemporaryDirectory() as scratch:
        maildir = Path(scratch) / "maildir"
        started = time.perf_counter()
        write_maildir(maildir, args.messages, seed=1)
        size = sum(p.stat().st_size for p in (maildir / "new").iterdir())
        print(
            f"{args.messages:,} messages, {size / 1e6:.1f} MB, generated in "
            f"{time.perf_counter() - started:.1f} s; batch size {args.batch_size}"
        )
        n = args.messages
        bare = rate("bare compat32 parse", n, lambda: parse_bare(maildir))
        rate("normalize only", n, lambda: normalize_all(maildir, languages))
        rate("normalize, no language detection", n, lambda: normalize_all(maildir, []))
        samples: list[str] = []
        sqlite_url = f"sqlite:///{scratch}/bench.db"
        rate(
            "pipeline into SQLite, one process",
            n,
            lambda: pipeline_into(f"{sqlite_url}.1", maildir, n, args.batch_size, [], workers=0),
        )
        sqlite = rate(
            f"pipeline into SQLite, {args.workers} worker(s)",
            n,
            lambda: pipeline_into(sqlite_url, maildir, n, args.batch_size, samples, args.workers),
        )
        print(f"{'':<34} RSS as it went (main process): {', '.join(samples)}")
        print(f"{'':<34} {sqlite / bare:.0%} of the bare compat32 rate")
        desk = RulesInForce(example_rules_path())
        rate(
            f"  the same with the example rules ({len(desk.current.ruleset.rules)})",
            n,
            lambda: pipeline_into(
                f"{sqlite_url}.rules", maildir, n, args.batch_size, [], args.workers, desk
            ),
        )
        if not args.no_postgres:
            url, drop = postgres_schema(args.postgres)
            try:
                samples = []
                rate(
                    f"pipeline into PostgreSQL, {args.workers} worker(s)",
                    n,
                    lambda: pipeline_into(url, maildir, n, args.batch_size, samples, args.workers),
                )
                print(f"{'':<34} RSS as it went (main process): {', '.join(samples)}")
            finally:
                drop()
    print(
        f"peak RSS: main process {peak_rss_mb():.0f} MB, "
        f"largest worker {peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB"
    )
    if MISSING:
        raise SystemExit(f"a store did not hold every message: {', '.join(MISSING)}")


if __name__ == "__main__":
    main()
