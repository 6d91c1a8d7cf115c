"""A fake Twilio REST API (2010-04-01 Messages, Media) that the real ``twilio.rest.Client`` uses.

Twilio cannot be reached from here, so this small server stands in for ``https://api.twilio.com``
(STYLE.md: fakes only for services that cannot run here). The library is not patched: its
pluggable HTTP client rewrites the host (``connectors.twilio_http.RoutedHttpClient(fake.url)``,
or ``fake.http_client()`` which does only that). The fake answers the way Twilio documents and
the way twilio-python 9 reads it, so code under test cannot lean on anything Twilio would not do:

- HTTP Basic auth with AccountSid:AuthToken, or an API key (``add_api_key``) with the account in
  the path. Missing or wrong credentials: 401 ``{"code": 20003, "message": "Authenticate", ...}``
  with ``WWW-Authenticate``; another account in the path, or an unknown sid: 404 code 20404.
- ``GET .../Messages.json`` is newest first (``date_sent``, then arrival), filtered by ``To``,
  ``From``, ``DateSent``, ``DateSent<`` and ``DateSent>``, and paged with ``PageSize`` (default
  50, at most 1000: larger values are clamped), ``Page`` and ``PageToken``. The token is a cursor
  (``PA`` + the last sid of the page before, ``PB`` + the first sid of the page after), so a
  message that arrives while a client pages shows up on no page twice and moves no record
  between pages, as with Twilio's own cursors. ``next_page_uri`` is null on the last page.
- The DateSent filters have **day granularity**, as Twilio documents them (``YYYY-MM-DD`` in
  GMT; ``DateSent>`` = ``>=``: sent on or after 00:00:00 of that day; ``DateSent<`` = ``<=``:
  sent on that day or before; ``DateSent``: sent on that day). twilio-python 9 sends datetimes as
  ``YYYY-MM-DDTHH:MM:SSZ`` (``serialize.iso8601_datetime``); the fake accepts those, and any
  ISO 8601 value, but only their UTC date counts: the time of day is ignored. A client that
  asks for "after 10:15" therefore gets the whole day, and must drop what it already has.
- ``GET .../Messages/{Sid}/Media/{MediaSid}`` (no ``.json``) needs Basic auth (the account
  setting "Enforce HTTP Auth on Media URLs") and answers, like Twilio, with a 307 redirect to
  ``/cdn/{MediaSid}`` on this server, which serves the bytes without auth, but only once an
  authenticated request was redirected there (``media_redirect=False`` serves them directly).
- ``webhook_params`` writes ``MediaUrlN`` on ``https://api.twilio.com``, as Twilio does: the code
  under test must route that host itself (``fake.local(url)`` does it for a test).
- ``fail_next`` answers 401, 403, 429 or 5xx with Twilio's error JSON (and ``Retry-After``),
  records the call and changes nothing; ``latency`` makes every answer late; ``recover`` ends
  both.
- ``POST .../Messages.json`` sends a message: answered ``queued`` with ``date_sent`` null, then
  kept as ``sent`` (the fake delivers at once), so listings mix outbound with inbound as a real
  account's log does. Outbound ``MediaUrl`` values are checked for presence, never fetched.
  ``send_outbound`` puts such a message in the log without a request.
- ``numbers`` (optional) are the account's phone numbers: with them, ``receive`` refuses other
  ``To`` numbers and sending refuses other ``From`` numbers; without them any number is ours.

Usage::

    with FakeTwilio() as fake:
        client = Client(fake.account_sid, fake.auth_token, http_client=fake.http_client())
        message = fake.receive("+14155550100", "+15005550006", "hello")
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import itertools
import json
import math
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import phonenumbers
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from tests.loopback import LoopbackServer

TWILIO_API = "https://api.twilio.com"
API_VERSION = "2010-04-01"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
#: Twilio accepts at most ten media with one MMS.
MAX_MEDIA = 10
#: Twilio's magic test number, the sender when a message names only a Messaging Service.
DEFAULT_NUMBER = "+15005550006"
#: The filters of GET Messages.json, as twilio-python 9 names them on the wire.
_MESSAGE_FILTERS: tuple[str, ...] = ("To", "From", "DateSent", "DateSent<", "DateSent>")

_ERROR_MESSAGES = {
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}

# GSM 03.38: a body made only of these is sent as 7-bit septets (160 a segment, 153 when
# concatenated); the extension characters cost two septets. Anything else goes as UCS-2.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass
class Call:
    """One request as the fake saw it (``form`` holds a POST body's fields)."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    authorized: bool
    form: dict[str, list[str]] = field(default_factory=dict)


class TwilioError(Exception):
    """An answer in Twilio's error shape: ``{"code", "message", "more_info", "status"}``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


@dataclass
class _Failure:
    path_contains: str
    status: int
    retry_after: int | None
    remaining: int


@dataclass
class _Media:
    sid: str
    content_type: str
    content: bytes
    created: datetime


@dataclass
class _Message:
    resource: dict[str, Any]
    sort_key: tuple[float, int]
    sent_day: date | None
    media: list[_Media]


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def rfc2822(moment: datetime) -> str:
    """The date format of every 2010-04-01 resource: ``Tue, 01 Dec 2026 10:00:00 +0000``."""
    return email.utils.format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def num_segments(body: str) -> int:
    if all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in body):
        units = sum(2 if char in _GSM_EXTENSION else 1 for char in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def _day(value: str) -> date:
    """A DateSent value's UTC day: ``YYYY-MM-DD`` or any ISO 8601 date-time (time ignored)."""
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TwilioError(400, 20001, "Invalid date value.") from None
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def _page_size(query: Mapping[str, list[str]]) -> int:
    raw = query.get("PageSize", [""])[-1]
    if not raw:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise TwilioError(400, 20001, f"Invalid PageSize: {raw}") from None
    if size < 1:
        raise TwilioError(400, 20001, f"Invalid PageSize: {raw}")
    return min(size, MAX_PAGE_SIZE)


class RedirectingHttpClient(TwilioHttpClient):
    """twilio-python's own HTTP client, sending what it meant for api.twilio.com to ``base_url``."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


class FakeTwilio(LoopbackServer):
    """One Twilio account with its phone numbers, served over HTTP on a free loopback port."""

    thread_name = "fake-twilio"

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "a" * 32,
        auth_token: str = "test-auth-token",
        numbers: Sequence[str] | None = None,
        media_redirect: bool = True,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers: tuple[str, ...] = tuple(numbers or ())
        self.media_redirect = media_redirect
        super().__init__()
        self.calls: list[Call] = []
        self.media_fetches = 0
        self.api_keys: dict[str, str] = {}
        self._lock = threading.RLock()
        self._messages: dict[str, _Message] = {}
        self._cdn: dict[str, _Media] = {}
        self._arrivals = itertools.count(1)
        self._failures: list[_Failure] = []
        #: Seconds every REST answer waits (a slow or overloaded API).
        self.latency = 0.0
        #: Each sent message's StatusCallback, by its SID.
        self.status_callbacks: dict[str, str] = {}
        #: States reported to a message's StatusCallback before its create is answered (a
        #: callback that overtakes the sender's own record of the send).
        self.report_before_answer: tuple[str, ...] = ()

    # -- lifecycle -------------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            twilio = fake

        return Handler

    def http_client(self, **kwargs: Any) -> RedirectingHttpClient:
        return RedirectingHttpClient(self.url, **kwargs)

    def local(self, url: str) -> str:
        """``url`` on api.twilio.com (a MediaUrl as Twilio writes it) as this server's URL."""
        if url.startswith(TWILIO_API):
            return self.url + url[len(TWILIO_API) :]
        return url

    # -- what a test does to the account ---------------------------------------------------

    def add_api_key(self) -> tuple[str, str]:
        """A new API key (``SK...``, secret) that authenticates like the auth token."""
        key_sid, secret = _sid("SK"), secrets.token_hex(16)
        with self._lock:
            self.api_keys[key_sid] = secret
        return key_sid, secret

    def fail_next(
        self,
        path_contains: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        count: int = 1,
    ) -> None:
        with self._lock:
            self._failures.append(_Failure(path_contains, status, retry_after, count))

    def recover(self) -> None:
        """The failures ``fail_next`` queued end, and answers are quick again."""
        with self._lock:
            self._failures.clear()
            self.latency = 0.0

    def receive(
        self,
        from_: str,
        to: str,
        body: str,
        *,
        media: Sequence[tuple[str, bytes]] = (),
        sid: str | None = None,
        date_sent: datetime | None = None,
        messaging_service_sid: str | None = None,
    ) -> dict[str, Any]:
        """An SMS (with media as (content type, bytes): an MMS) as the account's log holds it."""
        if self.numbers and to not in self.numbers:
            raise ValueError(f"{to} is not a number of this account: {self.numbers}")
        if len(media) > MAX_MEDIA:
            raise ValueError(f"Twilio delivers at most {MAX_MEDIA} media with one message")
        sent = (date_sent or datetime.now(UTC)).astimezone(UTC)
        sid = sid or _sid("MM" if media else "SM")
        with self._lock:
            if sid in self._messages:
                raise ValueError(f"message {sid} exists")
            resource = self._resource(
                sid,
                from_,
                to,
                body,
                direction="inbound",
                status="received",
                sent=sent,
                num_media=len(media),
                segments=1 if media else num_segments(body),
                messaging_service_sid=messaging_service_sid,
            )
            stored = [
                _Media(_sid("ME"), content_type, content, sent) for content_type, content in media
            ]
            self._store(resource, sent, stored)
            return dict(resource)

    def send_outbound(self, from_: str, to: str, body: str) -> dict[str, Any]:
        """A message our side sent through the API, as the log holds it once sent."""
        now = datetime.now(UTC)
        with self._lock:
            resource = self._resource(
                _sid("SM"),
                from_,
                to,
                body,
                direction="outbound-api",
                status="sent",
                sent=now,
                num_media=0,
                segments=num_segments(body),
                messaging_service_sid=None,
            )
            self._store(resource, now, [])
            return dict(resource)

    def message(self, sid: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._messages[sid].resource)

    def outbound(self) -> list[dict[str, Any]]:
        """The messages sent through the API, oldest first."""
        with self._lock:
            return [
                dict(stored.resource)
                for stored in sorted(self._messages.values(), key=lambda item: item.sort_key)
                if stored.resource["direction"] == "outbound-api"
            ]

    # -- the webhook side --------------------------------------------------------------------

    def webhook_params(
        self, message: Mapping[str, Any], *, api_base: str | None = None
    ) -> dict[str, str]:
        """The form Twilio POSTs to the number's SMS URL for ``message``.

        MediaUrlN are on https://api.twilio.com, exactly as Twilio writes them; ``api_base``
        puts another host there (``fake.url`` for a client that routes nothing).
        """
        base = (api_base or TWILIO_API).rstrip("/")
        sid = str(message["sid"])
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": str(message["account_sid"]),
            "From": str(message["from"]),
            "To": str(message["to"]),
            "Body": str(message["body"]),
            "NumMedia": str(message["num_media"]),
            "NumSegments": str(message["num_segments"]),
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
            # Twilio's number lookup: always sent, empty where it knows nothing.
            "FromCountry": _country(message["from"]),
            "FromState": "",
            "FromCity": "",
            "FromZip": "",
            "ToCountry": _country(message["to"]),
            "ToState": "",
            "ToCity": "",
            "ToZip": "",
        }
        if message.get("messaging_service_sid"):
            params["MessagingServiceSid"] = str(message["messaging_service_sid"])
        with self._lock:
            media = list(self._messages[sid].media) if sid in self._messages else []
        for index, item in enumerate(media):
            params[f"MediaContentType{index}"] = item.content_type
            params[f"MediaUrl{index}"] = (
                f"{base}{self._account_path()}/Messages/{sid}/Media/{item.sid}"
            )
        return params

    def sign(self, url: str, params: Mapping[str, str], *, auth_token: str | None = None) -> str:
        """X-Twilio-Signature: base64(HMAC-SHA1(token, url + key1 + value1 + ... by sorted key))."""
        signed = url + "".join(key + params[key] for key in sorted(params))
        key = (auth_token or self.auth_token).encode()
        return base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha1).digest()).decode()

    def deliver(self, webhook_url: str, message: Mapping[str, Any]) -> tuple[int, bytes]:
        """POST the webhook for ``message`` to ``webhook_url``, signed, as Twilio does."""
        params = self.webhook_params(message)
        return self._post_signed(webhook_url, params, self.sign(webhook_url, params))

    def status_params(self, sid: str, state: str, error_code: str = "") -> dict[str, str]:
        """The form Twilio POSTs to a message's StatusCallback when its state changes."""
        with self._lock:
            resource = self._messages[sid].resource
        params = {
            "SmsSid": sid,
            "SmsStatus": state,
            "MessageStatus": state,
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": str(resource["from"]),
            "To": str(resource["to"]),
            "ApiVersion": API_VERSION,
        }
        if error_code:
            params["ErrorCode"] = error_code
        if state == "delivered":
            params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
        return params

    def report_status(
        self, sid: str, state: str, *, error_code: str = "", via: str = ""
    ) -> tuple[int, bytes]:
        """POST the status callback of message ``sid``, signed for its StatusCallback URL as
        Twilio does; ``via`` sends it to another base URL (a proxy in front of the daemon)."""
        url = self.status_callbacks[sid]
        params = self.status_params(sid, state, error_code)
        target = url
        if via:
            parts = urlsplit(url)
            target = via.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
        return self._post_signed(target, params, self.sign(url, params))

    def _post_signed(
        self, target: str, params: Mapping[str, str], signature: str
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            target,
            data=urlencode(params).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
                "User-Agent": "TwilioProxy/1.1",
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    # -- the REST side -----------------------------------------------------------------------

    def handle(self, method: str, target: str, authorization: str, body: bytes) -> _Answer:
        parts = urlsplit(target)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        form = parse_qs(body.decode(), keep_blank_values=True) if method == "POST" else {}
        with self._lock:
            authorized = self._authorized(authorization)
            answer = self._failure(path) or self._route(method, path, query, form, authorized)
            self.calls.append(Call(method, path, query, answer.status, authorized, form))
            return answer

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        authorized: bool,
    ) -> _Answer:
        try:
            if path.startswith("/cdn/") and method == "GET":
                return self._cdn_content(path)
            if not authorized:
                error = TwilioError(401, 20003, "Authenticate")
                return _json(
                    error.status, error.body(), {"WWW-Authenticate": 'Basic realm="Twilio API"'}
                )
            prefix = self._account_path()
            if not path.startswith(prefix + "/"):
                raise _not_found(path)
            rest = path[len(prefix) :].split("/")[1:]
            return self._resource_route(method, path, rest, query, form)
        except TwilioError as error:
            return _json(error.status, error.body())

    def _resource_route(
        self,
        method: str,
        path: str,
        rest: list[str],
        query: dict[str, list[str]],
        form: dict[str, list[str]],
    ) -> _Answer:
        if rest == ["Messages.json"] and method == "GET":
            return _json(200, self._list_messages(path, query))
        if rest == ["Messages.json"] and method == "POST":
            return _json(201, self._create(form))
        if method != "GET" or rest[:1] != ["Messages"] or len(rest) < 2:
            raise _not_found(path)
        if len(rest) == 2 and rest[1].endswith(".json"):
            return _json(200, self._stored(rest[1].removesuffix(".json"), path).resource)
        stored = self._stored(rest[1], path)
        if rest[2:] == ["Media.json"]:
            return _json(200, self._list_media(path, stored, query))
        if len(rest) == 4 and rest[2] == "Media":
            media_sid = rest[3].removesuffix(".json")
            media = next((item for item in stored.media if item.sid == media_sid), None)
            if media is None:
                raise _not_found(path)
            if rest[3].endswith(".json"):
                return _json(200, self._media_resource(stored, media))
            if self.media_redirect:
                self._cdn[media.sid] = media
                return _Answer(307, b"", {"Location": f"{self.url}/cdn/{media.sid}"})
            return self._content(media)
        raise _not_found(path)

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = self.auth_token if user == self.account_sid else self.api_keys.get(user)
        return expected is not None and hmac.compare_digest(password, expected)

    def _failure(self, path: str) -> _Answer | None:
        for failure in self._failures:
            if failure.path_contains in path:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                code, message = _ERROR_MESSAGES.get(failure.status, (failure.status, "Error"))
                headers = {}
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
                return _json(
                    failure.status, TwilioError(failure.status, code, message).body(), headers
                )
        return None

    def _account_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}"

    def _stored(self, sid: str, path: str) -> _Message:
        stored = self._messages.get(sid)
        if stored is None:
            raise _not_found(path)
        return stored

    def _resource(
        self,
        sid: str,
        from_: str,
        to: str,
        body: str,
        *,
        direction: str,
        status: str,
        sent: datetime | None,
        num_media: int,
        segments: int,
        messaging_service_sid: str | None,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        created = sent if sent is not None and direction == "inbound" else now
        path = f"{self._account_path()}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": rfc2822(created),
            "date_sent": rfc2822(sent) if sent is not None else None,
            "date_updated": rfc2822(created),
            "direction": direction,
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": messaging_service_sid,
            "num_media": str(num_media),
            "num_segments": str(segments),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "subresource_uris": {
                "media": f"{path}/Media.json",
                "feedback": f"{path}/Feedback.json",
            },
            "to": to,
            "uri": f"{path}.json",
        }

    def _store(self, resource: dict[str, Any], sent: datetime, media: list[_Media]) -> None:
        key = (sent.timestamp(), next(self._arrivals))
        self._messages[resource["sid"]] = _Message(resource, key, sent.date(), media)

    def _create(self, form: dict[str, list[str]]) -> dict[str, Any]:
        def one(name: str) -> str:
            return form.get(name, [""])[-1]

        to, from_, body = one("To"), one("From"), one("Body")
        service = one("MessagingServiceSid") or None
        media_urls = form.get("MediaUrl", [])
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body and not media_urls:
            raise TwilioError(400, 21602, "Message body is required.")
        if from_ and self.numbers and from_ not in self.numbers:
            raise TwilioError(
                400,
                21606,
                f"The From phone number {from_} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        sid = _sid("MM" if media_urls else "SM")
        resource = self._resource(
            sid,
            from_ or (self.numbers or (DEFAULT_NUMBER,))[0],
            to,
            body,
            direction="outbound-api",
            status="queued",
            sent=None,
            num_media=0,
            segments=1 if media_urls else num_segments(body),
            messaging_service_sid=service,
        )
        answered = dict(resource)
        now = datetime.now(UTC)
        resource.update(status="sent", date_sent=rfc2822(now), date_updated=rfc2822(now))
        self._store(resource, now, [])
        callback = one("StatusCallback")
        if callback:
            self.status_callbacks[sid] = callback
            for state in self.report_before_answer:
                self.report_status(sid, state)
        return answered

    def _list_messages(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        filters: dict[str, str] = {
            name: query[name][-1] for name in _MESSAGE_FILTERS if name in query
        }
        days = {name: _day(value) for name, value in filters.items() if name.startswith("Date")}
        matching = [
            stored
            for stored in self._messages.values()
            if filters.get("To", stored.resource["to"]) == stored.resource["to"]
            and filters.get("From", stored.resource["from"]) == stored.resource["from"]
            and _day_matches(stored.sent_day, days)
        ]
        records = [stored.resource for stored in self._newest_first(matching)]
        return self._page(path, "messages", records, filters, query)

    def _list_media(
        self, path: str, stored: _Message, query: dict[str, list[str]]
    ) -> dict[str, Any]:
        records = [self._media_resource(stored, media) for media in reversed(stored.media)]
        return self._page(path, "media_list", records, {}, query)

    def _media_resource(self, stored: _Message, media: _Media) -> dict[str, Any]:
        message_path = str(stored.resource["uri"]).removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "content_type": media.content_type,
            "date_created": rfc2822(media.created),
            "date_updated": rfc2822(media.created),
            "parent_sid": stored.resource["sid"],
            "sid": media.sid,
            "uri": f"{message_path}/Media/{media.sid}.json",
        }

    def _newest_first(self, messages: list[_Message]) -> list[_Message]:
        return sorted(messages, key=lambda stored: stored.sort_key, reverse=True)

    def _page(
        self,
        path: str,
        key: str,
        records: list[dict[str, Any]],
        filters: dict[str, str],
        query: dict[str, list[str]],
    ) -> dict[str, Any]:
        """One page of ``records`` (already in order) in Twilio's list shape, with cursor links."""
        size = _page_size(query)
        try:
            number = int(query.get("Page", ["0"])[-1] or 0)
        except ValueError:
            raise TwilioError(400, 20001, "Invalid Page") from None
        token = query.get("PageToken", [""])[-1]
        start_index = self._start_index(records, token, number, size)
        chunk = records[start_index : start_index + size]

        def link(page: int, page_token: str | None) -> str:
            params = {**filters, "PageSize": str(size), "Page": str(page)}
            if page_token:
                params["PageToken"] = page_token
            return f"{path}?{urlencode(params)}"

        has_next = start_index + size < len(records)
        has_previous = start_index > 0
        start = number * size
        return {
            key: chunk,
            "end": start + len(chunk) - 1 if chunk else start,
            "first_page_uri": link(0, None),
            "next_page_uri": link(number + 1, "PA" + chunk[-1]["sid"]) if has_next else None,
            "page": number,
            "page_size": size,
            "previous_page_uri": (
                link(max(number - 1, 0), "PB" + chunk[0]["sid"]) if has_previous else None
            ),
            "start": start,
            "uri": link(number, token or None),
        }

    def _start_index(
        self, records: list[dict[str, Any]], token: str, number: int, size: int
    ) -> int:
        if not token:
            return number * size
        direction, cursor_sid = token[:2], token[2:]
        positions = {record["sid"]: index for index, record in enumerate(records)}
        if direction not in ("PA", "PB") or cursor_sid not in positions:
            raise TwilioError(400, 20001, f"Invalid PageToken: {token}")
        at = positions[cursor_sid]
        # A PB page that would reach back past the start is the first page.
        return at + 1 if direction == "PA" else max(at - size, 0)

    def _cdn_content(self, path: str) -> _Answer:
        media = self._cdn.get(path.removeprefix("/cdn/"))
        if media is None:
            return _Answer(
                404, b"<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"}
            )
        return self._content(media)

    def _content(self, media: _Media) -> _Answer:
        self.media_fetches += 1
        return _Answer(200, media.content, {"Content-Type": media.content_type})


def _day_matches(sent_day: date | None, days: Mapping[str, date]) -> bool:
    if not days:
        return True
    if sent_day is None:
        return False
    return (
        days.get("DateSent", sent_day) == sent_day
        and days.get("DateSent>", sent_day) <= sent_day
        and days.get("DateSent<", sent_day) >= sent_day
    )


def _country(number: Any) -> str:
    try:
        parsed = phonenumbers.parse(str(number), None)
    except phonenumbers.NumberParseException:
        return ""
    return phonenumbers.region_code_for_number(parsed) or ""


def _json(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> _Answer:
    return _Answer(
        status,
        json.dumps(payload).encode(),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


class _Handler(BaseHTTPRequestHandler):
    twilio: FakeTwilio

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        authorization = self.headers.get("Authorization", "")
        if self.twilio.latency > 0:
            time.sleep(self.twilio.latency)
        answer = self.twilio.handle(method, self.path, authorization, body)
        self.send_response(answer.status)
        self.send_header("Twilio-Request-Id", _sid("RQ"))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
