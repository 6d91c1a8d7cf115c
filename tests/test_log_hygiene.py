"""What a running `inbox run` writes to journald: one JSON object a line, the connector, the
conversation and the rule on the lines about them, and above DEBUG no secret and no word a
customer wrote, whatever arrives: good mail, SMS and chat, but also mail that does not parse or
is too big, forged webhooks, an unreadable event, a Slack that answers 500, an IMAP server that
refuses the login and a Maildir that cannot be read.

Every secret reaches the daemon the way the README says (a file, the environment, a systemd
credential), and every secret and every text a customer (or a forger) wrote is a distinctive
marker, so a leak cannot hide behind a common word. Before a marker's absence from the log
counts, the test shows that the marker got where it could have leaked from: into the store, or
to our receiver, which refused it.

The last tests take each defence alone, without a daemon.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import structlog
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from inbox.secrets import Secret, SecretSource
from inbox.store.db import make_engine
from inbox.store.models import Message, OutboxItem, RawRecord
from tests.conftest import BACKENDS, Store
from tests.dovecot import Dovecot
from tests.fake_slack import FakeSlack
from tests.fake_twilio import FakeTwilio
from tests.helpers import ingest, mail, make_pipeline, parsed, raw
from tests.processes import inbox_command, wait_for

CUSTOMERS = "C0SHARED"
OURS = "+358942424242"
PUBLIC_URL = "https://desk.example.com/webhooks/twilio/sms"
SIGNING_SECRET_ENV = "INBOX_TEST_SLACK_SIGNING_SECRET"
IMAP_PASSWORD_ENV = "INBOX_TEST_IMAP_PASSWORD"
TWILIO_CREDENTIAL = "twilio-auth-token"
ASSIGN_RULE = "everything-to-support"
# Aino takes every language: a random marker can tip a short text's detected language (about one
# chat text in 14 came out German), and a conversation nobody speaks waits unpinged in the queue.
RULES = f"""\
agents:
  aino: {{name: Aino Agent, slack: UAINO, capacity: 50}}
teams:
  support: {{members: [aino], strategy: round_robin}}
rules:
  - name: urgent-words
    when: {{body: {{any_keyword: [kiireellinen, urgent]}}}}
    then: {{priority: urgent, tag: urgent}}
  - name: {ASSIGN_RULE}
    when: {{channel: [email, sms, chat]}}
    then: {{assign: {{team: support}}}}
