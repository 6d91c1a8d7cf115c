"""Several daemons on one store: one polls each connector's upstream, the others stand by and
take over when it stops or dies; a daemon that lost its lease stores nothing more
(inbox/store/leases.py). On SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connectors.maildir import MaildirConfig, MaildirConnector
from inbox.cli import main
from inbox.config import Settings
from inbox.demo.generate import write_maildir
from inbox.raw import Batch
from inbox.service.daemon import RELEASE_AFTER_FAILURES, Daemon
from inbox.service.health import DaemonCollector, report
from inbox.store.leases import DAEMON_ID_FILE, LeaseLost, Leases, holder_name
from inbox.store.models import Cursor, Message, RawRecord
from tests.conftest import BACKENDS, Store
from tests.helpers import count, mail, make_pipeline, raw
from tests.processes import wait_for

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def two_servers(store: Store, clock: Clock) -> tuple[Leases, Leases]:
    """The leases of two daemons on two servers, with a one-minute lease and a test clock."""
    return (
        Leases(store.writers, seconds=60, holder="host-a:1", clock=clock),
        Leases(store.writers, seconds=60, holder="host-b:2", clock=clock),
    )


@BACKENDS
def test_a_lease_is_one_daemons_until_it_runs_out_or_is_released(store: Store) -> None:
    clock = Clock()
    first, second = two_servers(store, clock)
    assert first.hold("mail") is None
    standby = second.hold("mail")
    assert standby is not None and standby.holder == "host-a:1"
    assert second.hold("sms") is None  # each connector has its own
    clock.advance(59)
    assert first.hold("mail") is None  # renewed: good for another minute
    clock.advance(59)
    assert second.hold("mail") is not None
    clock.advance(61)  # the first daemon died a minute ago
    assert second.hold("mail") is None
    assert first.hold("mail") is not None
    second.release(["mail", "sms"])  # a graceful stop: no waiting for the lease to run out
    assert first.hold("mail") is None


@BACKENDS
def test_daemons_starting_together_get_one_holder(store: Store) -> None:
    leases = [Leases(store.writers, seconds=60, holder=f"host-{n}:1") for n in range(6)]
    answers: list[object] = [None] * len(leases)
    start = threading.Barrier(len(leases))

    def take(number: int) -> None:
        start.wait()
        answers[number] = leases[number].hold("mail")

    threads = [threading.Thread(target=take, args=(n,)) for n in range(len(leases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    holders = [n for n, answer in enumerate(answers) if answer is None]
    assert len(holders) == 1
    assert {answer.holder for answer in answers if answer is not None} == {  # type: ignore[attr-defined]
        f"host-{holders[0]}:1"
    }


@BACKENDS
def test_a_daemon_that_lost_its_lease_stores_no_batch_and_moves_no_cursor(store: Store) -> None:
    clock = Clock()
    stalled, other = two_servers(store, clock)
    assert stalled.hold("mail") is None
    clock.advance(120)  # stalled past its lease (a long pause, a lost network)...
    assert other.hold("mail") is None  # ...and the other daemon took over

    pipeline = make_pipeline(store)
    batch = Batch(connector="mail", messages=[raw(mail(subject="Tilaus"))], cursor_after="7")
    with pytest.raises(LeaseLost):
        list(pipeline.ingest_many([batch], fence=stalled.fence))
    assert count(store, RawRecord) == 0 and count(store, Cursor) == 0

    [(_, result)] = list(pipeline.ingest_many([batch], fence=other.fence))
    assert result.stored == 1
    with store.readers() as session:
        assert session.scalar(select(Cursor.value)) == "7"


def test_a_restarted_daemon_keeps_its_id_so_it_takes_its_own_lease_back(tmp_path: Path) -> None:
    first = holder_name(tmp_path / "data")
    assert holder_name(tmp_path / "data") == first
    assert (tmp_path / "data" / DAEMON_ID_FILE).is_file()
    assert holder_name(tmp_path / "elsewhere") != first


def run_in_thread(daemon: Daemon) -> threading.Thread:
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return thread


def stop(daemon: Daemon, thread: threading.Thread) -> None:
    daemon.stopping.set()
    daemon.wake.set()
    for state in daemon.states:
        state.wake.set()
    thread.join(30)


def settings_for(store: Store, tmp_path: Path, name: str = "data", **ingest: object) -> Settings:
    """A daemon's settings: its own data_dir (as on its own server), a lease of 6 s."""
    return Settings(
        database_url=store.url,
        data_dir=tmp_path / name,
        ingest={"workers": 0, "lease_seconds": 6, **ingest},
        web={"enabled": False},
    )


