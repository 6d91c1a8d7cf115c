"""A fake Slack Web API that the real ``slack_sdk.WebClient`` talks to over HTTP.

Slack cannot run here, so this small server stands in for it (STYLE.md: fakes only for services
that cannot run here). It answers the way Slack documents and behaves, so that code under test
cannot lean on anything Slack would not do:

- Every method answers HTTP 200 with ``{"ok": false, "error": ...}`` on a refusal
  (``not_authed``, ``invalid_auth``, ``channel_not_found``, ...), like Slack.
- A 429 carries ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``; a 5xx comes from
  "the load balancer" as HTML, which slack_sdk cannot parse as JSON (it raises SlackApiError).
  A failed call changes nothing and is still recorded in ``calls``.
- ``ts`` values are wall-clock seconds with six decimals, strictly increasing, so code that
  searches ``conversations.history`` with ``oldest=`` (a time) finds what it posted.
- ``conversations.history`` is newest first, top-level only, paged with opaque cursors and
  ``has_more``; message ``metadata`` only with ``include_all_metadata``.

Usage::

    with FakeSlack() as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.url)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.loopback import LoopbackServer

TEAM_ID = "T1"
APP_ID = "A0INBOX"
MAX_BLOCKS = 50
MAX_TEXT = 40_000
SECTION_TEXT_MAX = 3000
SECTION_FIELD_MAX = 2000
HEADER_TEXT_MAX = 150
HISTORY_DEFAULT_LIMIT = 100
REPLIES_DEFAULT_LIMIT = 1000
MAX_LIMIT = 999

_LOAD_BALANCER_PAGES = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Call:
    """One request as the fake saw it; ``args`` holds the parameters without the token."""

    method: str
    args: dict[str, Any]
    token: str
    status: int
    error: str | None = None
    response: dict[str, Any] | None = None
    at: float = field(default_factory=time.monotonic)


class SlackError(Exception):
    """A refusal Slack answers as HTTP 200 ``{"ok": false, "error": code}``."""

    def __init__(self, code: str, answer: dict[str, Any] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.answer = answer or {"ok": False, "error": code}


@dataclass
class _Failure:
    status: int
    retry_after: int
    channel: str | None = None  # fails only calls about this channel (None: any call)


@dataclass
class _FractionFailure:
    fraction: float
    status: int
    retry_after: int
    rng: random.Random


def _ts_key(ts: str) -> int:
    """A ts as integer microseconds, so ordering never depends on float formatting."""
    try:
        seconds, _, fraction = ts.partition(".")
        return int(seconds) * 1_000_000 + int((fraction + "000000")[:6] or 0)
    except ValueError:
        raise SlackError("invalid_ts_latest") from None


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def _json_arg(value: Any, error: str) -> Any:
    """Form-encoded requests carry blocks and metadata as JSON strings; JSON requests as objects."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise SlackError(error) from None
    return value


