"""Auto-replies (a rule's `auto_reply: ANSWER`): "we are closed until Monday 08:00; your
reference is #1234", sent at once over the customer's channel through the outbox, and never
into a loop.

What is never answered, as RFC 3834 asks and as desks learnt the hard way (each skip is an
`auto_reply_skipped` event with its reason):

- mail that is automatic itself: `Auto-Submitted` other than `no`, bulk and list mail,
  bounces (the normalizer's flags), and `X-Auto-Response-Suppress` (Exchange's "do not answer
  me automatically");
- senders that are machines or nobody: mailer-daemon, postmaster, no-reply and its spellings;
- our own addresses: a sender that is one of the addresses the message was written to;
- a contact answered automatically within `per_contact` (default 4 h), whatever the
  conversation, and anyone once `per_hour` auto-replies went out in the last hour.

The reply is written by inbox/routing/reply.py marked automatic: `Auto-Submitted:
auto-replied` and `X-Auto-Response-Suppress: All` on the mail, and it is no agent's response
(the SLA and the conversation's status stay as they were).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inbox.routing.canned import canned_answer
from inbox.routing.reply import CannotReply, write_reply
from inbox.routing.sla import policy_named
from inbox.routing.writer import RoutingWriter
from inbox.store.models import Conversation, Message
from rules.answers import AnswerError, Answers
from rules.calendars import Calendar, NeverOpen
from rules.model import AutoReply, RuleSet

#: The author of auto-replies in the history.
AUTHOR = "auto-reply"
#: Senders no person reads: their local part.
MACHINE_SENDERS = re.compile(
    r"^(?:mailer-daemon|postmaster|no-?reply|do-?not-?reply|noreply-.*|bounces?(?:[+-].*)?"
    r"|auto-?reply|autoresponder)$",
    re.IGNORECASE,
)


def skip_reason(columns: Mapping[str, Any]) -> str:
    """Why this message must get no auto-reply ("" when it may)."""
    headers = {str(k).lower(): str(v) for k, v in (columns.get("headers") or {}).items()}
    if "x-auto-response-suppress" in headers:
        asked = headers["x-auto-response-suppress"]
        return f"the sender asks for none (X-Auto-Response-Suppress: {asked})"
    if columns.get("auto_submitted"):
        why = "; ".join(str(r) for r in columns.get("flag_reasons") or ()) or "Auto-Submitted"
        return f"the message is automatic ({why})"
    if columns.get("bounce"):
        return "the message is a bounce"
    if columns.get("list_mail"):
        return "the message came through a mailing list"
    if columns.get("bulk"):
        return "the message is bulk mail"
    sender = str(columns.get("from_address") or "").strip().lower()
    if not sender:
        return "the message has no sender to answer"
    local = sender.split("@", 1)[0] if "@" in sender else ""
    if local and MACHINE_SENDERS.match(local):
        return f"{sender} is a machine's address, not a person's"
    ours = {str(a).strip().lower() for a in columns.get("to_addresses") or ()}
    if sender in ours:
        return f"{sender} is our own address"
    return ""


def send_auto_reply(
    session: Session,
    conversation: Conversation,
    columns: Mapping[str, Any],
    reply: AutoReply,
    rule: str,
    *,
    answers: Answers | None,
    ruleset: RuleSet,
    now: datetime,
    message_id: int | None = None,
) -> bool:
    """Send it, or record why not; True when it was written (it leaves through the outbox)."""
    writer = RoutingWriter(session, now)
    reason = skip_reason(columns) or _limited(session, conversation, reply, now)
    text = ""
    if not reason:
        try:
            text = _text(session, conversation, reply, answers, ruleset, now)
        except AnswerError as error:
            reason = str(error)
    if not reason:
        try:
            write_reply(session, conversation.id, author=AUTHOR, text=text, now=now, automatic=rule)
            return True
        except CannotReply as error:
            reason = str(error)
    detail = {"answer": reply.answer, "reason": reason}
    writer.event(
        conversation.id, "auto_reply_skipped", f"rule:{rule}", detail, message_id=message_id
    )
    writer.flush()
    return False


def _limited(session: Session, conversation: Conversation, reply: AutoReply, now: datetime) -> str:
    recent = select(func.count()).where(
        Message.author == AUTHOR,
        Message.direction == "out",
        Message.created_at > now - timedelta(hours=1),
    )
    sent = session.scalar(recent) or 0
    if sent >= reply.per_hour:
        return f"{sent} auto-replies went out in the last hour (per_hour: {reply.per_hour})"
    if conversation.contact_id is None:
        return ""
    last = session.scalar(
        select(func.max(Message.created_at))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Conversation.contact_id == conversation.contact_id,
            Message.author == AUTHOR,
            Message.direction == "out",
        )
    )
    if last is not None and now - last < reply.per_contact:
        every = _span(reply.per_contact)
        return f"the contact got an auto-reply at {last:%Y-%m-%d %H:%M} UTC (once per {every})"
    return ""


def _text(
    session: Session,
    conversation: Conversation,
    reply: AutoReply,
    answers: Answers | None,
    ruleset: RuleSet,
    now: datetime,
) -> str:
    if answers is None:
        raise AnswerError("no canned answers are configured (answers/ beside the rules)")
    calendar = reply.calendar
    if calendar is None:
        policy = policy_named(ruleset, conversation.sla_policy)
        calendar = policy.calendar if policy is not None else None
    language = conversation.language
    extra = {"next_open": next_open(calendar, now, language)} if calendar is not None else {}
    return canned_answer(session, answers, conversation.id, reply.answer, "", extra=extra).text


def next_open(calendar: Calendar, now: datetime, language: str = "") -> str:
    """When the desk opens next, in its own time and the customer's language: "maanantaina
    08:00 (Europe/Helsinki)", "Monday 08:00 (...)"; only the time when that is today."""
    from babel import Locale, UnknownLocaleError
    from babel.dates import format_datetime

    try:
        opens = calendar.next_open(now).astimezone(calendar.zone)
    except NeverOpen:
        return ""
    try:
        locale = Locale.parse(language or "en")
    except (UnknownLocaleError, ValueError):
        locale = Locale.parse("en")
    today = now.astimezone(calendar.zone).date()
    shape = "HH:mm" if opens.date() == today else "EEEE HH:mm"
    if (opens.date() - today).days >= 7:
        shape = "d.M. HH:mm"  # a holiday week: the date says it better than a weekday
    return f"{format_datetime(opens, shape, locale=locale)} ({calendar.zone.key})"


def _span(duration: timedelta) -> str:
    hours = duration.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"
