"""The webhook spool: what a receiver answered 200 for is read whole, once."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from connectors.spool import Spool


def test_a_reader_never_takes_an_entry_still_being_written(tmp_path: Path) -> None:
    """The connector polls incoming/ while the receiver writes: an entry it read half written
    was stored short (an SMS stored empty) and moved to done/, and the delivery was lost."""
    spool = Spool(tmp_path / "spool")
    bodies = {f"SM{n:04d}": bytes([65 + n % 26]) * (2 << 20) for n in range(40)}
    seen: dict[str, bytes] = {}
    writing = True

    def read() -> None:
        while writing or spool.count():
            for entry in spool.pending():
                seen[entry.name] = entry.body
                spool.done([entry.name])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for key, body in bodies.items():
            assert spool.put(key, body)
    finally:
        writing = False
        reader.join(timeout=60)
    assert seen.keys() == bodies.keys()
    short = [name for name, body in seen.items() if body != bodies[name]]
    assert short == [], f"read before they were whole: {short}"


def test_a_delivery_is_taken_once_while_waiting_and_after_it_was_stored(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.put("Ev01", b"first")
    assert not spool.put("Ev01", b"retried by Slack")
    assert [entry.body for entry in spool.pending()] == [b"first"]
    spool.done(["Ev01"])
    assert not spool.put("Ev01", b"retried later")
    assert spool.pending() == []
    assert os.listdir(spool.tmp) == []


def test_what_a_crash_left_half_written_is_never_read_and_is_cleared(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    left = spool.tmp / "0123.SM1"
    left.write_bytes(b"half")
    hour_ago = time.time() - 3700
    os.utime(left, (hour_ago, hour_ago))
    assert spool.pending() == [] and spool.count() == 0
    spool.prune()
    assert not left.exists()


def test_a_delivery_id_cannot_leave_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.put("../../etc/passwd", b"x")
    assert spool.put(".hidden", b"y")
    assert sorted(entry.name for entry in spool.pending()) == ["_.._etc_passwd", "hidden"]
    assert not (tmp_path / "etc").exists()
