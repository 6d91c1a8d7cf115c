"""Slack channels and DMs as a support channel: Events API in real time, history to catch up.

Two ways in, one set of ids, so that nothing is lost and nothing is stored twice:

- **Events API** (`events_path`, default /webhooks/slack/events): the receiver checks the
  signature and the timestamp (older than 5 minutes: refused, so a captured request cannot be
  replayed later), answers `url_verification`, writes the event to the spool under its
  event_id and answers 200 within milliseconds (Slack gives up after 3 s). A retried or
  replayed event finds its event_id taken and stores nothing.
- **Catch-up** on start, every `catchup_seconds`, and after any failure: for each channel,
  conversations.history from the channel's cursor, and conversations.replies for threads
  with replies since then (threads started up to `thread_lookback_days` earlier), all pages.

A message's external id is `channel:ts` by both ways; an edit is `channel:ts:edited:<edit ts>`
and a deletion `channel:ts:deleted`, recorded as events on the original's conversation.
Threading: a DM is one conversation while it is open; in a channel each top-level message
starts one and its thread replies join it. Our own bot's messages are always skipped (our
pings would otherwise come back as customer messages); other bots' unless `allow_bots` names
them or `skip_bots = false`. Each author is looked up with users.info (cached for an hour):
the profile email joins them to the contact who already writes from it by mail.

Deletions are seen by events only: a deleted message is simply gone from history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import structlog
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier

from connectors.base import ConnectorConfig, UpstreamError, unreachable
from connectors.slack_send import CHOICE_ACTION, SlackReplySender
from connectors.slack_signing import unverified
from connectors.spool import SpooledConnector, SpoolEntry
from inbox.raw import Batch, Channel, RawMessage
from inbox.secrets import Secret, SecretSource
from inbox.webhook import Handler, WebRequest, WebResponse, text

log = structlog.get_logger(__name__)

USER_CACHE_SECONDS = 3600
#: Subtypes that carry what a person wrote; others (joins, topic changes, pins) are skipped.
CONTENT_SUBTYPES = frozenset({"", "thread_broadcast", "file_share", "me_message", "bot_message"})
HISTORY_PAGE = 200
#: Per call, for 429 (after Retry-After) and 5xx; then the fetch fails and the daemon backs off.
RETRIES = 3
#: users.info for a spooled event: what the spool may wait for an author's profile.
QUICK_TIMEOUT_SECONDS = 1
#: After users.info failed for a spooled event, the next events do not ask for this long.
PROFILE_RETRY_SECONDS = 60.0
#: What Slack's refusals of a bot's calls mean for the person reading /healthz.
REFUSALS = {
    "invalid_auth": "the bot token is wrong or revoked",
    "not_authed": "no bot token was sent",
    "token_revoked": "the bot token was revoked",
    "account_inactive": "the bot's token or workspace is deactivated",
    "missing_scope": "the app lacks a scope it needs",
    "not_in_channel": "invite the bot to the channel",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "ratelimited": "rate limited, still after waiting out Retry-After",
    "HTTP 500": "a failure on Slack's side (status.slack.com says more)",
    "HTTP 502": "a failure on Slack's side (status.slack.com says more)",
    "HTTP 503": "Slack is unavailable (status.slack.com says more)",
    "HTTP 504": "a failure on Slack's side (status.slack.com says more)",
}


class SlackChatConfig(ConnectorConfig):
    bot_token: SecretSource
    #: Without it there is no Events API receiver: catch-up alone, every `catchup_seconds`.
    signing_secret: SecretSource | None = None
    #: Channel ids to follow (shared channels with customers), e.g. ["C0123ABCD"].
    channels: list[str] = Field(default_factory=list)
    #: Direct messages to the bot are support conversations too.
    dms: bool = True
    skip_bots: bool = True
    #: Bot ids whose messages are kept even with skip_bots (a form or an integration).
    allow_bots: list[str] = Field(default_factory=list)
    #: Slack user ids whose messages are not customer messages: your agents, so that their
    #: answers in a shared channel (or to a ping) do not open conversations.
    skip_users: list[str] = Field(default_factory=list)
    events_path: str = "/webhooks/slack/events"
    #: The app's Interactivity Request URL: a customer's click on a reply's button (a survey's
    #: score) comes here and is taken as the customer writing that answer in the thread.
    actions_path: str = "/webhooks/slack/chat-actions"
    catchup_seconds: float = Field(default=300, gt=0)
    thread_lookback_days: float = Field(default=7, ge=0)
    #: The first catch-up starts here (default: `thread_lookback_days` ago).
    since: date | None = None
    api_url: str = "https://slack.com/api/"
    timeout_seconds: float = Field(default=10, gt=0)
    #: Where verified events wait for ingest (default: <data_dir>/spool/<name>).
    spool_dir: Path | None = None
    poll_seconds: float = 5


@dataclass(frozen=True, slots=True)
class _Ours:
    """Our bot as it appears on messages: its user, its bot id, its app."""

    user: str
    bot: str
    app: str

    def wrote(self, message: dict[str, Any]) -> bool:
        """Our pings must never come back as customer messages."""
        user = str(message.get("user") or "")
        bot = str(message.get("bot_id") or "")
        app = str(message.get("app_id") or (message.get("bot_profile") or {}).get("app_id") or "")
        return bool(
            (user and user == self.user) or (bot and bot == self.bot) or (app and app == self.app)
        )


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a message was seen: its workspace and channel, and by which way in."""

    team: str
    channel: str
    channel_type: str
    #: "events" (a spooled delivery) or "history" (the catch-up).
    source: str
    ours: _Ours


