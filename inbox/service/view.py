"""A read-only view of a running daemon: what /healthz, /metrics and `inbox status` show.

The daemon builds it on request (`Daemon.view`), copying its connectors' state under their
locks, so the health pages neither reach into the daemon's private state nor import it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from inbox.store.batch_writer import BatchResult


@dataclass(frozen=True)
class SpoolView:
    """A webhook connector's spool: stored apart from its catch-up, so it has its own state."""

    failures: int
    last_error: str
    #: time.time() of the last spool pass that went through; 0 before the first.
    last_success: float
    #: Deliveries waiting in the spool; None when it cannot be read.
    waiting: int | None

    @property
    def health(self) -> str:
        return "degraded" if self.failures else ("ok" if self.last_success else "starting")


@dataclass(frozen=True)
class ConnectorView:
    name: str
    channel: str
    #: "ok", "degraded", "standby" or "starting".
    health: str
    #: What fails and why, for a person: ["catch-up: Slack answered ..."].
    failing: tuple[str, ...]
    failures_in_a_row: int
    failures_total: int
    last_error: str
    last_success: float
    #: The daemon polling this connector's upstream when it is not this one, else None.
    lease_held_by: str | None
    #: Whether this daemon holds the connector's lease now.
    lease_held: bool
    totals: BatchResult
    spool: SpoolView | None = None


@dataclass(frozen=True)
class RulesView:
    version: str
    reloads: int
    failed_reloads: int
    #: Names of the rules and agents in force: their metrics exist from the start, at 0.
    rule_names: tuple[str, ...] = ()
    agent_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DaemonView:
    #: time.time() when the daemon started.
    started_at: float
    connectors: tuple[ConnectorView, ...]
    #: Read-only sessions on the store, to say whether it answers and what the outbox holds.
    readers: sessionmaker[Session]
    rules: RulesView | None = None
    #: SLA breaches this process recorded, by (target, team), and escalations by target.
    sla_breaches: dict[tuple[str, str], int] = field(default_factory=dict)
    sla_escalations: dict[str, int] = field(default_factory=dict)


#: What the web server's pages call at each request for a fresh view.
ViewSource = Callable[[], DaemonView]
