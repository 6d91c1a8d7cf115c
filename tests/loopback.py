"""An HTTP server on 127.0.0.1, served from a thread of the test process: what the fake Slack
and the fake Twilio have in common. Each fake says what handles its requests and where its API
starts; this class starts and stops the server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LoopbackServer:
    #: The serving thread's name, seen in a hung test's thread dump.
    thread_name = "loopback-server"

    def __init__(self) -> None:
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this fake."""
        raise NotImplementedError

    def api_url(self, origin: str) -> str:
        """Where the API starts, from `http://127.0.0.1:PORT`."""
        return origin

    def start(self, port: int = 0) -> Self:
        """Serve on ``port`` (0: a free one). A fake stopped and started again on its old port
        is an API that went away and came back at the same address."""
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self.handler())
        self._server.daemon_threads = True
        self.url = self.api_url(f"http://127.0.0.1:{self._server.server_address[1]}")
        # A short poll interval: stop() waits for serve_forever to notice, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return int(self.url.split(":")[2].split("/")[0])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