"""
#: Conversations the rules assign, each pinged once: the mail, the broken mail, the SMS, the chat.
PINGS = 4


def marker(what: str) -> str:
    """A word no log line holds by chance; letters only, so that no parser splits it."""
    letters = secrets.token_hex(4).translate(str.maketrans("0123456789", "ghijklmnop"))
    return f"Qz{what.capitalize()}{letters}"


@dataclass
class Secrets:
    slack_bot_token: str = field(default_factory=lambda: "xoxb-" + secrets.token_hex(16))
    slack_signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    twilio_auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    #: Not Dovecot's password: every login is refused, and logged.
    imap_password: str = field(default_factory=lambda: "imap-" + secrets.token_hex(12))

    def named(self) -> dict[str, str]:
        return dict(vars(self))


@dataclass
class Markers:
    """What customers and forgers wrote."""

    mail_subject: str = field(default_factory=lambda: marker("mailsubject"))
    mail_body: str = field(default_factory=lambda: marker("mailbody"))
    broken_subject: str = field(default_factory=lambda: marker("brokensubject"))
    broken_body: str = field(default_factory=lambda: marker("brokenbody"))
    oversized_body: str = field(default_factory=lambda: marker("oversized"))
    sms_body: str = field(default_factory=lambda: marker("smsbody"))
    chat_text: str = field(default_factory=lambda: marker("chattext"))
    unreadable_event: str = field(default_factory=lambda: marker("unreadable"))
    forged_chat: str = field(default_factory=lambda: marker("forgedchat"))
    not_json: str = field(default_factory=lambda: marker("notjson"))
    forged_sms: str = field(default_factory=lambda: marker("forgedsms"))

    def named(self) -> dict[str, str]:
        return dict(vars(self))

    def stored(self) -> list[str]:
        """Those that the daemon keeps (parsed, or raw only)."""
        return [
            self.mail_subject,
            self.mail_body,
            self.broken_subject,
            self.broken_body,
            self.oversized_body,
            self.sms_body,
            self.chat_text,
            self.unreadable_event,
        ]

    def refused(self) -> list[str]:
        return [self.forged_chat, self.not_json, self.forged_sms]


@dataclass
class Run:
    """What one daemon run left: its stderr and its store."""

    stderr: str
    url: str
    secrets: Secrets
    markers: Markers

    @property
    def lines(self) -> list[dict[str, Any]]:
        """Every line, parsed; fails at the first that is not a JSON object."""
        parsed = []
        for number, line in enumerate(self.stderr.splitlines(), start=1):
            try:
                value = json.loads(line)
            except ValueError:
                raise AssertionError(f"stderr line {number} is not JSON: {line[:300]}") from None
            assert isinstance(value, dict), f"stderr line {number} is not an object: {line}"
            parsed.append(value)
        return parsed

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]


# -- what the daemon meets ----------------------------------------------------------------------


def write_mailbox(maildir: Path, markers: Markers) -> None:
    """A good mail, one whose MIME is broken, and one over the connector's size cap."""
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    good = mail(
        subject=f"Tilaus {markers.mail_subject} kadonnut",
        body=f"Hei, kiireellinen asia: tilaukseni {markers.mail_body} ei ole tullut.\n",
    )
    # An unknown charset in the subject, multipart without a boundary, Latin-1 bytes that
    # nobody declared: parsed with errors, and kept.
    broken = (
        b"From: Mart Tamm <mart@example.ee>\r\nTo: support@northwind.example\r\n"
        + f"Subject: =?x-unknown?q?{markers.broken_subject}?=\r\n".encode()
        + b"Message-ID: <broken-1@example.ee>\r\nMIME-Version: 1.0\r\n"
        + b"Content-Type: multipart/mixed\r\n\r\n--nowhere\r\n"
        + f"Tere, minu pakk {markers.broken_body} ei j\xf5udnud kohale.\r\n".encode("latin-1")
    )
    oversized = mail(
        sender="Big Sender <big@example.com>",
        subject="Pasted logs",
        body=f"{markers.oversized_body}\n" + "a line of a pasted log file\n" * 300,
    )
    for number, payload in enumerate((good, broken, oversized)):
        (maildir / "new" / f"170000000{number}.M1P1.test").write_bytes(payload)


