"""What the matching rules of one pass decided, once their actions are merged.

The semantics an admin can rely on (also in rules/README.md):

- Rules run in file order; a matching rule with `stop: true` ends the pass.
- Tags add up in that order: `tag` adds, `untag` removes, so a later rule can remove a tag an
  earlier one added.
- Priority, status and assignment hold one value: the last matching rule that sets one wins.
  The ones it overrode are kept and shown in the explanation.
- Every `notify` is sent, once per target.
- `auto_reply`: one a message at most, the last matching rule's.
- `extract` remembers what its pattern found in this message; a later rule's find of the same
  name wins, and a pattern that finds nothing changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rules.facts import Facts
from rules.model import Assign, AutoReply, Notify, Rule


@dataclass(frozen=True, slots=True)
class Setting:
    value: str
    rule: str


@dataclass
class Decisions:
    tags: dict[str, str] = field(default_factory=dict)
    """Tag -> the rule that added it."""
    untags: dict[str, str] = field(default_factory=dict)
    contact_tags: dict[str, str] = field(default_factory=dict)
    priority: Setting | None = None
    status: Setting | None = None
    assign: tuple[Assign, str] | None = None
    notify: dict[str, tuple[Notify, str]] = field(default_factory=dict)
    #: Name -> what the rule's pattern found (an order number).
    extracted: dict[str, Setting] = field(default_factory=dict)
    #: The auto-reply to send, and the rule that asked (the last one that did).
    auto_reply: tuple[AutoReply, str] | None = None
    #: The survey to send once closed (the last rule's that asked).
    survey: Setting | None = None
    #: Earlier settings a later rule replaced: (what, value, rule, replaced by rule).
    overridden: list[tuple[str, str, str, str]] = field(default_factory=list)
    stopped_by: str = ""

    def apply(self, rule: Rule, facts: Facts) -> None:
        then = rule.then
        for extract in then.extract:
            found = extract.find(facts.subject, facts.body)
            if found:
                self.extracted[extract.name] = Setting(found, rule.name)
        for tag in then.tag:
            self.untags.pop(tag, None)
            self.tags[tag] = rule.name
        for tag in then.untag:
            self.tags.pop(tag, None)
            self.untags[tag] = rule.name
        for tag in then.tag_contact:
            self.contact_tags.setdefault(tag, rule.name)
        if then.priority:
            self.priority = self._replace("priority", self.priority, then.priority, rule.name)
        if then.status:
            self.status = self._replace("status", self.status, then.status, rule.name)
        if then.assign is not None:
            if self.assign is not None:
                earlier, by = self.assign
                self.overridden.append(("assign", earlier.describe(), by, rule.name))
            self.assign = (then.assign, rule.name)
        for notify in then.notify:
            self.notify.setdefault(notify.target(), (notify, rule.name))
        if then.auto_reply is not None:
            self.auto_reply = (then.auto_reply, rule.name)
        if then.survey:
            self.survey = Setting(then.survey, rule.name)
        if rule.stop:
            self.stopped_by = rule.name

    def _replace(self, what: str, earlier: Setting | None, value: str, rule: str) -> Setting:
        if earlier is not None and earlier.value != value:
            self.overridden.append((what, earlier.value, earlier.rule, rule))
        return Setting(value, rule)

    def empty(self) -> bool:
        return not (
            self.tags
            or self.untags
            or self.contact_tags
            or self.priority
            or self.status
            or self.assign
            or self.notify
            or self.extracted
            or self.auto_reply
            or self.survey
        )
