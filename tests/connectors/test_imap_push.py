"""IMAP IDLE against a real Dovecot: new mail is stored within seconds, not at the next poll."""

from __future__ import annotations

import time

import pytest

from connectors.imap import ImapConnector
from inbox.service.daemon import Daemon
from inbox.store.models import Message
from tests.conftest import Store
from tests.connectors.test_imap import (
    PASSWORD_ENV,
    _run_daemon,
    imap_config,
    multilingual,
    settings_for,
)
from tests.dovecot import Dovecot
from tests.helpers import count
from tests.processes import wait_for


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def test_idle_stores_new_mail_within_seconds_though_polling_is_an_hour_away(
    store: Store, dovecot: Dovecot
) -> None:
    connector = ImapConnector(imap_config(dovecot, idle=True, poll_seconds=3600))
    daemon = Daemon(settings_for(store), [connector])
    thread = _run_daemon(daemon)
    try:
        wait_for(lambda: any(w.idling.is_set() for w in connector.watchers), "IDLE", timeout=20)
        for round_ in range(3):
            delivered = time.monotonic()
            dovecot.deliver_many(multilingual(1, start=round_))
            wait_for(
                lambda n=round_ + 1: count(store, Message) == n, "the pushed message", timeout=10
            )
            assert time.monotonic() - delivered < 10
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)
    assert not thread.is_alive()
    assert not any(watcher.is_alive() for watcher in connector.watchers)


def test_idle_is_renewed_and_still_delivers(store: Store, dovecot: Dovecot) -> None:
    connector = ImapConnector(
        imap_config(dovecot, idle=True, poll_seconds=3600, idle_renew_seconds=0.5)
    )
    daemon = Daemon(settings_for(store), [connector])
    thread = _run_daemon(daemon)
    try:
        wait_for(lambda: any(w.renewals >= 3 for w in connector.watchers), "renewals", timeout=20)
        dovecot.deliver_many(multilingual(1))
        wait_for(lambda: count(store, Message) == 1, "the pushed message", timeout=10)
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)


def test_idle_comes_back_after_a_server_restart(store: Store, dovecot: Dovecot) -> None:
    connector = ImapConnector(imap_config(dovecot, idle=True, poll_seconds=3600))
    daemon = Daemon(settings_for(store), [connector])
    thread = _run_daemon(daemon)
    try:
        wait_for(lambda: any(w.idling.is_set() for w in connector.watchers), "IDLE", timeout=20)
        dovecot.restart()
        # The watcher notices the closed connection, backs off (1-2 s), reconnects.
        wait_for(lambda: not any(w.idling.is_set() for w in connector.watchers), "drop", timeout=20)
        wait_for(
            lambda: any(w.idling.is_set() for w in connector.watchers), "IDLE again", timeout=30
        )
        dovecot.deliver_many(multilingual(1))
        wait_for(lambda: count(store, Message) == 1, "the pushed message", timeout=15)
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)


def test_without_idle_the_connector_polls(store: Store, dovecot_old: Dovecot) -> None:
    connector = ImapConnector(imap_config(dovecot_old, idle=True, poll_seconds=0.5))
    daemon = Daemon(settings_for(store), [connector])
    thread = _run_daemon(daemon)
    try:
        # The watcher finds no IDLE, says so and leaves; polling carries the mail.
        wait_for(
            lambda: connector.watchers and not connector.watchers[0].is_alive(), "exit", timeout=20
        )
        dovecot_old.deliver_many(multilingual(2))
        wait_for(lambda: count(store, Message) == 2, "the polled messages", timeout=15)
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)
