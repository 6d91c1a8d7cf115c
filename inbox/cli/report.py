"""`inbox report`: how the desk did, from the store, for a team lead.

For the conversations opened in the period (`--since`), per group (`--by` team, agent, channel
or language, or all together): how many; the first response time and the resolution time,
median and p90, in business time (the calendar of each conversation's SLA policy, else
`--calendar`, else round the clock); the SLA's first response met, of those whose due time
came; how many were opened again after being closed; and the backlog now (everything open or
pending, whatever its age), by age; and the customers' satisfaction scores (1-5) from the
surveys: how many answered, the average, and the share of 4 and 5.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from sqlalchemy import func, select

from inbox.cli.common import console, reading_session
from inbox.cli.context import AppContext, pass_app
from inbox.store.models import Conversation, Event, Message
from rules.calendars import Calendar
from rules.matchers import parse_duration
from rules.model import RuleSet

GROUPS = ("team", "agent", "channel", "language")
#: Backlog ages, each bucket up to its limit.
AGES = (
    ("under 1 h", timedelta(hours=1)),
    ("1-4 h", timedelta(hours=4)),
    ("4-24 h", timedelta(days=1)),
    ("1-3 d", timedelta(days=3)),
    ("over 3 d", timedelta.max),
)


@dataclass
class Group:
    volume: int = 0
    first_response: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    sla_met: int = 0
    sla_missed: int = 0
    closed: int = 0
    reopened: int = 0
    scores: list[int] = field(default_factory=list)
    backlog: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _ in AGES})

    def row(self, name: str) -> dict[str, Any]:
        judged = self.sla_met + self.sla_missed
        return {
            "group": name,
            "conversations": self.volume,
            "first_response_median_minutes": _minutes(_median(self.first_response)),
            "first_response_p90_minutes": _minutes(_p90(self.first_response)),
            "resolution_median_minutes": _minutes(_median(self.resolution)),
            "resolution_p90_minutes": _minutes(_p90(self.resolution)),
            "sla_first_response_met_percent": round(100 * self.sla_met / judged, 1)
            if judged
            else None,
            "reopened_percent": round(100 * self.reopened / self.closed, 1)
            if self.closed
            else None,
            "csat_responses": len(self.scores),
            "csat_average": round(statistics.fmean(self.scores), 2) if self.scores else None,
            "csat_satisfied_percent": round(
                100 * sum(score >= 4 for score in self.scores) / len(self.scores), 1
            )
            if self.scores
            else None,
            "backlog": dict(self.backlog),
        }


@click.command("report")
@click.option("--since", default="30d", show_default=True, help="The period: 7d, 30d, 12w.")
@click.option("--by", "group_by", type=click.Choice(GROUPS), help="One row per group.")
@click.option(
    "--calendar",
    "calendar_name",
    help="Count times in this calendar's business hours when a conversation's SLA has none.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, for a spreadsheet.")
@pass_app
def report(
    app: AppContext,
    since: str,
    group_by: str | None,
    calendar_name: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Volume, response and resolution times, SLA met, reopen rate and backlog."""
    try:
        period = parse_duration(since)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since") from None
    ruleset = _ruleset(app)
    fallback = None
    if calendar_name:
        if ruleset is None or calendar_name not in ruleset.calendars:
            known = ", ".join(sorted(ruleset.calendars)) if ruleset else "no rules file"
            raise click.BadParameter(
                f"no calendar {calendar_name!r} ({known})", param_hint="--calendar"
            )
        fallback = ruleset.calendars[calendar_name]
    now = datetime.now(UTC)
    with reading_session(app) as session:
        groups = _report(session, now - period, now, group_by, ruleset, fallback)
    rows = [group.row(name) for name, group in sorted(groups.items())]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif as_csv:
        click.echo(_csv(rows), nl=False)
    else:
        _print(rows, since)


