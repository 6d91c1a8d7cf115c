"""IMAP IDLE (RFC 2177): the server tells us when mail arrives, so it is stored in seconds.

One thread and one connection per watched folder sit in IDLE and only *signal* that a folder
changed; the daemon then polls the connector as usual, from its durable cursor. So IDLE never
stores anything itself, and a missed signal costs at most one poll interval, never a message.

Servers end an IDLE after 30 minutes of silence (RFC 2177 asks clients to renew within 29), and
NAT boxes drop quiet connections sooner; the watcher renews the IDLE every `idle_renew_seconds`
and reconnects with backoff and jitter after any failure.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from connectors.imap_session import (
    FAILURES,
    Credentials,
    ImapError,
    close_session,
    open_session,
)

if TYPE_CHECKING:
    from imapclient import IMAPClient

    from connectors.imap_config import ImapConfig

log = structlog.get_logger(__name__)

#: How long one idle_check waits: the longest a stop request waits for the watcher.
CHECK_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
#: Untagged responses that mean "there may be new mail".
NEWS = frozenset({b"EXISTS", b"RECENT"})


class IdleWatcher(threading.Thread):
    def __init__(
        self,
        config: ImapConfig,
        credentials: Credentials,
        folder: str,
        notify: Callable[[], None],
    ) -> None:
        super().__init__(name=f"imap-idle-{config.name}-{folder}", daemon=True)
        self.config = config
        self.credentials = credentials
        self.folder = folder
        self.notify = notify
        self.stopping = threading.Event()
        #: Set while the server holds our IDLE: tests and `inbox status` can wait for it.
        self.idling = threading.Event()
        self.renewals = 0
        self.log = log.bind(connector=config.name, folder=folder)

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            client: IMAPClient | None = None
            try:
                client = open_session(self.config, self.credentials)
                if not client.has_capability("IDLE"):
                    self.log.info("imap_idle_unsupported", polling_every=self.config.poll_seconds)
                    return
                client.select_folder(self.folder, readonly=True)
                if failures:
                    # Back after a failure: mail may have come meanwhile, and the server is
                    # answering again, so the poller need not wait out its own backoff.
                    self.notify()
                failures = 0
                self._idle(client)
            except FAILURES as error:
                self.idling.clear()
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 2.0 ** min(failures, 9)) * random.uniform(0.5, 1)
                self.log.warning(
                    "imap_idle_failed",
                    reason=str(error)[:300],
                    failures=failures,
                    retry_in_seconds=round(delay, 1),
                )
                self.stopping.wait(delay)
            finally:
                self.idling.clear()
                close_session(client)

    def _idle(self, client: IMAPClient) -> None:
        client.idle()
        self.idling.set()
        started = time.monotonic()
        self.log.debug("imap_idle_started")
        quick_empties = 0
        while not self.stopping.is_set():
            asked = time.monotonic()
            responses = client.idle_check(timeout=CHECK_SECONDS)
            if any(response[:1] == (b"BYE",) for response in responses):
                raise ImapError(f"the server ended the session: {responses[-1]!r}"[:300])
            # A closed socket reads as "ready, nothing there" at once, again and again.
            quick = not responses and time.monotonic() - asked < CHECK_SECONDS / 2
            quick_empties = quick_empties + 1 if quick else 0
            if quick_empties >= 3:
                raise ImapError("the server closed the connection")
            if any(_is_news(response) for response in responses):
                self.notify()
            if time.monotonic() - started >= self.config.idle_renew_seconds:
                client.idle_done()
                client.idle()
                started = time.monotonic()
                self.renewals += 1
                self.log.debug("imap_idle_renewed")
        client.idle_done()


def _is_news(response: tuple[object, ...]) -> bool:
    return len(response) >= 2 and response[1] in NEWS
