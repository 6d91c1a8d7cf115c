"""The Connector protocol: what the pipeline needs from a source of messages, and nothing more.

A connector talks to its upstream only. It yields batches of raw messages, each with the cursor
that becomes true once the batch is stored; it never touches the store or the rules. Concrete
connectors register through the `inbox.connectors` entry-point group, so a third party can ship
one as its own package and the core never imports one by name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from inbox.raw import Batch, Channel


class ConnectorConfig(BaseModel):
    """Base of every connector's own settings model; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    enabled: bool = True
    poll_seconds: float = 30


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