def toml(value: Any) -> str:
    """Enough TOML for a config file (a JSON string is a TOML basic string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml(item)}" for key, item in value.items()) + " }"
    return json.dumps(str(value))


def write_config(path: Path, settings: dict[str, Any], connectors: list[dict[str, Any]]) -> Path:
    lines = [
        f"{key} = {toml(value)}" for key, value in settings.items() if not isinstance(value, dict)
    ]
    for section, values in settings.items():
        if isinstance(values, dict):
            lines += [f"[{section}]", *(f"{key} = {toml(item)}" for key, item in values.items())]
    for connector in connectors:
        lines += ["[[connectors]]", *(f"{key} = {toml(item)}" for key, item in connector.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def deliver(base: str, slack: FakeSlack, twilio: FakeTwilio, markers: Markers) -> None:
    """What reaches the receiver: good, forged, stale, unsigned and unreadable Slack events, a
    body that is not JSON, and good, forged and unsigned Twilio webhooks."""
    events = base + "/webhooks/slack/events"
    as_json = {"Content-Type": "application/json"}
    text = f"Hei, kiireellinen: {markers.chat_text} ei toimi"
    good = slack.event(
        {
            "type": "message",
            "channel": CUSTOMERS,
            "channel_type": "channel",
            "user": "UANNA",
            "text": text,
            "ts": slack.post(CUSTOMERS, text, user="UANNA"),
        }
    )
    body = json.dumps(good).encode()
    assert post(events, body, {**as_json, **slack.sign(body)}) == 200
    forged = json.dumps(
        slack.event({"type": "message", "channel": CUSTOMERS, "text": markers.forged_chat})
    ).encode()
    stale = slack.sign(forged, timestamp=int(time.time()) - 3600)
    assert post(events, forged, {**as_json, **slack.sign(forged, secret="guessed")}) == 401
    assert post(events, forged, {**as_json, **stale}) == 401
    assert post(events, forged, as_json) == 401
    not_json = f"text={markers.not_json}".encode()
    assert post(events, not_json, {**as_json, **slack.sign(not_json)}) == 400
    unreadable = json.dumps(
        {
            "type": "event_callback",
            "event_id": "Ev0BROKEN",
            "evt": {"text": markers.unreadable_event},
        }
    ).encode()
    assert post(events, unreadable, {**as_json, **slack.sign(unreadable)}) == 200

    sms = base + "/webhooks/twilio/sms"
    as_form = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    params = twilio.webhook_params(
        twilio.receive("+358401234567", OURS, f"Hei! {markers.sms_body} paketti puuttuu")
    )
    signed = {**as_form, "X-Twilio-Signature": twilio.sign(PUBLIC_URL, params)}
    assert post(sms, urlencode(params).encode(), signed) == 200
    forged_params = {**params, "MessageSid": "SM" + "f" * 32, "Body": markers.forged_sms}
    guessed = twilio.sign(PUBLIC_URL, forged_params, auth_token="guessed")
    assert (
        post(sms, urlencode(forged_params).encode(), {**as_form, "X-Twilio-Signature": guessed})
        == 403
    )
    assert post(sms, urlencode(forged_params).encode(), as_form) == 403


# -- reading the store and the log while it runs ------------------------------------------------


def _query(url: str, statement: Any) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(statement))
    except Exception:
        return []  # not migrated yet
    finally:
        engine.dispose()


def stored_texts(url: str) -> str:
    """Every subject, text and raw payload in the store, as one text to search."""
    messages = _query(url, select(Message.subject, Message.text))
    payloads = _query(url, select(RawRecord.payload))
    return "\n".join(
        [f"{row.subject}\n{row.text}" for row in messages]
        + [bytes(row.payload).decode("utf-8", "replace") for row in payloads]
    )


def outbox(url: str) -> list[str]:
    return [row.status for row in _query(url, select(OutboxItem.status))]


def conversation_of(url: str, text: str) -> tuple[str, int]:
    """(connector, conversation id) of the one message holding `text`."""
    rows = _query(url, select(Message.connector, Message.conversation_id, Message.text))
    [found] = [(row.connector, row.conversation_id) for row in rows if text in row.text]
    return found


def logged_so_far(stderr: Path) -> list[dict[str, Any]]:
    """The JSON lines written so far (what the test asserts afterwards is stricter)."""
    found = []
    for line in stderr.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


# -- the run ------------------------------------------------------------------------------------


@pytest.fixture
def run_daemon(tmp_path: Path) -> Iterator[Any]:
    """Runs the scenario against a real `inbox run` at a log level; kills it if a test fails
    half-way (by its PID)."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield lambda level: _run(tmp_path, level, started)
    finally:
        for daemon in started:
            if daemon.poll() is None:
                os.kill(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=30)


