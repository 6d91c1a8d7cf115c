"""The HTTP receiver for webhooks (Slack's Events API, later Twilio), on waitress.

It does as little as possible: route by exact path, cap the body, hand the request to the
connector's handler (which verifies and spools, see connectors/spool.py), and answer. Ingest
happens afterwards in the daemon's own loop, so a slow store never makes Slack or Twilio wait,
and a handler that raises answers 500 (the sender retries) without taking the server down.

waitress serves from a small thread pool behind its own non-blocking reader: a client that
trickles its request ties up no worker thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import structlog
from waitress.server import create_server

from inbox.webhook import Handler, WebRequest, WebResponse, text

log = structlog.get_logger(__name__)

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

STATUS_TEXT = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class WebApp:
    """The WSGI application: exact paths to handlers; `routes` take POST (webhooks), `pages`
    GET (health, metrics); `mounts` are whole WSGI applications under a prefix (the desk)."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        max_body_bytes: int,
        pages: Mapping[str, Handler] | None = None,
        mounts: Mapping[str, WsgiApp] | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.pages = dict(pages or {})
        self.mounts = dict(mounts or {})
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "/")
        for prefix, app in self.mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                environ["SCRIPT_NAME"] = str(environ.get("SCRIPT_NAME") or "") + prefix
                environ["PATH_INFO"] = path[len(prefix) :] or "/"
                return app(environ, start_response)
        response = self.respond(environ)
        headers = [("Content-Type", response.content_type), *response.headers.items()]
        headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status} {STATUS_TEXT.get(response.status, '')}", headers)
        return [response.body]

    def respond(self, environ: dict[str, Any]) -> WebResponse:
        path = environ.get("PATH_INFO") or "/"
        page = self.pages.get(path)
        if page is not None and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            request = WebRequest("GET", path, {}, b"", str(environ.get("QUERY_STRING") or ""))
            try:
                return page(request)
            except Exception:
                log.exception("web_page_failed", path=path)
                return text(500, "internal error")
        handler = self.routes.get(path)
        if handler is None:
            return text(404, "no such webhook" if page is None else "GET only")
        if environ.get("REQUEST_METHOD") != "POST":
            return WebResponse(405, b"POST only\n", headers={"Allow": "POST"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > self.max_body_bytes:
            log.warning("webhook_too_large", path=path, bytes=length)
            return text(413, "request body too large")
        body = environ["wsgi.input"].read(length if length >= 0 else self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            log.warning("webhook_too_large", path=path, bytes=len(body))
            return text(413, "request body too large")
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        request = WebRequest(
            method="POST",
            path=path,
            headers=headers,
            body=body,
            query=str(environ.get("QUERY_STRING") or ""),
            remote=str(environ.get("REMOTE_ADDR") or ""),
        )
        try:
            return handler(request)
        except Exception:
            log.exception("webhook_handler_failed", path=path)
            return text(500, "internal error; retry later")


class WebServer:
    """waitress in a thread of the daemon; `port` is the one bound (useful with port 0)."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 8025,
        max_body_bytes: int = 1024 * 1024,
        threads: int = 4,
        pages: Mapping[str, Handler] | None = None,
        mounts: Mapping[str, WsgiApp] | None = None,
    ) -> None:
        self.app = WebApp(routes, max_body_bytes=max_body_bytes, pages=pages, mounts=mounts)
        self._server: Any = cast(
            Any,
            create_server(
                self.app,
                host=host,
                port=port,
                threads=threads,
                ident="inbox",
                max_request_body_size=max_body_bytes + 1,
                clear_untrusted_proxy_headers=True,
            ),
        )
        self.host = host
        self.port: int = int(self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()
        paths = sorted({*self.app.routes, *self.app.pages, *self.app.mounts})
        log.info("web_listening", url=self.url, paths=paths)
        return self

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed under our feet by stop()
            self._server.run()

    def stop(self, timeout: float = 5.0) -> None:
        self._server.close()
        self._server.task_dispatcher.shutdown(timeout=timeout)
        if self._thread is not None:
            self._thread.join(timeout)
