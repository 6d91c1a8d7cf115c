"""The Connector protocol: what the pipeline needs from a source of messages, and nothing more.

A connector talks to its upstream only. It yields batches of raw messages, each with the cursor
that becomes true once the batch is stored; it never touches the store or the rules. Concrete
connectors register through the `inbox.connectors` entry-point group, so a third party can ship
one as its own package and the core never imports one by name.

What a connector may do beyond `fetch` is declared here as its own Protocol (`Configured`,
`Watched`, `WebhookReceiver`, `WebhookFed`, `Answering`,
`DeliveryReporting`), so that the daemon asks `isinstance` of a
named ability and a third party reads in one file what it can offer, instead of the daemon
probing attributes by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from inbox.raw import Batch, Channel
from inbox.webhook import Handler

#: How often a connector that says nothing of it is polled.
DEFAULT_POLL_SECONDS = 30.0


class ConnectorConfig(BaseModel):
    """Base of every connector's own settings model; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    enabled: bool = True
    poll_seconds: float = DEFAULT_POLL_SECONDS


@runtime_checkable
class Connector(Protocol):
    #: The value of `type` in the config that selects this connector.
    type_name: ClassVar[str]
    channel: ClassVar[Channel]
    config_model: ClassVar[type[ConnectorConfig]]

    name: str

    def fetch(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        """Yield what is new since `cursors` (scope -> opaque cursor value), in order.

        May yield items that are already stored (fetch is at-least-once); the store dedupes.
        """
        ...

    def acknowledge(self, batch: Batch) -> None:
        """Called after `batch` is committed: move or flag what was ingested, if configured."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Configured(Protocol):
    """A connector that keeps its settings model: the daemon polls it every
    `config.poll_seconds`, and `inbox sync --since` may set a `since` it declares."""

    config: ConnectorConfig


def poll_seconds(connector: Connector) -> float:
    """Seconds between two polls of `connector` (for a watched or webhook-fed one: between two
    looks of the safety net)."""
    if isinstance(connector, Configured):
        return float(connector.config.poll_seconds)
    return DEFAULT_POLL_SECONDS


@runtime_checkable
class Watched(Protocol):
    """A connector that learns of new messages without polling (IMAP IDLE, a webhook delivery
    just spooled): it calls `notify`, from any thread, and the daemon fetches at once. `close`
    ends what `watch` started."""

    def watch(self, notify: Callable[[], None]) -> None: ...


@runtime_checkable
class WebhookReceiver(Protocol):
    """A connector whose upstream pushes to us: each path of the daemon's web server that it
    takes, to the handler that verifies a delivery (its signature) before anything is kept."""

    def webhooks(self) -> Mapping[str, Handler]: ...


class UpstreamError(Exception):
    """The upstream refused a call or could not be reached. Its text is for a person: what
    failed and why ("Slack answered invalid_auth to conversations.list: the bot token is wrong
    or revoked"), shown in /healthz and `inbox status` as it is."""


def unreachable(service: str, url: str, error: BaseException) -> UpstreamError:
    """A network failure in words: the innermost reason ("Connection refused", "timed out"),
    not the HTTP library's wrapping of it."""
    reason: object = error
    for _ in range(8):  # URLError.reason, requests' and urllib3's nested errors
        inner = getattr(reason, "reason", None) or (
            reason.__context__ if isinstance(reason, BaseException) else None
        )
        if inner is None or inner is reason:
            break
        reason = inner
    if isinstance(reason, TimeoutError) or "timed out" in str(reason).lower():
        said = "no answer in time"
    else:
        said = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return UpstreamError(f"{service} cannot be reached at {url}: {said}"[:500])


@runtime_checkable
class WebhookFed(Protocol):
    """A connector whose upstream pushes deliveries to our receiver, which spools them on disk,
    and which catches up through the upstream's API for what webhooks missed.

    The daemon stores the spool and runs the catch-up apart: the spool on every delivery,
    whether this daemon holds the connector's lease or not, and whatever the API does; the
    catch-up only where the lease is held, retried with backoff when it fails. `fetch` does
    both, one after the other, for one-off runs.
    """

    def fetch_spooled(self, batch_size: int) -> Iterator[Batch]:
        """What this process's receiver spooled, without a call to the upstream."""
        ...

    def fetch_catch_up(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        """The catch-up through the upstream's API when it is due, else nothing."""
        ...

    def spooled_count(self) -> int:
        """Deliveries waiting in the spool (for /healthz)."""
        ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An agent's reply as the channel needs it, built by the outbox from the stored message.

    `key` is the same on every attempt to send this reply (the outbox row's idempotency key):
    a sender that can tell its provider "send this once" passes it on.
    """

    key: str
    channel: Channel
    #: Where it goes: an email address, an E.164 number, a Slack channel.
    to: str
    text: str
    to_name: str = ""
    #: What the customer wrote to (our address or number), so the answer comes from it.
    from_address: str = ""
    subject: str = ""
    #: Email: our Message-ID for it, and the customer's message it answers, with the chain.
    message_id: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    #: Email: an HTML alternative (when the agent wrote Markdown).
    html: str = ""
    #: Slack: the thread it belongs in.
    thread: str = ""
    #: Email: the customer's message it answers, with its attribution line ("On ..., X wrote:"),
    #: for a sender that quotes the history.
    quoted: str = ""
    #: An auto-reply, not a person's (RFC 3834: `Auto-Submitted: auto-replied`).
    automatic: bool = False
    #: Answers the customer may give with one click where the channel has buttons (a
    #: survey's scores); a click comes back as the customer writing that answer.
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the provider said when it took a message: its id for it (an SMTP queue id, a
    Twilio SID, a Slack ts) and its answer as it gave it, kept on the message."""

    provider_id: str
    answer: str


class SendFailed(UpstreamError):
    """The provider did not take the message. `temporary`: try again later (SMTP 4xx, HTTP 429
    or 5xx, a refused connection); else it never will, and the reason is shown to the agent.
    `unsure`: the provider may have taken it (the connection dropped after the message was
    handed over), so it is not sent again before `Sender.was_sent` says it was not."""

    def __init__(
        self,
        reason: str,
        *,
        temporary: bool,
        unsure: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.temporary = temporary
        self.unsure = unsure
        self.retry_after = retry_after


@runtime_checkable
class Sender(Protocol):
    """A connector that answers over its own channel: replies to conversations it received
    leave through its `send`, from the outbox, after the commit that wrote them."""

    def send(self, outgoing: Outgoing) -> Delivery:
        """Hand the message to the provider, or raise `SendFailed` saying why not."""
        ...

    def was_sent(self, outgoing: Outgoing) -> bool | None:
        """Whether an attempt the sender could not see the end of reached the provider (for
        email: our Message-ID in the Sent folder); None when it cannot tell."""
        ...


@runtime_checkable
class Answering(Protocol):
    """A connector that can answer the conversations it received, over its own channel."""

    def sender(self) -> Sender | None:
        """What sends its replies; None when it is not configured to send (the replies to its
        conversations are then refused with that reason, never lost)."""
        ...


#: What a provider may say of a message after it took it, furthest last: a report that arrives
#: late (Twilio's callbacks come in any order) never moves a message back.
REPORTED_STATES = ("sent", "delivered", "undelivered", "failed", "read")


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The provider's later word on a reply it took (Twilio's status callback): `key` is the
    reply's `Outgoing.key`, carried through the provider so that a report finds its message
    even when it arrives before the outbox has recorded the send."""

    key: str
    provider_id: str
    #: One of REPORTED_STATES.
    state: str
    #: In the provider's words, with its error code when it failed.
    detail: str


#: Records a report in the store; raises when it cannot (the handler answers 5xx).
ReportDelivery = Callable[[DeliveryReport], None]


@runtime_checkable
class DeliveryReporting(Protocol):
    """A connector whose provider calls back with what became of a sent reply (delivered,
    undelivered, failed): the paths it takes, verified like its other webhooks, each handing a
    verified report to `report`, which the daemon gives and which writes it to the store."""

    def delivery_webhooks(self, report: ReportDelivery) -> Mapping[str, Handler]: ...
