"""An agent answers from the CLI: `inbox conversations reply`, then `inbox run` sends it to a
real SMTP server; the customer's answer threads back, and our own reply fetched back (a Cc to
the support mailbox) never becomes a customer's message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from inbox.cli import main
from inbox.store.db import make_engine, make_sessionmaker
from inbox.store.models import Conversation, Message
from tests.conftest import BACKENDS
from tests.helpers import mail
from tests.smtp_server import PASSWORD, SmtpServer

ANSWER = "Hei Aino,\n\nuusi vetoketju lähtee huomenna.\n\nEsko"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    monkeypatch.setenv("INBOX_TEST_SMTP_PASSWORD", PASSWORD)
    running = SmtpServer(tmp_path).start()
    yield running  # type: ignore[misc]
    running.stop()


def deliver(maildir: Path, name: str, payload: bytes) -> None:
    (maildir / "new" / name).write_bytes(payload)


def setup_desk(tmp_path: Path, url: str, server: SmtpServer) -> tuple[Path, Path]:
    maildir = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    smtp = server.settings(from_name="Northwind Support")
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'database_url = "{url}"\ndata_dir = "{tmp_path / "data"}"\n[web]\nenabled = false\n'
        f'[[connectors]]\nname = "box"\ntype = "maildir"\npath = "{maildir}"\n'
        "[connectors.smtp]\n"
        + "".join(
            f"{key} = {json.dumps(value)}\n" for key, value in smtp.items() if key != "password"
        )
        + '[connectors.smtp.password]\nenv = "INBOX_TEST_SMTP_PASSWORD"\n',
        encoding="utf-8",
    )
    return config, maildir


def inbox(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def messages(url: str) -> list[tuple[str, str, int]]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(
                    Message.direction, Message.message_id_header, Message.conversation_id
                ).order_by(Message.id)
            ).all()
            return [tuple(row) for row in rows]  # type: ignore[misc]
    finally:
        engine.dispose()


@BACKENDS
def test_an_agents_cli_reply_reaches_the_customer_and_the_answers_thread_back(
    tmp_path: Path, empty_store_url: str, server: SmtpServer
) -> None:
    config, maildir = setup_desk(tmp_path, empty_store_url, server)
    deliver(maildir, "1.M1P1.test", mail(message_id="q1@example.fi"))
    assert inbox(config, "run", "--once").exit_code == 0

    replied = inbox(config, "conversations", "reply", "1", "--text", ANSWER, "--by", "esko")
    assert replied.exit_code == 0, replied.output
    assert "queued for conversation 1" in replied.output
    assert server.received == []  # it leaves with the daemon, after the commit
    assert inbox(config, "run", "--once").exit_code == 0
    [sent] = server.received
    assert sent.message["From"] == "Northwind Support <support@northwind.example>"
    assert sent.message["In-Reply-To"] == "<q1@example.fi>"

    # The support mailbox gets a copy of our reply (a Cc), and the customer answers it.
    deliver(maildir, "2.M2P1.test", sent.data)
    our_id = sent.message["Message-ID"].strip("<>")
    deliver(maildir, "3.M3P1.test", mail(message_id="a1@example.fi", in_reply_to=our_id))
    assert inbox(config, "run", "--once").exit_code == 0

    assert messages(empty_store_url) == [
        ("in", "q1@example.fi", 1),
        ("out", our_id, 1),
        ("in", "a1@example.fi", 1),
    ]
    listed = json.loads(inbox(config, "conversations", "list", "--json").output)
    assert [(c["id"], c["status"]) for c in listed] == [(1, "open")]
    assert len(server.received) == 1  # nothing was sent twice

    shown = json.loads(inbox(config, "conversations", "show", "1", "--json").output)
    reply = shown["messages"][1]
    assert (reply["direction"], reply["author"], reply["delivery"]) == ("out", "esko", "sent")
    assert reply["delivery_detail"].startswith("250 2.0.0 Ok: queued as")
    assert shown["first_response_at"] is not None
    text = inbox(config, "conversations", "show", "1").output
    assert "reply 2 by esko to aino@example.fi" in text and "· sent" in text


def test_a_note_is_kept_and_never_sent(tmp_path: Path, server: SmtpServer) -> None:
    config, maildir = setup_desk(tmp_path, f"sqlite:///{tmp_path / 'inbox.db'}", server)
    deliver(maildir, "1.M1P1.test", mail(message_id="q1@example.fi"))
    inbox(config, "run", "--once")
    noted = inbox(config, "conversations", "reply", "1", "--note", "--text", "Soitin hänelle.")
    assert noted.exit_code == 0 and "note" in noted.output
    inbox(config, "run", "--once")
    assert server.received == []


def test_what_the_cli_refuses(tmp_path: Path, server: SmtpServer) -> None:
    config, _ = setup_desk(tmp_path, f"sqlite:///{tmp_path / 'inbox.db'}", server)
    inbox(config, "db", "upgrade")
    both = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "conversations",
            "reply",
            "1",
            "--text",
            "a",
            "--file",
            str(config),
        ],
    )
    assert both.exit_code == 2 and "exactly one of --text, --file or --answer" in both.output
    missing = CliRunner().invoke(
        main, ["--config", str(config), "conversations", "reply", "99", "--text", "hei"]
    )
    assert missing.exit_code == 1 and "no conversation 99" in missing.output


def test_a_closed_conversation_opens_again_when_the_customer_writes(
    tmp_path: Path, server: SmtpServer
) -> None:
    config, maildir = setup_desk(tmp_path, f"sqlite:///{tmp_path / 'inbox.db'}", server)
    deliver(maildir, "1.M1P1.test", mail(message_id="q1@example.fi"))
    inbox(config, "run", "--once")
    assert inbox(config, "conversations", "close", "1", "--by", "esko").output == (
        "conversation 1 closed\n"
    )
    assert "closed already" in inbox(config, "conversations", "close", "1").output
    shown = json.loads(inbox(config, "conversations", "show", "1", "--json").output)
    assert shown["status"] == "closed"
    assert [(e["kind"], e["actor"]) for e in shown["events"]][-1] == ("closed", "person:esko")
    deliver(maildir, "2.M2P1.test", mail(message_id="q2@example.fi", in_reply_to="q1@example.fi"))
    inbox(config, "run", "--once")
    shown = json.loads(inbox(config, "conversations", "show", "1", "--json").output)
    assert shown["status"] == "open"


def test_a_canned_answer_goes_in_the_customers_language(tmp_path: Path, server: SmtpServer) -> None:
    config, maildir = setup_desk(tmp_path, f"sqlite:///{tmp_path / 'inbox.db'}", server)
    (tmp_path / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
    text = config.read_text(encoding="utf-8")
    config.write_text('rules_file = "rules.yaml"\n' + text, encoding="utf-8")
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "zipper.fi.md").write_text(
        "Hei {customer_first_name},\n\nuusi vetoketju lähtee huomenna.\n\n{agent_name}",
        encoding="utf-8",
    )
    (answers / "zipper.en.md").write_text("Hi {customer_first_name}", encoding="utf-8")
    (answers / "broken.en.md").write_text("Hi {name}", encoding="utf-8")
    deliver(maildir, "1.M1P1.test", mail(message_id="q1@example.fi"))
    inbox(config, "run", "--once")

    checked = CliRunner().invoke(main, ["--config", str(config), "answers", "check"])
    assert checked.exit_code == 1
    assert "broken.en.md: unknown placeholder name" in checked.output
    replied = inbox(config, "conversations", "reply", "1", "--answer", "zipper", "--by", "Esko")
    assert replied.exit_code == 0, replied.output
    inbox(config, "run", "--once")
    body = server.received[0].message.get_content().replace("\r\n", "\n")
    assert body.rstrip("\n") == "Hei Aino,\n\nuusi vetoketju lähtee huomenna.\n\nEsko"


def test_a_snoozed_conversation_is_pending_until_the_daemon_opens_it_at_its_time(
    tmp_path: Path, server: SmtpServer
) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    config, maildir = setup_desk(tmp_path, url, server)
    deliver(maildir, "1.M1P1.test", mail(message_id="q1@example.fi"))
    inbox(config, "run", "--once")
    bad = CliRunner().invoke(
        main, ["--config", str(config), "conversations", "snooze", "1", "--until", "soon"]
    )
    assert bad.exit_code == 1 and "give a duration" in bad.output
    snoozed = inbox(config, "conversations", "snooze", "1", "--until", "2h", "--by", "esko")
    assert snoozed.output.startswith("conversation 1 snoozed until ")
    shown = json.loads(inbox(config, "conversations", "show", "1", "--json").output)
    assert shown["status"] == "pending" and shown["snoozed_until"]
    inbox(config, "run", "--once")  # not yet due
    assert json.loads(inbox(config, "conversations", "show", "1", "--json").output)["status"] == (
        "pending"
    )
    # The time comes (set back here rather than waited for): the next run opens it.
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            update(Conversation).values(snoozed_until=datetime.now(UTC) - timedelta(minutes=1))
        )
    engine.dispose()
    inbox(config, "run", "--once")
    shown = json.loads(inbox(config, "conversations", "show", "1", "--json").output)
    assert (shown["status"], shown["snoozed_until"]) == ("open", None)
    assert [e["kind"] for e in shown["events"]][-2:] == ["snoozed", "snooze_ended"]


def test_a_response_made_by_phone_is_recorded_as_the_first_response(
    tmp_path: Path, server: SmtpServer
) -> None:
    config, maildir = setup_desk(tmp_path, f"sqlite:///{tmp_path / 'inbox.db'}", server)
    deliver(maildir, "1.M1P1.test", mail(message_id="q1@example.fi"))
    inbox(config, "run", "--once")
    said = inbox(config, "conversations", "respond", "1", "--note", "soitin", "--by", "esko")
    assert said.output == "conversation 1: response by esko recorded; it is pending\n"
    shown = json.loads(inbox(config, "conversations", "show", "1", "--json").output)
    assert shown["status"] == "pending" and shown["first_response_at"]
    assert shown["events"][-1]["kind"] == "responded"
    assert shown["events"][-1]["detail"] == {"note": "soitin"}
    assert server.received == []  # nothing was sent
    inbox(config, "conversations", "close", "1")
    closed = CliRunner().invoke(main, ["--config", str(config), "conversations", "respond", "1"])
    assert closed.exit_code == 1 and "is closed" in closed.output


def test_answers_check_says_when_a_rule_sends_an_answer_that_is_missing(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: closed, when: {channel: email}, then: {auto_reply: closed}}\n",
        encoding="utf-8",
    )
    (tmp_path / "answers").mkdir()
    config = tmp_path / "inbox.toml"
    config.write_text(f'rules_file = "{tmp_path / "rules.yaml"}"\n', encoding="utf-8")
    checked = CliRunner().invoke(main, ["--config", str(config), "answers", "check"])
    assert checked.exit_code == 1
    assert "closed.en.md: rule 'closed' sends this answer, and it is missing" in checked.output
    (tmp_path / "answers" / "closed.en.md").write_text("Closed until {next_open}.", "utf-8")
    checked = CliRunner().invoke(main, ["--config", str(config), "answers", "check"])
    assert checked.exit_code == 0, checked.output
