"""From a connector's batch to stored conversations: normalize, thread, store, in one commit.

One batch is one transaction: the raw records, the messages, their conversations, the audit
events and the connector's new cursor commit together or not at all. A crash anywhere before
the commit leaves the old cursor, so the same batch is fetched again; the unique constraint on
(connector, external_id) and the check of what is already stored make the store exactly-once.

Normalizing is pure and runs before the transaction opens, so the write lock is held only for
the inserts.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from inbox.config import Settings
from inbox.normalize.prepare import (
    Outcome,
    Prepared,
    join,
    outcomes,
    prepare_all,
    warm_up,
)
from inbox.pipeline.workers import worker_init
from inbox.raw import Batch, RawMessage
from inbox.routing.follow_up import follow_up_pings
from inbox.routing.rules_pass import Tally, run_rules
from inbox.store.batch_writer import BatchResult, BatchWriter
from inbox.store.db import make_engine, make_sessionmaker, transaction, upgrade
from inbox.store.leases import LeaseLost
from inbox.store.models import (
    Cursor,
    RawRecord,
    utcnow,
)
from inbox.store.sql import chunked
from rules.holder import RulesInForce

log = structlog.get_logger(__name__)

#: Runs first in a batch's transaction (session, connector name); raises to refuse the batch.
Fence = Callable[[Session, str], None]

#: batch_stored names the conversations the batch wrote to, so that at INFO an operator can
#: find when a conversation's messages arrived; past this many the line would outgrow
#: journald's default LineMax (48 KiB) and be split, so the rest are left to DEBUG lines.
LOGGED_CONVERSATIONS = 1000


@dataclass(slots=True)
class StageSeconds:
    """Where the main process's time went, summed over every batch since the pipeline was made.

    Read by bench/imap.py to say what a sync waits on; kept here, not in a subclass of the
    benchmark's, so that the figures follow the pipeline as it changes. Connectors that ingest
    from several threads at once may lose an addition now and then: figures, not accounts.
    """

    #: Finding what is new, then normalizing here or handing the batch to a worker.
    preparing: float = 0.0
    #: Waiting for a worker's normalized batch.
    waiting: float = 0.0
    #: The batch's transaction: threading, contacts, rules, the commit.
    storing: float = 0.0


@dataclass(frozen=True, slots=True)
class _Pending:
    """A batch whose normalizing is under way (in a worker) or done."""

    batch: Batch
    fresh: list[RawMessage]
    future: Future[list[Outcome]]
    started: float


class Pipeline:
    def __init__(
        self,
        readers: sessionmaker[Session],
        writers: sessionmaker[Session],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        rules: RulesInForce | None = None,
    ) -> None:
        self.readers = readers
        #: Routing rules run on each batch's new messages in its transaction (None: no rules).
        self.rules = rules
        self.writers = writers
        self.settings = settings
        self.clock = clock
        self.languages = list(settings.ingest.languages)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_broken = False
        #: Connectors ingest from their own threads: the worker pool is made once, and the
        #: batches are written one at a time (SQLite has one writer; so does our identity
        #: and thread bookkeeping within a batch).
        self._pool_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._warming: list[Future[None]] = []
        self.stage_seconds = StageSeconds()

    def ingest(self, batch: Batch) -> BatchResult:
        """Normalize and store one batch, in this process."""
        started = time.perf_counter()
        prepared = prepare_all(self._fresh(batch), self.languages)
        self.stage_seconds.preparing += time.perf_counter() - started
        return self._store(batch, prepared, started)

    def ingest_many(
        self, batches: Iterable[Batch], *, fence: Fence | None = None
    ) -> Iterator[tuple[Batch, BatchResult]]:
        """Store batches in order, normalizing the next ones in worker processes meanwhile.

        Each batch is committed before the next, so cursors advance in order; the caller can
        stop between two batches (what was normalized ahead is simply fetched again later).
        `fence` runs first in each batch's transaction and may refuse the batch by raising
        (the daemon's connector lease: inbox/store/leases.py).

        When the connector fails part way (a dropped connection, an API that refuses the
        catch-up after the spool was read), every batch it yielded before is still stored,
        with its cursor, and then its error is raised: the batches taken ahead are not lost
        with the rest of the poll.
        """
        pending: deque[_Pending] = deque()
        ahead = max(1, self.settings.ingest.workers)
        self._worker_pool()  # workers start up while the first batch is normalized here
        fetching = iter(batches)
        failure: Exception | None = None
        while failure is None:
            try:
                batch = next(fetching)
            except StopIteration:
                break
            except Exception as error:
                failure = error
                break
            pending.append(self._submit(batch, overlap=bool(pending)))
            if len(pending) > ahead:
                done = pending.popleft()
                yield done.batch, self._finish(done, fence)
        while pending:
            done = pending.popleft()
            yield done.batch, self._finish(done, fence)
        if failure is not None:
            raise failure

    def cursors(self, connector: str) -> dict[str, str]:
        """The connector's committed cursors: scope (a folder, a channel) -> value."""
        with self.readers() as session:
            rows = session.scalars(select(Cursor).where(Cursor.connector == connector))
            return {row.scope: row.value for row in rows}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _submit(self, batch: Batch, *, overlap: bool) -> _Pending:
        began = time.perf_counter()
        try:
            return self._hand_over(batch, overlap=overlap)
        finally:
            self.stage_seconds.preparing += time.perf_counter() - began

    def _hand_over(self, batch: Batch, *, overlap: bool) -> _Pending:
        fresh = self._fresh(batch)
        started = time.perf_counter()
        pool = self._worker_pool() if overlap else None
        if pool is not None and not all(future.done() for future in self._warming):
            pool = None  # still starting: normalizing here meanwhile beats waiting for them
        if pool is not None:
            try:
                return _Pending(batch, fresh, pool.submit(outcomes, fresh, self.languages), started)
            except (BrokenExecutor, RuntimeError) as error:
                self._pool_failed(error)
        done: Future[list[Outcome]] = Future()
        done.set_result(outcomes(fresh, self.languages))
        return _Pending(batch, fresh, done, started)

    def _finish(self, pending: _Pending, fence: Fence | None = None) -> BatchResult:
        began = time.perf_counter()
        try:
            results = pending.future.result()
        except BrokenExecutor as error:
            self._pool_failed(error)
            results = outcomes(pending.fresh, self.languages)
        self.stage_seconds.waiting += time.perf_counter() - began
        return self._store(pending.batch, join(pending.fresh, results), pending.started, fence)

    def _worker_pool(self) -> ProcessPoolExecutor | None:
        with self._pool_lock:
            return self._make_worker_pool()

    def _make_worker_pool(self) -> ProcessPoolExecutor | None:
        workers = self.settings.ingest.workers
        if workers < 1 or self._pool_broken:
            return None
        if self._pool is None:
            logging = self.settings.logging
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                # spawn, not fork: the parent holds database connections and threads.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_init,
                initargs=(os.getpid(), logging.level, logging.format),
            )
            # Starting a worker (an interpreter, our imports, the language models) takes about
            # half a second: ask each for a small job now, so that none starts on real mail.
            self._warming = [self._pool.submit(warm_up, self.languages) for _ in range(workers)]
        return self._pool

    def _pool_failed(self, error: BaseException) -> None:
        log.warning("normalize_workers_failed_working_inline", error=repr(error)[:300])
        self._pool_broken = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _fresh(self, batch: Batch) -> list[RawMessage]:
        known = self._already_stored(self.readers, batch.connector, batch.messages)
        return _unique([raw for raw in batch.messages if raw.external_id not in known])

    def _store(
        self, batch: Batch, prepared: list[Prepared], started: float, fence: Fence | None = None
    ) -> BatchResult:
        # Every line logged while the batch is written names its connector, the rules'
        # decisions (conversation_assigned, ...) included: the rules know conversations, not
        # where a message came from, and an operator reading journald wants both.
        began = time.perf_counter()
        try:
            with (
                self._write_lock,
                structlog.contextvars.bound_contextvars(connector=batch.connector),
            ):
                return self._store_now(batch, prepared, started, fence)
        finally:
            self.stage_seconds.storing += time.perf_counter() - began

    def _store_now(
        self, batch: Batch, prepared: list[Prepared], started: float, fence: Fence | None
    ) -> BatchResult:
        try:
            result = self._write(batch, prepared, careful=False, fence=fence)
        except (OperationalError, InterfaceError, LeaseLost):
            raise  # the database is away or locked, or the batch is not ours to store
        except Exception as error:
            # One message the store refuses must not block its connector forever: store the
            # batch again one message per savepoint, keeping the refused one raw-only.
            log.warning(
                "batch_failed_retrying_one_by_one",
                connector=batch.connector,
                error=repr(error)[:300],
            )
            result = self._write(batch, prepared, careful=True, fence=fence)
        result.already_stored = (
            len(batch.messages) - result.stored - result.duplicates - result.raw_only
        )
        result.seconds = time.perf_counter() - started
        # A poll that found nothing new (or only what is stored already) is a DEBUG line: at
        # INFO, a Maildir polled every few seconds would fill the journal with empty batches.
        new = result.stored + result.duplicates + result.raw_only + result.crashed
        (log.info if new else log.debug)(
            "batch_stored",
            connector=batch.connector,
            stored=result.stored,
            duplicates=result.duplicates,
            already_stored=result.already_stored,
            parse_errors=result.parse_errors,
            raw_only=result.raw_only,
            crashed=result.crashed,
            seconds=round(result.seconds, 3),
            conversation_ids=result.conversation_ids[:LOGGED_CONVERSATIONS],
        )
        return result

    def _write(
        self, batch: Batch, prepared: list[Prepared], *, careful: bool, fence: Fence | None
    ) -> BatchResult:
        began = self.clock()
        with transaction(self.writers) as session, session.no_autoflush:
            if fence is not None:
                fence(session, batch.connector)
            # Another process may have stored some since the first look.
            known_now = self._already_stored(session, batch.connector, [p.raw for p in prepared])
            todo = [item for item in prepared if item.raw.external_id not in known_now]
            writer = BatchWriter(session, self.settings, self.clock, batch.connector)
            writer.prefetch(todo)
            for index, item in enumerate(todo):
                if careful:
                    writer.add_isolated(item, todo[index + 1 :])
                else:
                    writer.add(item)
            if batch.cursor_after is not None:
                session.merge(
                    Cursor(
                        connector=batch.connector,
                        scope=batch.cursor_scope,
                        value=batch.cursor_after,
                        updated_at=self.clock(),
                    )
                )
            writer.finish()
            session.flush()
            arrivals = writer.arrivals()
            if self.rules is not None:
                # One reference per batch: a reload in between never mixes two rule sets.
                compiled = self.rules.current
                tally = Tally()
                run_rules(
                    session,
                    compiled,
                    arrivals,
                    now=self.clock(),
                    batch_started=began,
                    tally=tally,
                    answers=self.rules.answers.current(),
                )
                writer.result.rule_decisions.update(tally.decisions)
                writer.result.assignments.update(tally.assignments)
                session.flush()
            follow_up_pings(session, arrivals, self.clock())
            writer.log_stored()
        result = writer.result
        result.conversation_ids = list(dict.fromkeys(c.id for c in writer.conversations))
        return result

    def _already_stored(
        self, source: sessionmaker[Session] | Session, connector: str, raws: Sequence[RawMessage]
    ) -> set[str]:
        ids = [raw.external_id for raw in raws]
        if not ids:
            return set()
        if isinstance(source, Session):
            return _known_ids(source, connector, ids)
        with source() as session:
            return _known_ids(session, connector, ids)


