"""SLA due times on conversations, their timers, and what fires when a target comes near or
passes (rules/model.py SlaPolicy; the policy is chosen by the engine, rules/engine.py sla_for).

The targets, each counted in the policy's calendar (business time) or round the clock:

- **first response**: the first agent reply, from the conversation's first message;
- **next response**: once answered, the reply to the customer's oldest unanswered message;
- **resolution**: closing it, from its first message, the clock stopped while it is pending
  (waiting on the customer, or snoozed) or closed: `sla_paused_at` holds when it stopped, and
  the time that was left is given back when it opens again (a reopened conversation goes on
  from where it was, not from zero).

Due times are stored on the conversation when a customer message has passed the rules (and
again when its policy changes); a reply clears the next response, a pause stops resolution.
Each due time has timers (`sla_timers`): the breach itself, and every escalation step of its
target (`before: {first_response: 15m}` fires 15 minutes before). A timer remembers the due time
it was made for, and is dropped unfired when the target was met or moved meanwhile, so nothing
has to chase timers when a conversation changes. The sweep (inbox/service/timers.py) claims
due timers with SKIP LOCKED and acts and deletes them in one transaction: once, whatever number
of daemons sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select
from sqlalchemy.orm import Session

from inbox.routing.stored_facts import facts_of_message
from inbox.routing.tagging import add_tags, remove_tags
from inbox.routing.workload import StoredWorkload
from inbox.routing.writer import RoutingWriter, notify_ping
from inbox.store.models import Conversation, Message, SlaTimer
from inbox.store.sql import least
from rules.model import Actions, RuleSet, SlaPolicy

#: Timers acted on in one transaction.
FIRE_LIMIT = 200
#: Two readings of one due time (a database round trip) are the same within this.
SAME_DUE = timedelta(seconds=1)


def due_after(policy: SlaPolicy, start: datetime, duration: timedelta) -> datetime:
    if policy.calendar is None:
        return start + duration
    return policy.calendar.add(start, duration)


def elapsed(policy: SlaPolicy, start: datetime, end: datetime) -> timedelta:
    if policy.calendar is None:
        return max(timedelta(0), end - start)
    return policy.calendar.between(start, end)


def policy_named(ruleset: RuleSet | None, name: str) -> SlaPolicy | None:
    if ruleset is None or not name:
        return None
    return next((policy for policy in ruleset.sla if policy.name == name), None)


# -- setting due times -----------------------------------------------------------------------


def after_customer_message(
    session: Session,
    conversation: Conversation,
    policy: SlaPolicy | None,
    message_time: datetime,
    now: datetime,
    *,
    started: datetime,
    unanswered: bool = True,
) -> None:
    """Due times once the rules have seen a customer's message; `started` is when the
    conversation's first message came (the first response and resolution count from it).
    `unanswered`: no agent has replied since `message_time` (always, for a message just in)."""
    targets = policy.targets if policy is not None else {}
    if policy is None:
        if conversation.sla_policy:
            conversation.sla_policy = ""
            conversation.first_response_due = None
            conversation.next_response_due = None
            conversation.resolution_due = None
            conversation.sla_paused_at = None
            _drop_timers(session, conversation.id)
        return
    if conversation.sla_policy != policy.name:
        conversation.sla_policy = policy.name
        first = targets.get("first_response")
        conversation.first_response_due = due_after(policy, started, first) if first else None
        resolution = targets.get("resolution")
        conversation.resolution_due = due_after(policy, started, resolution) if resolution else None
        conversation.next_response_due = None
        waiting = conversation.status != "open" and conversation.resolution_due is not None
        conversation.sla_paused_at = now if waiting else None  # a pending one stays stopped
    next_target = targets.get("next_response")
    if (
        next_target
        and unanswered
        and conversation.first_response_at
        and conversation.next_response_due is None
    ):
        conversation.next_response_due = due_after(policy, message_time, next_target)
    if conversation.status == "open":
        resume(conversation, policy, now)
    schedule(session, conversation, policy)


def recheck(
    session: Session,
    ruleset: RuleSet,
    conversation: Conversation,
    now: datetime,
    *,
    rules_changed: bool = False,
) -> None:
    """The policy chosen again after a change no message brought (a person's assignment to
    another team, a rules reload): its latest customer message's facts as the conversation is
    now. Another policy, or new rules (whose targets may differ), count the targets from the
    conversation's start (time paused before is not given back then); the same policy under
    the same rules keeps its due times."""
    if not ruleset.sla and not conversation.sla_policy:
        return
    message = session.scalars(
        select(Message)
        .where(
            Message.conversation_id == conversation.id,
            Message.direction == "in",
            Message.auto_submitted.is_(False),
            Message.bulk.is_(False),
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if message is None:
        return
    policy = ruleset.sla_for(facts_of_message(session, message, now))
    if policy is not None and policy.name == conversation.sla_policy and not rules_changed:
        schedule(session, conversation, policy)
        return
    if policy is not None:
        conversation.sla_policy = ""  # counted again from the start
    first = session.scalar(
        select(Message.received_at)
        .where(Message.conversation_id == conversation.id)
        .order_by(Message.id)
        .limit(1)
    )
    last_in, last_out = conversation.last_customer_message_at, conversation.last_agent_reply_at
    after_customer_message(
        session,
        conversation,
        policy,
        message.received_at or now,
        now,
        started=first or conversation.created_at or now,
        unanswered=last_in is not None and (last_out is None or last_in > last_out),
    )


def recheck_open(
    session: Session, ruleset: RuleSet, now: datetime, *, after_id: int, limit: int = 200
) -> int | None:
    """`recheck` for the next `limit` conversations not closed, by id from `after_id`; the last
    id done, or None when none was left (a rules reload goes through all of them)."""
    conversations = list(
        session.scalars(
            select(Conversation)
            .where(Conversation.id > after_id, Conversation.status != "closed")
            .order_by(Conversation.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for conversation in conversations:
        recheck(session, ruleset, conversation, now, rules_changed=True)
    return conversations[-1].id if conversations else None


def responded(conversation: Conversation, now: datetime) -> None:
    """An agent answered (inbox/routing/reply.py): the next response is met, and the
    conversation now waits on the customer."""
    conversation.next_response_due = None
    pause(conversation, now)


def pause(conversation: Conversation, now: datetime) -> None:
    """Pending: the resolution clock stops (its timers see it and wait)."""
    if conversation.resolution_due is not None and conversation.sla_paused_at is None:
        conversation.sla_paused_at = now


def resume(conversation: Conversation, policy: SlaPolicy | None, now: datetime) -> bool:
    """Open again: resolution gets the time that was left when it stopped. True when the due
    time moved (its timers must be made again)."""
    paused = conversation.sla_paused_at
    if paused is None:
        return False
    conversation.sla_paused_at = None
    due = conversation.resolution_due
    if due is None or policy is None:
        return False
    left = elapsed(policy, paused, due) if due > paused else timedelta(0)
    conversation.resolution_due = due_after(policy, now, left)
    return True


def schedule(session: Session, conversation: Conversation, policy: SlaPolicy) -> None:
    """The conversation's timers, made again from its due times."""
    _drop_timers(session, conversation.id)
    dues = {
        "first_response": None
        if conversation.first_response_at
        else conversation.first_response_due,
        "next_response": conversation.next_response_due,
        "resolution": conversation.resolution_due,
    }
    rows: list[dict[str, Any]] = []
    for target, due in dues.items():
        if due is None or target not in policy.targets:
            continue
        rows.append(_timer(conversation.id, target, -1, due, due))
        for step, escalation in enumerate(policy.escalate):
            if escalation.target == target:
                fire_at = due - escalation.before if escalation.before is not None else due
                rows.append(_timer(conversation.id, target, step, due, fire_at))
    if rows:
        session.add_all(SlaTimer(**row) for row in rows)


