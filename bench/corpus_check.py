"""Ingest a folder of real-world .eml files into a fresh store and count what happened.

    python bench/corpus_check.py ../shared/corpus/email [--database-url URL] [--show-errors]
    python bench/corpus_check.py --fixtures [--show-errors]

Prints how many were stored, stored as duplicates, parsed with errors, kept raw only and
crashed (the normalizer raised: always a bug), plus readability checks on the stored text.
Exits 1 if anything crashed or a message is missing from the store.

`--fixtures` runs the project's own fixtures of the real-world classes that came out wrong
(tests/normalize/realworld.py: raw CJK headers, charset aliases, mixed encoded words, broken
header blocks, display names) and prints, per class, how many read as their writer meant.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
from sqlalchemy import func, select

from connectors.mail_files import open_source
from inbox.config import Settings
from inbox.log_setup import configure_logging
from inbox.pipeline.ingest import BatchResult, unrouted_pipeline
from inbox.store.models import Message, RawRecord


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--fixtures", action="store_true", help="the classes' own fixtures")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--show-errors", action="store_true", help="list each problem")
    args = parser.parse_args()
    if args.fixtures:
        return check_fixtures(args.show_errors)
    if args.folder is None:
        parser.error("a folder of .eml files, or --fixtures")
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite:///{scratch}/corpus.db"
        return check(args.folder, url, args.show_errors)


def check(folder: Path, url: str, show_errors: bool) -> int:
    source = open_source(folder)
    totals = BatchResult()
    with unrouted_pipeline(Settings(database_url=url)) as wired, wired.readers() as session:
        wired.migrate()
        for batch in source.batches("corpus", 50):
            totals.add(wired.pipeline.ingest(batch))
        raw_count = session.scalar(select(func.count()).select_from(RawRecord)) or 0
        empty = session.scalar(
            select(func.count()).select_from(Message).where(Message.text == "", Message.html == "")
        )
        replaced = session.scalar(
            select(func.count()).select_from(Message).where(Message.text.contains("\ufffd"))
        )
        problems = session.execute(
            select(
                RawRecord.folder, RawRecord.external_id, RawRecord.error, Message.parse_errors
            ).outerjoin(Message, Message.id == RawRecord.message_id)
        ).all()
    print(f"files:                  {source.count}")
    print(f"raw messages kept:      {raw_count}")
    print(f"stored as messages:     {totals.stored}")
    print(f"duplicate deliveries:   {totals.duplicates}")
    print(f"already stored:         {totals.already_stored}")
    print(f"parsed with errors:     {totals.parse_errors}")
    print(f"kept raw only:          {totals.raw_only}")
    print(f"crashed:                {totals.crashed}")
    print(f"no text and no html:    {empty}")
    print(f"text with U+FFFD:       {replaced}")
    if show_errors:
        for folder_name, external_id, error, parse_errors in problems:
            if error or parse_errors:
                print(f"  {folder_name}/{external_id[:19]}: {error or '; '.join(parse_errors)}")
    # Files with identical bytes share one external id: "already stored" is not a loss.
    ok = totals.crashed == 0 and raw_count == totals.stored + totals.duplicates + totals.raw_only
    print("OK: every message stored, none crashed" if ok else "FAILED")
    return 0 if ok else 1


def check_fixtures(show_errors: bool) -> int:
    from inbox.normalize.email import normalize_email
    from tests.normalize.realworld import FIXTURES, mismatches

    by_kind: dict[str, list[tuple[str, list[str]]]] = {}
    for fixture in FIXTURES:
        found = mismatches(fixture, normalize_email(fixture.raw))
        by_kind.setdefault(fixture.kind, []).append((fixture.name, found))
    print(f"{'class':24} {'fixtures':>8} {'read right':>10}")
    for kind, results in by_kind.items():
        right = sum(not found for _, found in results)
        print(f"{kind:24} {len(results):>8} {right:>10}")
        if show_errors:
            for name, found in results:
                if found:
                    print(f"  {name}: {'; '.join(found)}")
    wrong = sum(bool(found) for results in by_kind.values() for _, found in results)
    print(f"{'all':24} {len(FIXTURES):>8} {len(FIXTURES) - wrong:>10}")
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
