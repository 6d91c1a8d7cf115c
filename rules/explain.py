"""Why a conversation is tagged, prioritized and assigned as it is, from its audit events.

The answer to "why is this assigned to Aino?" is the latest decision that set each thing, with
the rule's name and what it matched: each rule decision is an event (written by inbox/routing/),
so this reads them back rather than keeping a second record. A person's decision (`inbox
conversations assign|unassign`, actor "person:NAME") is an event too: whichever decided last
explains.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: The actor of a person's decision: "person:aino".
PERSON = "person:"


@dataclass(frozen=True, slots=True)
class EventView:
    """The parts of a stored event this needs (inbox.store.models.Event has them)."""

    kind: str
    actor: str
    detail: dict[str, Any]


def explain(
    events: Iterable[EventView], *, tags: Sequence[str], priority: str, assignee: str, team: str
) -> list[str]:
    """One line per current setting that a rule made, newest decision winning."""
    latest: dict[tuple[str, str], EventView] = {}
    for event in events:
        if event.kind == "tag_added":
            latest[("tag", str(event.detail.get("tag")))] = event
        elif event.kind == "tag_removed":
            latest.pop(("tag", str(event.detail.get("tag"))), None)
        elif event.kind == "priority_set":
            latest[("priority", "")] = event
        elif event.kind in ("assigned", "queued", "unassigned"):
            latest[("assignment", "")] = event
    lines = []
    for tag in tags:
        tagged = latest.get(("tag", tag))
        if tagged is not None:
            lines.append(f"tag {tag}: {_by(tagged)}")
    prioritized = latest.get(("priority", ""))
    if prioritized is not None and prioritized.detail.get("to") == priority:
        lines.append(f"priority {priority}: {_by(prioritized)}")
    decided = latest.get(("assignment", ""))
    if decided is not None and decided.actor.startswith(PERSON):
        lines.extend(_by_person(decided, assignee))
    elif decided is not None:
        event, detail = decided, decided.detail
        if event.kind == "assigned" and detail.get("agent") == assignee:
            how = (
                f"{detail.get('strategy', '')} in team {detail['team']}"
                if detail.get("team")
                else "directly"
            )
            lines.append(f"assigned to {assignee} ({how}): {_by(event)}{passed_over(detail)}")
        elif event.kind == "queued" and not assignee:
            lines.append(
                f"waiting in team {team or detail.get('team')}'s queue: {_by(event)}; nobody "
                f"could take it{passed_over(detail, prefix=': ')}"
            )
    return lines


def _by_person(event: EventView, assignee: str) -> list[str]:
    detail = event.detail
    person = event.actor.removeprefix(PERSON)
    note = f" ({detail['note']})" if detail.get("note") else ""
    if event.kind == "assigned" and detail.get("agent") == assignee:
        team = f" in team {detail['team']}" if detail.get("team") else ""
        warning = f"; assigned although {detail['warning']}" if detail.get("warning") else ""
        return [f"assigned to {assignee}{team}: by {person}{note}{warning}"]
    if event.kind == "unassigned" and not assignee:
        return [f"unassigned from {detail.get('from') or '?'}: by {person}{note}"]
    return []


def _by(event: EventView) -> str:
    rule = event.actor.removeprefix("rule:")
    matched = event.detail.get("matched", "")
    return f"rule '{rule}' ({matched})" if matched else f"rule '{rule}'"


def passed_over(detail: dict[str, Any], prefix: str = "; passed over: ") -> str:
    skipped = detail.get("skipped") or {}
    note = f"; {detail['note']}" if detail.get("note") else ""
    if not skipped:
        return note
    return prefix + ", ".join(f"{name} ({why})" for name, why in skipped.items()) + note
