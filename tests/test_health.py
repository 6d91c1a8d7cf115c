"""/healthz, /metrics and `inbox status` of a running daemon: one connector working, one
failing, rules assigning, pings waiting (no Slack token)."""

from __future__ import annotations

import json
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from connectors.maildir import MaildirConfig, MaildirConnector
from inbox.cli import main
from inbox.config import Settings
from inbox.demo.generate import write_maildir
from inbox.service.daemon import Daemon
from inbox.store.models import Conversation
from rules.holder import RulesInForce
from tests.conftest import Store

RULES = """\
    agents:
      aino: {slack: U1, capacity: 1000}
      mart: {slack: U2, capacity: 1000}
      liisa: {slack: U3, capacity: 1000}
    teams:
      desk: {members: [aino, mart], strategy: round_robin}
      sms: {members: [liisa], strategy: round_robin}
    rules:
      - name: everything-to-the-desk
        when: {channel: email}
        then: {assign: {team: desk}}
      - name: texts
        when: {channel: sms}
        then: {assign: {team: sms}}
"""
MESSAGES = 30


@pytest.fixture
def running(store: Store, tmp_path: Path) -> Iterator[Daemon]:
    write_maildir(tmp_path / "good", MESSAGES, seed=5)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "new").write_bytes(b"")  # a file where a folder should be: every poll fails
    rules = tmp_path / "rules.yaml"
    rules.write_text(textwrap.dedent(RULES), encoding="utf-8")
    settings = Settings(
        database_url=store.url,
        data_dir=tmp_path,
        rules_file=rules,
        ingest={"workers": 0},
        web={"listen": "127.0.0.1:0"},
    )
    connectors = [
        MaildirConnector(MaildirConfig(name="box", type="maildir", path=tmp_path / "good")),
        MaildirConnector(MaildirConfig(name="broken", type="maildir", path=broken)),
    ]
    daemon = Daemon(settings, connectors, rules=RulesInForce(rules))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        daemon.web is not None
        and daemon.states[0].totals.stored == MESSAGES
        and daemon.states[1].failures
    ):
        time.sleep(0.05)
    try:
        yield daemon
    finally:
        daemon.stopping.set()
        daemon.wake.set()
        thread.join(30)


def conversations(store: Store) -> int:
    """Each new conversation is assigned, and pinged, once (replies join theirs)."""
    with store.readers() as session:
        return int(session.scalar(select(func.count()).select_from(Conversation)) or 0)


def get(daemon: Daemon, path: str) -> tuple[int, str, bytes]:
    assert daemon.web is not None
    try:
        with urllib.request.urlopen(daemon.web.url + path, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_healthz_reports_each_connector_the_store_the_outbox_and_the_rules(
    running: Daemon, store: Store
) -> None:
    status, content_type, body = get(running, "/healthz")
    assert (status, content_type) == (200, "application/json")
    health = json.loads(body)
    assert health["status"] == "degraded"
    assert health["store"] == {"ok": True, "error": ""}
    box, broken = health["connectors"]
    assert (box["name"], box["state"], box["stored"]) == ("box", "ok", MESSAGES)
    assert box["last_success_seconds_ago"] < 30
    assert (broken["name"], broken["state"]) == ("broken", "degraded")
    assert broken["failures_in_a_row"] >= 1 and broken["last_error"]
    assert health["outbox"]["pending"] == conversations(store)  # no Slack token: they wait
    assert running.rules is not None
    assert health["rules"]["version"] == running.rules.current.version


def test_metrics_are_prometheus_text_with_ingest_rules_assignments_and_outbox(
    running: Daemon, store: Store
) -> None:
    assigned = conversations(store)
    status, content_type, body = get(running, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert (
        samples[("inbox_messages_ingested_total", (("channel", "email"), ("connector", "box")))]
        == MESSAGES
    )
    assert samples[("inbox_connector_up", (("connector", "box"),))] == 1
    assert samples[("inbox_connector_up", (("connector", "broken"),))] == 0
    assert samples[("inbox_connector_failures_total", (("connector", "broken"),))] >= 1
    assert (
        samples[("inbox_rule_decisions_total", (("rule", "everything-to-the-desk"),))] >= MESSAGES
    )
    aino = samples[("inbox_assignments_total", (("agent", "aino"),))]
    mart = samples[("inbox_assignments_total", (("agent", "mart"),))]
    assert aino + mart == assigned and abs(aino - mart) <= 1  # round-robin
    # A rule that never matched and an agent never assigned are there, at 0.
    assert samples[("inbox_rule_decisions_total", (("rule", "texts"),))] == 0
    assert samples[("inbox_assignments_total", (("agent", "liisa"),))] == 0
    assert samples[("inbox_outbox_items", (("status", "pending"),))] == assigned
    assert samples[("inbox_outbox_oldest_pending_seconds", ())] >= 0
    assert samples[("inbox_store_up", ())] == 1
    assert samples[("inbox_rules_reloads_total", (("result", "refused"),))] == 0
    # The desk's SLA and satisfaction, from the store (no SLA policy here: none owed).
    assert samples[("inbox_sla_breached_conversations", ())] == 0
    assert samples[("inbox_sla_due_soon_conversations", ())] == 0


def test_inbox_status_prints_the_same_for_a_person(
    running: Daemon, store: Store, tmp_path: Path
) -> None:
    assert running.web is not None
    config = tmp_path / "status.toml"
    config.write_text(
        f'database_url = "{store.url}"\n[web]\nlisten = "127.0.0.1:{running.web.port}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["--config", str(config), "status"])
    assert result.exit_code == 1  # degraded
    assert "inbox: degraded" in result.output
    assert "box" in result.output and "broken" in result.output
    assert f"outbox: {conversations(store)} pending" in result.output

    config.write_text(
        f'database_url = "{store.url}"\n[web]\nlisten = "127.0.0.1:1"\n', encoding="utf-8"
    )
    offline = CliRunner().invoke(main, ["--config", str(config), "status"])
    assert offline.exit_code == 1
    assert "the daemon does not answer" in offline.output
    assert f"outbox: {conversations(store)} pending" in offline.output
