"""Satisfaction surveys: a rule's `survey: ANSWER` asks for one; once the conversation is
closed, the daemon's sweep (inbox/service/timers.py) sends it over the customer's channel, in
their language, through the outbox, once (claimed with SKIP LOCKED). The customer's short
answer ("5", "hyvä", "отлично") is their score (inbox/normalize/csat.py), kept on the
conversation by the batch writer without opening it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from inbox.routing.canned import canned_answer
from inbox.routing.reply import CannotReply, write_reply
from inbox.routing.writer import RoutingWriter
from inbox.store.models import Conversation, Message
from rules.answers import AnswerError, Answers

#: The author of surveys in the history.
AUTHOR = "survey"
#: What the customer may answer with one click (Slack's buttons).
SCORES = ("1", "2", "3", "4", "5")
SEND_LIMIT = 100
#: A conversation closed and opened again within this long was not done: no survey yet.
SETTLE = timedelta(minutes=5)


def survey_due(now: datetime, settle: timedelta = SETTLE) -> ColumnElement[bool]:
    """Closed conversations whose survey is due by `now`."""
    return and_(
        Conversation.status == "closed",
        Conversation.csat_survey != "",
        Conversation.csat_sent_at.is_(None),
        Conversation.closed_at <= now - settle,
    )


def send_surveys(
    session: Session,
    now: datetime,
    answers: Answers | None,
    *,
    settle: timedelta = SETTLE,
    limit: int = SEND_LIMIT,
) -> list[int]:
    """Send the surveys due, in the caller's transaction; the conversations asked."""
    due = list(
        session.scalars(
            select(Conversation)
            .where(survey_due(now, settle))
            .order_by(Conversation.closed_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    writer = RoutingWriter(session, now)
    asked = []
    for conversation in due:
        conversation.csat_sent_at = now  # once, sent or not: a refusal is not retried
        try:
            if answers is None:
                raise AnswerError("no canned answers are configured (answers/ beside the rules)")
            text = canned_answer(session, answers, conversation.id, conversation.csat_survey, "")
            written = write_reply(
                session, conversation.id, author=AUTHOR, text=text.text, now=now, automatic="survey"
            )
            message = session.get(Message, written.message_id)
            if message is not None:  # a channel with buttons offers the scores as buttons
                message.headers = {**(message.headers or {}), "choices": list(SCORES)}
            asked.append(conversation.id)
        except (AnswerError, CannotReply) as error:
            detail = {"survey": conversation.csat_survey, "reason": str(error)}
            writer.event(conversation.id, "survey_skipped", "survey", detail)
    writer.flush()
    return asked
