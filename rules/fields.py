"""The things a condition can test, each with its kind and where its value comes from.

The kind decides which matchers make sense: text takes equals/in/contains/keywords/glob/regex,
a list of texts matches when any element does, numbers and durations compare, flags are true
or false. A condition on a field of the wrong kind is a load error, not a rule that never
matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter

from rules.facts import Facts


class Kind(Enum):
    TEXT = "text"
    TEXT_LIST = "list of texts"
    FLAG = "true or false"
    NUMBER = "number"
    DURATION = "duration"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    read: Callable[[Facts], object]
    about: str


def _f(name: str, kind: Kind, about: str, read: Callable[[Facts], object] | None = None) -> Field:
    # attrgetter: a call in C, where a lambda is a Python frame (every candidate rule reads).
    return Field(name, kind, read or attrgetter(name), about)


FIELDS: dict[str, Field] = {
    field.name: field
    for field in (
        # The message.
        _f("channel", Kind.TEXT, "email, sms or chat"),
        _f("connector", Kind.TEXT, "the connector's name from the config"),
        _f("from", Kind.TEXT, "sender address", attrgetter("from_address")),
        _f("from_domain", Kind.TEXT, "sender's domain"),
        _f("from_name", Kind.TEXT, "sender's display name"),
        _f("to", Kind.TEXT_LIST, "To addresses"),
        _f("cc", Kind.TEXT_LIST, "Cc addresses"),
        _f("subject", Kind.TEXT, "subject, decoded"),
        _f("body", Kind.TEXT, "what the customer just wrote (no quotes, no signature)"),
        _f("attachment_type", Kind.TEXT_LIST, "content types", lambda f: f.attachment_types),
        _f("attachment_name", Kind.TEXT_LIST, "file names", lambda f: f.attachment_names),
        _f("has_attachment", Kind.FLAG, "any attachment", lambda f: bool(f.attachment_types)),
        _f("language", Kind.TEXT, "detected language (ISO 639-1), '' when unsure"),
        _f("auto_submitted", Kind.FLAG, "auto-reply or other automatic mail (RFC 3834)"),
        _f("bulk", Kind.FLAG, "bulk or mailing-list mail"),
        # The conversation.
        _f("new_conversation", Kind.FLAG, "the message opened a new conversation"),
        _f("status", Kind.TEXT, "open, pending or closed"),
        _f("tags", Kind.TEXT_LIST, "the conversation's tags", lambda f: tuple(sorted(f.tags))),
        _f("priority", Kind.TEXT, "low, normal, high or urgent"),
        _f("assignee", Kind.TEXT, "assigned agent, '' when none"),
        _f("team", Kind.TEXT, "team, '' when none"),
        _f("message_count", Kind.NUMBER, "messages in the conversation, this one included"),
        _f("age", Kind.DURATION, "time since the conversation opened"),
        # The contact.
        _f("contact_known", Kind.FLAG, "the contact existed before this message"),
        _f("contact_conversations", Kind.NUMBER, "the contact's earlier conversations"),
        _f(
            "contact_tags",
            Kind.TEXT_LIST,
            "the contact's tags",
            lambda f: tuple(sorted(f.contact_tags)),
        ),
    )
}

#: Condition keys that are not plain fields: combinators and special forms.
SPECIAL_KEYS = ("all", "any", "not", "headers", "in_hours", "out_of_hours", "weekday")
