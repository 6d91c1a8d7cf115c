"""`inbox outbox list|retry` as an operator runs them, over pings the real notifier tried to
send to a fake Slack."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from inbox.cli import main
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.fake_slack import FakeSlack
from tests.test_notifier import (
    WORKDAY_NOON,
    Clock,
    desk,  # noqa: F401 - a fixture
    notifier_for,
    outbox,
    send_mail,
)

pytestmark = BACKENDS


def run(store: Store, tmp_path: Path, *args: str) -> Result:
    # An empty config file: not /etc/inbox/inbox.toml or $INBOX_CONFIG of the machine.
    config = tmp_path / "inbox.toml"
    config.write_text("", encoding="utf-8")
    return CliRunner().invoke(
        main,
        ["--config", str(config), "--database-url", store.url, "outbox", *args],
        catch_exceptions=False,
    )


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_user("U1", name="aino")
        fake.add_user("U2", name="mart")
        fake.add_channel("C0NORDIC", name="support-nordic")
        yield fake


@pytest.fixture
def tried(store: Store, desk: RulesInForce, slack: FakeSlack) -> Store:  # noqa: F811
    """One ping sent (to aino), one dead (a channel Slack does not know), one waiting out a
    429 (to mart)."""
    send_mail(store, desk, "b1", sender="Pekka <pekka@bigcorp.example>")
    notifier = notifier_for(store, slack, Clock(WORKDAY_NOON))
    notifier.run_once()
    slack.fail_next("chat.postMessage", status=429, retry_after=30)
    send_mail(store, desk, "b2", subject="Toinen")
    notifier.run_once()
    assert [(row.kind, row.status) for row in outbox(store)] == [
        ("slack.assignment", "sent"),
        ("slack.notify", "dead"),
        ("slack.assignment", "pending"),
    ]
    return store


def test_list_counts_each_state_and_shows_why_rows_are_dead_or_waiting(
    tried: Store, tmp_path: Path
) -> None:
    result = run(tried, tmp_path, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "pending: 1  sending: 0  sent: 1  dead: 1"
    sent, dead, pending = (row.id for row in outbox(tried))
    text = result.output
    assert re.search(
        rf"^\s*{sent}  sent\s+slack.assignment .* to aino .* ts \d+\.\d{{6}}$", text, re.M
    )
    assert re.search(rf"^\s*{dead}  dead\s+slack.notify .* to #bigcorp-archived", text, re.M)
    assert re.search(rf"^\s*{pending}  pending\s+slack.assignment .* to mart .* next ", text, re.M)
    assert "        error: Slack refused it: channel_not_found" in lines
    assert "        error: rate limited by Slack for 30 s" in lines
    # Newest first.
    ids = [int(line.split()[0]) for line in lines[1:] if not line.startswith(" " * 8)]
    assert ids == [pending, dead, sent]


def test_list_filters_by_status_and_speaks_json(tried: Store, tmp_path: Path) -> None:
    dead_only = run(tried, tmp_path, "list", "--status", "dead")
    assert "slack.notify" in dead_only.output and "slack.assignment" not in dead_only.output
    rows = [json.loads(line) for line in run(tried, tmp_path, "list", "--json").output.splitlines()]
    assert [row["status"] for row in rows] == ["pending", "dead", "sent"]
    assert rows[1]["last_error"] == "Slack refused it: channel_not_found"
    assert rows[1]["payload"]["slack_channel"] == "#bigcorp-archived"
    assert rows[2]["result"]["channel"].startswith("D")
    assert len(run(tried, tmp_path, "list", "--limit", "1", "--json").output.splitlines()) == 1


def test_retry_puts_a_dead_row_back_and_the_next_pass_sends_it(
    tried: Store, slack: FakeSlack, tmp_path: Path
) -> None:
    _, dead, _ = (row.id for row in outbox(tried))
    result = run(tried, tmp_path, "retry", str(dead))
    assert result.exit_code == 0, result.output
    assert f"row {dead} will be sent again (was: Slack refused it: channel_not_found)" in (
        result.output
    )
    [row] = [row for row in outbox(tried) if row.id == dead]
    assert (row.status, row.attempts) == ("pending", 0)

    slack.add_channel("C0BIGCORP", name="bigcorp-archived")  # someone unarchived it
    later = Clock(datetime.now(UTC) + timedelta(seconds=1))
    notifier_for(tried, slack, later).run_once()
    [row] = [row for row in outbox(tried) if row.id == dead]
    assert row.status == "sent"
    [posted] = slack.messages("C0BIGCORP")
    assert "Bigcorp wrote" in posted["text"]


def test_retry_refuses_sent_and_unknown_rows(tried: Store, tmp_path: Path) -> None:
    sent = outbox(tried)[0].id
    result = run(tried, tmp_path, "retry", str(sent), "9999")
    assert result.exit_code == 1
    assert f"row {sent} is sent: not retried" in result.output
    assert "no outbox row 9999" in result.output
    assert outbox(tried)[0].status == "sent"
