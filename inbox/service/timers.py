"""The daemon's timers: what falls due in the store by the clock rather than by a message
(snoozes that end; SLA targets that come near or pass; surveys of closed conversations). One
thread sweeps them every `interval` seconds; each sweep is one transaction, and what it claims
is locked with `SKIP LOCKED`, so several daemons on one PostgreSQL store fire each timer once.
A timer missed while no daemon ran fires at the first sweep after.

When the rules in force change (a reload), every conversation not closed has its SLA policy
chosen again (inbox/routing/sla.py recheck), a batch per sweep with no wait between batches,
so that a new target or escalation step applies to what is open, not only to what comes next.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from inbox.routing.sla import fire_due, recheck_open, timer_due
from inbox.routing.snooze import snooze_over, wake_snoozed
from inbox.routing.survey import send_surveys, survey_due
from inbox.store.db import transaction
from inbox.store.models import utcnow
from rules.answers import Answers
from rules.model import RuleSet

log = structlog.get_logger(__name__)

SWEEP_SECONDS = 1.0


class Timers:
    def __init__(
        self,
        writers: sessionmaker[Session],
        *,
        slack_of: Callable[[str], str] = lambda agent: "",
        ruleset: Callable[[], RuleSet | None] = lambda: None,
        answers: Callable[[], Answers | None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
        interval: float = SWEEP_SECONDS,
        readers: sessionmaker[Session] | None = None,
    ) -> None:
        self.writers = writers
        #: To look whether anything is due before taking the write lock (None: always write).
        self.readers = readers
        self.slack_of = slack_of
        #: The rules in force: their SLA policies say what an escalation does.
        self.ruleset = ruleset
        #: The canned answers in force: surveys are answers.
        self.answers = answers
        self.clock = clock
        self.interval = interval
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: What this process's sweeps fired, by (target, team) and (target, kind) (/metrics).
        self.breaches: Counter[tuple[str, str]] = Counter()
        self.escalations: Counter[str] = Counter()
        #: Called with the conversations a sweep changed (wakes the notifier), and with
        #: those it sent a survey to (wakes the reply sender).
        self.fired: Callable[[list[int]], None] = lambda conversations: None
        self.surveyed: Callable[[list[int]], None] = lambda conversations: None
        #: The rules version the SLA due times were last made with, and how far a recheck of
        #: the open conversations has come (None: none under way).
        self._version: str | None = None
        self._recheck_after: int | None = None

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
            if self._recheck_after is None:
                self.stopping.wait(self.interval)

    def _anything_due(self, readers: sessionmaker[Session]) -> bool:
        now = self.clock()
        with readers() as session:
            return any(
                session.scalar(select(exists().where(condition)))
                for condition in (snooze_over(now), timer_due(now), survey_due(now))
            )

    def _recheck(self, ruleset: RuleSet | None) -> None:
        """A batch of the recheck a rules change asks for (the first rules seen start none:
        the conversations were made with them, or with what the last daemon had)."""
        if ruleset is None:
            return
        if self._version is None:
            self._version = ruleset.version
        elif ruleset.version != self._version:
            self._version = ruleset.version
            self._recheck_after = 0
            log.info("sla_recheck_started", rules_version=ruleset.version)
        if self._recheck_after is None:
            return
        with transaction(self.writers) as session:
            done = recheck_open(session, ruleset, self.clock(), after_id=self._recheck_after)
        if done is None:
            log.info("sla_recheck_done", rules_version=ruleset.version)
        self._recheck_after = done

    def run_once(self) -> int:
        """One sweep; how many conversations it changed."""
        ruleset = self.ruleset()
        self._recheck(ruleset)
        if self.readers is not None and not self._anything_due(self.readers):
            return 0  # no write lock taken (SQLite has one for the whole store)
        with transaction(self.writers) as session:
            now = self.clock()
            woken = wake_snoozed(session, now, slack_of=self.slack_of, ruleset=ruleset)
            fired = fire_due(session, now, ruleset)
            surveyed = send_surveys(session, now, self.answers())
        while not fired.claimed_all:  # a backlog (a burst, a daemon back): on at once, in batches
            with transaction(self.writers) as session:
                more = fire_due(session, now, ruleset)
            fired.extend(more)
            fired.claimed_all = more.claimed_all
        if woken:
            log.info("snoozes_ended", conversations=woken[:50], count=len(woken))
        if surveyed:
            log.info("surveys_sent", conversations=surveyed[:50], count=len(surveyed))
            self.surveyed(surveyed)
        for item in fired:
            if item.kind == "breach":
                self.breaches[(item.target, item.team)] += 1
            else:
                self.escalations[item.target] += 1
            log.info(
                "sla_timer_fired",
                conversation_id=item.conversation_id,
                target=item.target,
                what=item.what,
            )
        changed = sorted({*woken, *(item.conversation_id for item in fired)})
        if changed:
            self.fired(changed)
        return len(changed)
