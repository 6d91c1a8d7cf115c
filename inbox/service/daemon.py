"""`inbox run`: poll every connector, push each batch through the pipeline, never die.

SIGHUP (systemd's ExecReload) and a change of the rules file reload the rules between two
batches; a file that fails validation is refused and the rules in force stay.

A connector that can be told of new mail (IMAP IDLE) gets a `notify` callback through its
`watch` method; a notification makes it due at once, so new mail is stored within seconds.

Each connector polls in its own thread, so one whose server is slow or silent holds back only
itself; their batches are stored one at a time. One failing connector (an unreadable folder, a
bug in its parser) is logged with its reason and retried with exponential backoff and jitter,
while the others go on. A connector fed by webhooks has a second thread for its spool: what
the receiver took is stored within moments of arriving, whatever the upstream's API does (a
catch-up that is refused, slow or backing off holds none of it back), and whether this daemon
holds the connector's lease or stands by. SIGTERM and SIGINT let the batches in flight commit
(each is one transaction) and then stop. The main thread keeps the watchdog, the status and
the rules.
"""

from __future__ import annotations

import functools
import random
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType

import structlog

from connectors.base import (
    Answering,
    Connector,
    DeliveryReporting,
    Sender,
    UpstreamError,
    Watched,
    WebhookFed,
    WebhookReceiver,
    poll_seconds,
)
from inbox.config import ConfigError, Settings
from inbox.desk.app import Desk
from inbox.desk.sessions import Sessions, desk_secret
from inbox.desk.users import Users
from inbox.outbox.delivery_reports import DeliveryReports
from inbox.outbox.notifier import Notifier
from inbox.outbox.replies import ReplySender
from inbox.pipeline.ingest import BatchResult, Fence, routed_pipeline
from inbox.raw import Batch
from inbox.secrets import Secret, SecretError
from inbox.service.agent_replies import AgentReplies
from inbox.service.health import pages
from inbox.service.systemd_notify import SystemdNotifier
from inbox.service.timers import Timers
from inbox.service.view import ConnectorView, DaemonView, RulesView, SpoolView
from inbox.service.web import WebServer, WsgiApp
from inbox.store.leases import LeaseLost, Leases, Standby, holder_name, one_off_holder
from inbox.webhook import Handler
from rules.holder import RulesInForce
from rules.model import RuleSet

log = structlog.get_logger(__name__)

#: Failed polls in a row after which a connector's lease is released for another daemon.
RELEASE_AFTER_FAILURES = 3
#: How long a stop waits for the connectors' threads to finish their batch.
STOP_JOIN_SECONDS = 20.0
#: How often the rules file is looked at for changes (a stat per file) while idle.
RULES_CHECK_SECONDS = 2.0


@dataclass
class _SpoolLane:
    """The deliveries a connector's webhook receiver spooled in this daemon, stored from a
    thread of their own (see the module's docstring)."""

    #: Set by the receiver when it spooled a delivery.
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    failures: int = 0
    last_error: str = ""
    last_success: float = 0.0


@dataclass
class _ConnectorState:
    connector: Connector
    next_poll: float = 0.0
    failures: int = 0
    #: Every failed poll since start (failures counts those in a row, for the backoff).
    failures_total: int = 0
    #: time.time() of the last poll that went through; 0 before the first.
    last_success: float = 0.0
    last_error: str = ""
    totals: BatchResult = field(default_factory=BatchResult)
    #: Set to poll now (a push from the upstream, or the daemon stopping).
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    #: Another daemon holds this connector's lease: this one stands by (inbox/store/leases.py).
    standby: Standby | None = None
    #: A connector fed by webhooks: its spool, stored apart from the polls (its catch-up).
    spool: _SpoolLane | None = None
    #: The polls and the spool's thread both add to `totals`.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def failing(self) -> list[str]:
        """What fails, and why, in words for a person (/healthz, `inbox status`)."""
        what = "catch-up" if self.spool is not None else "poll"
        found = [_failed(what, self.failures, self.last_error)] if self.failures else []
        if self.spool is not None and self.spool.failures:
            found.append(_failed("spool", self.spool.failures, self.spool.last_error))
        return found

    @property
    def health(self) -> str:
        """What /healthz and `inbox status` say of the connector."""
        if self.failing:
            return "degraded"
        if self.standby is not None:
            return "standby"
        return "ok" if self.last_success else "starting"


