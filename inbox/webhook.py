"""What a webhook handler sees and answers: plain values, so that a connector's handler is
tested without a server and the server (inbox/service/web.py) can be swapped without touching
one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class WebRequest:
    method: str
    path: str
    #: Header names in lowercase.
    headers: Mapping[str, str]
    body: bytes
    query: str = ""
    remote: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True, slots=True)
class WebResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


#: A connector's handler for one path. It must answer quickly: verify, spool, return.
Handler = Callable[[WebRequest], WebResponse]


def text(status: int, message: str) -> WebResponse:
    return WebResponse(status, message.encode() + b"\n")
