"""Fixtures for connector tests: a real Dovecot IMAP server per test (see tests/dovecot.py).

Each fixture starts its own server and always stops it, whether the test passed or not. When
the test failed, the end of Dovecot's log is printed, so the report shows what the server saw.
A missing Dovecot fails the test instead of skipping it: CI installs it, and a skipped IMAP test
there would pass unnoticed.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.dovecot import Dovecot, DovecotNotInstalled, find_binary

_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the outcome of the test body, so that a fixture's teardown can tell it failed."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


def _serve(
    request: pytest.FixtureRequest,
    *,
    tls: bool = False,
    oauth2: bool = False,
    capabilities: str | None = None,
) -> Iterator[Dovecot]:
    try:
        find_binary("dovecot")
        server = Dovecot(tls=tls, oauth2=oauth2, capabilities=capabilities)
    except DovecotNotInstalled as error:
        missing = str(error)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    try:
        server.start()
        yield server
    finally:
        report = request.node.stash.get(_CALL_REPORT, None)
        if report is not None and report.failed:
            print(f"--- last lines of {server.log_path} ---\n{server.log_tail(60)}")
        server.close()


@pytest.fixture
def dovecot(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """A running Dovecot on 127.0.0.1: plain IMAP only, user support / secret, empty INBOX."""
    yield from _serve(request)


@pytest.fixture
def dovecot_tls(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """Like `dovecot`, plus STARTTLS on `port` and implicit TLS on `tls_port`, with a test CA
    (`ca_file`) and an unrelated one (`wrong_ca_file`)."""
    yield from _serve(request, tls=True)


@pytest.fixture
def dovecot_oauth(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """Like `dovecot`, plus SASL XOAUTH2 and OAUTHBEARER, checked against a fake introspection
    endpoint: `grant_token` / `revoke_token` decide which bearer tokens are valid."""
    yield from _serve(request, oauth2=True)


#: IMAP4rev1 as older servers speak it: no MOVE (RFC 6851) and no IDLE (RFC 2177).
OLD_SERVER_CAPABILITIES = "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE UIDPLUS"


@pytest.fixture
def dovecot_old(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """Like `dovecot`, but announcing neither MOVE nor IDLE after login."""
    yield from _serve(request, capabilities=OLD_SERVER_CAPABILITIES)


@pytest.fixture
def dovecot_oldest(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """Like `dovecot_old`, and without UIDPLUS (RFC 4315): EXPUNGE is all a client has."""
    yield from _serve(request, capabilities=OLD_SERVER_CAPABILITIES.replace(" UIDPLUS", ""))