def _timer(
    conversation_id: int, target: str, step: int, due: datetime, fire_at: datetime
) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "target": target,
        "step": step,
        "due": due,
        "fire_at": fire_at,
    }


def _drop_timers(session: Session, conversation_id: int) -> None:
    session.execute(delete(SlaTimer).where(SlaTimer.conversation_id == conversation_id))


# -- what is breached ------------------------------------------------------------------------


def breached_targets(conversation: Conversation, now: datetime) -> list[str]:
    """The targets that have passed unmet, for `conversations list --breached` and show."""
    return [target for target, due in conversation.unmet_sla().items() if due <= now]


#: What `earliest_due` gives a conversation with no unmet target.
NEVER_DUE = datetime(9999, 1, 1, tzinfo=UTC)


def earliest_due() -> ColumnElement[Any]:
    """The soonest of a conversation's unmet due times, for ordering (NULLs last)."""
    c = Conversation
    far = NEVER_DUE
    first = case((c.first_response_at.is_(None), c.first_response_due), else_=None)
    resolution = case((c.sla_paused_at.is_(None), c.resolution_due), else_=None)
    return least(
        func.coalesce(first, far),
        func.coalesce(c.next_response_due, far),
        func.coalesce(resolution, far),
    )


def sla_due_before(moment: datetime) -> ColumnElement[bool]:
    """Open conversations with a target unmet and due by `moment` (NULL-free, so that its
    negation is right too)."""
    c = Conversation
    return and_(
        c.status != "closed",
        or_(
            and_(
                c.first_response_at.is_(None),
                c.first_response_due.is_not(None),
                c.first_response_due <= moment,
            ),
            and_(c.next_response_due.is_not(None), c.next_response_due <= moment),
            and_(
                c.sla_paused_at.is_(None),
                c.resolution_due.is_not(None),
                c.resolution_due <= moment,
            ),
        ),
    )


