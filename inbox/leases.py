"""One daemon at a time polls a connector's upstream, however many share the store.

Several `inbox run` processes can share one PostgreSQL (DESIGN.md, "Scale"). Each would poll
every configured account: twice the work, two sessions moving the same mail, and a slower one
setting a cursor back. So each connector has a lease in the store: the daemon that holds it
polls, the others stand by, and one takes over when the holder stops (it releases its leases)
or dies (its lease runs out).

A lease alone cannot stop a holder that stalled past its lease (a long pause, a lost network)
from writing after another took over. So every batch is fenced: its transaction renews the
lease only where this daemon still holds it, and a batch that finds it gone is rolled back
(`LeaseLost`). That renewal also keeps the lease through a long first sync.

Webhook deliveries are not polled: each daemon's receiver spools what it is sent, and each
daemon stores its own spool whether it holds the lease or not. Only the catch-up through the
upstream's API is the holder's.
"""

from __future__ import annotations

import socket
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

from inbox.db import transaction
from inbox.models import ConnectorLease, utcnow

log = structlog.get_logger(__name__)

#: In data_dir: this daemon's id in the leases (inbox/leases.py: holder_name).
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
        known = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        known = ""
    if known:
        return known
    path.parent.mkdir(parents=True, exist_ok=True)
    known = uuid.uuid4().hex[:12]
    try:
        with path.open("x", encoding="ascii") as created:
            created.write(known + "\n")
    except FileExistsError:  # another process made it meanwhile: take theirs
        return path.read_text(encoding="ascii").strip()
    return known


class Leases:
    def __init__(
        self,
        writers: sessionmaker[Session],
        *,
        seconds: float,
        holder: str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`clock`: for tests. Otherwise lease times are the database server's (PostgreSQL's
        now()), so that daemons whose clocks disagree still agree on when a lease runs out;
        SQLite is on this machine, and its time is this machine's."""
        self.writers = writers
        self.length = timedelta(seconds=seconds)
        self.holder = holder
        self.clock = clock
        #: When (by `_local`) a lease this daemon holds is due to be written again: half way.
        self._renew_at: dict[str, float] = {}

    def hold(self, connector: str) -> Standby | None:
        """Take or renew the lease: None when this daemon holds it now, else who does. A lease
        with more than half its time left is not written again."""
        if self._local() < self._renew_at.get(connector, float("-inf")):
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
                elif lease.holder == self.holder or lease.expires_at <= now:
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
                    self._renew_at.pop(connector, None)
                    return Standby(lease.holder, lease.expires_at)
        except IntegrityError:  # another daemon inserted it first
            self._renew_at.pop(connector, None)
            return self.hold(connector)
        self._renewed(connector)
        return None

    def fence(self, session: Session, connector: str) -> None:
        """In a batch's transaction: renew the lease where this daemon holds it, else roll the
        batch back."""
        renewed = session.execute(
            update(ConnectorLease)
            .where(ConnectorLease.connector == connector, ConnectorLease.holder == self.holder)
            .values(expires_at=self._now(session) + self.length)
        )
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            self._renew_at.pop(connector, None)
            raise LeaseLost(f"another daemon holds the lease of connector {connector!r}")
        self._renewed(connector)

    def release(self, connectors: list[str]) -> None:
        """At a graceful stop: whoever stands by takes over at its next poll, not after the
        lease runs out."""
        if not self._renew_at:
            return
        with transaction(self.writers) as session:
            session.execute(
                update(ConnectorLease)
                .where(
                    ConnectorLease.connector.in_(connectors),
                    ConnectorLease.holder == self.holder,
                )
                .values(expires_at=self._now(session))
            )
        self._renew_at.clear()

    def _now(self, session: Session) -> datetime:
        if self.clock is not None:
            return self.clock()
        if session.get_bind().dialect.name == "postgresql":
            server = session.scalar(select(func.now()))
            assert server is not None
            return server.astimezone(UTC)
        return utcnow()

    def _local(self) -> float:
        """Seconds on a clock that only moves forward (the test clock, if given)."""
        return self.clock().timestamp() if self.clock is not None else time.monotonic()

    def _renewed(self, connector: str) -> None:
        self._renew_at[connector] = self._local() + self.length.total_seconds() / 2
