"""The twilio library's HTTP client, pointed where we say and patient with 429 and 5xx.

twilio-python sends every request through a pluggable `HttpClient`. Ours is its own
`TwilioHttpClient` with two changes: requests for https://api.twilio.com go to `api_url`
instead (a proxy, or the fake Twilio of the test suite: the library and our code run unchanged),
and a 429 or a 5xx is tried again, after Retry-After when Twilio gives one, else with
exponential backoff and jitter, before the library sees it. Media downloads use the same
session, streamed with a size cap: the library's own Response keeps only text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from requests import Response as RequestsResponse
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

TWILIO_API = "https://api.twilio.com"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Waited at most this long per retry, whatever Retry-After says: the daemon's loop is waiting,
#: and after the last attempt the fetch fails and the daemon backs off on its own.
MAX_RETRY_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class Download:
    content: bytes
    content_type: str


class DownloadError(Exception):
    pass


class RoutedHttpClient(TwilioHttpClient):
    def __init__(self, api_url: str = TWILIO_API, *, timeout: float = 15, attempts: int = 4):
        super().__init__(timeout=timeout)
        self.api_url = api_url.rstrip("/")
        self.attempts = attempts

    def route(self, url: str) -> str:
        if url.startswith(TWILIO_API) and self.api_url != TWILIO_API:
            return self.api_url + url[len(TWILIO_API) :]
        return url

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        def once() -> Response:
            return super(RoutedHttpClient, self).request(
                method,
                self.route(url),
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout,
                allow_redirects=allow_redirects,
            )

        response: Response = self._retrying(lambda r: r.status_code in RETRY_STATUSES)(once)
        return response

    def download(self, url: str, auth: tuple[str, str], max_bytes: int) -> Download:
        """GET a media URL (Twilio answers with a redirect to its CDN; requests drops the
        credentials when the host changes). Over `max_bytes`: DownloadError, nothing kept."""

        def once() -> RequestsResponse:
            assert self.session is not None
            response = self.session.get(
                self.route(url), auth=auth, timeout=self.timeout, stream=True
            )
            if response.status_code in RETRY_STATUSES:
                response.close()
            return response

        response: RequestsResponse = self._retrying(lambda r: r.status_code in RETRY_STATUSES)(once)
        with response:
            if response.status_code != 200:
                raise DownloadError(f"HTTP {response.status_code}")
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise DownloadError(f"{declared} bytes, over the cap of {max_bytes}")
            content = bytearray()
            for chunk in response.iter_content(64 * 1024):
                content.extend(chunk)
                if len(content) > max_bytes:
                    raise DownloadError(f"over the cap of {max_bytes} bytes")
            content_type = response.headers.get("Content-Type", "application/octet-stream")
            return Download(bytes(content), content_type.split(";")[0].strip())

    def _retrying(self, should_retry: Any) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=_retry_after_or_backoff,
            retry=retry_if_result(should_retry),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            reraise=True,
        )


_backoff = wait_random_exponential(multiplier=0.5, max=8)


def _retry_after_or_backoff(state: RetryCallState) -> float:
    """Twilio's Retry-After when it gave one (capped), else exponential backoff with jitter."""
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        headers = getattr(outcome.result(), "headers", None) or {}
        value = headers.get("Retry-After") or headers.get("retry-after")
        if value:
            try:
                return min(MAX_RETRY_AFTER, max(0.0, float(value)))
            except ValueError:
                pass
    return float(_backoff(state))