# -- firing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    conversation_id: int
    target: str
    #: "breached" or the escalation step as the policy says it ("first_response due in 15 min").
    what: str
    team: str

    @property
    def kind(self) -> str:
        return "breach" if self.what == "breached" else "escalation"


def timer_due(now: datetime) -> ColumnElement[bool]:
    """SLA timers whose time has come by `now`."""
    return SlaTimer.fire_at <= now


class FiredList(list[Fired]):
    """What a sweep fired, and whether it claimed every timer that was due."""

    def __init__(self, *, claimed_all: bool) -> None:
        super().__init__()
        self.claimed_all = claimed_all


def fire_due(
    session: Session,
    now: datetime,
    ruleset: RuleSet | None,
    *,
    limit: int = FIRE_LIMIT,
) -> FiredList:
    """Act on up to `limit` timers that are due, in the caller's transaction; what fired
    (`claimed_all` says whether `limit` held them all)."""
    timers = list(
        session.scalars(
            select(SlaTimer)
            .where(timer_due(now))
            .order_by(SlaTimer.fire_at, SlaTimer.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    writer = RoutingWriter(session, now)
    fired = FiredList(claimed_all=len(timers) < limit)
    for timer in timers:
        session.delete(timer)
        conversation = session.get(Conversation, timer.conversation_id)
        if conversation is None:
            continue
        due = conversation.unmet_sla().get(timer.target)
        if due is None or abs(due - timer.due) > SAME_DUE:
            continue  # met, paused or moved since the timer was made
        policy = policy_named(ruleset, conversation.sla_policy)
        actor = f"sla:{conversation.sla_policy}"
        detail: dict[str, Any] = {"target": timer.target, "due": timer.due.isoformat()}
        if timer.step < 0:
            writer.event(conversation.id, "sla_breached", actor, detail)
            fired.append(Fired(conversation.id, timer.target, "breached", conversation.team or ""))
            continue
        if policy is None or timer.step >= len(policy.escalate):
            continue  # the rules changed: their reload makes the timers again
        escalation = policy.escalate[timer.step]
        said = escalation.describe()
        writer.event(conversation.id, "sla_escalated", actor, {**detail, "step": said})
        _act(session, writer, ruleset, conversation, escalation.then, actor, said, timer.id)
        fired.append(Fired(conversation.id, timer.target, said, conversation.team or ""))
    writer.flush()
    return fired


def _act(
    session: Session,
    writer: RoutingWriter,
    ruleset: RuleSet | None,
    conversation: Conversation,
    then: Actions,
    actor: str,
    why: str,
    timer_id: int,
) -> None:
    """An escalation's actions, written as a rule's are (events naming the policy)."""
    add_tags(session, writer, conversation.id, then.tag, actor=actor, matched=why)
    remove_tags(session, writer, conversation.id, then.untag, actor=actor, matched=why)
    if then.priority and then.priority != conversation.priority:
        detail = {"from": conversation.priority, "to": then.priority, "matched": why}
        conversation.priority = then.priority
        writer.event(conversation.id, "priority_set", actor, detail)
    if then.assign is not None and ruleset is not None:
        choice = StoredWorkload(session, ruleset, writer.now).choose(then.assign, conversation)
        if choice.agent and choice.agent != conversation.assignee:
            writer.assign(
                conversation,
                ruleset.agents[choice.agent],
                team=choice.team or conversation.team or "",
                actor=actor,
                detail={"strategy": choice.strategy, "team": choice.team, "matched": why},
                why=why,
                ping_key=f"sla-assign:{timer_id}",
            )
    for notify in then.notify:
        if ruleset is None:
            break
        ping = notify_ping(ruleset, conversation, notify.target(), notify.text or why, actor, why)
        if ping is not None:
            writer.outbox(
                conversation.id, key=f"sla-notify:{timer_id}:{notify.target()}", payload=ping
            )
