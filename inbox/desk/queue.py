"""The queue page's query: open conversations filtered, sorted and paged in SQL, with the
counts per team of the same filter (a lead sees where the work is), and each row's SLA state.

Filters come from the page's query string, checked here: an unknown value is dropped (the page
says which), never passed to SQL as text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
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
    first: list[Conversation] | None = None
    if chosen.page == 1 and not chosen.team and chosen.sort != "priority":
        # The first page read first: when it is not full it holds every row of the filter,
        # and the counts come from it without a second pass over the table (a subject
        # search, whose LIKE no index serves, reads the conversations once instead of twice).
        first = _conversations(session, _page_query(chosen, now, 0, page_size))
        if len(first) < page_size:
            counts: dict[tuple[str | None, str], int] = {}
            for c in first:
                counts[(c.team, c.priority)] = counts.get((c.team, c.priority), 0) + 1
            return _page(session, first, counts, len(first), 1, now)
    counts = _counts(session, chosen, now)
    total = sum(count for (team, _), count in counts.items() if _team_matches(chosen, team))
    pages = max(1, -(-total // page_size))
    page = min(chosen.page, pages)
    offset = (page - 1) * page_size
    if chosen.sort == "priority":
        conversations = _by_priority(session, chosen, now, counts, offset, page_size)
    elif first is not None and page == 1:
        conversations = first
    else:
        conversations = _conversations(session, _page_query(chosen, now, offset, page_size))
    return _page(session, conversations, counts, total, pages, now)


def _page_query(chosen: QueueFilter, now: datetime, offset: int, limit: int) -> Any:
    return (
        _filtered(select(Conversation), chosen, now)
        .order_by(*_order(chosen.sort))
        .limit(limit)
        .offset(offset)
    )


def _page(
    session: Session,
    conversations: list[Conversation],
    counts: Mapping[tuple[str | None, str], int],
    total: int,
    pages: int,
    now: datetime,
) -> QueuePage:
    senders = first_senders(session, [c.id for c in conversations])
    rows = [QueueRow(c, senders.get(c.id, ""), *sla_state(c, now)) for c in conversations]
    return QueuePage(rows, total, pages, _per_team(counts), now)


def _counts(
    session: Session, chosen: QueueFilter, now: datetime
) -> dict[tuple[str | None, str], int]:
    """Conversations per team under the filter but for the team, and per priority too when
    sorted by it ("" otherwise): one statement for the page's total, the counts per team and
    where each priority's rows start (read from ix_conversations_status_team_priority alone
    when only the status is chosen)."""
    c = Conversation
    by_priority = [c.priority] if chosen.sort == "priority" else []
    query = _filtered(
        select(func.count(), c.team, *by_priority), replace(chosen, team=""), now
    ).group_by(c.team, *by_priority)
    return {(row[1], row[2] if by_priority else ""): int(row[0]) for row in session.execute(query)}


def _team_matches(chosen: QueueFilter, team: str | None) -> bool:
    if not chosen.team:
        return True
    if chosen.team == "none":
        return team is None
    return team == chosen.team


def _per_team(counts: Mapping[tuple[str | None, str], int]) -> list[tuple[str, int]]:
    teams: dict[str, int] = {}
    for (team, _), count in counts.items():
        teams[team or ""] = teams.get(team or "", 0) + count
    return sorted(teams.items(), key=_by_count)


def _conversations(session: Session, query: Any) -> list[Conversation]:
    return list(session.scalars(query.options(selectinload(Conversation.tags))))


def _by_priority(
    session: Session,
    chosen: QueueFilter,
    now: datetime,
    counts: Mapping[tuple[str | None, str], int],
    offset: int,
    limit: int,
) -> list[Conversation]:
    """The page in priority order (then newest activity): each priority's rows read by
    ix_conversations_status_last_message on their own, from the counts of each, rather than
    all the filter's rows sorted by a rank computed per row."""
    c = Conversation
    per_rank: dict[int, int] = {}
    for (team, priority), count in counts.items():
        if _team_matches(chosen, team):
            rank = _PRIORITY_RANK.get(priority, len(_PRIORITY_RANK))
            per_rank[rank] = per_rank.get(rank, 0) + count
    ranked = sorted(_PRIORITY_RANK.items(), key=lambda item: item[1])
    conversations: list[Conversation] = []
    for rank in sorted(per_rank):
        if limit <= 0:
            break
        count = per_rank[rank]
        if offset >= count:
            offset -= count
            continue
        if rank < len(ranked):
            where = c.priority == ranked[rank][0]
        else:
            where = c.priority.not_in(list(_PRIORITY_RANK))
        found = _conversations(
            session,
            _filtered(select(c), chosen, now)
            .where(where)
            .order_by(c.last_message_at.desc(), c.id.desc())
            .limit(limit)
            .offset(offset),
        )
        conversations += found
        limit -= len(found)
        offset = 0
    return conversations


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
    if sort == "created":
        return [c.id.desc()]
    return [c.last_message_at.desc(), c.id.desc()]
