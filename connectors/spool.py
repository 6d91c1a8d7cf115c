"""A durable directory queue between a webhook receiver and its connector.

Slack wants an answer within 3 s and Twilio within 15 s, and both retry what they think we
missed. The receiver therefore only verifies a request and writes it here, fsynced, before it
answers 200; the connector reads the spool like any other upstream, and moves an entry to
`done/` only after the batch holding it is committed. A crash anywhere between leaves the entry
in `incoming/`, to be read again (the store is exactly-once on the external id).

Entries are named by the upstream's own delivery id (Slack's event_id, Twilio's MessageSid),
created with O_EXCL, so a retried or replayed delivery finds its name taken and stores nothing
twice. `done/` keeps the names for `keep_done_seconds` so that a late retry of something
already ingested is still recognised.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
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
        self.keep_done_seconds = keep_done_seconds
        for path in (self.incoming, self.done_dir):
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
        if (self.done_dir / name).exists():
            return False
        path = self.incoming / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        try:
            os.write(fd, body)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)
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
        cutoff = now - self.keep_done_seconds
        with os.scandir(self.done_dir) as scan:
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


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