class Daemon:
    def __init__(
        self,
        settings: Settings,
        connectors: Sequence[Connector],
        rules: RulesInForce | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.wired = routed_pipeline(settings, rules)
        self.pipeline = self.wired.pipeline
        self.states = [
            _ConnectorState(
                connector, spool=_SpoolLane() if isinstance(connector, WebhookFed) else None
            )
            for connector in connectors
        ]
        self.leases = Leases(
            self.wired.writers,
            seconds=settings.ingest.lease_seconds,
            holder=holder_name(settings.data_dir),
        )
        #: The canned answers beside the rules file, read again when one changes.
        self.answers = rules.answers if rules is not None else None
        #: Sends the outbox's Slack pings, when a bot token is configured.
        self.notifier: Notifier | None = None
        if settings.slack.bot_token is not None:
            self.notifier = Notifier(self.wired.writers, settings.slack, answers=self._answer_names)
        #: Sends agents' replies through the connectors that can answer (connectors/base.py).
        self.replies = ReplySender(
            self.wired.writers, senders_of(connectors), slack_of=self._slack_of
        )
        #: Snoozes that end (and the SLA timers to come).
        self.timers = Timers(
            self.wired.writers,
            slack_of=self._slack_of,
            ruleset=self._ruleset,
            answers=self.answers.current if self.answers is not None else lambda: None,
            readers=self.wired.readers,
        )
        self.timers.surveyed = lambda conversations: self.replies.wake()
        if self.notifier is not None:
            notifier = self.notifier
            self.timers.fired = lambda conversations: notifier.wake()
        #: The webhook receiver, when a connector takes webhooks (started by `run`).
        self.web: WebServer | None = None
        self.routes = self._routes()
        self.stopping = threading.Event()
        #: Set by SIGHUP and by stop signals: ends the wait between polls early.
        self.wake = threading.Event()
        self.reload_requested = False
        self.stop_signal = ""
        self.systemd = SystemdNotifier()
        self.started_at = time.time()
        #: Connectors whose last poll failed when the run ended (`--once` exits 1 on any).
        self.failed_connectors: list[str] = []

    def view(self) -> DaemonView:
        """What the health pages show, copied now: they read no state of the daemon's own."""
        rules = None
        if self.rules is not None:
            current = self.rules.current
            rules = RulesView(
                version=current.version,
                reloads=self.rules.reloads,
                failed_reloads=self.rules.failed_reloads,
                rule_names=tuple(rule.name for rule in current.ruleset.rules),
                agent_names=tuple(current.ruleset.agents),
            )
        return DaemonView(
            started_at=self.started_at,
            connectors=tuple(self._connector_view(state) for state in self.states),
            readers=self.pipeline.readers,
            rules=rules,
            sla_breaches=dict(self.timers.breaches),
            sla_escalations=dict(self.timers.escalations),
        )

    def _connector_view(self, state: _ConnectorState) -> ConnectorView:
        connector = state.connector
        spool = None
        if state.spool is not None and isinstance(connector, WebhookFed):
            try:
                waiting: int | None = connector.spooled_count()
            except OSError:
                waiting = None
            lane = state.spool
            spool = SpoolView(lane.failures, lane.last_error, lane.last_success, waiting)
        with state.lock:
            totals = BatchResult()
            totals.add(state.totals)
        return ConnectorView(
            name=connector.name,
            channel=connector.channel,
            health=state.health,
            failing=tuple(state.failing),
            failures_in_a_row=state.failures,
            failures_total=state.failures_total,
            last_error=state.last_error,
            last_success=state.last_success,
            lease_held_by=None if state.standby is None else state.standby.holder,
            lease_held=self.leases.holds(connector.name),
            totals=totals,
            spool=spool,
        )

    def _ruleset(self) -> RuleSet | None:
        return self.rules.current.ruleset if self.rules is not None else None

    def _agent_of(self, slack_user: str) -> str:
        """The agent with this Slack id in the rules in force ("" for none)."""
        if self.rules is None or not slack_user:
            return ""
        for agent in self.rules.current.ruleset.agents.values():
            if agent.slack == slack_user:
                return agent.name
        return ""

    def _answer_names(self) -> list[str]:
        return self.answers.names() if self.answers is not None else []

    def _slack_of(self, agent: str) -> str:
        """An agent's Slack id in the rules in force ("" without rules or without an id)."""
        if self.rules is None:
            return ""
        found = self.rules.current.ruleset.agents.get(agent)
        return found.slack if found is not None else ""

    def url_for_humans(self) -> str:
        return self.wired.engine.url.render_as_string(hide_password=True)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Flags only, never a log line: the handler runs in the main thread between two
        # bytecodes, possibly while that thread holds structlog's (non-reentrant) write lock,
        # and logging here would wait for it forever (seen: a daemon that ignored SIGTERM).
        self.stop_signal = signal.Signals(signum).name
        self.stopping.set()
        self.wake.set()

    def _on_reload_signal(self, _signum: int, _frame: FrameType | None) -> None:
        # Only a flag here: the reload itself runs in the main loop, between two batches.
        self.reload_requested = True
        self.wake.set()

    def _reload_rules(self) -> None:
        if self.reload_requested:
            # systemd hears of every SIGHUP (ExecReload), with or without a rules file.
            self.reload_requested = False
            self.systemd.reloading()
            if self.rules is not None:
                self.rules.reload("SIGHUP")
            self.systemd.ready(self._status_line())
        elif self.rules is not None:
            self.rules.reload_if_changed()

    def run(self, *, once: bool = False) -> BatchResult:
        """Poll until stopped (or one pass with `once`); returns the totals of this run."""
        if once:  # not the service of this data_dir: neither pass for it nor end its leases
            self.leases.holder = one_off_holder(self.settings.data_dir)
            self.leases.takes_over = False
        self.wired.migrate()
        log.info(
            "daemon_started",
            connectors=[state.connector.name for state in self.states],
            database=self.url_for_humans(),
        )
        if not self.states:
            log.warning("no_connectors_configured")
        try:
            if not once:
                self._start_watching()
                self._start_web()
                if self.notifier is not None:
                    self.notifier.start()
                self.replies.start()
                self.timers.start()
            # The store is migrated and the rules loaded (the CLI refuses to start without
            # them): ready for systemd, and for the units ordered after this one.
            self.systemd.ready(self._status_line())
            if once:
                for state in self.states:
                    if not self.stopping.is_set():
                        self._store_spool(state)
                        self._poll(state)
                self.timers.run_once()
                if self.notifier is not None:
                    while self.notifier.run_once():
                        pass
                while self.replies.run_once():
                    pass
            else:
                self._start_connector_threads()
            while not once and not self.stopping.is_set():
                # The main thread keeps the daemon's own clock: watchdog, status, rules, and
                # the connectors' leases (renewed while a long fetch runs, not only per poll).
                self.systemd.watchdog()
                self.systemd.status(self._status_line())
                self._reload_rules()
                self._renew_leases()
                self.wake.wait(self._longest_wait())
                self.wake.clear()
        finally:
            self.systemd.stopping(f"stopping ({self.stop_signal or 'end of run'})")
            if self.stop_signal:
                log.info("stop_requested", signal=self.stop_signal)
            if self.web is not None:
                self.web.stop()  # first: what is still received waits in the spools
            self._join_connector_threads()
            for state in self.states:
                state.connector.close()
            self._release_leases()
            if self.notifier is not None:
                self.notifier.stop()
            self.replies.stop()
            self.timers.stop()
            self.wired.close()
        totals = BatchResult()
        for state in self.states:
            totals.add(state.totals)
        self.failed_connectors = [s.connector.name for s in self.states if s.failing]
        log.info(
            "daemon_stopped",
            stored=totals.stored,
            duplicates=totals.duplicates,
            raw_only=totals.raw_only,
        )
        return totals

    def _start_watching(self) -> None:
        for state in self.states:
            if isinstance(state.connector, Watched):
                state.connector.watch(functools.partial(self._pushed, state))

    def _longest_wait(self) -> float:
        """Between polls the loop still wakes to look at the rules file and, under systemd's
        watchdog, often enough to send WATCHDOG=1 at half its interval."""
        watchdog = self.systemd.watchdog_seconds
        return min(RULES_CHECK_SECONDS, watchdog / 2) if watchdog else RULES_CHECK_SECONDS

    def _status_line(self) -> str:
        """One line for `systemctl status`: what runs, what fails, what was stored."""
        stored = sum(state.totals.stored for state in self.states)
        failing = [
            f"{state.connector.name} ({'; '.join(state.failing)[:80]})"
            for state in self.states
            if state.failing
        ]
        line = f"{len(self.states)} connectors, {stored} messages stored since start"
        if failing:
            line += f"; failing: {', '.join(failing)}"
        if self.web is not None:
            line += f"; webhooks on {self.web.url}"
        return line

    def _routes(self) -> dict[str, Handler]:
        """Each webhook path to its connector's handler; two connectors on one path is a
        configuration error, said at start-up rather than found by a lost event."""
        routes: dict[str, Handler] = {}
        slack = self.settings.slack
        if slack.signing_secret is not None:
            agents = AgentReplies(
                self.wired.writers,
                Secret(slack.signing_secret).get(),
                self._agent_of,
                written=self.replies.wake,
                ruleset=self._ruleset,
                answers=self.answers.current if self.answers is not None else lambda: None,
            )
            routes[slack.events_path] = agents.receive
            routes[slack.actions_path] = agents.act
        reports = DeliveryReports(self.wired.writers, slack_of=self._slack_of)
        for state in self.states:
            connector = state.connector
            taken = dict(connector.webhooks()) if isinstance(connector, WebhookReceiver) else {}
            if isinstance(connector, DeliveryReporting):
                taken.update(connector.delivery_webhooks(reports.record))
            for path, handler in taken.items():
                if path in routes:
                    raise ConfigError(
                        "connectors",
                        [f"two connectors take webhooks at {path}: give one another path"],
                    )
                routes[path] = handler
        return routes

    def _start_web(self) -> None:
        """Webhooks, /healthz and /metrics. A port that cannot be had is logged and the daemon
        goes on without them: webhook connectors still catch up through their APIs."""
        if not self.settings.web.enabled:
            return
        host, port = self.settings.web.host_port
        try:
            self.web = WebServer(
                self.routes,
                host=host,
                port=port,
                max_body_bytes=self.settings.web.max_body_bytes,
                threads=self.settings.web.threads,
                pages=pages(self.view),
                mounts=self._desk(),
            ).start()
        except OSError as error:
            log.error("web_not_started", listen=self.settings.web.listen, error=str(error))

    def _desk(self) -> dict[str, WsgiApp]:
        """The web desk at /desk (it answers that it is off until a user exists)."""
        desk_settings = self.settings.desk
        if not desk_settings.enabled:
            return {}
        try:
            secret = desk_secret(desk_settings.session_secret, self.settings.data_dir)
        except (SecretError, OSError) as error:
            log.error("desk_not_started", reason=f"no session secret: {error}")
            return {}
        desk = Desk(
            desk_settings,
            writers=self.wired.writers,
            readers=self.wired.readers,
            users=Users(self.settings.desk_users_file),
            sessions=Sessions(secret, max_age_seconds=desk_settings.session_hours * 3600),
            max_body_bytes=self.settings.web.max_body_bytes,
            acted=self._desk_acted,
            rules=self.rules,
            languages=self.settings.ingest.languages,
        )
        return {"/desk": desk}

    def _desk_acted(self) -> None:
        """A reply or assignment from the desk leaves now, not at the next pass."""
        self.replies.wake()
        if self.notifier is not None:
            self.notifier.wake()

    def _pushed(self, state: _ConnectorState) -> None:
        """From a connector's watcher thread: it may have news (or its upstream is back after a
        failure), so poll it now; from a webhook receiver: store its spool now."""
        if state.spool is not None:
            state.spool.wake.set()
            return
        state.next_poll = 0.0
        state.wake.set()

    def _start_connector_threads(self) -> None:
        """One thread per connector: a server that answers slowly, or not at all until its
        timeout, holds back only its own connector. Their batches are stored one at a time
        (the pipeline serializes the writes); fetching and normalizing overlap."""
        for state in self.states:
            state.thread = threading.Thread(
                target=self._connector_loop,
                args=(state,),
                name=f"connector-{state.connector.name}",
                daemon=True,
            )
            state.thread.start()
            if state.spool is not None:
                state.spool.thread = threading.Thread(
                    target=self._spool_loop,
                    args=(state, state.spool),
                    name=f"spool-{state.connector.name}",
                    daemon=True,
                )
                state.spool.thread.start()

    def _connector_loop(self, state: _ConnectorState) -> None:
        while not self.stopping.is_set():
            delay = state.next_poll - time.monotonic()
            if delay > 0:
                state.wake.wait(delay)
                state.wake.clear()
                continue
            self._poll(state)

    def _spool_loop(self, state: _ConnectorState, lane: _SpoolLane) -> None:
        """Cleared before the spool is read: a delivery spooled meanwhile sets the wake-up
        again, and the wait below returns at once for it."""
        while not self.stopping.is_set():
            lane.wake.clear()
            lane.wake.wait(self._store_spool(state))

    def _store_spool(self, state: _ConnectorState) -> float:
        """Store what the receiver spooled; the seconds until the spool is read again
        without a delivery's wake-up (after a failure: a backoff)."""
        lane = state.spool
        if lane is None:
            return 0.0
        connector = state.connector
        assert isinstance(connector, WebhookFed)
        try:
            self._ingest(state, connector.fetch_spooled(self._batch_size()))
        except Exception as error:  # the store is away, the spool unreadable: retried
            lane.failures += 1
            lane.last_error = reason_of(error)
            delay = self._backoff(lane.failures)
            log.exception(
                "connector_spool_failed",
                connector=connector.name,
                failures=lane.failures,
                retry_in_seconds=round(delay, 1),
            )
            return delay
        lane.failures = 0
        lane.last_success = time.time()
        return poll_seconds(connector)

    def _join_connector_threads(self) -> None:
        deadline = time.monotonic() + STOP_JOIN_SECONDS
        for state in self.states:
            state.wake.set()
            if state.spool is not None:
                state.spool.wake.set()
        for state in self.states:
            threads = [state.thread, state.spool.thread if state.spool else None]
            for thread in threads:
                if thread is None:
                    continue
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    # Stuck in a call to its upstream: closing the connector below ends it.
                    log.warning(
                        "connector_still_busy_at_stop",
                        connector=state.connector.name,
                        thread=thread.name,
                    )

    def _poll(self, state: _ConnectorState) -> None:
        connector = state.connector
        try:
            standby = self.leases.hold(connector.name)
            if standby is not None and state.standby is None:
                log.info(
                    "connector_standing_by",
                    connector=connector.name,
                    polled_by=standby.holder,
                    lease_until=standby.until.isoformat(),
                )
            state.standby = standby
            if standby is not None:
                self._stand_by(state)
                return
            fetch = (
                connector.fetch_catch_up if isinstance(connector, WebhookFed) else connector.fetch
            )
            batches = fetch(self.pipeline.cursors(connector.name), self._batch_size())
            self._ingest(state, batches, fence=self.leases.fence)
        except LeaseLost as lost:
            log.warning("connector_lease_lost", connector=connector.name, reason=str(lost))
            state.next_poll = time.monotonic() + self._standby_seconds(connector)
            return
        except Exception as error:
            state.failures += 1
            state.failures_total += 1
            state.last_error = reason_of(error)
            if state.failures >= RELEASE_AFTER_FAILURES:
                self._hand_over_lease(state)
            delay = self._backoff(state.failures)
            log.exception(
                "connector_failed",
                connector=connector.name,
                failures=state.failures,
                retry_in_seconds=round(delay, 1),
            )
            state.next_poll = time.monotonic() + delay
            return
        state.failures = 0
        state.last_success = time.time()
        state.next_poll = time.monotonic() + poll_seconds(connector)

    def _ingest(
        self, state: _ConnectorState, batches: Iterable[Batch], fence: Fence | None = None
    ) -> None:
        for batch, result in self.pipeline.ingest_many(batches, fence=fence):
            with state.lock:
                state.totals.add(result)
            if self.notifier is not None and result.stored:
                self.notifier.wake()  # the batch may have written pings: send them now
            state.connector.acknowledge(batch)
            if self.stopping.is_set():
                break

    def _stand_by(self, state: _ConnectorState) -> None:
        """Another daemon polls this connector's upstream. What this daemon's own receiver
        spooled is still stored here, by the spool's own thread (no other daemon can see
        that spool)."""
        connector = state.connector
        state.failures = 0
        state.last_success = time.time()
        state.next_poll = time.monotonic() + self._standby_seconds(connector)

    def _standby_seconds(self, connector: Connector) -> float:
        """Standing by, look again often enough to take over soon after the holder is gone."""
        return min(poll_seconds(connector), self.settings.ingest.lease_seconds / 3)

    def _hand_over_lease(self, state: _ConnectorState) -> None:
        """This daemon cannot reach the upstream (a password, a firewall): let a daemon on
        another server try, if one stands by. With none, the lease stays here: this daemon
        goes on retrying, and storing what its receiver spools."""
        name = state.connector.name
        try:
            taker = self.leases.hand_over(name)
        except Exception:  # the store is away: the next poll says so
            log.debug("connector_lease_not_handed_over", connector=name, exc_info=True)
            return
        reason = f"{state.failures} failed polls in a row"
        if taker is not None:
            log.warning("connector_lease_released", connector=name, to=taker, reason=reason)
        elif state.failures == RELEASE_AFTER_FAILURES:
            log.info(
                "connector_lease_kept",
                connector=name,
                reason=f"{reason}, and no other daemon stands by to take it",
            )

    def _renew_leases(self) -> None:
        try:
            self.leases.renew_due()
        except Exception:  # the store is away: the batches' fences and the next polls say so
            log.debug("connector_leases_not_renewed", exc_info=True)

    def _release_leases(self) -> None:
        try:
            self.leases.release([state.connector.name for state in self.states])
        except Exception:  # the store is away: the leases run out by themselves
            log.warning("connector_leases_not_released", exc_info=True)

    def _backoff(self, failures: int) -> float:
        return _backoff(failures, self.settings.ingest.retry_max_seconds)

    def _batch_size(self) -> int:
        return self.settings.ingest.batch_size


def _failed(what: str, times: int, reason: str) -> str:
    return f"{what} failed {'once' if times == 1 else f'{times} times in a row'}: {reason}"


def _backoff(failures: int, cap: float) -> float:
    """Exponential, capped, with jitter: daemons that failed together do not retry together."""
    return min(cap, 2.0 ** min(failures, 12)) * random.uniform(0.5, 1.0)


def reason_of(error: BaseException) -> str:
    """A failure as /healthz shows it: the upstream's words where the connector gave them,
    else the exception's type and text."""
    if isinstance(error, UpstreamError):
        return str(error)[:500]
    return f"{type(error).__name__}: {error}"[:500]


def senders_of(connectors: Sequence[Connector]) -> dict[str, Sender]:
    """Each connector that can answer its conversations, by name, to what sends for it."""
    senders: dict[str, Sender] = {}
    for connector in connectors:
        sender = connector.sender() if isinstance(connector, Answering) else None
        if sender is not None:
            senders[connector.name] = sender
    return senders
