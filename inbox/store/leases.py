"""One daemon at a time polls a connector's upstream, however many share the store.

Several `inbox run` processes can share one PostgreSQL (DESIGN.md, "Scale"). Each would poll
every configured account: twice the work, two sessions moving the same mail, and a slower one
setting a cursor back. So each connector has a lease in the store: the daemon that holds it
polls, the others stand by, and one takes over when the holder stops (it releases its leases)
or dies (its lease runs out).

A lease alone cannot stop a holder that stalled past its lease (a long pause, a lost network)
from writing after another took over. So every batch is fenced: its transaction renews the
lease only where this daemon still holds it, and a batch that finds it gone is rolled back
(`LeaseLost`). Between batches, the daemon's main loop renews what it holds every few
seconds (`renew_due`), so a long fetch keeps its lease. A holder that cannot reach the upstream
hands the lease over after a few failed polls (inbox/service/daemon.py), but only to a daemon that
stands by for it: each daemon standing by writes itself on the lease as it looks, and a lease
with nobody standing by stays where it is (a single daemon giving its lease up to nobody
would only take it back, having logged a failover that never was).

Webhook deliveries are not polled: each daemon's receiver spools what it is sent, and each
daemon stores its own spool whether it holds the lease or not. Only the catch-up through the
upstream's API is the holder's.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from inbox.store.db import transaction
from inbox.store.models import ConnectorLease, utcnow

log = structlog.get_logger(__name__)

#: In data_dir: this daemon's id in the leases (inbox/store/leases.py: holder_name).
DAEMON_ID_FILE = "daemon-id"


class LeaseLost(Exception):
    """Another daemon holds the connector's lease now: the batch is not stored."""


@dataclass(frozen=True)
class Standby:
    """Who holds a lease that is not ours, and until when (for /healthz)."""

    holder: str
    until: datetime


def holder_name(data_dir: Path) -> str:
    """This daemon, as other daemons see it in the store: the host and an id kept in its
    data_dir. Kept, not made per process: restarted after a crash, the daemon takes its own
    lease back at once instead of waiting for it to run out (a container's host name may be
    the same everywhere; the id is not)."""
    path = data_dir / DAEMON_ID_FILE
    try:
        known = _daemon_id(path)
    except OSError as error:  # a data_dir it cannot write: an id for this run only
        known = uuid.uuid4().hex[:12]
        log.warning("daemon_id_not_kept", path=str(path), error=str(error), id=known)
    return f"{socket.gethostname()}:{known}"


def _daemon_id(path: Path) -> str:
    try:
        known = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        known = ""
    if known.isalnum():
        return known
    path.parent.mkdir(parents=True, exist_ok=True)
    made = uuid.uuid4().hex[:12]
    if known:  # empty or damaged: replaced (whoever held leases under it has none now)
        path.write_text(made + "\n", encoding="ascii")
        return made
    try:
        with path.open("x", encoding="ascii") as created:
            created.write(made + "\n")
    except FileExistsError:  # another process made it meanwhile: take theirs
        return _daemon_id(path)
    return made


def one_off_holder(data_dir: Path) -> str:
    """A holder for a run that is not the service (`inbox run --once`, `inbox sync`): it must
    neither pass for the daemon of this data_dir nor release that daemon's leases."""
    return f"{holder_name(data_dir)}:{os.getpid()}"


