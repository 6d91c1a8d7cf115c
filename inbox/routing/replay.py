"""A candidate rules file run over stored history, compared with the rules in force: what
would change, counted, with a sample (`inbox rules replay`, the desk's rules page). Reads
only; nothing is written."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from inbox.routing.stored_facts import Contexts, facts_of_message
from inbox.store.models import Message
from rules.engine import CompiledRules
from rules.outcome import differences, outcome

CHUNK = 200


@dataclass
class Replayed:
    total: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    #: Up to `sample` changed messages: (message id, conversation id, subject, differences).
    shown: list[tuple[int, int, str, list[str]]] = field(default_factory=list)


def replay_history(
    session: Session,
    candidate: CompiledRules,
    current: CompiledRules | None,
    *,
    since: timedelta,
    now: datetime,
    sample: int = 10,
    limit: int | None = None,
    started: Callable[[int], None] = lambda total: None,
    advanced: Callable[[], None] = lambda: None,
) -> Replayed:
    """Messages received within `since`, newest `limit` of them if given."""
    query = select(Message.id).where(Message.received_at >= now - since)
    if limit is not None:
        query = query.order_by(Message.id.desc()).limit(limit)
    ids = sorted(session.scalars(query).all())
    started(len(ids))
    replayed = Replayed()
    contexts: Contexts = {}
    for chunk in _chunks(ids, CHUNK):
        for message in _messages(session, chunk):
            facts = facts_of_message(session, message, now, contexts)
            after = outcome(candidate.evaluate(facts))
            before = outcome(current.evaluate(facts)) if current is not None else {}
            replayed.total += 1
            changed = differences(before, after)
            replayed.changes.update(changed)
            if changed and len(replayed.shown) < sample:
                replayed.shown.append(
                    (message.id, message.conversation_id, message.subject[:80], changed)
                )
            advanced()
        session.expunge_all()
    return replayed


def _messages(session: Session, ids: list[int]) -> list[Message]:
    return list(
        session.scalars(
            select(Message)
            .where(Message.id.in_(ids))
            .order_by(Message.id)
            .options(selectinload(Message.attachments), selectinload(Message.conversation))
        )
    )


def _chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
