"""The daemon's timers: what falls due in the store by the clock rather than by a message
(snoozes ending today; SLA deadlines to come). One thread sweeps them every `interval`
seconds; each sweep is one transaction, and what it claims is locked with `SKIP LOCKED`, so
several daemons on one PostgreSQL store fire each timer once. A timer missed while no daemon
ran fires at the first sweep after.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from inbox.routing.snooze import wake_snoozed
from inbox.store.db import transaction
from inbox.store.models import utcnow

log = structlog.get_logger(__name__)

SWEEP_SECONDS = 5.0


class Timers:
    def __init__(
        self,
        writers: sessionmaker[Session],
        *,
        slack_of: Callable[[str], str] = lambda agent: "",
        clock: Callable[[], datetime] = utcnow,
        interval: float = SWEEP_SECONDS,
    ) -> None:
        self.writers = writers
        self.slack_of = slack_of
        self.clock = clock
        self.interval = interval
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: Called with the conversations a sweep changed (wakes the notifier).
        self.fired: Callable[[list[int]], None] = lambda conversations: None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="timers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.run_once()
            except Exception:  # the store is away, or a bug: never die, sweep again shortly
                log.exception("timers_sweep_failed")
            self.stopping.wait(self.interval)

    def run_once(self) -> int:
        """One sweep; how many conversations it changed."""
        with transaction(self.writers) as session:
            woken = wake_snoozed(session, self.clock(), slack_of=self.slack_of)
        if woken:
            log.info("snoozes_ended", conversations=woken[:50], count=len(woken))
            self.fired(woken)
        return len(woken)