def _known_ids(session: Session, connector: str, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for chunk in chunked(ids):
        known.update(
            session.scalars(
                select(RawRecord.external_id).where(
                    RawRecord.connector == connector, RawRecord.external_id.in_(chunk)
                )
            )
        )
    return known


def _unique(raws: list[RawMessage]) -> list[RawMessage]:
    """A connector may list one item twice in a batch (a file seen in new/ and cur/)."""
    seen: set[str] = set()
    unique = []
    for raw in raws:
        if raw.external_id not in seen:
            seen.add(raw.external_id)
            unique.append(raw)
    return unique


class WiredPipeline:
    """A pipeline on an engine of its own, with the session factories that the leases and the
    notifier beside it share: built the same way by the daemon, `inbox ingest` and `inbox sync`
    (`routed_pipeline`, `unrouted_pipeline`), and closed in one place, the pipeline's worker
    processes before the engine's connections.

    Building it touches no database; `migrate` does, where the caller is ready for it to fail.
    """

    def __init__(self, settings: Settings, *, rules: RulesInForce | None) -> None:
        self.url = settings.effective_database_url
        self.engine = make_engine(self.url)
        self.readers = make_sessionmaker(self.engine)
        self.writers = make_sessionmaker(self.engine, writer=True)
        self.pipeline = Pipeline(self.readers, self.writers, settings, rules=rules)

    def migrate(self) -> None:
        """Bring the store's schema to this version's (a no-op when it is there)."""
        upgrade(self.url)

    def close(self) -> None:
        self.pipeline.close()
        self.engine.dispose()

    def __enter__(self) -> WiredPipeline:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def routed_pipeline(settings: Settings, rules: RulesInForce | None) -> WiredPipeline:
    """What arrives is routed by `rules` in the batch's transaction (None when no rules file is
    configured: stored unrouted, as the CLI warns at start)."""
    return WiredPipeline(settings, rules=rules)


def unrouted_pipeline(settings: Settings) -> WiredPipeline:
    """What arrives is stored and threaded, never routed: an archive imported today is history,
    and must not assign or ping anyone."""
    return WiredPipeline(settings, rules=None)
