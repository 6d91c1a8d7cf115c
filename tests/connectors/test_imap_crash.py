"""The real `inbox run` killed with SIGKILL in the middle of a 5,000-message IMAP sync, then
restarted: every message is stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inbox.store.db import make_engine
from inbox.store.models import Message, RawRecord
from tests.connectors.test_imap import multilingual
from tests.dovecot import Dovecot
from tests.processes import assert_no_process_tagged, inbox_command, stored_raw

#: Short, for the restart after SIGKILL (see there).
LEASE_SECONDS = 5
MESSAGES = 5000


def write_config(tmp_path: Path, server: Dovecot, url: str) -> Path:
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'database_url = "{url}"\n'
        f"[ingest]\nbatch_size = 100\nlease_seconds = {LEASE_SECONDS}\n"
        '[logging]\nformat = "json"\n'
        "[[connectors]]\n"
        'name = "mail"\ntype = "imap"\n'
        f'host = "{server.host}"\nport = {server.port}\nsecurity = "none"\n'
        'username = "support"\npassword = { env = "INBOX_TEST_IMAP_PASSWORD" }\n',
        encoding="utf-8",
    )
    return config


@pytest.mark.slow
def test_sigkill_during_an_imap_sync_then_restart_stores_every_message_once(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    dovecot.deliver_many(multilingual(MESSAGES))
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    config = write_config(tmp_path, dovecot, url)
    tag = uuid.uuid4().hex
    env = {**os.environ, "INBOX_TEST_RUN": tag, "INBOX_TEST_IMAP_PASSWORD": "secret"}
    log_path = tmp_path / "first.log"
    with log_path.open("wb") as log_file:
        daemon = subprocess.Popen(
            inbox_command(config, "run"), stdout=log_file, stderr=log_file, env=env
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if 0 < stored_raw(url) < MESSAGES:
                    break
                assert daemon.poll() is None, log_path.read_text()
                time.sleep(0.02)
            os.kill(daemon.pid, signal.SIGKILL)
        finally:
            daemon.wait(timeout=30)
    assert daemon.returncode == -signal.SIGKILL
    assert_no_process_tagged(tag)
    interrupted_at = stored_raw(url)
    assert 0 < interrupted_at < MESSAGES, "the kill did not land mid-sync"

    # A one-off run never passes for the service: it takes the connector over once the killed
    # daemon's lease has run out (the service itself, restarted, would take it back at once).
    time.sleep(LEASE_SECONDS)
    rerun = subprocess.run(
        inbox_command(config, "run", "--once"), capture_output=True, timeout=300, env=env
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            ids = list(connection.scalars(select(RawRecord.external_id)))
            headers = list(connection.scalars(select(Message.message_id_header)))
            unlinked = connection.scalar(
                select(func.count()).select_from(RawRecord).where(RawRecord.message_id.is_(None))
            )
    finally:
        engine.dispose()
    assert len(ids) == len(set(ids)) == MESSAGES
    assert len(headers) == len(set(headers)) == MESSAGES
    assert unlinked == 0
    assert {f"imap-{n}@example.test" for n in range(MESSAGES)} == set(headers)


def test_inbox_sync_fetches_one_connector_with_a_summary_and_goes_on_where_it_stopped(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    dovecot.deliver_many(multilingual(120))
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    config = write_config(tmp_path, dovecot, url)
    env = {**os.environ, "INBOX_TEST_IMAP_PASSWORD": "secret"}
    first = subprocess.run(
        inbox_command(config, "sync", "mail"), capture_output=True, timeout=120, env=env
    )
    assert first.returncode == 0, first.stderr.decode()[-3000:]
    assert b"mail: 120 fetched, 120 stored" in first.stdout
    dovecot.deliver_many(multilingual(5, start=120))
    second = subprocess.run(
        inbox_command(config, "sync", "mail"), capture_output=True, timeout=120, env=env
    )
    assert b"mail: 5 fetched, 5 stored" in second.stdout, second.stderr.decode()[-3000:]
    unknown = subprocess.run(
        inbox_command(config, "sync", "nope"), capture_output=True, timeout=120, env=env
    )
    assert unknown.returncode == 1 and b"no enabled connector named 'nope' (mail)" in unknown.stderr
    assert stored_raw(url) == 125
