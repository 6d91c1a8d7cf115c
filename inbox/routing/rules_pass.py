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

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from inbox.routing.auto_reply import send_auto_reply
from inbox.routing.sla import after_customer_message, pause
from inbox.routing.stored_facts import facts_from_columns, tags_by_owner
from inbox.routing.workload import StoredWorkload
from inbox.routing.writer import RoutingWriter, notify_ping
from inbox.store.batch_writer import Arrival
from inbox.store.models import Contact, ContactTag, Conversation, ConversationTag, Event, Tag
from inbox.store.outbox_kinds import QueuedPing
from inbox.store.sql import chunked, insert_ignore_many
from rules.answers import Answers
from rules.engine import CompiledRules, Evaluation
from rules.facts import Facts
from rules.model import Assign

log = structlog.get_logger(__name__)


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
    answers: Answers | None = None,
) -> list[Evaluation]:
    """The rules for a batch's messages, in a savepoint. If applying them fails (a bug, a
    refused row), the messages stay stored: each is tried alone, and one that still fails is
    recorded as `rules_failed` on its conversation instead of failing the batch. `tally` (for
    /metrics) counts each rule's decisions and each agent's assignments."""
    if not arrivals:
        return []
    try:
        with session.begin_nested():
            return RulesPass(session, compiled, now, batch_started, tally, answers).run(arrivals)
    except Exception as error:
        log.warning("rules_pass_failed_retrying_one_by_one", error=repr(error)[:300])
    evaluations = []
    for arrival in arrivals:
        try:
            with session.begin_nested():
                rules_pass = RulesPass(session, compiled, now, batch_started, tally, answers)
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


