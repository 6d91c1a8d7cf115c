"""What each kind of outbox row carries: a typed payload per kind, stored as the row's JSON.

Routing writes the rows (inbox/routing/) and the notifier sends them (inbox/outbox/); the two
sit side by side and import nothing of each other, so what they agree on lives here, with the
table it is stored in. A payload is read back tolerantly: a row written by an older version
lacks the fields added since (they take their defaults) and one written by a newer version may
have fields this one does not know (they are ignored), so an upgrade never strands a ping.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class AssignmentPing:
    """Tells an agent in Slack that a conversation is theirs (a rule's decision or a person's:
    `by` and `note` are a person's, `rule` is "" then)."""

    KIND: ClassVar[str] = "slack.assignment"

    agent: str
    slack_user: str
    previous_agent: str = ""
    team: str = ""
    rule: str = ""
    why: str = ""
    by: str = ""
    note: str = ""


@dataclass(frozen=True)
class QueuedPing:
    """Tells a team's channel that a conversation waits with nobody free to take it, and why
    each agent was passed over."""

    KIND: ClassVar[str] = "slack.queued"

    team: str
    slack_channel: str
    rule: str = ""
    why: str = ""
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotifyPing:
    """A rule's `notify` action: a line of text to an agent, a team's channel or a channel."""

    KIND: ClassVar[str] = "slack.notify"

    #: As the rule said it: `agent:NAME`, `team:NAME` or a channel.
    target: str
    text: str
    rule: str = ""
    why: str = ""
    slack_user: str = ""
    slack_channel: str = ""


@dataclass(frozen=True)
class ThreadFollowUp:
    """What the customer wrote next, posted in the thread of the agent's ping, so that a
    conversation can be run from Slack (the agent answers in the same thread)."""

    KIND: ClassVar[str] = "slack.thread"

    slack_channel: str
    thread_ts: str
    sender: str = ""
    text: str = ""
    #: Inbox's own word in the thread (what a button did, why `!answer` was refused), not
    #: something the customer wrote.
    notice: bool = False


@dataclass(frozen=True)
class ReplyToSend:
    """An agent's reply, stored as an outbound message (its id here), to leave through the
    connector that received the conversation (inbox/outbox/replies.py). The message itself
    holds what is sent, so a row is small and what the history shows is what went out."""

    KIND: ClassVar[str] = "reply"

    message: int
    connector: str
    channel: str = ""


SlackPing = AssignmentPing | QueuedPing | NotifyPing | ThreadFollowUp
OutboxPayload = SlackPing | ReplyToSend

#: Every kind, to its payload type.
PAYLOADS: dict[str, type[OutboxPayload]] = {
    kind.KIND: kind
    for kind in (AssignmentPing, QueuedPing, NotifyPing, ThreadFollowUp, ReplyToSend)
}
#: What the Slack notifier sends (inbox/outbox/notifier.py).
SLACK_KINDS = (AssignmentPing.KIND, QueuedPing.KIND, NotifyPing.KIND, ThreadFollowUp.KIND)


class UnknownKind(ValueError):
    """A row of a kind this version does not send."""


def stored(payload: OutboxPayload) -> dict[str, Any]:
    """The row's JSON column."""
    return dataclasses.asdict(payload)


def read_payload(kind: str, stored_payload: dict[str, Any]) -> OutboxPayload:
    """The typed payload of a stored row (see the module's docstring for old and new rows). A
    required field a damaged row lacks reads as "": the notifier then says what is missing."""
    cls = PAYLOADS.get(kind)
    if cls is None:
        raise UnknownKind(f"no payload type for outbox kind {kind!r}")
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        value = stored_payload.get(item.name)
        if item.name == "skipped":
            values["skipped"] = {str(k): str(v) for k, v in dict(value or {}).items()}
        elif item.type == "int":
            values[item.name] = int(value or 0)
        elif item.type == "bool":
            values[item.name] = value is True or str(value).lower() == "true"
        elif value is not None:
            values[item.name] = str(value)
        elif item.default is dataclasses.MISSING:
            values[item.name] = ""
    return cls(**values)


def read_slack_ping(kind: str, stored_payload: dict[str, Any]) -> SlackPing:
    payload = read_payload(kind, stored_payload)
    if isinstance(payload, ReplyToSend):
        raise UnknownKind(f"outbox kind {kind!r} is not a Slack ping")
    return payload


def slack_target(payload: SlackPing) -> str:
    """The Slack user or channel the ping goes to ("" when the rule named nobody reachable)."""
    match payload:
        case AssignmentPing():
            return payload.slack_user
        case QueuedPing() | ThreadFollowUp():
            return payload.slack_channel
        case NotifyPing():
            return payload.slack_user or payload.slack_channel