@dataclass(frozen=True, slots=True)
class _Item:
    order: tuple[int, int]
    raw: RawMessage


class SlackConnector(SpooledConnector):
    type_name: ClassVar[str] = "slack"
    channel: ClassVar[Channel] = "chat"
    config_model: ClassVar[type[ConnectorConfig]] = SlackChatConfig

    def __init__(self, config: SlackChatConfig, *, client: WebClient | None = None) -> None:
        if config.spool_dir is None:
            raise ValueError("the slack connector needs spool_dir (set by the daemon)")
        super().__init__(config.name, config.spool_dir, config.catchup_seconds)
        self.config = config
        self.log = log.bind(connector=config.name)
        self._client = client
        self._verifier = (
            SignatureVerifier(Secret(config.signing_secret).get())
            if config.signing_secret is not None
            else None
        )
        self._users: dict[str, tuple[float, dict[str, Any]]] = {}
        self._me: tuple[str, str] | None = None
        self._injected_client = client is not None
        self._quick_client: WebClient | None = None
        self._reply_client: WebClient | None = None
        #: After users.info failed for a spooled event, events wait for no profile until then.
        self._profiles_down_until = 0.0

    # -- the webhook ------------------------------------------------------------------------

    def webhooks(self) -> Mapping[str, Handler]:
        if self._verifier is None:
            return {}
        return {self.config.events_path: self.receive, self.config.actions_path: self.act}

    def act(self, request: WebRequest) -> WebResponse:
        """A customer's click on one of a reply's buttons (connectors/slack_send.py): spooled
        as the message it stands for, the button's value written in the reply's thread."""
        assert self._verifier is not None
        refused = unverified(self._verifier, request)
        if refused is not None:
            self.log.warning("slack_action_refused", reason=refused[0], remote=request.remote)
            return text(401, refused[1])
        try:
            form = dict(parse_qsl(request.body.decode("utf-8")))
            payload = json.loads(form.get("payload", ""))
        except (UnicodeDecodeError, ValueError):
            return text(400, "no JSON payload")
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return text(200, "ignored")
        container = payload.get("container") or {}
        message = payload.get("message") or {}
        channel = str(container.get("channel_id") or (payload.get("channel") or {}).get("id") or "")
        user = str((payload.get("user") or {}).get("id") or "")
        thread = str(
            message.get("thread_ts") or container.get("thread_ts") or message.get("ts") or ""
        )
        for action in payload.get("actions") or []:
            if not isinstance(action, dict):
                continue
            if not str(action.get("action_id") or "").startswith(CHOICE_ACTION):
                continue
            stamp = str(action.get("action_ts") or "")
            if not (channel and user and stamp):
                return text(400, "a click without its channel, user or time")
            event = {
                "type": "message",
                "channel": channel,
                "channel_type": "im" if channel.startswith("D") else "channel",
                "user": user,
                "text": str(action.get("value") or ""),
                "ts": stamp,
                "thread_ts": thread,
                "clicked": True,
            }
            event_id = f"click-{channel}-{stamp}"
            envelope = {
                "type": "event_callback",
                "team_id": str((payload.get("team") or {}).get("id") or ""),
                "event_id": event_id,
                "event": event,
            }
            if not self.spooled(event_id, json.dumps(envelope).encode()):
                return text(200, "duplicate")
        return text(200, "ok")

    def receive(self, request: WebRequest) -> WebResponse:
        assert self._verifier is not None
        refused = unverified(self._verifier, request)
        if refused is not None:
            self.log.warning("slack_event_refused", reason=refused[0], remote=request.remote)
            return text(401, refused[1])
        try:
            envelope = json.loads(request.body)
        except ValueError:
            self.log.warning("slack_event_refused", reason="body is not JSON")
            return text(400, "body is not JSON")
        if not isinstance(envelope, dict):
            return text(400, "body is not a JSON object")
        if envelope.get("type") == "url_verification":
            challenge = str(envelope.get("challenge") or "")
            return WebResponse(200, challenge.encode(), content_type="text/plain")
        if envelope.get("type") != "event_callback":
            return text(200, "ignored")
        event_id = str(envelope.get("event_id") or "")
        if not event_id:
            return text(400, "event without event_id")
        if not self.spooled(event_id, request.body):
            self.log.info(
                "slack_event_duplicate",
                event_id=event_id,
                retry=request.header("x-slack-retry-num") or "0",
            )
            return text(200, "duplicate")
        return text(200, "ok")

    # -- fetching ----------------------------------------------------------------------------

    @property
    def client(self) -> WebClient:
        if self._client is None:
            self._client = WebClient(
                token=Secret(self.config.bot_token).get(),
                base_url=self.config.api_url,
                timeout=int(self.config.timeout_seconds),
            )
            # history is Tier 3 (50 a minute): a catch-up of many channels meets 429s, and
            # waiting out Retry-After here beats failing the whole fetch and starting over.
            self._client.retry_handlers.extend(
                [
                    RateLimitErrorRetryHandler(max_retry_count=RETRIES),
                    ServerErrorRetryHandler(max_retry_count=RETRIES),
                ]
            )
        return self._client

    @property
    def quick_client(self) -> WebClient:
        """For what a spooled event needs from the API (its author's profile): a short
        timeout and no retries, so that a slow or failing API delays the spool by seconds
        at most, and the event is stored without the profile instead of waiting."""
        if self._injected_client:
            return self.client
        if self._quick_client is None:
            self._quick_client = WebClient(
                token=Secret(self.config.bot_token).get(),
                base_url=self.config.api_url,
                timeout=QUICK_TIMEOUT_SECONDS,
                retry_handlers=[],
            )
        return self._quick_client

    def sender(self) -> SlackReplySender:
        """Replies to the conversations of these channels and DMs, posted in their threads."""
        return SlackReplySender(self._send_client)

    def _send_client(self) -> WebClient:
        if self._injected_client:
            return self.client
        if self._reply_client is None:
            self._reply_client = WebClient(
                token=Secret(self.config.bot_token).get(),
                base_url=self.config.api_url,
                timeout=int(self.config.timeout_seconds),
                retry_handlers=[],  # the outbox retries, after looking whether it went through
            )
        return self._reply_client

    def catch_up(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        try:
            for channel, channel_type in self._channels():
                yield from self._catch_up(channel, channel_type, cursors.get(channel), batch_size)
        except SlackApiError as error:
            raise UpstreamError(refusal(error)) from error
        except OSError as error:  # refused, reset, timed out, a name that does not resolve
            raise unreachable("Slack", self.config.api_url, error) from error

    def messages_of(self, entry: SpoolEntry) -> list[RawMessage]:
        """The messages in one spooled event: none (not ours to keep), one, or an unreadable
        event kept raw with the reason. Never waits on the API: our own ids come from the
        event's envelope when auth.test was not answered yet, and an author's profile that
        cannot be fetched now is left out (filled in from a later message)."""
        name, body, received = entry.name, entry.body, entry.received_at
        try:
            envelope = json.loads(body)
            event = envelope["event"]
            if not isinstance(event, dict):
                raise TypeError("event is not an object")
        except (ValueError, KeyError, TypeError) as error:
            self.log.error("slack_event_unreadable", spooled=name, error=str(error)[:200])
            return [self._unreadable(name, body, received, str(error))]
        if event.get("type") != "message":
            return []
        channel = str(event.get("channel") or "")
        channel_type = str(event.get("channel_type") or "")
        if not self._followed(channel, channel_type):
            return []
        origin = _Origin(
            str(envelope.get("team_id") or ""),
            channel,
            channel_type,
            "events",
            self._ours_in(envelope),
        )
        subtype = str(event.get("subtype") or "")
        if subtype == "message_changed":
            message = event.get("message") or {}
            if not message.get("edited"):
                return []  # an unfurl or a reply count changed: nothing a person wrote
            return self._revision("edited", origin, message)
        if subtype == "message_deleted":
            previous = dict(event.get("previous_message") or {})
            previous.setdefault("ts", event.get("deleted_ts"))
            return self._revision("deleted", origin, previous)
        raw = self._message(origin, event)
        return [raw] if raw is not None else []

    def _unreadable(self, name: str, body: bytes, received: float, why: str) -> RawMessage:
        return RawMessage(
            connector=self.name,
            external_id=f"event:{name}",
            channel="chat",
            payload=body,
            received_at=datetime.fromtimestamp(received, UTC),
            note=f"unreadable Slack event: {why}"[:300],
        )

    def _followed(self, channel: str, channel_type: str) -> bool:
        return channel in self.config.channels or (self.config.dms and channel_type == "im")

    def _skipped(self, message: dict[str, Any], ours: _Ours) -> bool:
        subtype = str(message.get("subtype") or "")
        if subtype not in CONTENT_SUBTYPES:
            return True
        if ours.wrote(message):
            return True
        user = str(message.get("user") or "")
        bot = str(message.get("bot_id") or "")
        if user in self.config.skip_users:
            return True
        if (bot or subtype == "bot_message") and self.config.skip_bots:
            return bot not in self.config.allow_bots
        return False

    def _message(self, origin: _Origin, message: dict[str, Any]) -> RawMessage | None:
        if self._skipped(message, origin.ours):
            return None
        ts = str(message.get("ts") or "")
        return self._raw(f"{origin.channel}:{ts}", "message", origin, message)

    def _revision(self, kind: str, origin: _Origin, message: dict[str, Any]) -> list[RawMessage]:
        if self._skipped(message, origin.ours):
            return []
        ts = str(message.get("ts") or "")
        if kind == "edited":
            edited = (message.get("edited") or {}).get("ts") or ""
            external = f"{origin.channel}:{ts}:edited:{edited}"
        else:
            external = f"{origin.channel}:{ts}:deleted"
        return [self._raw(external, kind, origin, message)]

    def _raw(
        self, external_id: str, kind: str, origin: _Origin, message: dict[str, Any]
    ) -> RawMessage:
        user_id = str(message.get("user") or "")
        channel = origin.channel
        envelope = {
            "kind": kind,
            "source": origin.source,
            "team": origin.team,
            "channel": channel,
            "channel_type": origin.channel_type or ("im" if channel.startswith("D") else "channel"),
            "message": message,
            "user": self._author(user_id, origin.source) if user_id and kind != "deleted" else {},
        }
        stamp = (message.get("edited") or {}).get("ts") if kind == "edited" else message.get("ts")
        return RawMessage(
            connector=self.name,
            external_id=external_id[:300],
            channel="chat",
            payload=json.dumps(envelope, ensure_ascii=False).encode(),
            received_at=_when(str(stamp or "")),
            folder=channel,
        )

    def _author(self, user_id: str, source: str) -> dict[str, Any]:
        """users.info, cached for an hour. In a catch-up, Slack being unreachable fails the
        fetch (it is tried again). For a spooled event it must not: the event is stored
        with the user id alone, and for a minute after a failure no event asks again."""
        now = time.monotonic()
        cached = self._users.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        if source != "events":
            user = self._users_info(self.client, user_id)
        elif now < self._profiles_down_until:
            return {"id": user_id}
        else:
            try:
                user = self._users_info(self.quick_client, user_id)
            except (SlackApiError, OSError) as error:
                self._profiles_down_until = now + PROFILE_RETRY_SECONDS
                reason = refusal(error) if isinstance(error, SlackApiError) else str(error)
                self.log.warning("slack_profile_not_fetched", user=user_id, reason=reason[:300])
                return {"id": user_id}
        self._users[user_id] = (now + USER_CACHE_SECONDS, user)
        return user

    @staticmethod
    def _users_info(client: WebClient, user_id: str) -> dict[str, Any]:
        """An unknown user is stored without a profile; other refusals raise."""
        try:
            return dict(client.users_info(user=user_id)["user"])
        except SlackApiError as error:
            code = error.response.get("error") if isinstance(error.response.data, dict) else ""
            if code not in ("user_not_found", "users_not_found"):
                raise
            return {"id": user_id}

    def _ours_in(self, envelope: dict[str, Any]) -> _Ours:
        """Who we are, for an event: auth.test's answer once known, else the envelope's bot
        user (Slack lists the installation it authorizes); and our app, whose messages
        carry its app_id."""
        app = str(envelope.get("api_app_id") or "")
        if self._me is not None:
            return _Ours(*self._me, app)
        bots = [a for a in envelope.get("authorizations") or [] if isinstance(a, dict)]
        user = next((str(a.get("user_id") or "") for a in bots if a.get("is_bot")), "")
        return _Ours(user, "", app)

    def _own_ids(self) -> tuple[str, str]:
        if self._me is None:
            answer = self.client.auth_test()
            self._me = (str(answer.get("user_id") or ""), str(answer.get("bot_id") or ""))
        return self._me

    # -- catch-up ----------------------------------------------------------------------------

    def _channels(self) -> list[tuple[str, str]]:
        followed = [(channel, "channel") for channel in self.config.channels]
        if self.config.dms:
            cursor: str | None = None
            while True:
                answer = self.client.conversations_list(
                    types="im", limit=HISTORY_PAGE, cursor=cursor, exclude_archived=True
                )
                channels: list[dict[str, Any]] = answer.get("channels", [])
                followed.extend((str(c["id"]), "im") for c in channels)
                cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        return followed

    def _catch_up(
        self, channel: str, channel_type: str, cursor_text: str | None, batch_size: int
    ) -> Iterator[Batch]:
        start = _read_cursor(cursor_text)
        lookback = int(self.config.thread_lookback_days * 86400)
        if start is None:
            first = (
                datetime.combine(self.config.since, datetime.min.time(), UTC).timestamp()
                if self.config.since
                else time.time() - lookback
            )
            start = (int(first), 0)
        oldest = f"{max(0, start[0] - lookback)}.000000"
        items: list[_Item] = []
        origin = _Origin("", channel, channel_type, "history", _Ours(*self._own_ids(), app=""))
        for message in self._pages(
            self.client.conversations_history, channel=channel, oldest=oldest
        ):
            items.extend(self._caught(origin, message, start))
            latest_reply = _ts_key(str(message.get("latest_reply") or ""))
            if message.get("reply_count") and latest_reply > start:
                for reply in self._pages(
                    self.client.conversations_replies,
                    channel=channel,
                    ts=str(message["ts"]),
                    oldest=_ts_text(start),
                ):
                    if reply.get("ts") != message.get("ts"):
                        items.extend(self._caught(origin, reply, start))
        # A reply "also sent to the channel" shows in history and in its thread: keep one.
        items = list({item.raw.external_id: item for item in items}.values())
        items.sort(key=lambda item: item.order)
        if items:
            self.log.info("slack_catch_up", channel=channel, found=len(items))
        for index in range(0, len(items), batch_size):
            chunk = items[index : index + batch_size]
            yield Batch(
                connector=self.name,
                messages=[item.raw for item in chunk],
                cursor_scope=channel,
                cursor_after=json.dumps({"ts": _ts_text(chunk[-1].order)}),
                remaining=len(items) - index - len(chunk),
            )

    def _caught(
        self, origin: _Origin, message: dict[str, Any], start: tuple[int, int]
    ) -> list[_Item]:
        """What history shows of `message` that is newer than the cursor: the message itself,
        or an edit of an older one."""
        ts = _ts_key(str(message.get("ts") or ""))
        edited = _ts_key(str((message.get("edited") or {}).get("ts") or ""))
        found: list[_Item] = []
        if ts > start:
            raw = self._message(origin, message)
            if raw is not None:
                found.append(_Item(ts, raw))
        if edited > start and edited > ts:
            for raw in self._revision("edited", origin, message):
                found.append(_Item(edited, raw))
        return found

    def _pages(self, method: Callable[..., Any], **arguments: Any) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            answer = method(limit=HISTORY_PAGE, cursor=cursor, **arguments)
            yield from answer.get("messages", [])
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or not answer.get("has_more", True):
                return


def _ts_key(ts: str) -> tuple[int, int]:
    """Slack's ts ("1700000000.000100") as integers: a float cannot hold all its digits."""
    seconds, _, fraction = ts.partition(".")
    try:
        return (int(seconds or 0), int((fraction + "000000")[:6]))
    except ValueError:
        return (0, 0)


def _ts_text(key: tuple[int, int]) -> str:
    return f"{key[0]}.{key[1]:06d}"


def _when(ts: str) -> datetime:
    key = _ts_key(ts)
    if key == (0, 0):
        return datetime.now(UTC)
    return datetime.fromtimestamp(key[0] + key[1] / 1e6, UTC)


def _read_cursor(text_value: str | None) -> tuple[int, int] | None:
    if not text_value:
        return None
    try:
        return _ts_key(str(json.loads(text_value)["ts"]))
    except (ValueError, KeyError, TypeError):
        log.warning("slack_cursor_unreadable", cursor=text_value[:100])
        return None


def refusal(error: SlackApiError) -> str:
    """A SlackApiError in words: which call, Slack's code, what it means."""
    response = error.response
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or f"HTTP {response.status_code}")
    if response.status_code >= 500 or not code.isidentifier():
        # A load balancer's HTML page, which the SDK quotes whole as the "error".
        code = f"HTTP {response.status_code}"
    method = str(response.api_url or "").rstrip("/").rsplit("/", 1)[-1] or "a call"
    meaning = REFUSALS.get(code, "")
    if data.get("needed"):
        meaning = f"the app lacks the scope {data['needed']}"
    return f"Slack answered {code} to {method}" + (f": {meaning}" if meaning else "")