def _run(tmp_path: Path, level: str, started: list[subprocess.Popen[bytes]]) -> Run:
    keys, markers = Secrets(), Markers()
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    write_mailbox(tmp_path / "maildir", markers)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "new").write_bytes(b"")  # a file where a folder should be
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    bot_token = tmp_path / "slack-bot-token"
    bot_token.write_text(keys.slack_bot_token + "\n", encoding="utf-8")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / TWILIO_CREDENTIAL).write_text(keys.twilio_auth_token, encoding="utf-8")
    stderr = tmp_path / "stderr.log"
    with (
        FakeSlack(
            bot_token=keys.slack_bot_token, signing_secret=keys.slack_signing_secret
        ) as slack,
        FakeTwilio(auth_token=keys.twilio_auth_token, numbers=(OURS,)) as twilio,
        Dovecot() as dovecot,
    ):
        slack.add_channel(CUSTOMERS, name="acme-support")
        slack.add_user("UANNA", name="anna", real_name="Anna Virtanen", email="anna@acme.example")
        slack.add_user("UAINO", name="aino", real_name="Aino Agent")
        # The first catch-ups meet conversations.history answering 500 through slack_sdk's
        # three retries: the slack connector fails (its spool is stored meanwhile).
        slack.fail_next("conversations.history", status=500, count=4, channel=CUSTOMERS)
        slack.fail_next("chat.postMessage", status=500)  # and one ping is retried
        settings = {
            "database_url": url,
            "data_dir": tmp_path / "data",
            "rules_file": tmp_path / "rules.yaml",
            "ingest": {"workers": 0},
            "logging": {"level": level, "format": "auto"},  # stderr is a file: JSON
            "slack": {"bot_token": {"file": bot_token}, "api_url": slack.url},
            "web": {"listen": "127.0.0.1:0"},
        }
        polled = {"poll_seconds": 0.5}
        connectors = [
            {"name": "mail", "type": "maildir", "path": tmp_path / "maildir", **polled}
            | {"max_message_bytes": 4096},
            {"name": "broken", "type": "maildir", "path": tmp_path / "broken", **polled},
            {
                "name": "slack",
                "type": "slack",
                "bot_token": {"file": bot_token},
                "signing_secret": {"env": SIGNING_SECRET_ENV},
                "channels": [CUSTOMERS],
                "dms": False,
                "api_url": slack.url,
                **polled,
            },
            {
                "name": "sms",
                "type": "twilio",
                "account_sid": twilio.account_sid,
                "auth_token": {"credential": TWILIO_CREDENTIAL},
                "numbers": ["09 4242 4242"],
                "default_region": "FI",
                "public_url": PUBLIC_URL,
                "api_url": twilio.url,
                **polled,
            },
            {
                "name": "imap",
                "type": "imap",
                "host": dovecot.host,
                "port": dovecot.port,
                "security": "none",
                "username": dovecot.user,
                "password": {"env": IMAP_PASSWORD_ENV},
                "idle": False,
                **polled,
            },
        ]
        config = write_config(tmp_path / "inbox.toml", settings, connectors)
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INBOX_")},
            SIGNING_SECRET_ENV: keys.slack_signing_secret,
            IMAP_PASSWORD_ENV: keys.imap_password,
            "CREDENTIALS_DIRECTORY": str(credentials),
        }
        with stderr.open("wb") as sink:
            daemon = subprocess.Popen(
                inbox_command(config, "run"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                env=environment,
            )
        started.append(daemon)
        try:

            def listening() -> str:
                said = [line for line in logged_so_far(stderr) if line["event"] == "web_listening"]
                return str(said[0]["url"]) if said else ""

            wait_for(listening, "the daemon to listen", timeout=30)
            deliver(listening(), slack, twilio, markers)

            missing: list[str] = []  # what the last look did not find, for the failure
            kept = {
                name: text for name, text in markers.named().items() if text in markers.stored()
            }

            def settled() -> bool:
                failed = {
                    line.get("connector")
                    for line in logged_so_far(stderr)
                    if line.get("event") == "connector_failed"
                }
                stored = stored_texts(url)
                pings = outbox(url)
                missing[:] = [
                    *(name for name, text in kept.items() if text not in stored),
                    *(f"{name} never failed" for name in {"broken", "imap", "slack"} - failed),
                ]
                if pings != ["sent"] * PINGS:
                    missing.append(f"outbox {pings}")
                return not missing

            try:
                wait_for(settled, "everything stored, pinged, and each fault met", timeout=45)
            except AssertionError as error:
                tail = stderr.read_text(encoding="utf-8", errors="replace")[-6000:]
                raise AssertionError(f"{error}; still missing: {missing}\n{tail}") from None
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    log = stderr.read_text(encoding="utf-8", errors="replace")
    assert daemon.returncode == 0, log[-3000:]
    return Run(log, url, keys, markers)


# -- the daemon's log ---------------------------------------------------------------------------


def pieces(secret: str, width: int = 12) -> set[str]:
    """Every part of `secret` long enough to matter: a token cut short is a token leaked."""
    return {secret[start : start + width] for start in range(max(1, len(secret) - width + 1))}


@pytest.mark.slow
def test_info_lines_are_json_carry_connector_conversation_and_rule_and_leak_nothing(
    run_daemon: Any,
) -> None:
    run: Run = run_daemon("info")

    # Each marker got where it could leak from: the store, or our receiver, which refused it
    # (`deliver` checked the 401s, 400 and 403s). Each secret was in use: the pings went out
    # (bot token), a signed event and a signed SMS were taken (signing secret, auth token), the
    # IMAP login was tried and refused (connector_failed, below).
    stored = stored_texts(run.url)
    assert all(text in stored for text in run.markers.stored())
    assert not any(text in stored for text in run.markers.refused())

    lowered = run.stderr.lower()
    leaked = [name for name, text in run.markers.named().items() if text.lower() in lowered]
    leaked += [
        name
        for name, secret in run.secrets.named().items()
        if any(piece in run.stderr for piece in pieces(secret))
    ]
    assert not leaked, f"in the log: {leaked}"

    lines = run.lines  # each one a JSON object
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)
    assert {line["level"] for line in lines} <= {"info", "warning", "error"}
    library = [line for line in lines if str(line.get("logger", "")).startswith("slack_sdk")]
    assert library, "slack_sdk's own lines about the 500s, as JSON like ours"

    # A message's lines: the batch that stored it, the rule's decision and the ping.
    for text in (run.markers.mail_body, run.markers.sms_body, run.markers.chat_text):
        connector, conversation = conversation_of(run.url, text)
        batches = [
            line
            for line in run.events("batch_stored")
            if conversation in line.get("conversation_ids", [])
        ]
        assert [line["connector"] for line in batches] == [connector]
        [assigned] = [
            line
            for line in run.events("conversation_assigned")
            if line.get("conversation_id") == conversation
        ]
        assert (assigned.get("connector"), assigned.get("rule")) == (connector, ASSIGN_RULE)
        pinged = [
            line for line in run.events("ping_sent") if line.get("conversation_id") == conversation
        ]
        assert [line.get("rule") for line in pinged] == [ASSIGN_RULE]

    # And the lines about what went wrong say where.
    failed = {line.get("connector") for line in run.events("connector_failed")}
    assert {"broken", "imap", "slack"} <= failed
    refused = run.events("slack_event_refused") + run.events("twilio_webhook_refused")
    assert sorted(line.get("connector") for line in refused) == ["slack"] * 4 + ["sms"] * 2
    raw_only = run.events("stored_raw_only")
    assert sorted(line.get("connector") for line in raw_only) == ["mail", "slack"]
    [retried] = run.events("ping_retry")
    assert isinstance(retried.get("conversation_id"), int)
    assert retried.get("rule") == ASSIGN_RULE


