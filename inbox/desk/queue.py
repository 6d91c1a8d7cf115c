"""The queue page's query: open conversations filtered, sorted and paged in SQL, with the
counts per team of the same filter (a lead sees where the work is), and each row's SLA state.

Filters come from the page's query string, checked here: an unknown value is dropped (the page
says which), never passed to SQL as text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from inbox.routing.sla import NEVER_DUE, earliest_due, sla_due_before
from inbox.store.models import Conversation, ConversationTag, Tag
from inbox.store.queries import first_senders
from rules.model import PRIORITIES

STATUSES = ("open", "pending", "snoozed", "closed", "all")
SLA_STATES = ("breached", "due_soon", "on_track", "none")
CHANNELS = ("email", "sms", "chat")
SORTS = {
    "updated": "newest activity",
    "waiting": "waiting longest",
    "due": "SLA due soonest",
    "priority": "priority",
    "created": "newest first",
}
DUE_SOON = timedelta(hours=1)
_PRIORITY_RANK = {name: rank for rank, name in enumerate(reversed(PRIORITIES))}


@dataclass(frozen=True)
class QueueFilter:
    status: str = "open"
    team: str = ""
    assignee: str = ""  # an agent's name, "none" for nobody's
    priority: str = ""
    sla: str = ""
    tag: str = ""
    language: str = ""
    channel: str = ""
    search: str = ""
    sort: str = "updated"
    page: int = 1
    ignored: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_args(cls, args: Mapping[str, str], *, me: str) -> QueueFilter:
        chosen: dict[str, Any] = {}
        ignored: list[str] = []

        def pick(name: str, allowed: tuple[str, ...] | None = None, limit: int = 100) -> None:
            value = (args.get(name) or "").strip()[:limit]
            if not value:
                return
            if allowed is not None and value not in allowed:
                ignored.append(f"{name}={value}")
                return
            chosen[name] = value

        pick("status", STATUSES)
        pick("priority", PRIORITIES)
        pick("sla", SLA_STATES)
        pick("channel", CHANNELS)
        pick("sort", tuple(SORTS))
        for name in ("team", "assignee", "tag", "language"):
            pick(name)
        pick("search", limit=200)
        if chosen.get("assignee") == "me":
            chosen["assignee"] = me
        try:
            chosen["page"] = max(1, min(int(args.get("page") or 1), 100_000))
        except ValueError:
            ignored.append(f"page={args.get('page')}")
        return cls(**chosen, ignored=tuple(ignored))

    def query_args(self, **changes: Any) -> dict[str, str]:
        """The filter as query arguments (for links to other pages and sorts)."""
        changed = replace(self, **changes)
        defaults = QueueFilter()
        names = ("status", "team", "assignee", "priority", "sla", "tag", "language", "channel")
        args = {
            name: str(getattr(changed, name))
            for name in (*names, "search", "sort", "page")
            if getattr(changed, name) != getattr(defaults, name)
        }
        return args


@dataclass(frozen=True)
class QueueRow:
    conversation: Conversation
    sender: str
    sla_state: str
    due: datetime | None


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    pages: int
    by_team: list[tuple[str, int]]
    now: datetime


def queue_page(session: Session, chosen: QueueFilter, now: datetime, page_size: int) -> QueuePage:
    filtered = _filtered(select(Conversation.id), chosen, now)
    total = session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = min(chosen.page, pages)
    query = (
        _filtered(select(Conversation), chosen, now)
        .options(selectinload(Conversation.tags))
        .order_by(*_order(chosen.sort))
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    conversations = list(session.scalars(query))
    senders = first_senders(session, [c.id for c in conversations])
    rows = [QueueRow(c, senders.get(c.id, ""), *sla_state(c, now)) for c in conversations]
    return QueuePage(rows, total, pages, team_counts(session, chosen, now), now)


def team_counts(session: Session, chosen: QueueFilter, now: datetime) -> list[tuple[str, int]]:
    """Conversations per team under the same filter but for the team."""
    team = func.coalesce(Conversation.team, "")
    query = _filtered(select(team, func.count()), replace(chosen, team=""), now).group_by(team)
    return sorted(((name, int(count)) for name, count in session.execute(query)), key=_by_count)


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def sla_state(conversation: Conversation, now: datetime) -> tuple[str, datetime | None]:
    """breached, due_soon (within the hour), on_track or none, with the soonest due time."""
    unmet = conversation.unmet_sla() if conversation.status != "closed" else {}
    if not unmet:
        return "none", None
    due = min(unmet.values())
    if due <= now:
        return "breached", due
    return ("due_soon" if due <= now + DUE_SOON else "on_track"), due


def _filtered(query: Any, chosen: QueueFilter, now: datetime) -> Any:
    c = Conversation
    if chosen.status == "snoozed":
        query = query.where(c.status == "pending", c.snoozed_until.is_not(None))
    elif chosen.status != "all":
        query = query.where(c.status == chosen.status)
    if chosen.team:
        query = query.where(c.team.is_(None) if chosen.team == "none" else c.team == chosen.team)
    if chosen.assignee:
        none = chosen.assignee == "none"
        query = query.where(c.assignee.is_(None) if none else c.assignee == chosen.assignee)
    if chosen.priority:
        query = query.where(c.priority == chosen.priority)
    if chosen.language:
        query = query.where(c.language == chosen.language)
    if chosen.channel:
        query = query.where(c.channel == chosen.channel)
    if chosen.sla == "breached":
        query = query.where(sla_due_before(now))
    elif chosen.sla == "due_soon":
        query = query.where(sla_due_before(now + DUE_SOON), ~sla_due_before(now))
    elif chosen.sla == "on_track":
        query = query.where(~sla_due_before(now + DUE_SOON), earliest_due() < NEVER_DUE)
    elif chosen.sla == "none":
        query = query.where(earliest_due() >= NEVER_DUE)
    if chosen.tag:
        tagged = (
            select(ConversationTag.conversation_id)
            .join(Tag, Tag.id == ConversationTag.tag_id)
            .where(Tag.name == chosen.tag)
        )
        query = query.where(c.id.in_(tagged))
    if chosen.search:
        # The subject as threading keeps it (case-folded, so that "VÄÄRIN" finds "väärin" on
        # SQLite too, whose LIKE folds ASCII only), or as written; LIKE's own wildcards in what
        # was typed match themselves.
        def pattern(text: str) -> str:
            return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

        query = query.where(
            or_(
                c.normalized_subject.like(pattern(chosen.search.casefold()), escape="\\"),
                c.subject.ilike(pattern(chosen.search), escape="\\"),
            )
        )
    return query


def _order(sort: str) -> list[Any]:
    c = Conversation
    if sort == "waiting":
        return [c.last_customer_message_at.asc(), c.id]
    if sort == "due":
        return [earliest_due(), c.id]
    if sort == "priority":
        rank = case(_PRIORITY_RANK, value=c.priority, else_=len(_PRIORITY_RANK))
        return [rank, c.last_message_at.desc(), c.id.desc()]
    if sort == "created":
        return [c.id.desc()]
    return [c.last_message_at.desc(), c.id.desc()]