class RulesPass:
    """Evaluates and applies the rules for one batch, inside its transaction."""

    def __init__(
        self,
        session: Session,
        compiled: CompiledRules,
        now: datetime,
        batch_started: datetime,
        tally: Tally | None = None,
        answers: Answers | None = None,
    ) -> None:
        self.session = session
        #: The canned answers an `auto_reply` sends.
        self.answers = answers
        self.tally = tally
        self.compiled = compiled
        self.ruleset = compiled.ruleset
        self.now = now
        self.batch_started = batch_started
        self.workload = StoredWorkload(session, self.ruleset, now)
        self.writer = RoutingWriter(session, now, rules_version=compiled.version)
        self._tag_ids: dict[str, int] = {}
        self.log = log.bind(rules_version=compiled.version)
        # Written together at the end of the pass (a statement per row cost more than the
        # rules themselves), with the writer's events and outbox rows: tags as (owner, name).
        self._new_conversation_tags: list[tuple[int, str]] = []
        self._new_contact_tags: list[tuple[int, str]] = []

    def run(self, arrivals: Sequence[Arrival]) -> list[Evaluation]:
        if not arrivals:
            return []
        conversations = {a.conversation.id: a.conversation for a in arrivals}
        tags = tags_by_owner(self.session, ConversationTag.conversation_id, list(conversations))
        contacts = {c.contact_id for c in conversations.values() if c.contact_id is not None}
        self.workload.contacts = contacts
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
            if self.ruleset.sla and not facts.auto_submitted and not facts.bulk:
                self._sla(arrival, facts, tags[conversation.id])
            if evaluation.decisions.auto_reply is not None:
                reply, rule = evaluation.decisions.auto_reply
                send_auto_reply(
                    self.session,
                    conversation,
                    arrival.columns,
                    reply,
                    rule,
                    answers=self.answers,
                    ruleset=self.ruleset,
                    now=self.now,
                    message_id=arrival.message_id,
                )
            evaluations.append(evaluation)
        if self.tally is not None:
            self.tally.count(self.writer.events)
        self._write_rows()
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
        self.writer.flush()

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
            self.workload.status_changed(conversation, conversation.status, setting.value)
            conversation.status = setting.value
            if setting.value == "closed":
                conversation.closed_at = self.now
            if setting.value != "open":
                pause(conversation, self.now)
            self._event(arrival, "status_set", setting.rule, detail)
        for what, value, rule, replaced_by in decisions.overridden:
            self._event(
                arrival,
                "decision_overridden",
                rule,
                {"what": what, "value": value, "overridden_by": replaced_by},
            )
        survey = decisions.survey
        if (
            survey
            and conversation.csat_sent_at is None
            and conversation.csat_survey != survey.value
        ):
            conversation.csat_survey = survey.value
            self._event(arrival, "survey_planned", survey.rule, {"survey": survey.value})
        for name, found in decisions.extracted.items():
            attributes = dict(conversation.attributes or {})
            if attributes.get(name) != found.value:
                detail = {"name": name, "value": found.value, "was": attributes.get(name, "")}
                attributes[name] = found.value
                conversation.attributes = attributes
                self._event(arrival, "attribute_set", found.rule, detail)
        if decisions.assign is not None:
            self._assign(arrival, decisions.assign[0], decisions.assign[1], matched)
        for notify, rule in decisions.notify.values():
            self._notify(arrival, notify.target(), notify.text, rule, matched[rule])

    def _assign(
        self, arrival: Arrival, assign: Assign, rule: str, matched: Mapping[str, str]
    ) -> None:
        conversation = arrival.conversation
        reopened_or_new = arrival.new_conversation or arrival.reopened
        if conversation.assignee and not (reopened_or_new or assign.reassign):
            return  # a follow-up in an assigned conversation: its agent keeps it
        choice = self.workload.choose(assign, conversation)
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
                self.writer.outbox(
                    conversation.id,
                    key=f"queued:{conversation.id}:{arrival.message_id}:{team.name}",
                    payload=QueuedPing(
                        team=team.name,
                        slack_channel=team.slack_channel,
                        rule=rule,
                        why=matched[rule],
                        skipped=choice.skipped,
                    ),
                )
            return
        conversation.team = choice.team or conversation.team
        if choice.agent == conversation.assignee:
            return  # theirs already: no new event, no second ping
        self.workload.moved(conversation, choice.agent)
        self.writer.assign(
            conversation,
            self.ruleset.agents[choice.agent],
            team=conversation.team or "",
            actor=f"rule:{rule}",
            detail=detail,
            rule=rule,
            why=matched[rule],
            ping_key=f"assign:{conversation.id}:{arrival.message_id}:{choice.agent}",
            message_id=arrival.message_id,
        )
        self.log.info(
            "conversation_assigned", conversation_id=conversation.id, agent=choice.agent, rule=rule
        )

    def _sla(self, arrival: Arrival, facts: Facts, tags: set[str]) -> None:
        """The SLA policy for the conversation as the rules left it (their priority, team and
        tags count), and its due times from this message."""
        conversation = arrival.conversation
        after = dataclasses.replace(
            facts,
            priority=conversation.priority,
            team=conversation.team or "",
            assignee=conversation.assignee or "",
            status=conversation.status,
            tags=frozenset(tags),
        )
        policy = self.ruleset.sla_for(after)
        received = arrival.columns.get("received_at") or self.now
        started = received if arrival.new_conversation else conversation.created_at or received
        if policy is not None and policy.name != conversation.sla_policy:
            detail = {"policy": policy.name, "targets": sorted(policy.targets)}
            self.writer.event(
                conversation.id,
                "sla_policy_set",
                f"sla:{policy.name}",
                detail,
                message_id=arrival.message_id,
            )
        after_customer_message(
            self.session, conversation, policy, received, self.now, started=started
        )

    def _notify(self, arrival: Arrival, target: str, text: str, rule: str, why: str) -> None:
        conversation = arrival.conversation
        ping = notify_ping(self.ruleset, conversation, target, text, rule, why)
        if ping is None:
            self._event(arrival, "notify_skipped", rule, {"target": target, "reason": "nobody"})
            return
        self.writer.outbox(
            conversation.id,
            key=f"notify:{conversation.id}:{arrival.message_id}:{rule}:{target}",
            payload=ping,
        )
        self._event(arrival, "notified", rule, {"target": target, "matched": why})

    # -- rows --------------------------------------------------------------------------------

    def _event(self, arrival: Arrival, kind: str, rule: str, detail: dict[str, Any]) -> None:
        # Every decision, at DEBUG: the store's events are the record (`conversations show`);
        # at INFO only assignments and queueing are logged, a line per tag would drown them.
        self.log.debug(
            "rule_decision", conversation_id=arrival.conversation.id, rule=rule, decision=kind
        )
        self.writer.event(
            arrival.conversation.id, kind, f"rule:{rule}", detail, message_id=arrival.message_id
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