@pytest.mark.slow
def test_debug_lines_say_more(run_daemon: Any) -> None:
    run: Run = run_daemon("debug")
    stored = [line for line in run.events("message_stored") if line["level"] == "debug"]
    assert len(stored) == PINGS  # one a message: the mail, the broken mail, the SMS, the chat
    assert all(isinstance(line.get("conversation_id"), int) for line in stored)
    assert {line.get("connector") for line in stored} == {"mail", "sms", "slack"}


# -- each defence alone -------------------------------------------------------------------------


def test_a_secret_once_read_is_redacted_from_every_line_whoever_writes_it(
    log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "xoxb-" + secrets.token_hex(16)
    monkeypatch.setenv("INBOX_TEST_REDACTED_TOKEN", token)
    assert Secret(SecretSource(env="INBOX_TEST_REDACTED_TOKEN")).get() == token
    log = structlog.get_logger("tests.hygiene")
    try:
        raise ConnectionError(f"GET https://example.invalid/api?token={token} failed")
    except ConnectionError:
        log.exception("upstream_failed", headers={"Authorization": [f"Bearer {token}"]})
    logging.getLogger("some.library").error("retrying with %s", token)
    assert token not in log_lines.getvalue()
    failed, retrying = parsed(log_lines)
    assert failed["headers"] == {"Authorization": ["Bearer [redacted]"]}
    assert failed["exception"][0]["exc_value"].endswith("?token=[redacted] failed")
    assert (retrying["event"], retrying["logger"]) == ("retrying with [redacted]", "some.library")


def test_the_store_password_in_database_url_is_redacted_too(log_lines: io.StringIO) -> None:
    password = "pg-" + secrets.token_hex(12)
    url = f"postgresql://inbox:{password}@127.0.0.1:5432/test"
    make_engine(url).dispose()
    logging.getLogger("psycopg").warning("connection failed: %s", url)
    [line] = parsed(log_lines)
    assert password not in log_lines.getvalue()
    assert line["event"] == "connection failed: postgresql://inbox:[redacted]@127.0.0.1:5432/test"


def test_a_traceback_names_its_frames_but_not_their_local_variables(
    log_lines: io.StringIO,
) -> None:
    customer_text = marker("local")

    def read_event(envelope: dict[str, str]) -> None:
        raise KeyError("event")

    try:
        read_event({"text": customer_text})
    except KeyError:
        structlog.get_logger("tests.hygiene").exception("connector_failed", connector="slack")
    [line] = parsed(log_lines)
    assert line["exception"][0]["frames"][-1]["name"] == "read_event"
    assert customer_text not in log_lines.getvalue()


def test_a_crashing_normalizer_is_logged_by_type_and_place_and_its_words_kept_in_the_store(
    store: Store, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_text = marker("crash")

    def crash(payload: bytes, **_: object) -> None:
        raise ValueError(f"cannot read header {customer_text!r}")

    monkeypatch.setattr("inbox.normalize.prepare.normalize_email", crash)
    ingest(make_pipeline(store), raw(mail(body=f"{customer_text}\n"), connector="mail"))
    with store.readers() as session:
        [error] = session.scalars(select(RawRecord.error))
    assert customer_text in error  # `inbox raw list --errors` still says what went wrong
    assert customer_text not in log_lines.getvalue()
    lines = parsed(log_lines)
    [crashed] = [line for line in lines if line["event"] == "normalize_crashed"]
    assert crashed["error_type"] == "ValueError" and "in crash" in crashed["traceback"]
    [kept] = [line for line in lines if line["event"] == "stored_raw_only"]
    assert (kept["connector"], kept["reason"]) == ("mail", "normalizer crashed")


@BACKENDS
def test_a_store_error_quotes_the_statement_but_not_the_message(store: Store) -> None:
    customer_text = marker("parameter")
    row = {
        "connector": "mail",
        "external_id": "x1",
        "channel": "email",
        "payload": b"",
        "size": 0,
        "sha256": "0" * 64,
        "received_at": datetime.now(UTC),
        "error": customer_text,
    }
    with store.engine.begin() as connection:
        connection.execute(insert(RawRecord), row)
    with pytest.raises(IntegrityError) as refused, store.engine.begin() as connection:
        connection.execute(insert(RawRecord), row)  # the same (connector, external_id)
    assert "INSERT INTO raw_messages" in str(refused.value)
    assert customer_text not in str(refused.value)
