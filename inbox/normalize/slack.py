"""Slack messages, as the slack connector hands them over, into the normalized form.

The payload is the connector's JSON envelope (see `connectors/slack_chat.py`): the Slack
message object exactly as the Events API or conversations.history gave it, the kind
("message", "edited", "deleted"), the channel and its type, and the author's users.info
record, fetched by the connector so that this stays pure.

Slack's text is mrkdwn with its own escaping: `&lt;`, `&gt;` and `&amp;` are the only
entities, and `<...>` wraps mentions (`<@U123>`), channels (`<#C1|name>`) and links
(`<https://x|label>`). A rule that looks for "refund" must see the words a person sees, so
those are turned into plain text here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from inbox.normalize.language import detect_language
from inbox.normalize.reply_split import split_reply
from inbox.normalize.sanitize import clean_message
from inbox.normalize.types import Address, AutoFlags, NormalizedMessage

DEFAULT_LANGUAGES = ("en", "fi", "et", "sv", "de", "fr", "es", "ru", "el")
MAX_TEXT_CHARS = 40_000
MAX_SUBJECT_CHARS = 120
_ANGLED = re.compile(r"<([^<>]*)>")
#: Links, addresses, mentions and channel names: letters that say nothing of the language.
_NOT_PROSE = re.compile(r"\S*(?:://|@|#)\S*")


def normalize_slack(
    payload: bytes, *, languages: Sequence[str] = DEFAULT_LANGUAGES
) -> NormalizedMessage:
    """Never raises on a bad payload: an envelope that cannot be read becomes a message with
    the reason in `errors` (the raw bytes are kept by the store either way)."""
    try:
        envelope = json.loads(payload)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
            raise ValueError("not a Slack message envelope")
    except (ValueError, UnicodeDecodeError) as error:
        return NormalizedMessage(
            channel="chat",
            sender=None,
            text=payload[:2000].decode("utf-8", "replace"),
            content_hash=hashlib.sha256(payload).hexdigest(),
            errors=(f"unreadable Slack payload: {error}"[:300],),
        )
    return clean_message(_normalize(envelope, languages))


def slack_time(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def thread_key(channel: str, channel_type: str, message: dict[str, Any]) -> str:
    """A DM is one conversation while it is open; in a channel each top-level message starts
    one and its thread replies join it."""
    if channel_type == "im":
        return f"slack:{channel}"
    return f"slack:{channel}:{message.get('thread_ts') or message.get('ts') or ''}"


def _normalize(envelope: dict[str, Any], languages: Sequence[str]) -> NormalizedMessage:
    message: dict[str, Any] = envelope["message"]
    kind = str(envelope.get("kind") or "message")
    channel = str(envelope.get("channel") or "")
    channel_type = str(envelope.get("channel_type") or "channel")
    user: dict[str, Any] = envelope.get("user") or {}
    names: dict[str, str] = envelope.get("names") or {}
    errors: list[str] = []
    ts = str(message.get("ts") or "")
    text = slack_text(str(message.get("text") or ""), names)[:MAX_TEXT_CHARS]
    files = [f for f in message.get("files") or [] if isinstance(f, dict)]
    if files:
        listed = "\n".join(
            f"[file: {f.get('name') or f.get('title') or 'unnamed'}"
            f" ({f.get('mimetype') or 'unknown type'}, {f.get('size') or 0} bytes)]"
            for f in files
        )
        text = f"{text}\n{listed}".strip()
    if not text and kind == "message":
        errors.append("Slack message without text")
    split = split_reply(text)
    sender = _sender(message, user)
    profile = user.get("profile") or {}
    bot = bool(
        message.get("bot_id") or message.get("subtype") == "bot_message" or user.get("is_bot")
    )
    revision = None
    if kind in ("edited", "deleted"):
        revision = (kind, f"{channel}:{ts}")
    return NormalizedMessage(
        channel="chat",
        sender=sender,
        subject=_subject(text, str(envelope.get("channel_name") or "")),
        sent_at=slack_time(ts),
        message_id=f"slack:{channel}:{ts}",
        in_reply_to=(f"slack:{channel}:{message['thread_ts']}",)
        if message.get("thread_ts") and message.get("thread_ts") != ts
        else (),
        text=text,
        new_text=split.new_text or text,
        quoted_text=split.quoted_text,
        signature=split.signature,
        language=detect_language(_NOT_PROSE.sub(" ", split.new_text or text), languages),
        flags=AutoFlags(auto_submitted=True, reasons=("slack bot",)) if bot else AutoFlags(),
        headers=_headers(envelope, message),
        content_hash=hashlib.sha256(
            f"slack:{channel}:{ts}:{kind}:{(message.get('edited') or {}).get('ts') or ''}".encode()
        ).hexdigest(),
        errors=tuple(errors),
        sender_kind="slack",
        sender_email=str(profile.get("email") or "").strip().lower(),
        thread_key=thread_key(channel, channel_type, message)[:300],
        revision=revision,
    )


def slack_text(text: str, names: dict[str, str] | None = None) -> str:
    """mrkdwn to what a reader sees: mentions by name where known, links with their label."""
    names = names or {}

    def readable(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label or names.get(target[1:], target[1:]))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        address = target.removeprefix("mailto:")
        if label and label != address:
            return f"{label} ({address})"
        return address

    plain = _ANGLED.sub(readable, text)
    return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _sender(message: dict[str, Any], user: dict[str, Any]) -> Address | None:
    user_id = str(message.get("user") or user.get("id") or message.get("bot_id") or "")
    if not user_id:
        return None
    profile = user.get("profile") or {}
    # Events carry a short profile of their own (no email): the name when users.info could
    # not be asked (the connector stores such events without waiting for the API).
    shown = message.get("user_profile") or {}
    name = (
        profile.get("real_name")
        or user.get("real_name")
        or profile.get("display_name")
        or user.get("name")
        or shown.get("real_name")
        or shown.get("display_name")
        or message.get("username")
        or ""
    )
    return Address(address=user_id, name=str(name)[:300])


def _subject(text: str, channel_name: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) > MAX_SUBJECT_CHARS:
        first = first[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    if first:
        return first
    return f"Slack #{channel_name}" if channel_name else "Slack message"


def _headers(envelope: dict[str, Any], message: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """What rules may test besides the text: the workspace, the channel and the kind of post."""
    kept = {
        "x-slack-team": envelope.get("team"),
        "x-slack-channel": envelope.get("channel"),
        "x-slack-channel-name": envelope.get("channel_name"),
        "x-slack-channel-type": envelope.get("channel_type"),
        "x-slack-subtype": message.get("subtype"),
        "x-slack-bot-id": message.get("bot_id"),
    }
    return tuple((name, str(value)[:500]) for name, value in kept.items() if value)
