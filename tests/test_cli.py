"""The `inbox` command as an operator uses it: import, list, show, raw, db."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result

from inbox.cli import main
from inbox.store.db import alembic_config
from tests.conftest import BACKENDS
from tests.helpers import mail

GREEK = (
    "From: =?iso-8859-7?b?zd/q7/I=?= <nikos@example.gr>\r\n"
    "To: support@northwind.example\r\n"
    "Subject: =?iso-8859-7?b?xfDl3+Pv7Tog8OHx3OTv8+c=?=\r\n"
    "Message-ID: <greek@example.gr>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=iso-8859-7\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\n"
).encode("ascii") + "Η παραγγελία μου δεν έχει φτάσει ακόμα. Παρακαλώ βοηθήστε.\r\n".encode(
    "iso-8859-7"
)


def invoke(url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--database-url", url, *args], catch_exceptions=False)
    return result


@pytest.fixture
def eml_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "emls"
    folder.mkdir()
    (folder / "greek.eml").write_bytes(GREEK)
    (folder / "question.eml").write_bytes(mail(message_id="q1@example.fi"))
    (folder / "reply.eml").write_bytes(
        mail(message_id="q2@example.fi", in_reply_to="q1@example.fi", subject="Re: Teltta")
    )
    (folder / "broken.eml").write_bytes(
        b"From: someone@example.com\r\nSubject: cut off\r\nContent-Type: multipart/mixed; "
        b'boundary="never"\r\n\r\nno boundary ever appears\r\n'
    )
    return folder


@BACKENDS
def test_ingest_a_folder_then_list_and_show(eml_folder: Path, empty_store_url: str) -> None:
    result = invoke(empty_store_url, "ingest", str(eml_folder))
    assert result.exit_code == 0, result.output
    assert "4 messages: 4 stored" in result.output

    listed = json.loads(invoke(empty_store_url, "conversations", "list", "--json").output)
    assert len(listed) == 3  # the reply joined its question
    greek = next(c for c in listed if c["from"] == "Νίκος")
    assert greek["subject"] == "Επείγον: παράδοση"
    assert greek["language"] == "el"

    shown = invoke(empty_store_url, "conversations", "show", str(greek["id"]))
    assert "Η παραγγελία μου δεν έχει φτάσει ακόμα" in shown.output
    assert "language el" in shown.output
    assert "conversation_opened" in shown.output

    again = invoke(empty_store_url, "ingest", str(eml_folder))
    assert "0 stored" in again.output and "4 already stored" in again.output


@BACKENDS
def test_list_filters_by_status_and_assignee(eml_folder: Path, empty_store_url: str) -> None:
    invoke(empty_store_url, "ingest", str(eml_folder))
    open_ones = json.loads(
        invoke(
            empty_store_url,
            "conversations",
            "list",
            "--status",
            "open",
            "--assignee",
            "none",
            "--json",
        ).output
    )
    assert len(open_ones) == 3
    closed = json.loads(
        invoke(empty_store_url, "conversations", "list", "--status", "closed", "--json").output
    )
    assert closed == []
    tagged = json.loads(
        invoke(empty_store_url, "conversations", "list", "--tag", "vip", "--json").output
    )
    assert tagged == []


def test_ingest_an_mbox_and_a_single_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    box = mailbox.mbox(tmp_path / "archive.mbox")
    box.add(mail(message_id="mb1@example.fi", subject="one"))
    box.add(mail(message_id="mb2@example.fi", subject="two"))
    box.close()
    assert "2 messages: 2 stored" in invoke(url, "ingest", str(tmp_path / "archive.mbox")).output
    single = tmp_path / "one.eml"
    single.write_bytes(GREEK)
    assert "1 messages: 1 stored" in invoke(url, "ingest", str(single)).output


def test_raw_list_errors_shows_what_did_not_parse_cleanly(eml_folder: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    invoke(url, "ingest", str(eml_folder))
    problems = json.loads(invoke(url, "raw", "list", "--errors", "--json").output)
    assert len(problems) == 1
    assert problems[0]["parse_errors"]
    original = invoke(url, "raw", "show", str(problems[0]["id"]))
    assert original.stdout_bytes == (eml_folder / "broken.eml").read_bytes()


def test_show_of_an_unknown_conversation_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    invoke(url, "db", "upgrade")
    result = CliRunner().invoke(main, ["--database-url", url, "conversations", "show", "99"])
    assert result.exit_code == 1
    assert "no conversation 99" in result.output


def test_db_upgrade_then_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert "(empty" in invoke(url, "db", "current").output
    invoke(url, "db", "upgrade")
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert invoke(url, "db", "current").output.strip() == head


def test_a_bad_config_file_stops_with_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text("[ingest]\nbatch_size = 0\n[logging]\nlevel = 'loud'\n")
    result = CliRunner().invoke(main, ["--config", str(config), "db", "current"])
    assert result.exit_code == 2
    assert "2 problems" in result.output
    assert f"{config}: key 'ingest.batch_size'" in result.output


@pytest.mark.parametrize(
    "command", [("conversations", "list"), ("outbox", "list"), ("outbox", "retry", "1")]
)
def test_reading_a_store_that_is_not_there_says_so_and_creates_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A person whose config lacks the daemon's data_dir must not be sent to migrate a new,
    empty store in their home directory."""
    missing = tmp_path / "inbox.db"  # in a folder that exists: SQLite would create it
    result = CliRunner().invoke(main, ["--database-url", f"sqlite:///{missing}", *command])
    assert result.exit_code == 1
    assert f"no store at {missing}" in result.output
    assert "data_dir" in result.output
    assert not missing.exists()


ORDER_RULES = """\
tags:
  order: asks about an order
rules:
  - name: orders
    when: {body: {contains: tilaus}}
    then: {tag: order}
"""


def test_ingest_keeps_an_archive_unrouted_and_sync_routes_what_arrives(tmp_path: Path) -> None:
    """Both commands store the same way; only sync runs the rules (an imported archive is
    history, and must not assign or ping anyone)."""
    (tmp_path / "rules.yaml").write_text(ORDER_RULES, encoding="utf-8")
    maildir = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    body = "Tilaus 1042 ei ole vielä saapunut.\n"
    (maildir / "new" / "1.M1P1.test").write_bytes(
        mail(message_id="new@example.fi", subject="Tilaus 1042", body=body)
    )
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "old.eml").write_bytes(
        mail(message_id="old@example.fi", subject="Tilaus 977", body=body)
    )
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "inbox.db"}"\nrules_file = "rules.yaml"\n'
        f'[[connectors]]\nname = "box"\ntype = "maildir"\npath = "{maildir}"\n',
        encoding="utf-8",
    )

    def run(*args: str) -> Result:
        result = CliRunner().invoke(main, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return result

    run("ingest", str(archive))
    run("sync", "box")
    listed = json.loads(run("conversations", "list", "--json").output)
    tags = {conversation["subject"]: conversation["tags"] for conversation in listed}
    assert tags == {"Tilaus 977": [], "Tilaus 1042": ["order"]}
