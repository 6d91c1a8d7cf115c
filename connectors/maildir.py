"""A local Maildir (new/ and cur/) as a source of email.

Options (the `[[connectors]]` entry with `type = "maildir"`):

- `path`: the Maildir (the folder holding new/, cur/, tmp/).
- `after_ingest`: `leave` (default: the Maildir is not touched), `seen` (move new/ to cur/
  with the S flag, as a mail client would), or `move` (move into the Maildir at `move_to`).
- `include_cur`: also take what is in cur/ (default true: a mail client may have moved new
  mail there before we saw it; we never depend on the seen flag).

The cursor is the inode change time of the newest file taken. Delivery renames a file from
tmp/ into new/, and rename updates ctime, so a message that was written slowly still sorts after
the ones we took before it. A scan looks back `overlap_seconds` before the cursor to catch
deliveries that raced a scan; what it sees twice is skipped by the store (exactly-once on the
Maildir key), so the overlap costs a stat, not a duplicate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal

import structlog
from pydantic import model_validator

from connectors.base import ConnectorConfig
from connectors.smtp import SmtpConfig, SmtpSender
from inbox.raw import Batch, Channel, RawMessage

log = structlog.get_logger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class MaildirConfig(ConnectorConfig):
    path: Path
    after_ingest: Literal["leave", "seen", "move"] = "leave"
    move_to: Path | None = None
    include_cur: bool = True
    overlap_seconds: float = 300
    max_message_bytes: int = DEFAULT_MAX_BYTES
    poll_seconds: float = 5
    #: Where replies to these conversations are handed over (connectors/smtp.py), e.g. the
    #: local MTA that delivers into this Maildir.
    smtp: SmtpConfig | None = None

    @model_validator(mode="after")
    def _move_needs_target(self) -> MaildirConfig:
        if self.after_ingest == "move" and self.move_to is None:
            raise ValueError("after_ingest = 'move' needs move_to (a Maildir path)")
        return self


@dataclass(frozen=True, slots=True)
class _Entry:
    ctime_ns: int
    name: str
    subdir: str

    @property
    def key(self) -> str:
        """The unique part of a Maildir file name, without the ':2,FLAGS' info suffix."""
        return maildir_key(self.name)


def maildir_key(name: str) -> str:
    # ':' is the info separator on Linux; '!' and ';' are used where ':' is not allowed.
    for separator in (":", "!", ";"):
        if separator in name:
            return name.split(separator, 1)[0]
    return name


class MaildirConnector:
    type_name: ClassVar[str] = "maildir"
    channel: ClassVar[Channel] = "email"
    config_model: ClassVar[type[ConnectorConfig]] = MaildirConfig

    def __init__(self, config: ConnectorConfig) -> None:
        assert isinstance(config, MaildirConfig)
        self.config = config
        self.name = config.name
        self.root = config.path.expanduser()
        self.log = log.bind(connector=self.name)

    def fetch(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        watermark = _read_cursor(cursors.get(""))
        since = watermark - int(self.config.overlap_seconds * 1e9)
        entries = sorted(self._scan(since), key=lambda e: (e.ctime_ns, e.name))
        for start in range(0, len(entries), batch_size):
            chunk = entries[start : start + batch_size]
            messages = [m for m in (self._read(entry) for entry in chunk) if m is not None]
            newest = max(watermark, chunk[-1].ctime_ns)
            yield Batch(
                connector=self.name,
                messages=messages,
                cursor_scope="",
                cursor_after=json.dumps({"ctime_ns": newest}),
                acknowledge=[f"{entry.subdir}/{entry.name}" for entry in chunk],
            )

    def acknowledge(self, batch: Batch) -> None:
        if self.config.after_ingest == "leave":
            return
        for relative in batch.acknowledge:
            try:
                self._move(relative)
            except OSError as error:
                # Stored already: a file we fail to move is only seen (and skipped) again.
                self.log.warning("maildir_move_failed", file=relative, error=str(error))

    def sender(self) -> SmtpSender | None:
        return SmtpSender(self.config.smtp) if self.config.smtp is not None else None

    def close(self) -> None:
        return None

    def _scan(self, since_ns: int) -> Iterator[_Entry]:
        subdirs = ["new", "cur"] if self.config.include_cur else ["new"]
        for subdir in subdirs:
            folder = self.root / subdir
            try:
                iterator = os.scandir(folder)
            except FileNotFoundError:
                if subdir == "new":
                    # No Maildir here at all (a typo, an unmounted volume): the connector
                    # fails, so /healthz and `inbox status` say so, not only the log.
                    raise FileNotFoundError(
                        f"no Maildir at {self.root}: {folder} does not exist"
                    ) from None
                self.log.warning("maildir_folder_missing", folder=str(folder))
                continue
            with iterator:
                for item in iterator:
                    if item.name.startswith("."):
                        continue
                    try:
                        stat = item.stat()
                    except FileNotFoundError:
                        continue  # moved away by someone else between listing and stat
                    if stat.st_ctime_ns >= since_ns and (stat.st_mode & 0o170000) == 0o100000:
                        yield _Entry(stat.st_ctime_ns, item.name, subdir)

    def _read(self, entry: _Entry) -> RawMessage | None:
        path = self.root / entry.subdir / entry.name
        try:
            size = path.stat().st_size
            payload = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            self.log.error("maildir_read_failed", file=str(path), error=str(error))
            return None
        note = ""
        if size > self.config.max_message_bytes:
            note = f"message of {size} bytes is over max_message_bytes; stored raw only"
        return RawMessage(
            connector=self.name,
            external_id=entry.key,
            channel="email",
            payload=payload,
            received_at=datetime.fromtimestamp(entry.ctime_ns / 1e9, UTC),
            folder=entry.subdir,
            note=note,
        )

    def _move(self, relative: str) -> None:
        subdir, name = relative.split("/", 1)
        source = self.root / subdir / name
        if not source.exists():
            return
        if self.config.after_ingest == "seen":
            if subdir == "cur" and ":2," in name and "S" in name.split(":2,", 1)[1]:
                return
            flags = name.split(":2,", 1)[1] if ":2," in name else ""
            target = (
                self.root / "cur" / f"{maildir_key(name)}:2,{''.join(sorted(set(flags + 'S')))}"
            )
        else:
            assert self.config.move_to is not None
            destination = self.config.move_to.expanduser()
            for part in ("new", "cur", "tmp"):
                (destination / part).mkdir(parents=True, exist_ok=True)
            target = destination / subdir / name
        os.replace(source, target)


def _read_cursor(value: str | None) -> int:
    if not value:
        return 0
    try:
        return int(json.loads(value)["ctime_ns"])
    except (ValueError, KeyError, TypeError):
        log.warning("maildir_cursor_unreadable", cursor=value)
        return 0