def _report(
    session: Any,
    start: datetime,
    now: datetime,
    group_by: str | None,
    ruleset: RuleSet | None,
    fallback: Calendar | None,
) -> dict[str, Group]:
    first_in = (
        select(Message.conversation_id, func.min(Message.received_at).label("first"))
        .where(Message.direction == "in")
        .group_by(Message.conversation_id)
        .subquery()
    )
    query = select(Conversation, first_in.c.first).join(
        first_in, first_in.c.conversation_id == Conversation.id
    )
    reopened = set(
        session.scalars(
            select(Event.conversation_id)
            .where(Event.kind == "conversation_reopened", Event.created_at >= start)
            .distinct()
        )
    )
    groups: dict[str, Group] = defaultdict(Group)
    calendars = {policy.name: policy.calendar for policy in (ruleset.sla if ruleset else ())}
    for conversation, first in session.execute(query.where(Conversation.created_at >= start)):
        group = groups[_key(conversation, group_by)]
        calendar = calendars.get(conversation.sla_policy) or fallback
        began = first or conversation.created_at
        group.volume += 1
        if conversation.first_response_at is not None:
            group.first_response.append(_between(calendar, began, conversation.first_response_at))
        if conversation.closed_at is not None and conversation.status == "closed":
            group.resolution.append(_between(calendar, began, conversation.closed_at))
        if conversation.closed_at is not None or conversation.id in reopened:
            group.closed += 1
            group.reopened += conversation.id in reopened
        if conversation.csat_score is not None:
            group.scores.append(conversation.csat_score)
        due = conversation.first_response_due
        if due is not None:
            answered = conversation.first_response_at
            if answered is not None and answered <= due:
                group.sla_met += 1
            elif answered is not None or due <= now:
                group.sla_missed += 1
    open_now = select(Conversation).where(Conversation.status.in_(("open", "pending")))
    for conversation in session.scalars(open_now):
        age = now - (conversation.created_at or now)
        bucket = next(name for name, limit in AGES if age < limit)
        groups[_key(conversation, group_by)].backlog[bucket] += 1
    return groups


def _key(conversation: Conversation, group_by: str | None) -> str:
    if group_by is None:
        return "all"
    value = {
        "team": conversation.team,
        "agent": conversation.assignee,
        "channel": conversation.channel,
        "language": conversation.language,
    }[group_by]
    return value or "(none)"


def _between(calendar: Calendar | None, start: datetime, end: datetime) -> float:
    if calendar is None:
        return max(0.0, (end - start).total_seconds())
    return calendar.between(start, end).total_seconds()


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _ruleset(app: AppContext) -> RuleSet | None:
    """The rules file's calendars and SLA policies (none without a usable rules file)."""
    from rules.errors import RulesInvalid
    from rules.loader import load_rules

    rules_file = app.config().settings.rules_file
    if rules_file is None:
        return None
    try:
        return load_rules(Path(rules_file))
    except (RulesInvalid, OSError) as error:
        click.echo(f"the rules file cannot be read ({error}): times are round the clock", err=True)
        return None


def _csv(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for row in rows:
        flat = {k: v for k, v in row.items() if k != "backlog"}
        flat.update({f"backlog {name}": count for name, count in row["backlog"].items()})
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(flat))
            writer.writeheader()
        writer.writerow(flat)
    return out.getvalue()


def _print(rows: list[dict[str, Any]], since: str) -> None:
    table = Table(box=None, header_style="bold", title=f"the last {since}")
    for column in (
        "group",
        "conv.",
        "1st resp. p50/p90",
        "resolution p50/p90",
        "SLA met",
        "reopened",
        "CSAT",
        "backlog",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["group"],
            str(row["conversations"]),
            _pair(row, "first_response"),
            _pair(row, "resolution"),
            "-"
            if row["sla_first_response_met_percent"] is None
            else f"{row['sla_first_response_met_percent']}%",
            "-" if row["reopened_percent"] is None else f"{row['reopened_percent']}%",
            "-"
            if row["csat_average"] is None
            else f"{row['csat_average']} ({row['csat_responses']})",
            ", ".join(f"{name}: {count}" for name, count in row["backlog"].items() if count) or "-",
        )
    console().print(table)


def _pair(row: dict[str, Any], what: str) -> str:
    return f"{_shown(row[f'{what}_median_minutes'])} / {_shown(row[f'{what}_p90_minutes'])}"


def _shown(minutes: float | None) -> str:
    if minutes is None:
        return "-"
    if minutes < 120:
        return f"{minutes:g} min"
    return f"{minutes / 60:.1f} h"
