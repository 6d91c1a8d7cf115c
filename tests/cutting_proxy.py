"""A TCP proxy on loopback that drops a connection part-way, as a NAT box, a restarted
load balancer or a server going down does: the client has read some of the server's answer
and then meets a closed socket, not a clean protocol error.

`cut_after(n)` arms it: the next connection is dropped once the server has sent `n` bytes
through it, and from then on the server is away (as after `down()`) until `up()`.
`down()` drops every new connection at once (the server is away), `up()` lets them
through again. Only the test's own threads run it; `close()` ends them all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self

HOST = "127.0.0.1"
CHUNK = 16 * 1024


class CuttingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((HOST, 0))
        self.host, self.port = HOST, self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._cut_after: int | None = None
        self._down = False
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        #: Connections dropped so far (by a cut or while down), for the test to wait on.
        self.dropped = 0
        self.connections = 0
        self._closing = threading.Event()

    def __enter__(self) -> Self:
        self._spawn(self._accept)
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def cut_after(self, server_bytes: int) -> None:
        with self._lock:
            self._cut_after = server_bytes

    def down(self) -> None:
        with self._lock:
            self._down = True

    def up(self) -> None:
        with self._lock:
            self._down = False

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                _drop(sock)
        for thread in self._threads:
            thread.join(5)

    # -- the proxying ----------------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                self.connections += 1
                if self._down:
                    self.dropped += 1
                    _drop(client)
                    continue
                budget, self._cut_after = self._cut_after, None
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _drop(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            self._spawn(self._pump, client, server, None)
            self._spawn(self._pump, server, client, budget)

    def _pump(self, source: socket.socket, sink: socket.socket, budget: int | None) -> None:
        """Copies until either side closes; with a budget, drops both sockets once that many
        bytes have gone through (the rest of the chunk that crossed it is never sent)."""
        sent = 0
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                if budget is not None and sent + len(data) >= budget:
                    sink.sendall(data[: max(budget - sent, 0)])
                    with self._lock:
                        self.dropped += 1
                        self._down = True
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            with self._lock:
                for sock in (source, sink):
                    _drop(sock)
                    self._open.discard(sock)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