def lease_held(daemon: Daemon) -> float:
    """inbox_connector_lease_held of the "mail" connector, as /metrics shows it."""
    [family] = [f for f in DaemonCollector(daemon.view).collect() if f.name.endswith("lease_held")]
    [sample] = [sample for sample in family.samples if sample.labels == {"connector": "mail"}]
    return sample.value


@pytest.fixture
def two_daemons(store: Store, tmp_path: Path) -> Iterator[list[tuple[Daemon, threading.Thread]]]:
    """Two daemons, as on two servers (each its own data_dir), polling the same Maildir into
    the same store, with a lease of 6 s: one standing by looks again every 2 s. The second
    starts once the first polled (in one process, two threads running Alembic at once trip
    over its module-level state; two servers would not)."""
    write_maildir(tmp_path / "shared", 40, seed=3)
    started = []
    for name in ("first", "second"):
        connector = MaildirConnector(
            MaildirConfig(name="mail", type="maildir", path=tmp_path / "shared", poll_seconds=0.2)
        )
        daemon = Daemon(settings_for(store, tmp_path, name, batch_size=10), [connector])
        started.append((daemon, run_in_thread(daemon)))
        wait_for(lambda d=daemon: d.states[0].last_success > 0, f"the {name} daemon to poll")
    try:
        yield started
    finally:
        for daemon, thread in started:
            stop(daemon, thread)


@BACKENDS
def test_two_daemons_on_one_store_poll_a_connector_one_at_a_time(
    store: Store, tmp_path: Path, two_daemons: list[tuple[Daemon, threading.Thread]]
) -> None:
    daemons = [daemon for daemon, _ in two_daemons]

    def stored_by() -> list[int]:
        return [daemon.states[0].totals.stored for daemon in daemons]

    wait_for(lambda: count(store, Message) == 40, "the 40 mails", timeout=30)
    holder, waiting = daemons  # the first took the lease before the second started
    wait_for(lambda: waiting.states[0].standby is not None, "the second to stand by")
    time.sleep(1)  # a few more polls by the holder, and looks by the other
    assert stored_by() == [40, 0]  # one daemon read the folder, once
    [standby] = [c for c in report(waiting.view())["connectors"] if c["name"] == "mail"]
    assert standby["state"] == "standby"
    assert standby["lease_held_by"] == holder.leases.holder
    assert [lease_held(daemon) for daemon in daemons] == [1, 0]

    # The holder stops (releasing its lease); the other takes over within a look.
    [thread] = [thread for daemon, thread in two_daemons if daemon is holder]
    stop(holder, thread)
    write_maildir(tmp_path / "later", 5, seed=4)
    for path in (tmp_path / "later" / "new").iterdir():
        path.rename(tmp_path / "shared" / "new" / path.name)
    wait_for(lambda: count(store, Message) == 45, "the 5 later mails", timeout=15)
    assert waiting.states[0].standby is None
    assert waiting.states[0].totals.stored == 5
    assert count(store, RawRecord) == 45  # nothing twice


