"""Replies to customers who wrote in Slack (a shared channel, or a DM to the bot): posted with
`chat.postMessage` in the customer's thread, as our bot, carrying the reply's key in the
message's metadata so that a post whose answer was lost can be found again (`was_sent`).

Our bot's posts come back through the Events API and history like any message; the connector
knows its own bot (slack_chat.py, `_Ours`) and never takes them for a customer's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from connectors.base import Delivery, Outgoing, SendFailed

METADATA_EVENT = "inbox_reply"
#: Slack's codes that no retry will change: the reply fails with the reason at once.
PERMANENT = frozenset(
    {
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "msg_too_long",
        "no_text",
        "restricted_action",
        "cannot_reply_to_message",
        "invalid_blocks",
    }
)


class SlackReplySender:
    """`client` is called for a WebClient without retry handlers: the outbox retries, after
    looking whether an unanswered post went through."""

    def __init__(self, client: Callable[[], WebClient]) -> None:
        self._client = client

    def send(self, outgoing: Outgoing) -> Delivery:
        client = self._client()
        try:
            answer = client.chat_postMessage(
                channel=outgoing.to,
                text=outgoing.text,
                blocks=_blocks(outgoing) if outgoing.choices else None,
                thread_ts=outgoing.thread or None,
                unfurl_links=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": outgoing.key}},
            )
        except SlackApiError as error:
            raise _failed(error) from None
        except (SlackClientError, OSError, TimeoutError) as error:
            raise SendFailed(
                f"Slack did not answer chat.postMessage ({error}): the reply may have been posted",
                temporary=True,
                unsure=True,
            ) from None
        channel, ts = str(answer["channel"]), str(answer["ts"])
        return Delivery(provider_id=ts, answer=f"posted in {channel} at {ts}")

    def was_sent(self, outgoing: Outgoing) -> bool | None:
        """Our post carrying the reply's key, in the customer's thread (or the DM's latest)."""
        client = self._client()
        try:
            if outgoing.thread:
                answer = client.conversations_replies(
                    channel=outgoing.to, ts=outgoing.thread, include_all_metadata=True, limit=200
                )
            else:
                answer = client.conversations_history(
                    channel=outgoing.to, include_all_metadata=True, limit=200
                )
        except (SlackApiError, SlackClientError, OSError, TimeoutError):
            return None
        messages: list[dict[str, Any]] = answer.get("messages", [])
        return any(_carries(message, outgoing.key) for message in messages)


#: The action id of a customer's one-click answer (connectors/slack_chat.py takes it).
CHOICE_ACTION = "inbox_choice"


def _blocks(outgoing: Outgoing) -> list[dict[str, Any]]:
    """The text, and a button per choice: a click is the customer answering with it."""
    text = outgoing.text[:2900] or " "
    buttons = [
        {
            "type": "button",
            "action_id": f"{CHOICE_ACTION}_{index}",
            "text": {"type": "plain_text", "text": choice[:75]},
            "value": choice[:2000],
        }
        for index, choice in enumerate(outgoing.choices[:25])
    ]
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": "inbox_choices", "elements": buttons},
    ]


def _carries(message: dict[str, Any], key: str) -> bool:
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    return metadata.get("event_type") == METADATA_EVENT and payload.get("key") == key


def _failed(error: SlackApiError) -> SendFailed:
    response = error.response
    status = response.status_code
    code = str(response.get("error", "")) if isinstance(response.data, dict) else ""
    if status == 429:
        after = _retry_after(response.headers)
        return SendFailed(
            f"rate limited by Slack for {after:g} s", temporary=True, retry_after=after
        )
    if status >= 500:
        # Slack may have posted before its front end failed: look before posting again.
        return SendFailed(f"Slack answered HTTP {status}", temporary=True, unsure=True)
    if code in PERMANENT:
        return SendFailed(f"Slack refused the reply: {code}", temporary=False)
    return SendFailed(f"Slack answered {code or status} to chat.postMessage", temporary=True)


def _retry_after(headers: Any) -> float:
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(1.0, float(raw))
            except (TypeError, ValueError):
                return 1.0
    return 1.0
