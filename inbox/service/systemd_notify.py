"""Telling systemd how the daemon is doing: the sd_notify protocol (Type=notify units).

systemd passes a datagram socket in $NOTIFY_SOCKET (a path, or "@name" in the abstract
namespace) and, with WatchdogSec=, the interval in $WATCHDOG_USEC. We send:

- READY=1 once the store is migrated and the rules are loaded: `systemctl start` returns then,
  and units ordered after us start against a working daemon;
- STATUS=<one line> now and then: what `systemctl status inbox` shows;
- WATCHDOG=1 from the main loop, at half the interval: a loop stuck for longer is killed and
  restarted by systemd;
- RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 when a stop begins.

The protocol is a few bytes on a socket, so it is written here rather than pulling in
libsystemd; without $NOTIFY_SOCKET (a terminal, the tests) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address
        self.watchdog_seconds = 0.0
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        if environ.get("WATCHDOG_USEC") and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            try:
                self.watchdog_seconds = int(environ["WATCHDOG_USEC"]) / 1_000_000
            except ValueError:
                log.warning("watchdog_usec_unreadable", value=environ["WATCHDOG_USEC"])
        self._socket: socket.socket | None = None
        self._last_watchdog = 0.0
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *lines: str) -> bool:
        if not self.address:
            return False
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                self._socket = socket.socket(socket.AF_UNIX, kind)
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError as error:
            # systemd gone or the socket not ours: nothing to tell, never a reason to stop.
            log.warning("sd_notify_failed", error=str(error))
            return False
        return True

    def ready(self, status: str) -> None:
        self._last_status = status
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.notify(f"STATUS={status}")

    def reloading(self) -> None:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self, status: str = "stopping") -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        """Called from the main loop each time round; sends at half the interval."""
        if not self.watchdog_seconds:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_seconds / 2:
            self._last_watchdog = now
            self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
