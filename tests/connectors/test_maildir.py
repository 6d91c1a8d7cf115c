"""The Maildir connector: what it takes, what it remembers, what it moves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.maildir import MaildirConfig, MaildirConnector, maildir_key
from inbox.raw import Batch


def make_maildir(root: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def deliver(
    root: Path, name: str, body: bytes = b"Subject: hi\r\n\r\nhello\r\n", sub: str = "new"
) -> Path:
    """Deliver the way MTAs do: write into tmp/, then rename (which sets the ctime)."""
    temporary = root / "tmp" / name.split(":")[0]
    temporary.write_bytes(body)
    target = root / sub / name
    os.rename(temporary, target)
    return target


def connector(root: Path, **options: object) -> MaildirConnector:
    return MaildirConnector(MaildirConfig(name="box", type="maildir", path=root, **options))


def fetch_all(
    c: MaildirConnector, cursors: dict[str, str] | None = None, size: int = 100
) -> list[Batch]:
    return list(c.fetch(cursors or {}, size))


def test_takes_new_and_cur_and_names_messages_by_their_maildir_key(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    deliver(root, "1700000000.M1P1.host")
    deliver(root, "1700000001.M2P1.host:2,S", sub="cur")
    batches = fetch_all(connector(root))
    ids = sorted(m.external_id for b in batches for m in b.messages)
    assert ids == ["1700000000.M1P1.host", "1700000001.M2P1.host"]
    assert all(m.payload.startswith(b"Subject: hi") for b in batches for m in b.messages)


def test_maildir_key_strips_the_info_suffix_whatever_the_separator() -> None:
    assert maildir_key("123.M1.host:2,RS") == "123.M1.host"
    assert maildir_key("123.M1.host!2,S") == "123.M1.host"
    assert maildir_key("123.M1.host") == "123.M1.host"


def test_batches_respect_the_size_and_carry_a_growing_cursor(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    for number in range(7):
        deliver(root, f"17000000{number:02d}.M{number}P1.host")
    batches = fetch_all(connector(root), size=3)
    assert [len(b.messages) for b in batches] == [3, 3, 1]
    cursors = [json.loads(b.cursor_after or "{}")["ctime_ns"] for b in batches]
    assert cursors == sorted(cursors)


def test_with_its_cursor_it_only_takes_what_arrived_later(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    deliver(root, "1.M1.host")
    deliver(root, "2.M2.host")
    first = fetch_all(connector(root, overlap_seconds=0), size=1)
    assert [b.messages[0].external_id for b in first] == ["1.M1.host", "2.M2.host"]
    deliver(root, "3.M3.host")
    second = fetch_all(connector(root, overlap_seconds=0), {"": first[-1].cursor_after or ""})
    # The file at the cursor itself is listed again (another file may share its ctime and not
    # have been taken); everything older is not.
    assert [m.external_id for b in second for m in b.messages] == ["2.M2.host", "3.M3.host"]


def test_the_overlap_window_looks_back_so_a_racing_delivery_is_not_missed(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    deliver(root, "1.M1.host")
    first = fetch_all(connector(root))
    again = fetch_all(connector(root), {"": first[-1].cursor_after or ""})
    # Seen again within the overlap: the store skips it by key, nothing is lost or doubled.
    assert [m.external_id for b in again for m in b.messages] == ["1.M1.host"]


def test_seen_moves_new_mail_to_cur_with_the_seen_flag(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    deliver(root, "1.M1.host")
    deliver(root, "2.M2.host:2,F", sub="cur")
    c = connector(root, after_ingest="seen")
    for batch in fetch_all(c):
        c.acknowledge(batch)
    assert sorted(p.name for p in (root / "new").iterdir()) == []
    assert sorted(p.name for p in (root / "cur").iterdir()) == ["1.M1.host:2,S", "2.M2.host:2,FS"]


def test_move_puts_ingested_mail_into_another_maildir(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    deliver(root, "1.M1.host")
    done = tmp_path / "done"
    c = connector(root, after_ingest="move", move_to=done)
    for batch in fetch_all(c):
        c.acknowledge(batch)
    assert not any((root / "new").iterdir())
    assert [p.name for p in (done / "new").iterdir()] == ["1.M1.host"]


def test_leave_touches_nothing(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    path = deliver(root, "1.M1.host")
    c = connector(root)
    for batch in fetch_all(c):
        c.acknowledge(batch)
    assert path.exists()


def test_move_without_a_target_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="move_to"):
        MaildirConfig(name="box", type="maildir", path=tmp_path, after_ingest="move")


def test_a_message_over_the_cap_is_kept_with_a_note_not_dropped(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    deliver(root, "big.M1.host", b"Subject: big\r\n\r\n" + b"x" * 5000)
    batches = fetch_all(connector(root, max_message_bytes=1024))
    (message,) = [m for b in batches for m in b.messages]
    assert "max_message_bytes" in message.note
    assert len(message.payload) > 5000


def test_a_missing_maildir_fails_the_connector_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no Maildir at .*nowhere"):
        fetch_all(connector(tmp_path / "nowhere"))


def test_a_maildir_without_cur_is_read_from_new(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    deliver(root, "one.M1.host", b"Subject: one\r\n\r\nhi\r\n")
    (root / "cur").rmdir()
    batches = fetch_all(connector(root, include_cur=True))
    assert [m.payload for b in batches for m in b.messages] == [b"Subject: one\r\n\r\nhi\r\n"]


def test_dot_files_and_folders_are_ignored(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "box")
    (root / "new" / ".hidden").write_bytes(b"x")
    (root / "new" / "subfolder").mkdir()
    assert fetch_all(connector(root)) == []
