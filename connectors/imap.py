"""An IMAP mailbox (Gmail, Microsoft 365, Fastmail, a company Dovecot) as a source of email.

Options (a `[[connectors]]` entry with `type = "imap"`; README "IMAP" has examples):

- `host`, `port` (default 993 for `security = "tls"`, else 143), `security`: `tls` (implicit),
  `starttls`, or `none` (only for a server on this machine); `ca_file` for a private CA.
- `username`, `auth`: `login` with `password`, or `xoauth2` with `token` (Gmail and Microsoft
  365 take no passwords). Both are secret sources (inbox/secrets.py), never the secret itself.
- `folders` (default `["INBOX"]`), `since` (a date: the first sync takes mail from then on).
- `after_ingest`: `leave` (default: the mailbox is opened read-only), `seen`, or `move` to
  `move_to` (MOVE, or COPY + UID EXPUNGE where the server lacks MOVE; without UIDPLUS the
  folder is expunged only when no mail but ours is marked deleted, see `_move`).
- `max_message_bytes`: a larger message is stored raw-only (its header) with a note.
- `idle` (default true), `idle_renew_seconds`, `poll_seconds`, `timeout_seconds`.

Cursor, per folder: (UIDVALIDITY, highest UID stored). A fetch asks for UIDs above it; a batch's
cursor is committed with the batch, so a crash refetches at most the batches in flight. Mail is
fetched with BODY.PEEK[], which never sets \\Seen: reading a mailbox never hides mail from the
people who use it.

A message's external id is the hash of its bytes, not its UID: when the server renumbers a folder
(a new UIDVALIDITY, after an index rebuild or a migration), the connector fetches the folder again
and every message it has already stored keeps its id and is skipped; the store's own
Message-ID-and-content key catches a message that arrives again with other bytes.

Memory is bounded: sizes are asked first (RFC822.SIZE), then bodies are fetched in groups of at
most `batch_size` messages and `batch_bytes` bytes, so a 10 GB mailbox is never held at once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog
from imapclient import IMAPClient
from imapclient.imapclient import DELETED, SEEN

from connectors.base import ConnectorConfig
from connectors.imap_config import ImapConfig
from connectors.imap_idle import IdleWatcher
from connectors.imap_sent import SentFolder
from connectors.imap_session import (
    CONNECTION_ERRORS,
    FAILURES,
    Credentials,
    ImapError,
    close_session,
    open_session,
)
from connectors.smtp import SmtpSender
from inbox.raw import Batch, Channel, RawMessage

log = structlog.get_logger(__name__)

#: The keyword (RFC 3501 flag) on mail we moved but could not expunge alone (no UIDPLUS).
MOVED_KEYWORD = "$InboxMoved"
#: UIDs per RFC822.SIZE request while planning a fetch.
SIZE_WINDOW = 2_000
_FULL = [b"BODY.PEEK[]", b"INTERNALDATE", b"RFC822.SIZE"]
_HEADER_ONLY = [b"BODY.PEEK[HEADER]", b"INTERNALDATE", b"RFC822.SIZE"]


class ImapConnector:
    type_name: ClassVar[str] = "imap"
    channel: ClassVar[Channel] = "email"
    config_model: ClassVar[type[ConnectorConfig]] = ImapConfig

    def __init__(self, config: ConnectorConfig) -> None:
        assert isinstance(config, ImapConfig)
        self.config = config
        self.name = config.name
        self.credentials = Credentials(config)
        self.log = log.bind(connector=self.name)
        self._client: IMAPClient | None = None
        self._selected: tuple[str, bool] | None = None
        #: UIDVALIDITY seen at the last select, per folder.
        self._validity: dict[str, int] = {}
        self._watchers: list[IdleWatcher] = []
        self._lock = threading.Lock()

    # -- the Connector protocol ---------------------------------------------------------------

    def fetch(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        self._session()
        for folder in self.config.folders:
            yield from self._fetch_folder(folder, cursors.get(folder), batch_size)

    def acknowledge(self, batch: Batch) -> None:
        if self.config.after_ingest == "leave" or not batch.acknowledge:
            return
        uids = [int(handle) for handle in batch.acknowledge]
        folder = batch.cursor_scope
        try:
            client = self._session()
            self._select(client, folder)
            if self.config.after_ingest == "seen":
                client.add_flags(uids, [SEEN], silent=True)
            else:
                self._move(client, uids)
        except FAILURES as error:
            # Stored already; the cursor is past them, so they are not fetched again. They stay
            # where they are, which a person can fix; nothing is lost.
            self._drop_session()
            self.log.warning(
                "imap_after_ingest_failed",
                action=self.config.after_ingest,
                folder=folder,
                uids=len(uids),
                reason=str(error)[:300],
            )

    def sender(self) -> SmtpSender | None:
        """Replies to this mailbox's conversations go through its `smtp` block."""
        if self.config.smtp is None:
            return None
        sent = SentFolder(self.config, self.credentials) if self.config.sent_folder else None
        return SmtpSender(self.config.smtp, sent=sent)

    def close(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
        for watcher in self._watchers:
            watcher.join(timeout=5)
        self._watchers = []
        self._drop_session()

    # -- push ---------------------------------------------------------------------------------

    def watch(self, notify: Callable[[], None]) -> None:
        """Start IDLE watchers that call `notify` when a folder may have new mail."""
        if not self.config.idle or self._watchers:
            return
        for folder in self.config.folders:
            watcher = IdleWatcher(self.config, self.credentials, folder, notify)
            watcher.start()
            self._watchers.append(watcher)

    @property
    def watchers(self) -> Sequence[IdleWatcher]:
        return tuple(self._watchers)

    # -- fetching -----------------------------------------------------------------------------

    def _fetch_folder(
        self, folder: str, cursor_text: str | None, batch_size: int
    ) -> Iterator[Batch]:
        # The session is looked up at each step, not held: `acknowledge` runs between two
        # steps and may have replaced a session that dropped.
        validity = self._select(self._live(), folder)
        cursor = _read_cursor(cursor_text)
        last = 0
        if cursor is not None:
            if cursor[0] == validity:
                last = cursor[1]
            else:
                self.log.warning(
                    "imap_uidvalidity_changed",
                    folder=folder,
                    was=cursor[0],
                    now=validity,
                    action="fetching the folder again; stored messages are skipped",
                )
        uids = self._new_uids(self._live(), folder, last)
        if not uids:
            return
        self.log.info("imap_fetching", folder=folder, messages=len(uids), after_uid=last)
        done = 0
        cap = self.config.max_message_bytes
        for window_start in range(0, len(uids), SIZE_WINDOW):
            window = uids[window_start : window_start + SIZE_WINDOW]
            sizes = self._sizes(self._selected_client(folder, validity), window)
            # What each will weigh in memory: a message over the cap comes as its header only.
            weights = {uid: size if size <= cap else 64 * 1024 for uid, size in sizes.items()}
            for group in _groups(window, weights, batch_size, self.config.batch_bytes):
                client = self._selected_client(folder, validity)
                messages = self._download(client, folder, group, sizes)
                done += len(group)
                yield Batch(
                    connector=self.name,
                    messages=messages,
                    cursor_scope=folder,
                    cursor_after=json.dumps({"uidvalidity": validity, "uid": group[-1]}),
                    acknowledge=[str(uid) for uid in group],
                    remaining=len(uids) - done,
                )

    def _new_uids(self, client: IMAPClient, folder: str, last: int) -> list[int]:
        try:
            if last == 0 and self.config.since is not None:
                found = client.search(["SINCE", self.config.since])
            else:
                # "N:*" always includes the highest UID, even below N: filter.
                found = client.search(["UID", f"{last + 1}:*"])
        except CONNECTION_ERRORS as error:
            self._drop_session()
            raise ImapError(f"searching {folder} failed: {error}") from None
        return sorted(uid for uid in found if uid > last)

    def _sizes(self, client: IMAPClient, uids: list[int]) -> dict[int, int]:
        answer = self._fetch(client, uids, [b"RFC822.SIZE"])
        return {uid: int(data.get(b"RFC822.SIZE", 0)) for uid, data in answer.items()}

    def _download(
        self, client: IMAPClient, folder: str, uids: list[int], sizes: Mapping[int, int]
    ) -> list[RawMessage]:
        cap = self.config.max_message_bytes
        small = [uid for uid in uids if sizes.get(uid, 0) <= cap]
        large = [uid for uid in uids if sizes.get(uid, 0) > cap]
        fetched = self._fetch(client, small, _FULL) if small else {}
        if large:
            fetched.update(self._fetch(client, large, _HEADER_ONLY))
        messages = []
        for uid in uids:
            data = fetched.get(uid)
            if data is None:
                continue  # expunged by someone else since the search: nothing to store
            messages.append(self._raw(folder, uid, data, sizes.get(uid, 0)))
        return messages

    def _raw(self, folder: str, uid: int, data: Mapping[bytes, Any], size: int) -> RawMessage:
        body = data.get(b"BODY[]")
        note = ""
        if body is None:
            body = data.get(b"BODY[HEADER]") or b""
            note = (
                f"message of {size} bytes is over max_message_bytes "
                f"({self.config.max_message_bytes}); only its header was fetched "
                f"(UID {uid} in {folder} on {self.config.host})"
            )
            digest = hashlib.sha256(body + f"\0{size}".encode()).hexdigest()
        else:
            digest = hashlib.sha256(body).hexdigest()
        received = data.get(b"INTERNALDATE")
        if not isinstance(received, datetime):
            received = datetime.now(UTC)
        elif received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        else:
            received = received.astimezone(UTC)
        return RawMessage(
            connector=self.name,
            external_id=f"sha256:{digest}",
            channel="email",
            payload=bytes(body),
            received_at=received,
            folder=folder,
            note=note,
        )

    def _fetch(
        self, client: IMAPClient, uids: list[int], items: list[bytes]
    ) -> dict[int, dict[bytes, Any]]:
        try:
            return dict(client.fetch(uids, items))
        except CONNECTION_ERRORS as error:
            self._drop_session()
            raise ImapError(f"fetching from {self.config.host} failed: {error}") from None

    # -- the session --------------------------------------------------------------------------

    def _session(self) -> IMAPClient:
        """The open session, checked with NOOP, or a new one."""
        with self._lock:
            if self._client is not None:
                try:
                    self._client.noop()
                    return self._client
                except CONNECTION_ERRORS:
                    self._drop_session_locked()
            self._client = open_session(self.config, self.credentials)
            self.log.info(
                "imap_connected",
                host=self.config.host,
                port=self.config.effective_port,
                security=self.config.security,
                auth=self.config.auth,
            )
            return self._client

    def _live(self) -> IMAPClient:
        return self._client if self._client is not None else self._session()

    def _selected_client(self, folder: str, validity: int) -> IMAPClient:
        client = self._live()
        self._select(client, folder, expect=validity)
        return client

    def _select(self, client: IMAPClient, folder: str, *, expect: int | None = None) -> int:
        """Select `folder` (read-only when nothing is changed after ingest); its UIDVALIDITY.
        `expect`: fail if it changed meanwhile (the next poll starts the resync)."""
        readonly = self.config.after_ingest == "leave"
        if self._selected != (folder, readonly):
            try:
                info = client.select_folder(folder, readonly=readonly)
            except IMAPClient.Error as error:
                if isinstance(error, IMAPClient.AbortError):
                    self._drop_session()
                    raise ImapError(f"selecting {folder} failed: {error}") from None
                raise ImapError(f"cannot open folder {folder!r}: {error}") from None
            except CONNECTION_ERRORS as error:
                self._drop_session()
                raise ImapError(f"selecting {folder} failed: {error}") from None
            self._selected = (folder, readonly)
            self._validity[folder] = int(info[b"UIDVALIDITY"])
        validity = self._validity[folder]
        if expect is not None and validity != expect:
            raise ImapError(f"UIDVALIDITY of {folder} changed during the fetch")
        return validity

    def _move(self, client: IMAPClient, uids: list[int]) -> None:
        target = self.config.move_to
        assert target is not None
        if not client.folder_exists(target):
            client.create_folder(target)
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        if client.has_capability("UIDPLUS"):
            client.delete_messages(uids, silent=True)
            client.uid_expunge(uids)
            return
        # Without UIDPLUS, EXPUNGE removes every \\Deleted message of the folder, also those a
        # person marked in a mail client that does not expunge, and may still take back. So
        # what we moved is marked with a keyword too (kept across restarts, unlike a list in
        # memory), and the folder is expunged only when no other mail is marked deleted.
        try:
            client.add_flags(uids, [DELETED, MOVED_KEYWORD], silent=True)
        except IMAPClient.Error:  # a server without keywords: ours look like anyone's
            client.delete_messages(uids, silent=True)
        others = set(client.search(["DELETED", "UNKEYWORD", MOVED_KEYWORD])) - set(uids)
        if others:
            self.log.warning(
                "imap_expunge_skipped",
                folder=self._selected[0] if self._selected else None,
                moved=len(uids),
                others_marked_deleted=len(others),
                reason="the server lacks UIDPLUS, and EXPUNGE would remove mail someone else "
                "marked deleted: what was moved stays marked deleted here until then",
            )
            return
        client.expunge()

    def _drop_session(self) -> None:
        with self._lock:
            self._drop_session_locked()

    def _drop_session_locked(self) -> None:
        close_session(self._client)
        self._client = None
        self._selected = None


def _groups(
    uids: list[int], sizes: Mapping[int, int], most: int, budget: int
) -> Iterator[list[int]]:
    """UIDs in order, cut into groups of at most `most` messages and `budget` bytes."""
    group: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if group and (len(group) >= most or total + size > budget):
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


def _read_cursor(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        parsed = json.loads(value)
        return int(parsed["uidvalidity"]), int(parsed["uid"])
    except (ValueError, KeyError, TypeError):
        log.warning("imap_cursor_unreadable", cursor=value)
        return None
