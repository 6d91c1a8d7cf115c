"""Agents answer in Slack: a message in the thread of an assignment ping is a reply to that
conversation's customer, or, starting with `note:` or `!note`, an internal note; the ping's
buttons close the conversation or hand it back to the team, a queued one's claims it.

Slack's Events API posts to `[slack] events_path` of the app that pings agents (its Request URL
in the app's settings; subscribe to `message.im`). Each request is verified with the app's
signing secret before anything is read; then a message in a thread that ping_threads knows,
from a Slack user who is an agent in the rules in force, is written through
inbox/routing/reply.py like a reply from the CLI, and leaves through the outbox. Slack delivers
an event again when our answer is slow: the event's channel and ts make the second one a
no-op. Anything else (our own posts, edits, top-level DMs, strangers) is answered 200 and left.

Button clicks and menu picks come to `[slack] actions_path` (the app's Interactivity Request
URL), verified the same way, and are written by inbox/routing/ as a person's decision
(`person:NAME` in the history), the same as `inbox conversations assign/unassign/close/snooze`:
Close, Hand back, Claim, Snooze until a time (in the agent's time zone), and Send an answer (a
canned answer, as `!answer NAME` in the thread sends it). What was done, or why it could not
be, is said in the ping's thread.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import Any
from urllib.parse import parse_qsl

import structlog
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.orm import Session, sessionmaker

from connectors.slack_signing import unverified
from inbox.outbox.slack_messages import ANSWER, CLAIM, CLOSE, HAND_BACK, SNOOZE
from inbox.routing.canned import canned_answer
from inbox.routing.person import (
    NoSuchConversation,
    assign_by_person,
    close_by_person,
    unassign_by_person,
)
from inbox.routing.reply import CannotReply, Duplicate, write_reply
from inbox.routing.snooze import CannotSnooze, snooze_by_person, snooze_until
from inbox.routing.writer import RoutingWriter
from inbox.store.db import transaction
from inbox.store.models import PingThread, utcnow
from inbox.store.outbox_kinds import ThreadFollowUp
from inbox.webhook import WebRequest, WebResponse, text
from rules.answers import AnswerError, Answers
from rules.model import RuleSet

log = structlog.get_logger(__name__)

NOTE = re.compile(r"^\s*(?:note:|!note\b)\s*", re.IGNORECASE)
CANNED = re.compile(r"^\s*!answer\s+(?P<name>[a-z0-9][a-z0-9_-]*)\s*$", re.IGNORECASE)
#: What refuses an agent's action: said in the thread, nothing written.
REFUSED = (NoSuchConversation, CannotSnooze, CannotReply, AnswerError)


class AgentReplies:
    def __init__(
        self,
        writers: sessionmaker[Session],
        signing_secret: str,
        agent_of: Callable[[str], str],
        *,
        written: Callable[[], None] = lambda: None,
        ruleset: Callable[[], RuleSet | None] = lambda: None,
        answers: Callable[[], Answers | None] = lambda: None,
    ) -> None:
        self.writers = writers
        self.verifier = SignatureVerifier(signing_secret)
        #: A Slack user id to the agent's name in the rules in force ("" for none).
        self.agent_of = agent_of
        #: Called after a reply is written (wakes the reply sender).
        self.written = written
        #: The rules in force: a claim assigns by them (the agent's team).
        self.ruleset = ruleset
        #: The canned answers in force (the menu's and `!answer`'s).
        self.answers = answers
        self.log = log.bind(component="agent_replies")

    def receive(self, request: WebRequest) -> WebResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        try:
            envelope = json.loads(request.body)
        except ValueError:
            return text(400, "body is not JSON")
        if not isinstance(envelope, dict):
            return text(400, "body is not a JSON object")
        if envelope.get("type") == "url_verification":
            challenge = str(envelope.get("challenge") or "")
            return WebResponse(200, challenge.encode(), content_type="text/plain")
        event = envelope.get("event")
        if envelope.get("type") != "event_callback" or not isinstance(event, dict):
            return text(200, "ignored")
        return self._message(event)

    def act(self, request: WebRequest) -> WebResponse:
        """A click on a ping's button (Slack's interactivity: a form with a `payload`)."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        try:
            form = dict(parse_qsl(request.body.decode("utf-8")))
            payload = json.loads(form.get("payload", ""))
        except (UnicodeDecodeError, ValueError):
            return text(400, "no JSON payload")
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return text(200, "ignored")
        user = str((payload.get("user") or {}).get("id") or "")
        agent = self.agent_of(user)
        if not agent:
            self.log.warning("agent_action_ignored", reason="not an agent", slack_user=user)
            return text(200, "not an agent")
        container = payload.get("container") or {}
        where = (
            str(container.get("channel_id") or (payload.get("channel") or {}).get("id") or ""),
            str(container.get("message_ts") or (payload.get("message") or {}).get("ts") or ""),
        )
        for action in payload.get("actions") or []:
            if isinstance(action, dict):
                picked = action.get("selected_option") or {}
                value = action.get("value") or (
                    picked.get("value") if isinstance(picked, dict) else ""
                )
                self._do(
                    agent,
                    str(action.get("action_id") or ""),
                    str(value or ""),
                    where,
                    str(action.get("action_ts") or ""),
                )
        return text(200, "ok")

    def _do(
        self, agent: str, action: str, value: str, where: tuple[str, str], action_ts: str
    ) -> None:
        number, _, choice = value.partition(":")
        if action not in (CLAIM, CLOSE, HAND_BACK, SNOOZE, ANSWER) or not number.isdigit():
            return
        conversation_id = int(number)
        try:
            with transaction(self.writers) as session:
                said = self._act(session, agent, action, conversation_id, choice, where, action_ts)
                self._say(session, conversation_id, where, said)
        except Duplicate:
            return  # the same pick, delivered twice
        except REFUSED as error:
            self.log.warning(
                "agent_action_refused",
                action=action,
                conversation_id=conversation_id,
                reason=str(error),
            )
            self._say_alone(conversation_id, where, f"Not done: {error}")
            return
        if action == ANSWER:
            self.written()
        self.log.info("agent_action", action=action, agent=agent, conversation_id=conversation_id)

    def _act(
        self,
        session: Session,
        agent: str,
        action: str,
        conversation_id: int,
        choice: str,
        where: tuple[str, str],
        action_ts: str,
    ) -> str:
        """Do it; what to say in the thread about it."""
        if action == CLOSE:
            closed = close_by_person(session, conversation_id, person=agent)
            return f"Closed by {agent}." if closed else "It was closed already."
        if action == HAND_BACK:
            handed = unassign_by_person(session, conversation_id, person=agent)
            queue = f"{handed.team}'s queue" if handed.team else "the queue"
            return f"Handed back to {queue} by {agent}." if handed.changed else ""
        ruleset = self.ruleset()
        if action == SNOOZE:
            zone = _zone_of(ruleset, agent)
            now = utcnow()
            until = snooze_until(choice, now, zone)
            snooze_by_person(session, conversation_id, person=agent, until=until, now=now)
            local = until.astimezone(zone)
            return f"Snoozed by {agent} until {local:%a %d %b %H:%M} ({local.tzname()})."
        if action == ANSWER:
            answers = self.answers()
            if answers is None:
                raise AnswerError("no canned answers are configured (answers/ beside the rules)")
            canned = canned_answer(session, answers, conversation_id, choice, agent)
            write_reply(
                session,
                conversation_id,
                author=agent,
                text=canned.text,
                # Slack stamps each pick: the same one delivered twice is written once.
                source=f"slack-action:{where[0]}:{where[1]}:{action_ts}" if action_ts else "",
            )
            return f"{agent} sent the answer '{choice}' ({canned.used})."
        if ruleset is None or agent not in ruleset.agents:
            return ""
        assign_by_person(
            session,
            ruleset,
            conversation_id,
            ruleset.agents[agent],
            team_name=None,
            person=agent,
            note="claimed in Slack",
        )
        return f"Claimed by {agent}."

    def _say(
        self, session: Session, conversation_id: int, where: tuple[str, str], said: str
    ) -> None:
        """A line in the thread of the message the agent acted on, through the outbox, in the
        transaction of what it says."""
        channel, ts = where
        if not (said and channel and ts):
            return
        writer = RoutingWriter(session, utcnow())
        payload = ThreadFollowUp(slack_channel=channel, thread_ts=ts, text=said, notice=True)
        key = f"said:{channel}:{ts}:{uuid.uuid4().hex}"
        writer.outbox(conversation_id, key=key, payload=payload)
        writer.flush()

    def _say_alone(self, conversation_id: int, where: tuple[str, str], said: str) -> None:
        try:
            with transaction(self.writers) as session:
                self._say(session, conversation_id, where, said)
        except Exception:  # the conversation is gone (a foreign key), or the store is away
            self.log.warning("agent_notice_not_written", conversation_id=conversation_id)

    def _refusal(self, request: WebRequest) -> WebResponse | None:
        refused = unverified(self.verifier, request)
        if refused is None:
            return None
        self.log.warning("agent_reply_refused", reason=refused[0], remote=request.remote)
        return text(401, refused[1])

    def _message(self, event: dict[str, Any]) -> WebResponse:
        thread, ts = str(event.get("thread_ts") or ""), str(event.get("ts") or "")
        channel, user = str(event.get("channel") or ""), str(event.get("user") or "")
        if (
            event.get("type") != "message"
            or event.get("subtype")
            or event.get("bot_id")
            or not thread
            or thread == ts
        ):
            return text(200, "ignored")
        with self.writers() as session:
            ping = session.get(PingThread, (channel, thread))
            conversation_id = ping.conversation_id if ping is not None else None
        if conversation_id is None:
            return text(200, "not a ping's thread")
        agent = self.agent_of(user)
        if not agent:
            self.log.warning("agent_reply_ignored", reason="not an agent", slack_user=user)
            return text(200, "not an agent")
        body = str(event.get("text") or "")
        note = bool(NOTE.match(body))
        if note:
            body = NOTE.sub("", body, count=1)
        canned = CANNED.match(body)
        try:
            with transaction(self.writers) as session:
                if canned is not None:
                    answers = self.answers()
                    if answers is None:
                        raise AnswerError("no canned answers are configured")
                    name = canned["name"].lower()
                    body = canned_answer(session, answers, conversation_id, name, agent).text
                written = write_reply(
                    session,
                    conversation_id,
                    author=agent,
                    text=body,
                    note=note,
                    source=f"slack:{channel}:{ts}",
                )
        except Duplicate:
            return text(200, "duplicate")
        except REFUSED as error:
            self.log.warning(
                "agent_reply_refused", reason=str(error), conversation_id=conversation_id
            )
            self._say_alone(conversation_id, (channel, thread), f"Not sent: {error}")
            return text(200, "refused")
        self.log.info(
            "agent_replied",
            conversation_id=conversation_id,
            agent=agent,
            note=note,
            message_id=written.message_id,
        )
        self.written()
        return text(200, "ok")


def _zone_of(ruleset: RuleSet | None, agent: str) -> tzinfo:
    """The agent's time zone (their working hours'), else the rules file's."""
    if ruleset is None:
        return UTC
    found = ruleset.agents.get(agent)
    if found is not None and found.hours is not None:
        return found.hours.zone
    return ruleset.zone
