"""`inbox report` on a small week of the desk, on SQLite and PostgreSQL: volume, first response
and resolution times in the office's business hours, SLA met, reopen rate and backlog, as a
team lead reads them (JSON, CSV and the table)."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from inbox.cli import main
from inbox.routing.person import close_by_person
from inbox.routing.reply import write_reply
from inbox.store.db import transaction
from rules.holder import RulesInForce
from tests.conftest import BACKENDS, Store
from tests.helpers import Clock, arrive

pytestmark = BACKENDS

DESK = """\
    timezone: Europe/Helsinki
    calendars:
      office: {timezone: Europe/Helsinki, hours: {mon-fri: "08:00-17:00"}}
    agents:
      esko: {slack: UESKO}
    teams:
      support: {members: [esko]}
    rules:
      - name: to-support
        when: {channel: email}
        then: {assign: {team: support}}
    sla:
      - {name: standard, calendar: office, first_response: 4h}
"""


def at(day: int, hour: int) -> datetime:
    """A time of late November 2026 in Helsinki (UTC+2), in UTC."""
    return datetime(2026, 11, day, hour - 2, 0, tzinfo=UTC)


def test_the_report_of_a_week(store: Store, tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(textwrap.dedent(DESK), encoding="utf-8")
    rules = RulesInForce(rules_file)
    clock = Clock()

    def arrive_at(when: datetime, message_id: str, **options: object) -> int:
        clock.now = when
        return arrive(store, rules, clock, message_id=message_id, **options).id

    def reply(conversation_id: int, when: datetime) -> None:
        with transaction(store.writers) as session:
            write_reply(session, conversation_id, author="esko", text="Hei!", now=when)

    def close(conversation_id: int, when: datetime) -> None:
        with transaction(store.writers) as session:
            close_by_person(session, conversation_id, person="esko", now=when)

    # Friday 27th 16:00, answered Monday 09:00: two office hours, in time (due Monday 11:00);
    # closed at 10:00, then opened again by the customer.
    first = arrive_at(at(27, 16), "a1@example.fi", subject="Teltta")
    reply(first, at(30, 9))
    close(first, at(30, 10))
    arrive_at(at(30, 11), "a2@example.fi", in_reply_to="a1@example.fi", subject="Re: Teltta")
    # Monday 10:00, answered at 15:00: five office hours, late (due 14:00); closed at 16:00.
    second = arrive_at(at(30, 10), "b1@example.fi", sender="Mart <mart@example.ee>", subject="Kott")
    reply(second, at(30, 15))
    close(second, at(30, 16))
    # Monday 12:00, never answered: its due time (16:00) has passed.
    arrive_at(at(30, 12), "c1@example.fi", sender="Olga <olga@example.ru>", subject="Заказ")

    config = tmp_path / "inbox.toml"
    config.write_text(
        f'database_url = "{store.url}"\nrules_file = "{rules_file}"\n[web]\nenabled = false\n',
        encoding="utf-8",
    )

    def report(*options: str) -> str:
        result = CliRunner().invoke(main, ["--config", str(config), "report", *options])
        assert result.exit_code == 0, result.output
        return result.output

    [row] = json.loads(report("--since", "1000w", "--by", "team", "--json"))
    assert row == {
        "group": "support",
        "conversations": 3,
        "first_response_median_minutes": 210.0,  # 120 and 300
        "first_response_p90_minutes": 300.0,
        "resolution_median_minutes": 360.0,  # only the second is closed now
        "resolution_p90_minutes": 360.0,
        "sla_first_response_met_percent": 33.3,
        "reopened_percent": 50.0,
        "csat_responses": 0,
        "csat_average": None,
        "csat_satisfied_percent": None,
        "backlog": {"under 1 h": 0, "1-4 h": 0, "4-24 h": 0, "1-3 d": 0, "over 3 d": 2},
    }
    [line] = csv.DictReader(io.StringIO(report("--since", "1000w", "--csv")))
    assert (line["group"], line["conversations"], line["backlog over 3 d"]) == ("all", "3", "2")
    table = report("--since", "1000w", "--by", "channel")
    assert "email" in table and "3.5 h / 5.0 h" in table and "33.3%" in table