def _limit(value: Any, default: int, maximum: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SlackError("invalid_limit") from None
    if number < 1:
        return default
    return min(number, maximum)


def _encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    prefix, _, ts = decoded.partition(":")
    if prefix != "next_ts" or not ts:
        raise SlackError("invalid_cursor")
    return _ts_key(ts)


def _check_text_object(value: Any, *, max_length: int, plain_only: bool = False) -> None:
    if not isinstance(value, dict) or value.get("type") not in ("plain_text", "mrkdwn"):
        raise SlackError("invalid_blocks")
    if plain_only and value["type"] != "plain_text":
        raise SlackError("invalid_blocks")
    text = value.get("text")
    if not isinstance(text, str) or not text or len(text) > max_length:
        raise SlackError("invalid_blocks")


def _check_blocks(blocks: Any) -> None:
    """The Block Kit limits Slack enforces with ``invalid_blocks`` (the ones a notifier can hit)."""
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        raise SlackError("invalid_blocks")
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise SlackError("invalid_blocks")
        if len(str(block.get("block_id", ""))) > 255:
            raise SlackError("invalid_blocks")
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                raise SlackError("invalid_blocks")
            if "text" in block:
                _check_text_object(block["text"], max_length=SECTION_TEXT_MAX)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                raise SlackError("invalid_blocks")
            for item in fields:
                _check_text_object(item, max_length=SECTION_FIELD_MAX)
        elif kind == "header":
            _check_text_object(block.get("text"), max_length=HEADER_TEXT_MAX, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > 10:
                raise SlackError("invalid_blocks")
            for element in elements:
                if isinstance(element, dict) and element.get("type") == "image":
                    continue
                _check_text_object(element, max_length=SECTION_TEXT_MAX)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > 25:
                raise SlackError("invalid_blocks")
            for element in elements:
                _check_element(element)


def _check_element(element: Any) -> None:
    """A button or a static_select menu of an actions block, with Block Kit's limits."""
    if not isinstance(element, dict) or element.get("type") not in ("button", "static_select"):
        raise SlackError("invalid_blocks")
    if len(str(element.get("action_id", ""))) > 255:
        raise SlackError("invalid_blocks")
    if "confirm" in element:
        confirm = element["confirm"]
        if not isinstance(confirm, dict):
            raise SlackError("invalid_blocks")
        for part, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
            _check_text_object(confirm.get(part), max_length=limit)
    if element["type"] == "button":
        _check_text_object(element.get("text"), max_length=75, plain_only=True)
        if len(str(element.get("value", ""))) > 2000:
            raise SlackError("invalid_blocks")
        if element.get("style") not in (None, "primary", "danger"):
            raise SlackError("invalid_blocks")
        return
    _check_text_object(element.get("placeholder"), max_length=150, plain_only=True)
    options = element.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= 100:
        raise SlackError("invalid_blocks")
    for option in options:
        if not isinstance(option, dict):
            raise SlackError("invalid_blocks")
        _check_text_object(option.get("text"), max_length=75, plain_only=True)
        value = option.get("value")
        if not isinstance(value, str) or not value or len(value) > 150:
            raise SlackError("invalid_blocks")


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise SlackError("invalid_metadata_format")
    if not isinstance(metadata.get("event_type"), str) or not metadata["event_type"]:
        raise SlackError("invalid_metadata_schema")
    payload = metadata.get("event_payload", {})
    if not isinstance(payload, dict):
        raise SlackError("invalid_metadata_schema")
    return {"event_type": metadata["event_type"], "event_payload": payload}


class FakeSlack(LoopbackServer):
    """A Slack workspace with one bot, served over HTTP on a free loopback port."""

    thread_name = "fake-slack"

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        signing_secret: str = "test-signing-secret",
        bot_user: str = "UBOT",
        bot_id: str = "BBOT",
    ) -> None:
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        self.bot_user = bot_user
        self.bot_id = bot_id
        self.team_id = TEAM_ID
        self.latency = 0.0
        self.calls: list[Call] = []
        super().__init__()
        self._lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._dm_by_user: dict[str, str] = {}
        self._last_micros = 0
        self._ids = itertools.count(1)
        self._fail_next: dict[str, list[_Failure]] = {}
        self._fail_fraction: dict[str, _FractionFailure] = {}
        self._delay_next: dict[str, list[float]] = {}
        self._drop_next: dict[str, int] = {}
        self._refusals: dict[str, dict[str, Any]] = {}
        #: limit_posts_per_channel: seconds between posts to a channel, how early a post may
        #: come, and each channel's next post time (time.monotonic).
        self._post_interval = 0.0
        self._post_tolerance = 0.0
        self._next_post_at: dict[str, float] = {}
        self._in_flight = 0
        self._idle = threading.Condition()
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
        }
        self.add_user(bot_user, name="inboxbot", real_name="Inbox", is_bot=True, bot_id=bot_id)

    # -- lifecycle -------------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            slack = fake

        return Handler

    def api_url(self, origin: str) -> str:
        return origin + "/api/"

    # -- workspace set-up, as a person would do it in Slack ---------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        real_name: str = "",
        email: str | None = None,
        is_bot: bool = False,
        bot_id: str | None = None,
        tz: str = "Europe/Helsinki",
    ) -> None:
        profile: dict[str, Any] = {
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": name,
            "display_name_normalized": name,
        }
        if email is not None:
            profile["email"] = email
        if bot_id is not None:
            profile["bot_id"] = bot_id
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": tz,
            "tz_label": tz,
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "profile": profile,
        }
        with self._lock:
            self._users[user_id] = user

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str = "",
        is_im: bool = False,
        user: str | None = None,
        is_member: bool = True,
    ) -> None:
        """A channel; ``is_member=False`` makes the bot an outsider (``not_in_channel``)."""
        channel: dict[str, Any] = {
            "id": channel_id,
            "name": name,
            "is_channel": not is_im and channel_id.startswith("C"),
            "is_group": False,
            "is_im": is_im,
            "is_mpim": False,
            "is_private": is_im or channel_id.startswith("G"),
            "is_archived": False,
            "is_general": False,
            "is_member": is_member,
            "created": int(time.time()),
            "creator": user or "",
        }
        if is_im:
            channel["user"] = user
            channel["is_open"] = True
        with self._lock:
            self._channels[channel_id] = channel
            self._messages.setdefault(channel_id, [])
            if is_im and user is not None:
                self._dm_by_user[user] = channel_id

    def post(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = None,
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> str:
        """A message as if someone wrote it in Slack; returns its ts."""
        with self._lock:
            if channel not in self._channels:
                self.add_channel(channel, is_im=channel.startswith("D"), user=user)
            message: dict[str, Any] = {"type": "message", "text": text, "team": self.team_id}
            if user is not None:
                message["user"] = user
            if bot_id is not None:
                message["bot_id"] = bot_id
            elif user is not None:
                message["client_msg_id"] = str(uuid.uuid4())
            if subtype is not None:
                message["subtype"] = subtype
            if files is not None:
                message["files"] = files
            message["ts"] = self._claim_ts(ts)
            self._store(channel, message, thread_ts)
            return str(message["ts"])

    def edit(self, channel: str, ts: str, text: str) -> None:
        with self._lock:
            message = self._find(channel, ts)
            if message is None:
                raise KeyError(f"no message {ts} in {channel}")
            message["text"] = text
            editor = message.get("user") or self.bot_user
            message["edited"] = {"user": editor, "ts": self._claim_ts(None)}

    def delete(self, channel: str, ts: str) -> None:
        with self._lock:
            message = self._find(channel, ts)
            if message is None:
                raise KeyError(f"no message {ts} in {channel}")
            self._remove(channel, message)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Everything in the channel (thread replies and the bot's posts too), oldest first."""
        with self._lock:
            return [json.loads(json.dumps(m)) for m in self._messages.get(channel, [])]

    def all_messages(self) -> list[dict[str, Any]]:
        """Every message in every channel, each with its ``channel`` added."""
        with self._lock:
            return [
                {**json.loads(json.dumps(message)), "channel": channel}
                for channel, stored in self._messages.items()
                for message in stored
            ]

    def dm_channel(self, user: str) -> str | None:
        """The DM channel id the bot has with this user, if one was opened."""
        with self._lock:
            return self._dm_by_user.get(user)

    # -- calls -----------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def successful_calls_to(self, method: str) -> list[Call]:
        """The calls to ``method`` that took effect (answered ok, or dropped after acting)."""
        with self._lock:
            return [call for call in self.calls if call.method == method and call.error is None]

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int = 1,
        count: int = 1,
        channel: str | None = None,
    ) -> None:
        """The next ``count`` calls to ``method`` ("*" for any) fail with ``status``; with
        ``channel``, only calls about that channel (history is read by the catch-up and by
        the notifier's look before a retry, each in its own channel)."""
        with self._lock:
            self._fail_next.setdefault(method, []).extend(
                _Failure(status, retry_after, channel) for _ in range(count)
            )

    def fail_fraction(
        self,
        method: str,
        fraction: float,
        *,
        status: int = 429,
        retry_after: int = 1,
        seed: int = 0,
    ) -> None:
        """Each call to ``method`` fails with probability ``fraction`` (0 turns it off)."""
        with self._lock:
            if fraction <= 0:
                self._fail_fraction.pop(method, None)
                return
            self._fail_fraction[method] = _FractionFailure(
                fraction, status, retry_after, random.Random(seed)
            )

    def limit_posts_per_channel(self, per_second: float, *, burst: int = 1) -> None:
        """chat.postMessage as Slack limits it: about ``per_second`` posts to one channel,
        with short bursts; a post beyond that is answered 429 with Retry-After. Modelled as
        GCRA (each post moves the channel's "theoretical arrival time" on by 1/per_second; a
        post may come at most ``burst - 1`` intervals early). 0 turns it off."""
        with self._lock:
            self._post_interval = 1 / per_second if per_second > 0 else 0.0
            self._post_tolerance = (burst - 1) * self._post_interval
            self._next_post_at.clear()

    def refuse(self, method: str, error: str | None, **fields: Any) -> None:
        """Every call to ``method`` ("*" for any) is answered 200 ``{"ok": false, "error":
        error, **fields}`` until ``refuse(method, None)``: a scope the app lacks
        (``missing_scope`` with ``needed`` and ``provided``), a revoked token, an archived
        channel, as Slack says each."""
        with self._lock:
            if error is None:
                self._refusals.pop(method, None)
            else:
                self._refusals[method] = {"ok": False, "error": error, **fields}

    def delay_next(self, method: str, seconds: float, *, count: int = 1) -> None:
        """The next ``count`` calls to ``method`` answer ``seconds`` late, but take effect all
        the same: a client that gives up first cannot know whether Slack acted on it."""
        with self._idle:
            self._delay_next.setdefault(method, []).extend([seconds] * count)

    def drop_next(self, method: str, *, count: int = 1) -> None:
        """The next ``count`` calls to ``method`` take effect, then the connection closes with
        no answer (the client sees RemoteDisconnected), as when a proxy drops it mid-way. They
        are recorded with status 0."""
        with self._lock:
            self._drop_next[method] = self._drop_next.get(method, 0) + count

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being answered (delayed ones included)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- Events API and request signing ----------------------------------------------------

    def sign(
        self, body: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str]:
        """The headers Slack sends with a request to us (signing secret scheme v0)."""
        when = int(time.time()) if timestamp is None else timestamp
        base = f"v0:{when}:".encode() + body
        key = (self.signing_secret if secret is None else secret).encode()
        digest = hmac.new(key, base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": str(when), "X-Slack-Signature": f"v0={digest}"}

    def event(
        self, event: dict[str, Any], *, event_id: str | None = None, team_id: str = TEAM_ID
    ) -> dict[str, Any]:
        """An Events API ``event_callback`` envelope around ``event``, as Slack POSTs it."""
        now = int(time.time())
        return {
            "token": "verification-token-unused",
            "team_id": team_id,
            "context_team_id": team_id,
            "context_enterprise_id": None,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):010d}",
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": self.bot_user,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{uuid.uuid4().hex}",
        }

    # -- the HTTP side ---------------------------------------------------------------------

    def handle(
        self, method: str, args: dict[str, Any], token: str
    ) -> tuple[int, dict[str, str], bytes]:
        """One API call: (status, headers, body); status 0 means "close without answering".
        Called by the HTTP handler thread."""
        with self._idle:
            self._in_flight += 1
            late = self._delay_next.get(method)
            delay = self.latency + (late.pop(0) if late else 0.0)
        try:
            if delay > 0:
                time.sleep(delay)
            return self._handle_now(method, args, token)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _handle_now(
        self, method: str, args: dict[str, Any], token: str
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            failure = self._injected_failure(method, args)
            if failure is not None:
                self.calls.append(
                    Call(method, args, token, failure.status, error=f"http_{failure.status}")
                )
                return _failure_response(failure)
            try:
                refused = self._refusals.get(method) or self._refusals.get("*")
                if refused is not None:
                    raise SlackError(refused["error"], refused)
                answer = self._answer(method, args, token)
                error = None
            except SlackError as refusal:
                answer = refusal.answer
                error = refusal.code
            dropped = self._drop_next.get(method, 0) > 0
            if dropped:
                self._drop_next[method] -= 1
            self.calls.append(
                Call(method, args, token, 0 if dropped else 200, error=error, response=answer)
            )
        if dropped:
            return 0, {}, b""
        body = json.dumps(answer).encode()
        return 200, {"Content-Type": "application/json; charset=utf-8"}, body

    def _injected_failure(self, method: str, args: dict[str, Any]) -> _Failure | None:
        for key in (method, "*"):
            for index, failure in enumerate(self._fail_next.get(key, [])):
                if failure.channel in (None, args.get("channel")):
                    return self._fail_next[key].pop(index)
        if method == "chat.postMessage" and self._post_interval > 0:
            channel = str(args.get("channel", ""))
            now = time.monotonic()
            due = max(self._next_post_at.get(channel, now), now)
            if due - now > self._post_tolerance:
                early = due - now - self._post_tolerance
                return _Failure(429, max(1, math.ceil(early)))
            self._next_post_at[channel] = due + self._post_interval
        for key in (method, "*"):
            chance = self._fail_fraction.get(key)
            if chance is not None and chance.rng.random() < chance.fraction:
                return _Failure(chance.status, chance.retry_after)
        return None

    def _answer(self, method: str, args: dict[str, Any], token: str) -> dict[str, Any]:
        handler = self._methods.get(method)
        if handler is None:
            raise SlackError("unknown_method")
        if method != "api.test":
            if not token:
                raise SlackError("not_authed")
            if token != self.bot_token:
                raise SlackError("invalid_auth")
        return handler(args)

    # -- state helpers (called with the lock held) -----------------------------------------

    def _claim_ts(self, wanted: str | None) -> str:
        if wanted is not None:
            self._last_micros = max(self._last_micros, _ts_key(wanted))
            return wanted
        micros = max(time.time_ns() // 1000, self._last_micros + 1)
        self._last_micros = micros
        return _format_ts(micros)

    def _store(self, channel: str, message: dict[str, Any], thread_ts: str | None) -> None:
        parent = None
        if thread_ts is not None and thread_ts != message["ts"]:
            parent = self._find(channel, thread_ts)
            if parent is None or parent.get("thread_ts", parent["ts"]) != parent["ts"]:
                raise SlackError("thread_not_found")
            message["thread_ts"] = thread_ts
            message["parent_user_id"] = parent.get("user", "")
            parent["thread_ts"] = thread_ts
        key = _ts_key(message["ts"])
        stored = self._messages.setdefault(channel, [])
        position = len(stored)
        while position > 0 and _ts_key(stored[position - 1]["ts"]) > key:
            position -= 1
        stored.insert(position, message)
        if parent is not None:
            self._recount(channel, parent)

    def _recount(self, channel: str, parent: dict[str, Any]) -> None:
        replies = [
            m
            for m in self._messages.get(channel, [])
            if m.get("thread_ts") == parent["ts"] and m["ts"] != parent["ts"]
        ]
        if not replies:
            for key in ("reply_count", "reply_users_count", "latest_reply", "reply_users"):
                parent.pop(key, None)
            return
        users = list(dict.fromkeys(str(m.get("user", "")) for m in replies if m.get("user")))
        parent["reply_count"] = len(replies)
        parent["reply_users_count"] = len(users)
        parent["reply_users"] = users
        parent["latest_reply"] = replies[-1]["ts"]
        parent.setdefault("is_locked", False)
        parent.setdefault("subscribed", False)

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        for message in self._messages.get(channel, []):
            if message["ts"] == ts:
                return message
        return None

    def _remove(self, channel: str, message: dict[str, Any]) -> None:
        self._messages[channel].remove(message)
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            parent = self._find(channel, thread_ts)
            if parent is not None:
                self._recount(channel, parent)

    def _channel(self, channel: Any) -> dict[str, Any]:
        """A channel by id, by ``#name`` or name, or a user id meaning the bot's DM with them."""
        if not isinstance(channel, str) or not channel:
            raise SlackError("channel_not_found")
        if channel in self._channels:
            return self._channels[channel]
        if channel.startswith(("U", "W")) and channel in self._users:
            return self._channels[self._open_dm(channel)]
        name = channel.removeprefix("#")
        for candidate in self._channels.values():
            if candidate["name"] and candidate["name"] == name and not candidate["is_im"]:
                return candidate
        raise SlackError("channel_not_found")

    def _open_dm(self, user: str) -> str:
        existing = self._dm_by_user.get(user)
        if existing is not None:
            return existing
        channel_id = f"D{next(self._ids):08d}"
        self.add_channel(channel_id, is_im=True, user=user)
        return channel_id

    def _bot_message(self, args: dict[str, Any], text: str, blocks: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user,
            "bot_id": self.bot_id,
            "app_id": APP_ID,
            "text": text,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": APP_ID,
                "name": "Inbox",
                "deleted": False,
                "team_id": self.team_id,
            },
        }
        if blocks is not None:
            message["blocks"] = blocks
        if args.get("metadata") not in (None, ""):
            message["metadata"] = _check_metadata(
                _json_arg(args["metadata"], "invalid_metadata_format")
            )
        return message

    # -- the methods -----------------------------------------------------------------------

    def _api_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "args": {k: v for k, v in args.items() if isinstance(v, str)}}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://northwind-test.slack.com/",
            "team": "Northwind",
            "user": self._users[self.bot_user]["name"],
            "team_id": self.team_id,
            "user_id": self.bot_user,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            raise SlackError("channel_not_found")
        channel = self._channel(args["channel"])
        text = args.get("text") or ""
        blocks = _json_arg(args["blocks"], "invalid_blocks") if args.get("blocks") else None
        attachments = args.get("attachments")
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if blocks is not None:
            _check_blocks(blocks)
        if not channel["is_member"] and not channel["is_im"]:
            raise SlackError("not_in_channel")
        if channel["is_archived"]:
            raise SlackError("is_archived")
        message = self._bot_message(args, text, blocks)
        thread_ts = args.get("thread_ts") or None
        if thread_ts and _truthy(args.get("reply_broadcast")):
            message["subtype"] = "thread_broadcast"
        message["ts"] = self._claim_ts(None)
        self._store(channel["id"], message, thread_ts)
        return {"ok": True, "channel": channel["id"], "ts": message["ts"], "message": message}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = args.get("channel")
        if not channel_id or channel_id not in self._channels:
            raise SlackError("channel_not_found")
        ts = args.get("ts")
        message = self._find(channel_id, ts) if isinstance(ts, str) else None
        if message is None:
            raise SlackError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise SlackError("cant_update_message")
        text = args.get("text")
        blocks = _json_arg(args["blocks"], "invalid_blocks") if args.get("blocks") else None
        if not text and not blocks and not message.get("text") and not message.get("blocks"):
            raise SlackError("no_text")
        if text is not None and len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if blocks is not None:
            _check_blocks(blocks)
            message["blocks"] = blocks
        if text is not None:
            message["text"] = text
        if args.get("metadata") not in (None, ""):
            message["metadata"] = _check_metadata(
                _json_arg(args["metadata"], "invalid_metadata_format")
            )
        message["edited"] = {"user": self.bot_user, "ts": self._claim_ts(None)}
        return {
            "ok": True,
            "channel": channel_id,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": message,
        }

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = args.get("channel")
        if not channel_id or channel_id not in self._channels:
            raise SlackError("channel_not_found")
        ts = args.get("ts")
        message = self._find(channel_id, ts) if isinstance(ts, str) else None
        if message is None:
            raise SlackError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise SlackError("cant_delete_message")
        self._remove(channel_id, message)
        return {"ok": True, "channel": channel_id, "ts": ts}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel"):
            channel = self._channel(args["channel"])
            return {"ok": True, "channel": {"id": channel["id"]}}
        users = args.get("users")
        if isinstance(users, list):
            users = ",".join(users)
        if not users:
            raise SlackError("users_list_not_supplied")
        wanted = [user.strip() for user in str(users).split(",") if user.strip()]
        if len(wanted) != 1:
            raise SlackError("not_enough_users" if not wanted else "too_many_users")
        user = self._users.get(wanted[0])
        if user is None or user["deleted"]:
            raise SlackError("user_not_found")
        if user["is_bot"]:
            raise SlackError("cannot_dm_bot")
        already = wanted[0] in self._dm_by_user
        channel_id = self._open_dm(wanted[0])
        answer: dict[str, Any] = {"ok": True, "channel": {"id": channel_id}}
        if already:
            answer.update({"no_op": True, "already_open": True})
        return answer

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = args.get("channel")
        if not channel_id or channel_id not in self._channels:
            raise SlackError("channel_not_found")
        return {"ok": True, "channel": dict(self._channels[channel_id])}

    def _conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        """Channels the bot can see, by `types` (default public_channel), paged by an opaque
        cursor; Slack may return fewer than `limit` on a page and still have more."""
        wanted = set(str(args.get("types") or "public_channel").split(","))
        unknown = wanted - {"public_channel", "private_channel", "mpim", "im"}
        if unknown:
            raise SlackError("invalid_types")
        limit = _limit(args.get("limit"), HISTORY_DEFAULT_LIMIT, 1000)
        offset = 0
        if args.get("cursor"):
            try:
                offset = int(base64.b64decode(str(args["cursor"])).decode().partition(":")[2])
            except (ValueError, UnicodeDecodeError):
                raise SlackError("invalid_cursor") from None

        def kind(channel: dict[str, Any]) -> str:
            if channel["is_im"]:
                return "im"
            return "private_channel" if channel["is_private"] else "public_channel"

        matching = [
            dict(c)
            for c in sorted(self._channels.values(), key=lambda c: c["id"])
            if kind(c) in wanted
            and not (_truthy(args.get("exclude_archived")) and c["is_archived"])
        ]
        page = matching[offset : offset + limit]
        more = offset + limit < len(matching)
        cursor = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else ""
        return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}

    def _readable_channel(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = args.get("channel")
        if not channel_id or channel_id not in self._channels:
            raise SlackError("channel_not_found")
        channel = self._channels[channel_id]
        if not channel["is_member"] and not channel["is_im"]:
            raise SlackError("not_in_channel")
        return channel

    def _shown(self, message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        shown = json.loads(json.dumps(message))
        if not with_metadata:
            shown.pop("metadata", None)
        return shown

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable_channel(args)
        oldest = _ts_key(str(args.get("oldest") or "0"))
        latest = _ts_key(str(args["latest"])) if args.get("latest") else None
        inclusive = _truthy(args.get("inclusive", False))
        limit = _limit(args.get("limit"), HISTORY_DEFAULT_LIMIT, MAX_LIMIT)
        below = _decode_cursor(str(args["cursor"])) if args.get("cursor") else None
        with_metadata = _truthy(args.get("include_all_metadata", False))

        def in_range(message: dict[str, Any]) -> bool:
            key = _ts_key(message["ts"])
            if key < oldest or (key == oldest and not inclusive):
                return False
            if latest is not None and (key > latest or (key == latest and not inclusive)):
                return False
            return below is None or key <= below

        def top_level(message: dict[str, Any]) -> bool:
            thread_ts = message.get("thread_ts")
            return (
                thread_ts is None
                or thread_ts == message["ts"]
                or message.get("subtype") == "thread_broadcast"
            )

        newest_first = [
            m for m in reversed(self._messages[channel["id"]]) if top_level(m) and in_range(m)
        ]
        page = newest_first[:limit]
        has_more = len(newest_first) > limit
        answer: dict[str, Any] = {
            "ok": True,
            "messages": [self._shown(m, with_metadata) for m in page],
            "has_more": has_more,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if has_more:
            answer["response_metadata"] = {"next_cursor": _encode_cursor(newest_first[limit]["ts"])}
        return answer

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable_channel(args)
        ts = args.get("ts")
        if not ts:
            raise SlackError("thread_not_found")
        message = self._find(channel["id"], str(ts))
        if message is None:
            raise SlackError("thread_not_found")
        parent_ts = message.get("thread_ts") or message["ts"]
        parent = self._find(channel["id"], parent_ts)
        if parent is None:
            raise SlackError("thread_not_found")
        oldest = _ts_key(str(args.get("oldest") or "0"))
        latest = _ts_key(str(args["latest"])) if args.get("latest") else None
        inclusive = _truthy(args.get("inclusive", False))
        limit = _limit(args.get("limit"), REPLIES_DEFAULT_LIMIT, REPLIES_DEFAULT_LIMIT)
        from_key = _decode_cursor(str(args["cursor"])) if args.get("cursor") else None
        with_metadata = _truthy(args.get("include_all_metadata", False))

        def in_range(reply: dict[str, Any]) -> bool:
            key = _ts_key(reply["ts"])
            if key < oldest or (key == oldest and not inclusive):
                return False
            if latest is not None and (key > latest or (key == latest and not inclusive)):
                return False
            return from_key is None or key >= from_key

        thread = [parent] + [
            m
            for m in self._messages[channel["id"]]
            if m.get("thread_ts") == parent_ts and m["ts"] != parent_ts
        ]
        if from_key is not None:
            chosen = [m for m in thread if m is not parent and in_range(m)]
        else:
            chosen = [parent] + [m for m in thread[1:] if in_range(m)]
        page = chosen[:limit]
        has_more = len(chosen) > limit
        answer: dict[str, Any] = {
            "ok": True,
            "messages": [self._shown(m, with_metadata) for m in page],
            "has_more": has_more,
        }
        if has_more:
            answer["response_metadata"] = {"next_cursor": _encode_cursor(chosen[limit]["ts"])}
        return answer

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(args.get("user") or ""))
        if user is None:
            raise SlackError("user_not_found")
        return {"ok": True, "user": json.loads(json.dumps(user))}


def _failure_response(failure: _Failure) -> tuple[int, dict[str, str], bytes]:
    if failure.status == 429:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Retry-After": str(failure.retry_after),
        }
        return 429, headers, json.dumps({"ok": False, "error": "ratelimited"}).encode()
    reason = _LOAD_BALANCER_PAGES.get(failure.status, "Error")
    page = (
        f"<html>\r\n<head><title>{failure.status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{failure.status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return failure.status, {"Content-Type": "text/html"}, page.encode()


class _Handler(BaseHTTPRequestHandler):
    slack: FakeSlack
    server_version = "Apache"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(body=b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(body=self.rfile.read(length) if length else b"")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test run should not print a line per request."""

    def _serve(self, *, body: bytes) -> None:
        parts = urlsplit(self.path)
        if not parts.path.startswith("/api/"):
            self._send(404, {"Content-Type": "text/plain"}, b"Not Found")
            return
        method = parts.path.removeprefix("/api/")
        args: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        json_body = False
        if body:
            if content_type == "application/json":
                json_body = True
                try:
                    parsed = json.loads(body)
                except json.JSONDecodeError:
                    self._send(*self._refuse(method, args, "invalid_json"))
                    return
                if not isinstance(parsed, dict):
                    self._send(*self._refuse(method, args, "invalid_json"))
                    return
                args.update(parsed)
            else:
                args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        token = self._bearer()
        body_token = args.pop("token", None)
        # Slack does not read a token from a JSON body: it must be in the Authorization header.
        if not token and isinstance(body_token, str) and not json_body:
            token = body_token
        self._send(*self.slack.handle(method, args, token))

    def _refuse(
        self, method: str, args: dict[str, Any], code: str
    ) -> tuple[int, dict[str, str], bytes]:
        with self.slack._lock:
            self.slack.calls.append(Call(method, args, self._bearer(), 200, error=code))
        body = json.dumps({"ok": False, "error": code}).encode()
        return 200, {"Content-Type": "application/json; charset=utf-8"}, body

    def _bearer(self) -> str:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.close_connection = True
        if status == 0:
            return
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test): Slack would not notice either
