"""`inbox outbox list|retry` as an operator uses them after a ping could not be sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner, Result

from inbox.cli import main
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.fake_slack import FakeSlack
from tests.test_notifier import WORKDAY_NOON, Clock, desk, notifier_for, outbox, send_mail, slack

pytestmark = BACKENDS
__all__ = ["desk", "slack"]  # fixtures shared with the notifier's tests


def invoke(store: Store, tmp_path: Path, *args: str) -> Result:
    config = tmp_path / "inbox.toml"
    config.write_text("", encoding="utf-8")
    return CliRunner().invoke(
        main,
        ["--config", str(config), "--database-url", store.url, "outbox", *args],
    )


def test_list_shows_sent_and_dead_pings_with_slacks_reason_and_retry_sends_it_again(
    store: Store, desk: RulesInForce, slack: FakeSlack, tmp_path: Path
) -> None:
    send_mail(store, desk, "d1", sender="Pekka <pekka@bigcorp.example>")
    clock = Clock(WORKDAY_NOON)
    notifier_for(store, slack, clock).run_once()
    assignment, notice = outbox(store)

    listed = invoke(store, tmp_path, "list")
    assert listed.exit_code == 0
    assert "pending: 0  sending: 0  sent: 1  dead: 1" in listed.output
    assert "error: Slack refused it: channel_not_found" in listed.output
    assert f"ts {assignment.result['ts']}" in listed.output

    dead = invoke(store, tmp_path, "list", "--status", "dead", "--json")
    [row] = [json.loads(line) for line in dead.output.splitlines()]
    assert (row["id"], row["kind"], row["status"]) == (notice.id, "slack.notify", "dead")
    assert row["payload"]["slack_channel"] == "#bigcorp-archived"

    # The operator creates the channel, then asks for the ping again.
    slack.add_channel("C0BIG", name="bigcorp-archived")
    retried = invoke(store, tmp_path, "retry", str(notice.id))
    assert retried.exit_code == 0
    assert "was: Slack refused it: channel_not_found" in retried.output
    # retry makes it due now, by the wall clock the daemon runs on.
    assert notifier_for(store, slack, Clock(datetime.now(UTC))).run_once() == 1
    assert [row.status for row in outbox(store)] == ["sent", "sent"]
    assert len(slack.messages("C0BIG")) == 1


def test_retry_refuses_what_was_sent_or_does_not_exist(
    store: Store, desk: RulesInForce, slack: FakeSlack, tmp_path: Path
) -> None:
    send_mail(store, desk, "m1")
    notifier_for(store, slack, Clock(WORKDAY_NOON)).run_once()
    [sent] = outbox(store)
    result = invoke(store, tmp_path, "retry", str(sent.id), "999")
    assert result.exit_code == 1
    assert f"row {sent.id} is sent: not retried" in result.output
    assert "no outbox row 999" in result.output
    assert len(slack.successful_calls_to("chat.postMessage")) == 1
