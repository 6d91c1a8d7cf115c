"""What an agent sees in Slack: the ping's Block Kit, built from a snapshot of the conversation.

Pure functions, no I/O: the notifier reads the snapshot, these turn it into blocks. An agent
decides from the notification alone whether to drop what they are doing, so it says who wrote,
on which channel, about what, how urgent, in which language, how long they have waited, a
snippet of their words, and which rule sent it here. Slack's `text` is the fallback shown in
notifications and screen readers, so it carries the essentials too.

Customer text is untrusted: it is escaped (&, <, >) so a message cannot mention @channel or
forge a link, and cut to fit Slack's limits (3,000 characters a section).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

SNIPPET_CHARS = 300
CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "chat": "Slack"}
PRIORITY_MARKS = {"urgent": "🔴 urgent", "high": "🟠 high", "normal": "normal", "low": "low"}


@dataclass(frozen=True)
class ConversationView:
    """The facts of a conversation a ping shows, read when the ping is sent."""

    id: int
    channel: str
    subject: str
    priority: str
    language: str
    status: str
    customer: str
    snippet: str
    #: When the customer's oldest unanswered message came; None when not known.
    waiting_since: datetime | None
    link: str = ""
    #: The soonest SLA target still to be met, and when it is due (none: no SLA).
    sla_target: str = ""
    sla_due: datetime | None = None


#: The buttons' action ids (inbox/service/agent_replies.py acts on them).
CLAIM = "inbox_claim"
CLOSE = "inbox_close"
HAND_BACK = "inbox_hand_back"
#: Menus: their option values are "CONVERSATION_ID:CHOICE".
SNOOZE = "inbox_snooze"
ANSWER = "inbox_answer"
#: What the Snooze menu offers (inbox/routing/snooze.py reads each value).
SNOOZE_CHOICES = (
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("tomorrow", "Tomorrow 09:00"),
    ("monday", "Monday 09:00"),
)
#: Slack shows at most 100 options in a menu.
MAX_OPTIONS = 100


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, so customer text stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def waited(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "just now"
    seconds = max(0, int((now - since) / timedelta(seconds=1)))
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def _sla(target: str, due: datetime, now: datetime) -> str:
    what = target.replace("_", " ")
    span = waited(min(due, now), max(due, now))
    span = "under a minute" if span == "just now" else span
    if due <= now:
        return f":rotating_light: {what} overdue by {span}"
    return f"{what} due in {span}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _title(view: ConversationView) -> str:
    subject = _clip(view.subject, 150) or "(no subject)"
    return f"#{view.id} {escape(subject)}"


def _facts(view: ConversationView, now: datetime, rule: str, by: str = "") -> list[dict[str, Any]]:
    facts = [
        ("Customer", escape(_clip(view.customer, 120)) or "unknown"),
        ("Channel", CHANNEL_LABELS.get(view.channel, view.channel)),
        ("Priority", PRIORITY_MARKS.get(view.priority, view.priority)),
        ("Language", view.language or "not detected"),
        ("Waiting", waited(view.waiting_since, now)),
        ("Routed by", f"rule `{escape(rule)}`" if rule else escape(by) or "a person"),
    ]
    if view.sla_due is not None:
        facts.append(("SLA", _sla(view.sla_target, view.sla_due, now)))
    return [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in facts]


def _body(
    headline: str, view: ConversationView, now: datetime, rule: str, by: str = ""
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        {"type": "section", "fields": _facts(view, now, rule, by)},
    ]
    if view.snippet:
        quoted = "\n".join(
            "> " + line for line in escape(_clip(view.snippet, SNIPPET_CHARS)).split("\n")
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": quoted}})
    where = (
        f"<{view.link}|Open #{view.id}>" if view.link else f"`inbox conversations show {view.id}`"
    )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": where}]})
    return blocks


def assignment(
    view: ConversationView,
    now: datetime,
    rule: str,
    why: str,
    by: str = "",
    note: str = "",
    answers: Sequence[str] = (),
) -> dict[str, Any]:
    """The DM to the agent a conversation was assigned to, by a rule (what it matched) or by
    a person (`by`, with their note), with its buttons, a Snooze menu and, when the desk has
    canned answers, a menu that sends one (in the conversation's language)."""
    headline = f"*Assigned to you:* {_title(view)}"
    blocks = _body(headline, view, now, rule, by)
    if by and note:
        blocks.insert(2, _context(f"{escape(by)}: {escape(_clip(note, 300))}"))
    elif why and not by:
        blocks.insert(2, _context(f"Matched: {escape(_clip(why, 200))}"))
    text = (
        f"Assigned to you: #{view.id} {_clip(view.subject, 100)} "
        f"({view.priority}, {CHANNEL_LABELS.get(view.channel, view.channel)}, "
        f"waiting {waited(view.waiting_since, now)})"
    )
    actions = _buttons(view, (CLOSE, "Close", "primary"), (HAND_BACK, "Hand back", ""))
    actions["elements"].append(_menu(view, SNOOZE, "Snooze", SNOOZE_CHOICES))
    if answers:
        choices = [(name, name.replace("_", " ").replace("-", " ")) for name in answers]
        menu = _menu(view, ANSWER, "Send an answer", choices[:MAX_OPTIONS])
        menu["confirm"] = {
            "title": {"type": "plain_text", "text": "Send this answer?"},
            "text": {
                "type": "plain_text",
                "text": "It goes to the customer at once, in their language.",
            },
            "confirm": {"type": "plain_text", "text": "Send"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
        actions["elements"].append(menu)
    blocks.append(actions)
    blocks.append(
        _context(
            "Answer in this thread: it goes to the customer (`note:` keeps it internal, "
            "`!answer NAME` sends a canned answer)."
        )
    )
    return {"text": text, "blocks": blocks}


def reassigned(view: ConversationView, now: datetime, new_agent: str) -> dict[str, Any]:
    """What the earlier ping becomes once the conversation went to someone else."""
    headline = f"~Assigned to you~ *Reassigned to {escape(new_agent)}:* {_title(view)}"
    return {
        "text": f"#{view.id} was reassigned to {new_agent}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            _context(f"Reassigned {now:%Y-%m-%d %H:%M} UTC; no action needed from you."),
        ],
    }


def queued(
    view: ConversationView, now: datetime, team: str, rule: str, skipped: dict[str, str]
) -> dict[str, Any]:
    """To the team's channel when none of its agents could take the conversation."""
    headline = f"*Waiting for {escape(team)}, nobody free:* {_title(view)}"
    blocks = _body(headline, view, now, rule)
    if skipped:
        reasons = "; ".join(f"{escape(a)}: {escape(r)}" for a, r in list(skipped.items())[:10])
        blocks.insert(2, _context(_clip(f"Passed over: {reasons}", 2900)))
    text = f"#{view.id} waits in {team}'s queue: {_clip(view.subject, 100)}"
    blocks.append(_buttons(view, (CLAIM, "Claim", "primary")))
    return {"text": text, "blocks": blocks}


def notice(view: ConversationView, now: datetime, text: str, rule: str) -> dict[str, Any]:
    """A rule's `notify` action: its own text, with the conversation's facts under it."""
    headline = f"{escape(_clip(text, 500))}: {_title(view)}" if text else _title(view)
    return {
        "text": f"{_clip(text, 200)} #{view.id}".strip(),
        "blocks": _body(headline, view, now, rule),
    }


def follow_up(
    view: ConversationView, sender: str, text: str, notice: bool = False
) -> dict[str, Any]:
    """The customer's next message, in the ping's thread: answer it right there. A `notice`
    is Inbox's own line there instead (what a button did)."""
    if notice:
        return {"text": _clip(text, 300), "blocks": [_context(escape(_clip(text, 2900)))]}
    who = escape(_clip(sender, 100)) or "The customer"
    quoted = "\n".join(f"> {escape(line)}" for line in _clip(text, 2500).splitlines()) or "> …"
    return {
        "text": f"{_clip(sender, 100) or 'The customer'} wrote: {_clip(text, 150)} #{view.id}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{who}* wrote:\n{quoted}"}},
            _context("Answer in this thread: it goes to the customer (`note:` keeps it internal)."),
        ],
    }


def _buttons(view: ConversationView, *buttons: tuple[str, str, str]) -> dict[str, Any]:
    """Buttons whose clicks come back to inbox/service/agent_replies.py, each carrying the
    conversation's id."""
    elements = []
    for action, label, style in buttons:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action,
            "text": {"type": "plain_text", "text": label},
            "value": str(view.id),
        }
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": f"inbox_{view.id}", "elements": elements}


def _menu(
    view: ConversationView, action: str, placeholder: str, choices: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": action,
        "placeholder": {"type": "plain_text", "text": placeholder},
        "options": [
            {
                "text": {"type": "plain_text", "text": _clip(label, 75)},
                "value": f"{view.id}:{value}",
            }
            for value, label in choices
        ],
    }


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
