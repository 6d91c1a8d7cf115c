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

Button clicks come to `[slack] actions_path` (the app's Interactivity Request URL), verified the
same way, and are written by inbox/routing/person.py as a person's decision (`person:NAME` in
the history), the same as `inbox conversations assign/unassign/close`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import structlog
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.orm import Session, sessionmaker

from connectors.slack_signing import unverified
from inbox.outbox.slack_messages import CLAIM, CLOSE, HAND_BACK
from inbox.routing.person import (
    NoSuchConversation,
    assign_by_person,
    close_by_person,
    unassign_by_person,
)
from inbox.routing.reply import CannotReply, Duplicate, write_reply
from inbox.store.db import transaction
from inbox.store.models import PingThread
from inbox.webhook import WebRequest, WebResponse, text
from rules.model import RuleSet

log = structlog.get_logger(__name__)

NOTE = re.compile(r"^\s*(?:note:|!note\b)\s*", re.IGNORECASE)


class AgentReplies:
    def __init__(
        self,
        writers: sessionmaker[Session],
        signing_secret: str,
        agent_of: Callable[[str], str],
        *,
        written: Callable[[], None] = lambda: None,
        ruleset: Callable[[], RuleSet | None] = lambda: None,
    ) -> None:
        self.writers = writers
        self.verifier = SignatureVerifier(signing_secret)
        #: A Slack user id to the agent's name in the rules in force ("" for none).
        self.agent_of = agent_of
        #: Called after a reply is written (wakes the reply sender).
        self.written = written
        #: The rules in force: a claim assigns by them (the agent's team).
        self.ruleset = ruleset
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
        for action in payload.get("actions") or []:
            if isinstance(action, dict):
                self._do(agent, str(action.get("action_id") or ""), str(action.get("value") or ""))
        return text(200, "ok")

    def _do(self, agent: str, action: str, value: str) -> None:
        if action not in (CLAIM, CLOSE, HAND_BACK) or not value.isdigit():
            return
        conversation_id = int(value)
        try:
            with transaction(self.writers) as session:
                if action == CLOSE:
                    close_by_person(session, conversation_id, person=agent)
                elif action == HAND_BACK:
                    unassign_by_person(session, conversation_id, person=agent)
                else:
                    ruleset = self.ruleset()
                    if ruleset is None or agent not in ruleset.agents:
                        return
                    assign_by_person(
                        session,
                        ruleset,
                        conversation_id,
                        ruleset.agents[agent],
                        team_name=None,
                        person=agent,
                        note="claimed in Slack",
                    )
        except NoSuchConversation:
            self.log.warning("agent_action_ignored", reason="no such conversation", value=value)
            return
        self.log.info("agent_action", action=action, agent=agent, conversation_id=conversation_id)

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
        try:
            with transaction(self.writers) as session:
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
        except (CannotReply, NoSuchConversation) as error:
            self.log.warning(
                "agent_reply_refused", reason=str(error), conversation_id=conversation_id
            )
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