class Leases:
    def __init__(
        self,
        writers: sessionmaker[Session],
        *,
        seconds: float,
        holder: str,
        clock: Callable[[], datetime] | None = None,
        takes_over: bool = True,
    ) -> None:
        """`clock`: for tests. Otherwise lease times are the database server's (PostgreSQL's
        clock_timestamp()), so that daemons whose clocks disagree still agree on when a lease
        runs out; SQLite is on this machine, and its time is this machine's."""
        self.writers = writers
        self.length = timedelta(seconds=seconds)
        self.holder = holder
        self.clock = clock
        #: Whether, standing by, this holder offers to take leases over: a one-off run
        #: (`inbox sync`, `inbox run --once`) ends soon and must not be handed any.
        self.takes_over = takes_over
        #: When (by `_local`) a lease this daemon holds is due to be written again: half way.
        self._renew_at: dict[str, float] = {}
        #: Leases handed over (`hand_over`): to whom, and until when (by `_local`) this daemon
        #: leaves them free for that daemon to take.
        self._handed: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def hold(self, connector: str) -> Standby | None:
        """Take or renew the lease: None when this daemon holds it now, else who does. A lease
        with more than half its time left is not written again."""
        with self._lock:
            renew_at = self._renew_at.get(connector, float("-inf"))
        if self._local() < renew_at:
            return None
        try:
            with transaction(self.writers) as session:
                now = self._now(session)
                lease = session.get(ConnectorLease, connector, with_for_update=True)
                if lease is None:
                    session.add(
                        ConnectorLease(
                            connector=connector,
                            holder=self.holder,
                            expires_at=now + self.length,
                            acquired_at=now,
                        )
                    )
                elif (handed := self._handed_to(connector)) and lease.expires_at <= now:
                    # Handed over and not taken yet: leave it free for the taker a while.
                    self._stand_by(lease, now)
                    return Standby(handed, now + self.length)
                elif lease.holder == self.holder or lease.expires_at <= now:
                    if lease.standby_holder == self.holder:
                        lease.standby_holder = lease.standby_until = None
                    if lease.holder != self.holder:
                        log.info(
                            "connector_lease_taken_over",
                            connector=connector,
                            previous=lease.holder,
                            expired_at=lease.expires_at.isoformat(),
                        )
                        lease.holder = self.holder
                        lease.acquired_at = now
                    lease.expires_at = now + self.length
                else:
                    self._forget(connector)
                    self._stand_by(lease, now)
                    return Standby(lease.holder, lease.expires_at)
        except IntegrityError:  # another daemon inserted it first
            self._forget(connector)
            return self.hold(connector)
        self._renewed(connector)
        return None

    def _stand_by(self, lease: ConnectorLease, now: datetime) -> None:
        """Say on the lease that this daemon is there to take it, for as long as a lease
        lasts: it looks again well before then (a third of the lease, inbox/service/daemon.py)."""
        if not self.takes_over:
            return
        lease.standby_holder = self.holder
        lease.standby_until = now + self.length

    def hand_over(self, connector: str) -> str | None:
        """Release a lease this daemon holds to the daemon standing by for it, if one stood
        by within the last lease; the name of that daemon, or None (the lease stays). For a
        lease's length after, this daemon does not take the lease back while it is free."""
        with self._lock:
            if connector not in self._renew_at:
                return None
        with transaction(self.writers) as session:
            now = self._now(session)
            lease = session.get(ConnectorLease, connector, with_for_update=True)
            if lease is None or lease.holder != self.holder:
                return None
            taker = lease.standby_holder
            until = lease.standby_until
            if not taker or taker == self.holder or until is None or until <= now:
                return None
            lease.expires_at = now
        self._forget(connector)
        with self._lock:
            self._handed[connector] = (taker, self._local() + self.length.total_seconds())
        return taker

    def fence(self, session: Session, connector: str) -> None:
        """In a batch's transaction: renew the lease where this daemon holds it, else roll the
        batch back."""
        renewed = session.execute(
            update(ConnectorLease)
            .where(ConnectorLease.connector == connector, ConnectorLease.holder == self.holder)
            .values(expires_at=self._now(session) + self.length)
        )
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            self._forget(connector)
            raise LeaseLost(f"another daemon holds the lease of connector {connector!r}")
        self._renewed(connector)

    def renew_due(self) -> None:
        """Renew every lease held whose renewal is due: called often from the daemon's main
        loop, so that a lease lasts through a long fetch, not only from poll to poll."""
        now = self._local()
        with self._lock:
            due = [connector for connector, at in self._renew_at.items() if at <= now]
        for connector in due:
            self.hold(connector)

    def release(self, connectors: list[str]) -> None:
        """At a graceful stop, or when this daemon cannot reach the upstream: whoever stands by
        takes over at its next look, not after the lease runs out."""
        with self._lock:
            held = [connector for connector in connectors if connector in self._renew_at]
        if not held:
            return
        with transaction(self.writers) as session:
            session.execute(
                update(ConnectorLease)
                .where(
                    ConnectorLease.connector.in_(held),
                    ConnectorLease.holder == self.holder,
                )
                .values(expires_at=self._now(session))
            )
        for connector in held:
            self._forget(connector)

    def _now(self, session: Session) -> datetime:
        if self.clock is not None:
            return self.clock()
        if session.get_bind().dialect.name == "postgresql":
            # clock_timestamp(), not now(): now() stays at the start of a long transaction.
            server = session.scalar(select(func.clock_timestamp()))
            assert server is not None
            return server.astimezone(UTC)
        return utcnow()

    def _local(self) -> float:
        """Seconds on a clock that only moves forward (the test clock, if given)."""
        return self.clock().timestamp() if self.clock is not None else time.monotonic()

    def holds(self, connector: str) -> bool:
        """Whether this daemon held the connector's lease at its last look."""
        with self._lock:
            return connector in self._renew_at

    def _handed_to(self, connector: str) -> str | None:
        with self._lock:
            handed = self._handed.get(connector)
            if handed is None:
                return None
            if self._local() >= handed[1]:
                del self._handed[connector]  # nobody took it: this daemon may again
                return None
            return handed[0]

    def _renewed(self, connector: str) -> None:
        with self._lock:
            self._renew_at[connector] = self._local() + self.length.total_seconds() / 2

    def _forget(self, connector: str) -> None:
        with self._lock:
            self._renew_at.pop(connector, None)
