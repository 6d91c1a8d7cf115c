"""One-off imports (`inbox ingest PATH`): a Maildir, an mbox, a folder of .eml files, one file.

Each message's external id is the SHA-256 of its bytes, so running the same import twice stores
nothing twice, and the pipeline's content hash still joins it with the same mail fetched by a
live connector.
"""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from inbox.raw import Batch, RawMessage

MAILDIR_SUBDIRS = ("new", "cur")


@dataclass(frozen=True)
class ImportSource:
    kind: str  # "maildir" | "mbox" | "eml-folder" | "file"
    path: Path
    count: int

    def messages(self, connector: str) -> Iterator[RawMessage]:
        for folder, payload in _payloads(self):
            yield RawMessage(
                connector=connector,
                external_id="sha256:" + hashlib.sha256(payload).hexdigest(),
                channel="email",
                payload=payload,
                received_at=datetime.now(UTC),
                folder=folder,
            )

    def batches(self, connector: str, batch_size: int) -> Iterator[Batch]:
        chunk: list[RawMessage] = []
        for message in self.messages(connector):
            chunk.append(message)
            if len(chunk) >= batch_size:
                yield Batch(connector=connector, messages=chunk)
                chunk = []
        if chunk:
            yield Batch(connector=connector, messages=chunk)


def open_source(path: Path) -> ImportSource:
    """Tell what PATH holds. Raises ValueError with a sentence for the user if nothing fits."""
    if path.is_dir():
        if any((path / sub).is_dir() for sub in MAILDIR_SUBDIRS):
            return ImportSource("maildir", path, sum(1 for _ in _maildir_files(path)))
        files = _eml_files(path)
        if not files:
            raise ValueError(f"{path}: a folder with neither new/ nor cur/ nor .eml files")
        return ImportSource("eml-folder", path, len(files))
    if not path.is_file():
        raise ValueError(f"{path}: no such file or folder")
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        box = mailbox.mbox(path, create=False)
        try:
            return ImportSource("mbox", path, len(box))
        finally:
            box.close()
    return ImportSource("file", path, 1)


def _maildir_files(path: Path) -> Iterator[Path]:
    for sub in MAILDIR_SUBDIRS:
        folder = path / sub
        if folder.is_dir():
            yield from sorted(
                p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
            )


def _eml_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".eml")


def _payloads(source: ImportSource) -> Iterator[tuple[str, bytes]]:
    if source.kind == "maildir":
        for file in _maildir_files(source.path):
            yield file.parent.name, file.read_bytes()
    elif source.kind == "eml-folder":
        for file in _eml_files(source.path):
            yield str(file.relative_to(source.path).parent), file.read_bytes()
    elif source.kind == "mbox":
        box = mailbox.mbox(source.path, create=False)
        try:
            for key in box.iterkeys():
                yield "", box.get_bytes(key)
        finally:
            box.close()
    else:
        yield "", source.path.read_bytes()
