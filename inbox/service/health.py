"""What the running daemon says of itself: /healthz (JSON), /metrics (Prometheus), and the
same for a person through `inbox status`.

Everything is read when asked: the daemon's own counters (per connector: stored, duplicates,
errors, failures, last success; per rule and per agent: decisions and assignments), the rules'
reloads, the SLA breaches and escalations its timers fired, and small queries on the store (is
it reachable; the outbox by status and the age of the oldest ping still waiting; for /metrics
only, how many open conversations are past or near an SLA target and the satisfaction scores).
Nothing here writes, so a scrape can never slow ingest by more than those queries.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from inbox.routing.sla import sla_due_before
from inbox.service.view import ConnectorView, DaemonView, SpoolView, ViewSource
from inbox.store.models import Conversation, OutboxItem
from inbox.webhook import Handler, WebRequest, WebResponse

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class StoreView:
    ok: bool
    error: str = ""
    outbox: dict[str, int] = field(default_factory=dict)
    oldest_pending_seconds: float = 0.0


def sla_counts(session: Session, now: datetime) -> tuple[int, int]:
    """Open conversations whose SLA has passed unmet, and those due within the hour."""
    soon = now + timedelta(hours=1)
    breached = session.scalar(select(func.count()).where(sla_due_before(now))) or 0
    due_soon = session.scalar(
        select(func.count()).where(sla_due_before(soon), ~sla_due_before(now))
    )
    return int(breached), int(due_soon or 0)


#: How far back the satisfaction gauges look.
CSAT_PERIOD = timedelta(days=30)


def csat_by_team(session: Session, since: datetime) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(Conversation.team, func.count(), func.sum(Conversation.csat_score))
        .where(Conversation.csat_answered_at >= since, Conversation.csat_score.is_not(None))
        .group_by(Conversation.team)
    )
    return {str(team or ""): (int(count), int(total or 0)) for team, count, total in rows}


def store_view(readers: sessionmaker[Session]) -> StoreView:
    try:
        with readers() as session:
            session.execute(text("SELECT 1"))
            counts = dict(
                session.execute(
                    select(OutboxItem.status, func.count()).group_by(OutboxItem.status)
                ).all()
            )
            oldest = session.scalar(
                select(func.min(OutboxItem.created_at)).where(
                    OutboxItem.status.in_(("pending", "sending"))
                )
            )
    except Exception as error:  # the store is away: say so, never raise from a health check
        return StoreView(False, f"{type(error).__name__}: {error}"[:300])
    age = 0.0
    if oldest is not None:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        age = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
    outbox = {
        status: int(counts.get(status, 0)) for status in ("pending", "sending", "sent", "dead")
    }
    return StoreView(True, outbox=outbox, oldest_pending_seconds=age)


def report(daemon: DaemonView) -> dict[str, Any]:
    """The daemon's state as /healthz and `inbox status` show it."""
    store = store_view(daemon.readers)
    now = time.time()
    connectors = [_connector(state, now) for state in daemon.connectors]
    degraded = [c["name"] for c in connectors if c["state"] == "degraded"]
    rules = daemon.rules
    return {
        "status": "failing" if not store.ok else ("degraded" if degraded else "ok"),
        "started_seconds_ago": round(now - daemon.started_at, 1),
        "store": {"ok": store.ok, "error": store.error},
        "connectors": connectors,
        "outbox": {
            **store.outbox,
            "oldest_pending_seconds": round(store.oldest_pending_seconds, 1),
        },
        "rules": None
        if rules is None
        else {
            "version": rules.version,
            "reloads": rules.reloads,
            "failed_reloads": rules.failed_reloads,
        },
    }


def _connector(state: ConnectorView, now: float) -> dict[str, Any]:
    return {
        "name": state.name,
        "channel": state.channel,
        "state": state.health,
        #: Another daemon on the same store polls it (inbox/store/leases.py); null: us.
        "lease_held_by": state.lease_held_by,
        #: What fails and why, for a person: ["catch-up: Slack answered ..."].
        "failing": list(state.failing),
        "failures_in_a_row": state.failures_in_a_row,
        "last_error": state.last_error,
        "last_success_seconds_ago": _ago(now, state.last_success),
        "stored": state.totals.stored,
        "duplicates": state.totals.duplicates,
        "raw_only": state.totals.raw_only,
        "spool": None if state.spool is None else _spool(state.spool, now),
    }


def _ago(now: float, then: float) -> float | None:
    return round(now - then, 1) if then else None


def _spool(lane: SpoolView, now: float) -> dict[str, Any]:
    """A webhook connector's spool: stored apart from its catch-up, so it has its own state."""
    return {
        "state": lane.health,
        "waiting": lane.waiting,
        "failures_in_a_row": lane.failures,
        "last_error": lane.last_error,
        "last_success_seconds_ago": _ago(now, lane.last_success),
    }


