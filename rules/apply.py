"""Running the rules on the messages of a batch and writing what they decide, in its transaction.

For each new message: its facts (message, conversation, contact, time) are gathered, the rules
evaluated, and the decisions written to the conversation together with an event per decision
naming the rule and what it matched (the explanation `inbox conversations show` prints), and
outbox rows for the Slack messages. All of it commits with the batch or not at all.

Assignment happens on a new conversation, on a follow-up that reopened a closed one, and on one
still waiting unassigned; an assigned conversation keeps its agent unless the rule says
`reassign: true`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from inbox.normalize.addresses import normalize_address
from inbox.store.batch_writer import Arrival
from inbox.store.models import (
    Contact,
    ContactTag,
    Conversation,
    ConversationTag,
    Event,
    OutboxItem,
    Tag,
)
from inbox.store.sql import chunked, insert_ignore_many
from rules.assignment import Assigner
from rules.engine import CompiledRules, Evaluation
from rules.facts import Facts
from rules.model import Agent

log = structlog.get_logger(__name__)


def facts_from_columns(
    columns: Mapping[str, Any],
    attachments: Sequence[Mapping[str, Any]],
    conversation: Conversation,
    *,
    now: datetime,
    new_conversation: bool,
    tags: frozenset[str],
    contact_known: bool,
    contact_conversations: int,
    contact_tags: frozenset[str],
    message_count: int = 0,
) -> Facts:
    """Facts of a stored message (the same columns in the batch writer and in the store)."""
    created = conversation.created_at or now
    return Facts(
        now=now,
        channel=columns.get("channel") or "email",
        connector=columns.get("connector") or "",
        from_address=_matched_form(columns.get("from_address") or ""),
        from_name=columns.get("from_name") or "",
        to=tuple(columns.get("to_addresses") or ()),
        cc=tuple(columns.get("cc_addresses") or ()),
        subject=columns.get("subject") or "",
        body=columns.get("new_text") or columns.get("text") or "",
        headers=dict(columns.get("headers") or {}),
        attachment_types=tuple(a["content_type"] for a in attachments),
        attachment_names=tuple(a["filename"] for a in attachments if a["filename"]),
        language=columns.get("language") or "",
        auto_submitted=bool(columns.get("auto_submitted")),
        bulk=bool(columns.get("bulk") or columns.get("list_mail")),
        new_conversation=new_conversation,
        status=conversation.status,
        tags=tags,
        priority=conversation.priority,
        assignee=conversation.assignee or "",
        team=conversation.team or "",
        message_count=message_count or conversation.message_count,
        age=max(now - created, timedelta(0)),
        contact_known=contact_known,
        contact_conversations=contact_conversations,
        contact_tags=contact_tags,
    )


def _matched_form(address: str) -> str:
    """The message keeps a mail address as the sender wrote it; rules see the form identities
    match on, the same as on arrival. Phone numbers and Slack ids have no "@" and stay."""
    return normalize_address(address) if "@" in address else address


def stored_context(session: Session, conversation: Conversation) -> dict[str, Any]:
    """The conversation and contact facts of a stored conversation, as they are now (for
    `inbox rules test --conversation` and `replay`, which judge stored messages)."""
    contact = conversation.contact_id
    tags = tags_by_owner(session, ConversationTag.conversation_id, [conversation.id])
    contact_tags = tags_by_owner(session, ContactTag.contact_id, [contact] if contact else [])
    earlier = 0
    if contact is not None:
        earlier = (
            session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(
                    Conversation.contact_id == contact,
                    Conversation.created_at < conversation.created_at,
                )
            )
            or 0
        )
    return {
        "tags": frozenset(tags.get(conversation.id, ())),
        "contact_known": earlier > 0,
        "contact_conversations": int(earlier),
        "contact_tags": frozenset(contact_tags.get(contact or 0, ())),
    }


def tags_by_owner(session: Session, owner: Any, ids: Sequence[int]) -> dict[int, set[str]]:
    """Tag names per conversation (`ConversationTag.conversation_id`) or contact
    (`ContactTag.contact_id`)."""
    link = owner.class_
    found: dict[int, set[str]] = {}
    for chunk in chunked(list(ids)):
        rows = session.execute(
            select(owner, Tag.name).join(Tag, Tag.id == link.tag_id).where(owner.in_(chunk))
        )
        for owner_id, name in rows:
            found.setdefault(owner_id, set()).add(name)
    return found


@dataclass
class Tally:
    """What the rules decided, for /metrics: events per rule, assignments per agent."""

    decisions: Counter[str] = field(default_factory=Counter)
    assignments: Counter[str] = field(default_factory=Counter)

    def count(self, events: Sequence[dict[str, Any]]) -> None:
        for event in events:
            actor = str(event.get("actor") or "")
            if actor.startswith("rule:"):
                self.decisions[actor[5:]] += 1
            if event.get("kind") == "assigned":
                self.assignments[str(event["detail"].get("agent") or "")] += 1


def run_rules(
    session: Session,
    compiled: CompiledRules,
    arrivals: Sequence[Arrival],
    *,
    now: datetime,
    batch_started: datetime,
    tally: Tally | None = None,
) -> list[Evaluation]:
    """The rules for a batch's messages, in a savepoint. If applying them fails (a bug, a
    refused row), the messages stay stored: each is tried alone, and one that still fails is
    recorded as `rules_failed` on its conversation instead of failing the batch. `tally` (for
    /metrics) counts each rule's decisions and each agent's assignments."""
    if not arrivals:
        return []
    try:
        with session.begin_nested():
            return RulesPass(session, compiled, now, batch_started, tally).run(arrivals)
    except Exception as error:
        log.warning("rules_pass_failed_retrying_one_by_one", error=repr(error)[:300])
    evaluations = []
    for arrival in arrivals:
        try:
            with session.begin_nested():
                rules_pass = RulesPass(session, compiled, now, batch_started, tally)
                evaluations.extend(rules_pass.run([arrival]))
        except Exception as error:
            log.exception("rules_failed", conversation_id=arrival.conversation.id)
            session.add(
                Event(
                    conversation_id=arrival.conversation.id,
                    message_id=arrival.message_id,
                    kind="rules_failed",
                    actor="rules",
                    detail={"error": repr(error)[:500], "rules_version": compiled.version},
                    created_at=now,
                )
            )
    return evaluations


def assignment_payload(
    agent: Agent, *, previous: str, team: str, rule: str, why: str
) -> dict[str, Any]:
    """What a `slack.assignment` row carries to the notifier (inbox/outbox/notifier.py), the same
    whether a rule assigned or a person did (`inbox conversations assign`, where rule is "")."""
    return {
        "agent": agent.name,
        "slack_user": agent.slack,
        "previous_agent": previous,
        "team": team,
        "rule": rule,
        "why": why,
    }


class RulesPass:
    """Evaluates and applies the rules for one batch, inside its transaction."""

    def __init__(
        self,
        session: Session,
        compiled: CompiledRules,
        now: datetime,
        batch_started: datetime,
        tally: Tally | None = None,
    ) -> None:
        self.session = session
        self.tally = tally
        self.compiled = compiled
        self.ruleset = compiled.ruleset
        self.now = now
        self.batch_started = batch_started
        self.assigner = Assigner(session, self.ruleset, now)
        self._tag_ids: dict[str, int] = {}
        self.log = log.bind(rules_version=compiled.version)
        # Rows written together at the end of the pass (a statement per row cost more than
        # the rules themselves): events, outbox items, and tags as (owner id, tag name).
        self._events: list[dict[str, Any]] = []
        self._outbox_rows: list[dict[str, Any]] = []
        self._new_conversation_tags: list[tuple[int, str]] = []
        self._new_contact_tags: list[tuple[int, str]] = []

    def run(self, arrivals: Sequence[Arrival]) -> list[Evaluation]:
        if not arrivals:
            return []
        conversations = {a.conversation.id: a.conversation for a in arrivals}
        tags = tags_by_owner(self.session, ConversationTag.conversation_id, list(conversations))
        contacts = {c.contact_id for c in conversations.values() if c.contact_id is not None}
        self.assigner.contacts = contacts
        contact_tags = tags_by_owner(self.session, ContactTag.contact_id, sorted(contacts))
        before = self._conversations_before_batch(sorted(contacts))
        known = self._contacts_known_before(sorted(contacts))
        opened_in_batch: dict[int, set[int]] = {}
        evaluations = []
        for arrival in arrivals:
            conversation = arrival.conversation
            contact = conversation.contact_id
            earlier = 0
            if contact is not None:
                # Conversations the contact had before this one: those from before the batch
                # (less this one, if it is among them) and those this batch opened earlier.
                own = conversation.created_at is not None and (
                    conversation.created_at < self.batch_started
                )
                opened = opened_in_batch.setdefault(contact, set())
                earlier = before.get(contact, 0) - int(own) + len(opened - {conversation.id})
                if arrival.new_conversation:
                    opened.add(conversation.id)
            facts = facts_from_columns(
                arrival.columns,
                arrival.attachments,
                conversation,
                now=self.now,
                new_conversation=arrival.new_conversation,
                tags=frozenset(tags.get(conversation.id, ())),
                contact_known=contact in known,
                contact_conversations=max(0, earlier),
                contact_tags=frozenset(contact_tags.get(contact, ())) if contact else frozenset(),
                message_count=arrival.message_count,
            )
            evaluation = self.compiled.evaluate(facts)
            self._apply(
                arrival,
                evaluation,
                tags.setdefault(conversation.id, set()),
                contact_tags.setdefault(contact or 0, set()),
            )
            evaluations.append(evaluation)
        self._write_rows()
        if self.tally is not None:
            self.tally.count(self._events)
        return evaluations

    def _write_rows(self) -> None:
        tag_ids = self._tag_ids_of(
            {tag for _, tag in self._new_conversation_tags}
            | {tag for _, tag in self._new_contact_tags}
        )
        insert_ignore_many(
            self.session,
            ConversationTag,
            [{"conversation_id": o, "tag_id": tag_ids[t]} for o, t in self._new_conversation_tags],
            ["conversation_id", "tag_id"],
        )
        insert_ignore_many(
            self.session,
            ContactTag,
            [{"contact_id": o, "tag_id": tag_ids[t]} for o, t in self._new_contact_tags],
            ["contact_id", "tag_id"],
        )
        insert_ignore_many(self.session, OutboxItem, self._outbox_rows, ["idempotency_key"])
        if self._events:
            self.session.execute(insert(cast(Table, Event.__table__)), self._events)

    # -- writing decisions -------------------------------------------------------------------

    def _apply(
        self, arrival: Arrival, evaluation: Evaluation, tags: set[str], contact_tags: set[str]
    ) -> None:
        decisions = evaluation.decisions
        conversation = arrival.conversation
        matched = {result.rule.name: result.verdict.why for result in evaluation.matched}
        for result in evaluation.matched:
            self._event(arrival, "rule_matched", result.rule.name, {"matched": result.verdict.why})
        for tag, rule in decisions.tags.items():
            if tag not in tags:
                self._new_conversation_tags.append((conversation.id, tag))
                tags.add(tag)
                self._event(arrival, "tag_added", rule, {"tag": tag, "matched": matched[rule]})
        for tag, rule in decisions.untags.items():
            if tag in tags:
                self.session.execute(
                    delete(ConversationTag).where(
                        ConversationTag.conversation_id == conversation.id,
                        ConversationTag.tag_id == self._tag_ids_of({tag})[tag],
                    )
                )
                self._new_conversation_tags = [
                    pair for pair in self._new_conversation_tags if pair != (conversation.id, tag)
                ]
                tags.discard(tag)
                self._event(arrival, "tag_removed", rule, {"tag": tag, "matched": matched[rule]})
        if conversation.contact_id is not None:
            for tag, rule in decisions.contact_tags.items():
                if tag not in contact_tags:
                    self._new_contact_tags.append((conversation.contact_id, tag))
                    contact_tags.add(tag)
                    detail = {"tag": tag, "contact_id": conversation.contact_id}
                    self._event(
                        arrival, "contact_tagged", rule, {**detail, "matched": matched[rule]}
                    )
        if decisions.priority and decisions.priority.value != conversation.priority:
            setting = decisions.priority
            detail = {
                "from": conversation.priority,
                "to": setting.value,
                "matched": matched[setting.rule],
            }
            conversation.priority = setting.value
            self._event(arrival, "priority_set", setting.rule, detail)
        if decisions.status and decisions.status.value != conversation.status:
            setting = decisions.status
            detail = {
                "from": conversation.status,
                "to": setting.value,
                "matched": matched[setting.rule],
            }
            self.assigner.status_changed(conversation, conversation.status, setting.value)
            conversation.status = setting.value
            if setting.value == "closed":
                conversation.closed_at = self.now
            self._event(arrival, "status_set", setting.rule, detail)
        for what, value, rule, replaced_by in decisions.overridden:
            self._event(
                arrival,
                "decision_overridden",
                rule,
                {"what": what, "value": value, "overridden_by": replaced_by},
            )
        if decisions.assign is not None:
            self._assign(arrival, decisions.assign[0], decisions.assign[1], matched)
        for notify, rule in decisions.notify.values():
            self._notify(arrival, notify.target(), notify.text, rule, matched[rule])

    def _assign(self, arrival: Arrival, assign: Any, rule: str, matched: Mapping[str, str]) -> None:
        conversation = arrival.conversation
        reopened_or_new = arrival.new_conversation or arrival.reopened
        if conversation.assignee and not (reopened_or_new or assign.reassign):
            return  # a follow-up in an assigned conversation: its agent keeps it
        choice = self.assigner.choose(assign, conversation)
        detail: dict[str, Any] = {
            "strategy": choice.strategy,
            "team": choice.team,
            "matched": matched[rule],
        }
        if choice.skipped:
            detail["skipped"] = choice.skipped
        if choice.note:
            detail["note"] = choice.note
        if not choice.agent:
            if conversation.assignee:
                # Nobody else can take it now: whoever has it keeps it, in their team.
                detail.update({"assignee": conversation.assignee, "reason": "nobody else can"})
                self._event(arrival, "assignment_kept", rule, detail)
                return
            conversation.team = choice.team or conversation.team
            self._event(arrival, "queued", rule, detail)
            self.log.info(
                "conversation_queued", conversation_id=conversation.id, team=choice.team, rule=rule
            )
            team = self.ruleset.teams.get(choice.team) if choice.team else None
            if team is not None and team.slack_channel:
                # Nobody free: the team's channel hears of it, so someone can pick it up.
                self._outbox(
                    arrival,
                    kind="slack.queued",
                    key=f"queued:{conversation.id}:{arrival.message_id}:{team.name}",
                    payload={
                        "team": team.name,
                        "slack_channel": team.slack_channel,
                        "rule": rule,
                        "why": matched[rule],
                        "skipped": choice.skipped,
                    },
                )
            return
        conversation.team = choice.team or conversation.team
        if choice.agent == conversation.assignee:
            return  # theirs already: no new event, no second ping
        previous = conversation.assignee
        self.assigner.moved(conversation, choice.agent)
        conversation.assignee = choice.agent
        detail.update({"agent": choice.agent, "from": previous or ""})
        self._event(arrival, "assigned", rule, detail)
        self.log.info(
            "conversation_assigned", conversation_id=conversation.id, agent=choice.agent, rule=rule
        )
        self._outbox(
            arrival,
            kind="slack.assignment",
            key=f"assign:{conversation.id}:{arrival.message_id}:{choice.agent}",
            payload=assignment_payload(
                self.ruleset.agents[choice.agent],
                previous=previous or "",
                team=choice.team,
                rule=rule,
                why=matched[rule],
            ),
        )

    def _notify(self, arrival: Arrival, target: str, text: str, rule: str, why: str) -> None:
        kind, _, name = target.partition(":")
        payload: dict[str, Any] = {"target": target, "text": text, "rule": rule, "why": why}
        if kind == "agent":
            payload["slack_user"] = self.ruleset.agents[name].slack
        elif kind == "team":
            payload["slack_channel"] = self.ruleset.teams[name].slack_channel
        else:
            payload["slack_channel"] = name
        conversation = arrival.conversation
        self._outbox(
            arrival,
            kind="slack.notify",
            key=f"notify:{conversation.id}:{arrival.message_id}:{rule}:{target}",
            payload=payload,
        )
        self._event(arrival, "notified", rule, {"target": target, "matched": why})

    # -- rows --------------------------------------------------------------------------------

    def _event(self, arrival: Arrival, kind: str, rule: str, detail: dict[str, Any]) -> None:
        # Every decision, at DEBUG: the store's events are the record (`conversations show`);
        # at INFO only assignments and queueing are logged, a line per tag would drown them.
        self.log.debug(
            "rule_decision", conversation_id=arrival.conversation.id, rule=rule, decision=kind
        )
        self._events.append(
            {
                "conversation_id": arrival.conversation.id,
                "message_id": arrival.message_id,
                "kind": kind,
                "actor": f"rule:{rule}"[:200],
                "detail": {**detail, "rules_version": self.compiled.version},
                "created_at": self.now,
            }
        )

    def _outbox(self, arrival: Arrival, *, kind: str, key: str, payload: dict[str, Any]) -> None:
        """Idempotent on its key: replaying a batch after a crash never pings twice."""
        self._outbox_rows.append(
            {
                "kind": kind,
                "idempotency_key": key[:200],
                "conversation_id": arrival.conversation.id,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": self.now,
                "last_error": "",
                "result": {},
                "created_at": self.now,
            }
        )

    def _tag_ids_of(self, names: set[str]) -> dict[str, int]:
        missing = sorted(names - set(self._tag_ids))
        if missing:
            insert_ignore_many(self.session, Tag, [{"name": n} for n in missing], ["name"])
            rows = self.session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(missing)))
            self._tag_ids.update({name: tag_id for name, tag_id in rows})
        return self._tag_ids

    # -- what the facts need from the store --------------------------------------------------

    def _conversations_before_batch(self, ids: list[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for chunk in chunked(ids):
            rows = self.session.execute(
                select(Conversation.contact_id, func.count())
                .where(
                    Conversation.contact_id.in_(chunk),
                    Conversation.created_at < self.batch_started,
                )
                .group_by(Conversation.contact_id)
            )
            found.update({contact: int(count) for contact, count in rows if contact is not None})
        return found

    def _contacts_known_before(self, ids: list[int]) -> set[int]:
        known: set[int] = set()
        for chunk in chunked(ids):
            known.update(
                self.session.scalars(
                    select(Contact.id).where(
                        Contact.id.in_(chunk), Contact.created_at < self.batch_started
                    )
                )
            )
        return known
