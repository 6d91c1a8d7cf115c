"""What the conversation page's forms do, each by the writer the CLI and Slack use, so that
the history reads the same wherever a person acted. A handler gets the form and returns what
to tell the agent; `ActionRefused` carries why it could not be done, in words for them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import tzinfo
from typing import Any

from sqlalchemy.orm import Session

from inbox.routing.canned import canned_answer
from inbox.routing.person import (
    NoSuchConversation,
    assign_by_person,
    close_by_person,
    set_priority_by_person,
    tag_by_person,
    unassign_by_person,
)
from inbox.routing.reply import CannotReply, write_reply
from inbox.routing.snooze import CannotSnooze, snooze_by_person, snooze_until
from inbox.store.models import utcnow
from rules.answers import AnswerError, Answers
from rules.model import RuleSet


class ActionRefused(ValueError):
    pass


#: What a handler may raise for the agent to read (the writers' own refusals, as the CLI says
#: them): the page shows the words, nothing is written.
REFUSALS: tuple[type[Exception], ...] = (
    ActionRefused,
    NoSuchConversation,
    CannotReply,
    CannotSnooze,
    AnswerError,
)


Handler = Callable[..., str]


def reply(
    session: Session,
    conversation_id: int,
    form: Mapping[str, str],
    *,
    person: str,
    answers: Answers | None,
    **_: Any,
) -> str:
    note = form.get("kind") == "note"
    text = form.get("text", "")
    answer = form.get("answer", "").strip()
    if answer and not text.strip():
        if answers is None:
            raise ActionRefused("there are no canned answers (answers/ beside the rules file)")
        text = canned_answer(session, answers, conversation_id, answer, person).text
    written = write_reply(session, conversation_id, author=person, text=text, note=note)
    if note:
        return "Note added."
    return f"Reply queued: it leaves over {written.channel} with the daemon's next pass."


def assign(
    session: Session,
    conversation_id: int,
    form: Mapping[str, str],
    *,
    person: str,
    ruleset: RuleSet | None,
    **_: Any,
) -> str:
    name = form.get("agent", "").strip() or person
    agent = ruleset.agents.get(name) if ruleset is not None else None
    if agent is None:
        raise ActionRefused(f"{name} is no agent of the rules file")
    assert ruleset is not None
    done = assign_by_person(
        session, ruleset, conversation_id, agent, team_name=None, person=person, note=""
    )
    if not done.changed:
        return f"{name} has it already."
    warning = f" (although {done.warning})" if done.warning else ""
    return f"Assigned to {name}{warning}."


def unassign(
    session: Session, conversation_id: int, form: Mapping[str, str], *, person: str, **_: Any
) -> str:
    done = unassign_by_person(session, conversation_id, person=person)
    if not done.changed:
        return "Nobody had it."
    return f"Taken from {done.previous}: it waits in {done.team or 'the'} queue."


def close(
    session: Session, conversation_id: int, form: Mapping[str, str], *, person: str, **_: Any
) -> str:
    closed = close_by_person(session, conversation_id, person=person)
    return "Closed." if closed else "It was closed already."


def snooze(
    session: Session,
    conversation_id: int,
    form: Mapping[str, str],
    *,
    person: str,
    zone: tzinfo,
    **_: Any,
) -> str:
    now = utcnow()
    until = snooze_until(form.get("until", "").strip(), now, zone)
    snooze_by_person(session, conversation_id, person=person, until=until, now=now)
    return f"Snoozed until {until.astimezone(zone):%Y-%m-%d %H:%M}."


def priority(
    session: Session, conversation_id: int, form: Mapping[str, str], *, person: str, **_: Any
) -> str:
    chosen = form.get("priority", "")
    try:
        changed = set_priority_by_person(session, conversation_id, chosen, person=person)
    except ValueError as error:  # a priority or tag no rules file could name
        raise ActionRefused(str(error)) from None
    return f"Priority {chosen}." if changed else f"It was {chosen} already."


def tags(
    session: Session, conversation_id: int, form: Mapping[str, str], *, person: str, **_: Any
) -> str:
    add = _names(form.get("add", ""))
    remove = _names(form.get("remove", ""))
    if not add and not remove:
        raise ActionRefused("give a tag to add or to remove")
    try:
        added, removed = tag_by_person(
            session, conversation_id, add=add, remove=remove, person=person
        )
    except ValueError as error:  # a priority or tag no rules file could name
        raise ActionRefused(str(error)) from None
    said = [f"tagged {', '.join(added)}"] if added else []
    said += [f"untagged {', '.join(removed)}"] if removed else []
    return (("; ".join(said)) or "No tag changed").capitalize() + "."


def _names(text: str) -> list[str]:
    return [name for name in (part.strip() for part in text.replace(",", " ").split()) if name]


ACTIONS: dict[str, Handler] = {
    "reply": reply,
    "assign": assign,
    "unassign": unassign,
    "close": close,
    "snooze": snooze,
    "priority": priority,
    "tags": tags,
}