class DaemonCollector(Collector):
    """Prometheus metrics read from the daemon at scrape time."""

    def __init__(self, view: ViewSource) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        daemon = self.view()
        ingested = CounterMetricFamily(
            "inbox_messages_ingested", "Messages stored", labels=["connector", "channel"]
        )
        duplicates = CounterMetricFamily(
            "inbox_duplicate_deliveries",
            "Messages fetched again and not stored twice",
            labels=["connector"],
        )
        errors = CounterMetricFamily(
            "inbox_ingest_errors",
            "Messages parsed with errors, kept raw only, or crashing the parser",
            labels=["connector", "kind"],
        )
        failures = CounterMetricFamily(
            "inbox_connector_failures",
            "Polls that failed (retried with backoff)",
            labels=["connector"],
        )
        up = GaugeMetricFamily(
            "inbox_connector_up", "1 if the last poll succeeded", labels=["connector"]
        )
        lag = GaugeMetricFamily(
            "inbox_connector_lag_seconds",
            "Seconds since the last successful poll",
            labels=["connector"],
        )
        leased = GaugeMetricFamily(
            "inbox_connector_lease_held",
            "1 if this daemon polls the connector's upstream, 0 if another daemon does",
            labels=["connector"],
        )
        decisions: Counter[str] = Counter()
        assignments: Counter[str] = Counter()
        if daemon.rules is not None:
            # Every rule and agent in force from the start, at 0: a series that appears only
            # once counted leaves rate() and absence alerts nothing to work with.
            decisions.update(dict.fromkeys(daemon.rules.rule_names, 0))
            assignments.update(dict.fromkeys(daemon.rules.agent_names, 0))
        now = time.time()
        for state in daemon.connectors:
            name = state.name
            totals = state.totals
            ingested.add_metric([name, state.channel], totals.stored)
            duplicates.add_metric([name], totals.duplicates)
            errors.add_metric([name, "parse_error"], totals.parse_errors)
            errors.add_metric([name, "raw_only"], totals.raw_only)
            errors.add_metric([name, "crashed"], totals.crashed)
            failures.add_metric([name], state.failures_total)
            up.add_metric([name], 0 if state.failures_in_a_row else 1)
            lag.add_metric([name], now - (state.last_success or daemon.started_at))
            leased.add_metric([name], 1 if state.lease_held else 0)
            decisions.update(totals.rule_decisions)
            assignments.update(totals.assignments)
        yield from (ingested, duplicates, errors, failures, up, lag, leased)
        by_rule = CounterMetricFamily(
            "inbox_rule_decisions", "Decisions recorded per rule", labels=["rule"]
        )
        for rule, count in sorted(decisions.items()):
            by_rule.add_metric([rule], count)
        yield by_rule
        by_agent = CounterMetricFamily(
            "inbox_assignments", "Conversations assigned per agent", labels=["agent"]
        )
        for agent, count in sorted(assignments.items()):
            by_agent.add_metric([agent], count)
        yield by_agent
        store = store_view(daemon.readers)
        yield GaugeMetricFamily("inbox_store_up", "1 if the store answers", value=int(store.ok))
        outbox = GaugeMetricFamily("inbox_outbox_items", "Outbox rows by status", labels=["status"])
        for status, count in store.outbox.items():
            outbox.add_metric([status], count)
        yield outbox
        yield GaugeMetricFamily(
            "inbox_outbox_oldest_pending_seconds",
            "Age of the oldest ping not yet sent",
            value=store.oldest_pending_seconds,
        )
        breaches = CounterMetricFamily(
            "inbox_sla_breaches",
            "SLA targets this daemon saw pass unmet, by target and team",
            labels=["target", "team"],
        )
        for (target, team), count in sorted(daemon.sla_breaches.items()):
            breaches.add_metric([target, team], count)
        yield breaches
        escalations = CounterMetricFamily(
            "inbox_sla_escalations", "SLA escalation steps this daemon fired", labels=["target"]
        )
        for target, count in sorted(daemon.sla_escalations.items()):
            escalations.add_metric([target], count)
        yield escalations
        yield from _desk_metrics(daemon.readers)
        reloads = CounterMetricFamily(
            "inbox_rules_reloads", "Rules file reloads", labels=["result"]
        )
        if daemon.rules is not None:
            reloads.add_metric(["ok"], daemon.rules.reloads)
            reloads.add_metric(["refused"], daemon.rules.failed_reloads)
        yield reloads


def _desk_metrics(readers: sessionmaker[Session]) -> Iterator[Metric]:
    """What the store says of the desk (SLA, satisfaction): for /metrics only, where a scrape
    every 15 s or so may count conversations; /healthz, polled more often, does not."""
    now = datetime.now(UTC)
    try:
        with readers() as session:
            breached, due_soon = sla_counts(session, now)
            csat = csat_by_team(session, now - CSAT_PERIOD)
    except Exception:  # the store is away: inbox_store_up says so
        return
    yield GaugeMetricFamily(
        "inbox_sla_breached_conversations",
        "Open conversations with an SLA target passed unmet",
        value=breached,
    )
    yield GaugeMetricFamily(
        "inbox_sla_due_soon_conversations",
        "Open conversations with an SLA target due within the hour",
        value=due_soon,
    )
    answered = GaugeMetricFamily(
        "inbox_csat_responses",
        "Satisfaction survey answers of the last 30 days, by team",
        labels=["team"],
    )
    average = GaugeMetricFamily(
        "inbox_csat_score_average",
        "Average satisfaction score (1-5) of the last 30 days, by team",
        labels=["team"],
    )
    for team, (count, total) in sorted(csat.items()):
        answered.add_metric([team], count)
        average.add_metric([team], total / count)
    yield answered
    yield average


def pages(view: ViewSource) -> dict[str, Handler]:
    """/healthz and /metrics for the daemon's web server, each from a fresh view."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(view))

    def healthz(_request: WebRequest) -> WebResponse:
        body = report(view())
        status = 503 if body["status"] == "failing" else 200
        return WebResponse(
            status, json.dumps(body, indent=2).encode() + b"\n", content_type="application/json"
        )

    def metrics(_request: WebRequest) -> WebResponse:
        return WebResponse(200, generate_latest(registry), content_type=PROMETHEUS_TEXT)

    return {"/healthz": healthz, "/metrics": metrics}
