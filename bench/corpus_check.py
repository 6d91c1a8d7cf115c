"""Ingest a folder of real-world .eml files into a fresh store and count what happened.

    python bench/corpus_check.py ../shared/corpus/email [--database-url URL] [--show-errors]

Prints how many were stored, stored as duplicates, parsed with errors, kept raw only and
crashed (the normalizer raised: always a bug), plus readability checks on the stored text.
Exits 1 if anything crashed or a message is missing from the store.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _checkout  # noqa: F401  (first: see bench/_checkout.py)
from sqlalchemy import func, select

from inbox.config import Settings
from inbox.db import make_engine, make_sessionmaker, upgrade
from inbox.importer import open_source
from inbox.log_setup import configure_logging
from inbox.models import Message, RawRecord
from inbox.pipeline import BatchResult, Pipeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--show-errors", action="store_true", help="list each problem")
    args = parser.parse_args()
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite:///{scratch}/corpus.db"
        return check(args.folder, url, args.show_errors)


def check(folder: Path, url: str, show_errors: bool) -> int:
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(database_url=url)
    pipeline = Pipeline(make_sessionmaker(engine), make_sessionmaker(engine, writer=True), settings)
    source = open_source(folder)
    totals = BatchResult()
    for batch in source.batches("corpus", 50):
        totals.add(pipeline.ingest(batch))
    with make_sessionmaker(engine)() as session:
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
    engine.dispose()
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


if __name__ == "__main__":
    sys.exit(main())
