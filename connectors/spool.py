"""A durable directory queue between a webhook receiver and its connector.

Slack wants an answer within 3 s and Twilio within 15 s, and both retry what they think we
missed. The receiver therefore only verifies a request and writes it here, fsynced, before it
answers 200; the connector reads the spool like any other upstream, and moves an entry to
`done/` only after the batch holding it is committed. A crash anywhere between leaves the entry
in `incoming/`, to be read again (the store is exactly-once on the external id).

Entries are named by the upstream's own delivery id (Slack's event_id, Twilio's MessageSid).
An entry is written and fsynced in `tmp/` and only then linked into `incoming/` (as Maildir
does): a connector reading `incoming/` meanwhile never finds a file half written, which it would
have stored empty and moved to `done/`. The link fails on a taken name, so a retried or
replayed delivery stores nothing twice. `done/` keeps the names for `keep_done_seconds` so
that a late retry of something already ingested is still recognised.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from inbox.raw import Batch, RawMessage

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    name: str
    body: bytes
    received_at: float


class Spool:
    def __init__(self, directory: Path, *, keep_done_seconds: float = 3600) -> None:
        self.incoming = directory / "incoming"
        self.done_dir = directory / "done"
        self.tmp = directory / "tmp"
        self.keep_done_seconds = keep_done_seconds
        for path in (self.incoming, self.done_dir, self.tmp):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._last_prune = 0.0

    @staticmethod
    def safe_name(key: str) -> str:
        """Delivery ids come from outside: nothing in them may leave the spool directory."""
        name = _UNSAFE.sub("_", key)[:200].lstrip(".")
        return name or "_"

    def put(self, key: str, body: bytes) -> bool:
        """Store `body` under `key`, durably; False if that key was already delivered."""
        name = self.safe_name(key)
        if (self.done_dir / name).exists() or (self.incoming / name).exists():
            return False
        staged = self.tmp / f"{uuid.uuid4().hex}.{name[:100]}"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(staged, self.incoming / name)
            except FileExistsError:
                return False  # the same delivery, retried while this one was being written
        finally:
            staged.unlink(missing_ok=True)
        _fsync_directory(self.incoming)
        return True

    def pending(self, limit: int | None = None) -> list[SpoolEntry]:
        """Entries not yet ingested, oldest first."""
        found: list[tuple[float, str]] = []
        with os.scandir(self.incoming) as scan:
            for item in scan:
                try:
                    found.append((item.stat().st_mtime, item.name))
                except FileNotFoundError:
                    continue
        found.sort()
        entries = []
        for mtime, name in found[:limit]:
            try:
                body = (self.incoming / name).read_bytes()
            except FileNotFoundError:
                continue
            entries.append(SpoolEntry(name, body, mtime))
        return entries

    def count(self) -> int:
        with os.scandir(self.incoming) as scan:
            return sum(1 for _ in scan)

    def done(self, names: list[str]) -> None:
        """After the commit: the entries are ingested; their names stay a while in done/."""
        for name in names:
            try:
                os.replace(self.incoming / name, self.done_dir / name)
                os.utime(self.done_dir / name)  # kept from now on, not from its arrival
            except FileNotFoundError:
                continue
        self.prune()

    def prune(self) -> None:
        now = time.time()
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        # What a crash left in tmp/ was never answered 200: the sender retries it.
        for directory, cutoff in (
            (self.done_dir, now - self.keep_done_seconds),
            (self.tmp, now - 3600),
        ):
            with os.scandir(directory) as scan:
                for item in scan:
                    try:
                        if item.stat().st_mtime < cutoff:
                            os.unlink(item.path)
                    except FileNotFoundError:
                        continue


def spool_batches(
    spool: Spool,
    connector: str,
    batch_size: int,
    messages_of: Callable[[SpoolEntry], list[RawMessage]],
) -> Iterator[Batch]:
    """What waits in the spool, as batches whose `acknowledge` names their entries: the
    connector's `acknowledge` passes them to `Spool.done` once the batch is committed."""
    entries = spool.pending()
    for start in range(0, len(entries), batch_size):
        chunk = entries[start : start + batch_size]
        raws: list[RawMessage] = []
        for entry in chunk:
            raws.extend(messages_of(entry))
        yield Batch(
            connector=connector,
            messages=raws,
            acknowledge=[entry.name for entry in chunk],
            remaining=len(entries) - start - len(chunk),
        )


class SpooledConnector:
    """What a connector fed by webhooks does around its upstream's API: read its spool first,
    catch up through the API on start, every `catchup_seconds` and after a failure, wake the
    daemon when its receiver spools something, and move entries to done/ after the commit.
    Subclasses say what an entry holds (`messages_of`) and how to catch up (`catch_up`)."""

    def __init__(self, name: str, spool_dir: Path, catchup_seconds: float) -> None:
        self.name = name
        self.spool = Spool(spool_dir)
        self.catchup_seconds = catchup_seconds
        self._notify: Callable[[], None] | None = None
        self._next_catchup = 0.0

    def watch(self, notify: Callable[[], None]) -> None:
        """The daemon's wake-up: called after a delivery is spooled, so it is ingested now."""
        self._notify = notify

    def spooled(self, key: str, body: bytes) -> bool:
        """Spool a verified delivery and wake the daemon; False for one already delivered."""
        if not self.spool.put(key, body):
            return False
        if self._notify is not None:
            self._notify()
        return True

    def fetch(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        yield from self.fetch_spooled(batch_size)
        yield from self.fetch_catch_up(cursors, batch_size)

    def fetch_spooled(self, batch_size: int) -> Iterator[Batch]:
        """Only what this process's receiver spooled: a daemon standing by for another that
        holds the connector's lease (inbox/store/leases.py) still stores that, and so does one
        whose upstream API is down (reading an entry must never need the API)."""
        yield from spool_batches(self.spool, self.name, batch_size, self.messages_of)

    def fetch_catch_up(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        if time.monotonic() < self._next_catchup:
            return
        self._next_catchup = 0.0  # stays due if the catch-up fails
        yield from self.catch_up(cursors, batch_size)
        self._next_catchup = time.monotonic() + self.catchup_seconds

    def spooled_count(self) -> int:
        return self.spool.count()

    def acknowledge(self, batch: Batch) -> None:
        if batch.acknowledge:
            self.spool.done(batch.acknowledge)

    def close(self) -> None:
        return None

    def messages_of(self, entry: SpoolEntry) -> list[RawMessage]:
        raise NotImplementedError

    def catch_up(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        raise NotImplementedError


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
