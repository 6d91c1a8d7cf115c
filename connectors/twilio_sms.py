"""Twilio SMS and MMS: signed webhooks in real time, REST catch-up so that nothing is missed.

- **Webhook** (`path`, default /webhooks/twilio/sms): `X-Twilio-Signature` is checked with the
  library's RequestValidator against `public_url`, the address Twilio was told to call: behind
  a proxy, the scheme and host a request arrives with are not the ones Twilio signed. Unsigned,
  forged, or another account's requests get 403 and nothing is kept. A valid one is spooled
  under its MessageSid (a second delivery finds the name taken) and answered with empty TwiML.
- **Catch-up** on start, every `catchup_seconds` and after a failure: the Messages list of the
  account, to each of our numbers, from the day before the number's cursor (Twilio filters by
  day), all pages. What the webhook already brought is the same MessageSid: stored once.
- **MMS**: each MediaUrlN is fetched with the account's credentials, at most
  `media_max_bytes`, only of `media_types`; a failed fetch is retried (429 and 5xx, with
  backoff), and if it still fails the message is stored with its text and the reason, never
  dropped (its raw payload keeps the media URLs).
- **Status callbacks** (`status_path`, default /webhooks/twilio/status): each reply asks Twilio to
  report what became of it; a report, verified like the webhook, is handed to the daemon, which
  records delivered, undelivered or failed on the reply (connectors/base.py, DeliveryReporting).
- **Numbers**: E.164 with `phonenumbers` (local formats read in `default_region`); a
  conversation is the pair (customer number, our number) while it is open.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import structlog
from pydantic import Field, model_validator
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from connectors.base import (
    REPORTED_STATES,
    ConnectorConfig,
    DeliveryReport,
    ReportDelivery,
    UpstreamError,
    unreachable,
)
from connectors.spool import SpooledConnector, SpoolEntry
from connectors.twilio_http import DownloadError, RoutedHttpClient
from connectors.twilio_send import REPLY_KEY, TwilioReplySender, delivery_detail
from inbox.normalize.sms import e164
from inbox.raw import Batch, Channel, RawMessage
from inbox.secrets import Secret, SecretSource
from inbox.webhook import Handler, WebRequest, WebResponse, text

log = structlog.get_logger(__name__)

# The library logs every request and response at INFO through the standard logging module.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

DEFAULT_MEDIA_TYPES = ["image/*", "audio/*", "video/*", "application/pdf", "text/vcard"]
EMPTY_TWIML = str(MessagingResponse()).encode()
#: Messages per page of the list (Twilio allows up to 1,000).
PAGE_SIZE = 200
#: Twilio never sends more than 10 media with one message.
MAX_MEDIA = 10
#: What Twilio's refusals of the message list mean for the person reading /healthz.
REFUSALS = {
    401: "the account SID or auth token is wrong",
    403: "this account may not list messages",
    404: "no such account (check account_sid)",
    429: "rate limited, still after waiting out Retry-After",
}


class TwilioSmsConfig(ConnectorConfig):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretSource
    #: Our Twilio numbers (any format; local ones read in default_region).
    numbers: list[str] = Field(min_length=1)
    #: ISO 3166 region for numbers written without a country code ("FI": 040 123 4567).
    default_region: str = Field(default="", pattern=r"^([A-Za-z]{2})?$")
    #: The webhook URL exactly as configured in Twilio's console (scheme, host, path, query).
    public_url: str = ""
    path: str = "/webhooks/twilio/sms"
    #: Where Twilio reports what became of a reply, as Twilio calls it; empty: public_url's
    #: scheme and host with status_path. No status callbacks without either.
    status_url: str = ""
    status_path: str = "/webhooks/twilio/status"
    catchup_seconds: float = Field(default=300, gt=0)
    #: The first catch-up of a number looks back this many days.
    catchup_days: int = Field(default=2, ge=0, le=400)
    media_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    media_types: list[str] = Field(default_factory=lambda: list(DEFAULT_MEDIA_TYPES))
    api_url: str = "https://api.twilio.com"
    timeout_seconds: float = Field(default=15, gt=0)
    spool_dir: Path | None = None
    poll_seconds: float = 5

    @model_validator(mode="after")
    def _paths(self) -> TwilioSmsConfig:
        if self.status_path == self.path:
            raise ValueError(f"status_path: {self.path} is already the path of incoming texts")
        return self

    @model_validator(mode="after")
    def _phone_numbers(self) -> TwilioSmsConfig:
        for number in self.numbers:
            if not e164(number, self.default_region).startswith("+"):
                where = f" in region {self.default_region}" if self.default_region else ""
                raise ValueError(f"numbers: {number!r} is not a phone number{where}")
        return self


class TwilioSmsConnector(SpooledConnector):
    type_name: ClassVar[str] = "twilio"
    channel: ClassVar[Channel] = "sms"
    config_model: ClassVar[type[ConnectorConfig]] = TwilioSmsConfig

    def __init__(self, config: TwilioSmsConfig) -> None:
        if config.spool_dir is None:
            raise ValueError("the twilio connector needs spool_dir (set by the daemon)")
        super().__init__(config.name, config.spool_dir, config.catchup_seconds)
        self.config = config
        self.log = log.bind(connector=config.name)
        self.numbers = [e164(n, config.default_region) for n in config.numbers]
        self._token = Secret(config.auth_token)
        self._http = RoutedHttpClient(config.api_url, timeout=config.timeout_seconds)
        self._client: Client | None = None
        self._reply_client: Client | None = None
        #: MessageSids this process took from the spool: catch-up need not fetch their media.
        self._seen: dict[str, float] = {}

    # -- the webhook ------------------------------------------------------------------------

    def webhooks(self) -> Mapping[str, Handler]:
        if not self.config.public_url:
            return {}
        return {self.config.path: self.receive}

    def receive(self, request: WebRequest) -> WebResponse:
        params = self._verified(request, self.config.public_url)
        if isinstance(params, WebResponse):
            return params
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        if not sid:
            return text(400, "no MessageSid")
        envelope = {"source": "webhook", "params": params, "received": time.time()}
        if not self.spooled(sid, json.dumps(envelope).encode()):
            self.log.info("twilio_webhook_duplicate", message_sid=sid)
        return WebResponse(200, EMPTY_TWIML, content_type="text/xml")

    def _verified(self, request: WebRequest, public_url: str) -> dict[str, str] | WebResponse:
        """The form of a request Twilio signed for `public_url` and this account, or the refusal
        to answer (nothing of a refused request is kept)."""
        signature = request.header("x-twilio-signature")
        if not signature:
            self.log.warning("twilio_webhook_refused", reason="unsigned", remote=request.remote)
            return text(403, "missing X-Twilio-Signature")
        try:
            params = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            self.log.warning("twilio_webhook_refused", reason="body is not UTF-8")
            return text(400, "body is not UTF-8")
        url = public_url
        if request.query and "?" not in url:
            url = f"{url}?{request.query}"
        validator = RequestValidator(self._token.get())
        if not validator.validate(url, params, signature):
            self.log.warning(
                "twilio_webhook_refused", reason="bad signature", remote=request.remote, url=url
            )
            return text(403, "bad X-Twilio-Signature")
        if params.get("AccountSid") != self.config.account_sid:
            self.log.warning("twilio_webhook_refused", reason="another account")
            return text(403, "not this account")
        return params

    # -- status callbacks ---------------------------------------------------------------------

    @property
    def status_url(self) -> str:
        """The status callback URL Twilio is given and signs ("" for none)."""
        if self.config.status_url:
            return self.config.status_url
        if not self.config.public_url:
            return ""
        public = urlsplit(self.config.public_url)
        return f"{public.scheme}://{public.netloc}{self.config.status_path}"

    def delivery_webhooks(self, report: ReportDelivery) -> Mapping[str, Handler]:
        if not self.status_url:
            return {}
        return {self.config.status_path: lambda request: self._status(request, report)}

    def _status(self, request: WebRequest, report: ReportDelivery) -> WebResponse:
        params = self._verified(request, self.status_url)
        if isinstance(params, WebResponse):
            return params
        key = dict(parse_qsl(request.query)).get(REPLY_KEY, "")
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        state = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        if not key or state not in REPORTED_STATES:
            # Not one of our replies, or a step on the way (queued, sending): nothing to keep.
            return text(200, "noted")
        delivered = DeliveryReport(
            key=key,
            provider_id=sid,
            state=state,
            detail=delivery_detail(state, sid, params.get("ErrorCode", "")),
        )
        try:
            report(delivered)
        except Exception:
            self.log.exception("twilio_status_not_recorded", message_sid=sid, state=state)
            return text(503, "the report could not be recorded; call again")
        return text(200, "recorded")

    # -- fetching ----------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(
                self.config.account_sid, self._token.get(), http_client=self._http
            )
        return self._client

    def sender(self) -> TwilioReplySender:
        """Replies to these numbers' conversations, as texts from the number written to."""
        return TwilioReplySender(self._send_client, status_callback=self.status_url)

    def _send_client(self) -> Client:
        if self._reply_client is None:
            # One attempt a call: a POST Twilio may have acted on is not repeated here.
            http = RoutedHttpClient(
                self.config.api_url, timeout=self.config.timeout_seconds, attempts=1
            )
            self._reply_client = Client(
                self.config.account_sid, self._token.get(), http_client=http
            )
        return self._reply_client

    def catch_up(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        forget = time.time() - 3 * 86400
        self._seen = {sid: when for sid, when in self._seen.items() if when > forget}
        try:
            for number in self.numbers:
                yield from self._catch_up(number, cursors.get(number), batch_size)
        except TwilioRestException as error:
            meaning = REFUSALS.get(error.status, "")
            raise UpstreamError(
                f"Twilio answered HTTP {error.status} (error {error.code}: {error.msg})"
                + (f": {meaning}" if meaning else "")
            ) from None
        except TwilioException as error:
            # A page that fails mid-list is the base exception, with the response beside it.
            response = error.args[1] if len(error.args) > 1 else None
            status = getattr(response, "status_code", "?")
            raise UpstreamError(f"Twilio refused the message list (HTTP {status})") from None
        except OSError as error:  # requests' errors are OSErrors: refused, reset, timed out
            raise unreachable("Twilio", self.config.api_url, error) from None

    def messages_of(self, entry: SpoolEntry) -> list[RawMessage]:
        try:
            envelope = json.loads(entry.body)
            params = envelope["params"]
            if not isinstance(params, dict):
                raise TypeError("params is not an object")
        except (ValueError, KeyError, TypeError) as error:
            self.log.error("twilio_spool_unreadable", spooled=entry.name, error=str(error)[:200])
            return [
                RawMessage(
                    connector=self.name,
                    external_id=f"spool:{entry.name}",
                    channel="sms",
                    payload=entry.body,
                    received_at=datetime.fromtimestamp(entry.received_at, UTC),
                    note=f"unreadable spooled webhook: {error}"[:300],
                )
            ]
        self._seen[str(params.get("MessageSid") or "")] = time.time()
        received = datetime.fromtimestamp(float(envelope.get("received") or 0), UTC)
        return [self._raw(params, "webhook", received, None)]

    def _raw(
        self, params: dict[str, Any], source: str, received: datetime, sent_at: datetime | None
    ) -> RawMessage:
        envelope = {
            "source": source,
            "params": params,
            "region": self.config.default_region,
            "sent_at": sent_at.isoformat() if sent_at else None,
            "media": self._media(params),
        }
        sid = str(params.get("MessageSid") or params.get("SmsSid") or "")
        return RawMessage(
            connector=self.name,
            external_id=sid,
            channel="sms",
            payload=json.dumps(envelope, ensure_ascii=False).encode(),
            received_at=received,
            folder=e164(str(params.get("To") or ""), self.config.default_region),
        )

    def _media(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            count = min(MAX_MEDIA, int(params.get("NumMedia") or 0))
        except ValueError:
            count = 0
        media: list[dict[str, Any]] = []
        for index in range(count):
            url = str(params.get(f"MediaUrl{index}") or "")
            declared = str(params.get(f"MediaContentType{index}") or "")
            item: dict[str, Any] = {"url": url, "content_type": declared}
            if not self._allowed(declared):
                item["error"] = f"type {declared or 'unknown'} is not in media_types"
            elif not url:
                item["error"] = "no MediaUrl"
            else:
                try:
                    download = self._http.download(
                        url,
                        (self.config.account_sid, self._token.get()),
                        self.config.media_max_bytes,
                    )
                    if not self._allowed(download.content_type):
                        raise DownloadError(f"served as {download.content_type}")
                    item["data"] = base64.b64encode(download.content).decode()
                    item["content_type"] = download.content_type
                except (DownloadError, OSError) as error:
                    item["error"] = f"fetch failed: {error}"[:300]
            if "error" in item:
                self.log.warning(
                    "twilio_media_not_stored",
                    message_sid=params.get("MessageSid"),
                    media=index,
                    reason=item["error"],
                )
            media.append(item)
        return media

    def _allowed(self, content_type: str) -> bool:
        kind = content_type.split(";")[0].strip().lower()
        return any(fnmatch.fnmatchcase(kind, pattern) for pattern in self.config.media_types)

    # -- catch-up ----------------------------------------------------------------------------

    def _catch_up(self, number: str, cursor_text: str | None, batch_size: int) -> Iterator[Batch]:
        cursor = _read_cursor(cursor_text)
        if cursor is None:
            after = datetime.now(UTC) - timedelta(days=self.config.catchup_days)
            since_day = after.date()
        else:
            since_day = cursor.date() - timedelta(days=1)
        found = [
            message
            for message in self.client.messages.stream(
                to=number, date_sent_after=_midnight(since_day), page_size=PAGE_SIZE
            )
            if str(message.direction or "") == "inbound"
        ]
        fresh = [
            m
            for m in found
            if (cursor is None or _sent(m) >= cursor) and str(m.sid) not in self._seen
        ]
        fresh.sort(key=_sent)
        if fresh:
            self.log.info("twilio_catch_up", number=number, found=len(fresh))
        for start in range(0, len(fresh), batch_size):
            chunk = fresh[start : start + batch_size]
            raws = [self._raw(self._params(m), "rest", _sent(m), _sent(m)) for m in chunk]
            yield Batch(
                connector=self.name,
                messages=raws,
                cursor_scope=number,
                cursor_after=json.dumps({"date_sent": _sent(chunk[-1]).isoformat()}),
                remaining=len(fresh) - start - len(chunk),
            )

    def _params(self, message: Any) -> dict[str, Any]:
        """A message from the REST API in the webhook's own field names."""
        params: dict[str, Any] = {
            "MessageSid": str(message.sid),
            "AccountSid": str(message.account_sid or ""),
            "From": str(message.from_ or ""),
            "To": str(message.to or ""),
            "Body": str(message.body or ""),
            "NumMedia": str(message.num_media or "0"),
            "NumSegments": str(message.num_segments or "1"),
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = str(message.messaging_service_sid)
        if int(message.num_media or 0):
            for index, media in enumerate(self.client.messages(message.sid).media.list()):
                uri = str(media.uri or "").removesuffix(".json")
                params[f"MediaUrl{index}"] = f"https://api.twilio.com{uri}"
                params[f"MediaContentType{index}"] = str(media.content_type or "")
        return params


def _sent(message: Any) -> datetime:
    value = message.date_sent or message.date_created
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def _read_cursor(text_value: str | None) -> datetime | None:
    if not text_value:
        return None
    try:
        value = datetime.fromisoformat(json.loads(text_value)["date_sent"])
    except (ValueError, KeyError, TypeError):
        log.warning("twilio_cursor_unreadable", cursor=text_value[:100])
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