@BACKENDS
def test_a_holder_polling_seldom_still_keeps_its_lease_between_polls(
    store: Store, tmp_path: Path
) -> None:
    write_maildir(tmp_path / "box", 3, seed=5)
    connector = MaildirConnector(
        MaildirConfig(name="mail", type="maildir", path=tmp_path / "box", poll_seconds=600)
    )
    daemon = Daemon(settings_for(store, tmp_path), [connector])
    thread = run_in_thread(daemon)
    try:
        wait_for(lambda: daemon.states[0].last_success > 0, "the first poll")
        time.sleep(8)  # longer than the lease, far shorter than the next poll
        other = Leases(store.writers, seconds=6, holder="other-server:1")
        standby = other.hold("mail")
        assert standby is not None and standby.holder == daemon.leases.holder
    finally:
        stop(daemon, thread)
    assert other.hold("mail") is None  # released at the stop


class SlowFirstFetch:
    """A connector whose first batch takes longer than the lease to fetch (a slow server, a
    big first sync): its daemon must keep the lease meanwhile."""

    type_name = "slow"
    channel = "email"
    config_model = MaildirConfig

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        self.fetches = 0

    def fetch(self, cursors: Mapping[str, str], batch_size: int) -> Iterator[Batch]:
        self.fetches += 1
        if self.fetches == 1:
            time.sleep(self.seconds)
            yield Batch(connector=self.name, messages=[raw(mail(subject="Hidas"))])

    def acknowledge(self, batch: Batch) -> None:
        return None

    def close(self) -> None:
        return None


@BACKENDS
def test_a_fetch_longer_than_the_lease_keeps_the_lease_and_its_batch(
    store: Store, tmp_path: Path
) -> None:
    connector = SlowFirstFetch("mail", seconds=8)
    daemon = Daemon(settings_for(store, tmp_path), [connector])  # type: ignore[list-item]
    thread = run_in_thread(daemon)
    other = Leases(store.writers, seconds=6, holder="other-server:1")
    try:
        wait_for(lambda: connector.fetches == 1, "the fetch to start")
        refused: list[bool] = []
        while count(store, Message) == 0 and len(refused) < 40:  # 8 s and a little more
            refused.append(other.hold("mail") is not None)
            time.sleep(0.25)
        assert refused and all(refused)  # never free to take while it fetched
        wait_for(lambda: count(store, Message) == 1, "the slow batch to be stored")
    finally:
        stop(daemon, thread)


@BACKENDS
def test_a_daemon_that_cannot_reach_the_upstream_lets_another_try(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "new").write_bytes(b"")  # every poll fails
    connector = MaildirConnector(
        MaildirConfig(name="mail", type="maildir", path=tmp_path / "broken")
    )
    daemon = Daemon(settings_for(store, tmp_path), [connector])
    thread = run_in_thread(daemon)
    other = Leases(store.writers, seconds=6, holder="other-server:1")
    try:
        wait_for(lambda: daemon.states[0].failures >= 1, "the first failure")
        assert other.hold("mail") is not None
        wait_for(lambda: other.hold("mail") is None, "the lease to be given up", timeout=20)
        assert daemon.states[0].failures >= RELEASE_AFTER_FAILURES
    finally:
        stop(daemon, thread)


@BACKENDS
def test_one_off_runs_stand_by_for_the_daemon_and_leave_its_lease_alone(
    store: Store, tmp_path: Path
) -> None:
    write_maildir(tmp_path / "box", 3, seed=6)
    service = Leases(store.writers, seconds=60, holder=holder_name(tmp_path / "data"))
    assert service.hold("mail") is None  # the service of this data_dir runs
    maildir = MaildirConfig(name="mail", type="maildir", path=tmp_path / "box")
    once = Daemon(settings_for(store, tmp_path), [MaildirConnector(maildir)])
    assert once.run(once=True).stored == 0
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'database_url = "{store.url}"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[[connectors]]\nname = "mail"\ntype = "maildir"\npath = "{tmp_path / "box"}"\n',
        encoding="utf-8",
    )
    synced = CliRunner().invoke(main, ["--config", str(config), "sync", "mail"])
    assert synced.exit_code == 1
    assert f"mail is polled by the daemon {service.holder}" in synced.output
    assert count(store, Message) == 0
    standby = Leases(store.writers, seconds=60, holder="third:1").hold("mail")
    assert standby is not None and standby.holder == service.holder  # still the service's
