"""Conditions: leaves that test one field with one matcher, and `all`, `any`, `not` over them.

Every check answers with a Verdict that says why, in words an admin reads in `inbox rules
test` and in a conversation's history: "subject has keyword 'lasku'", "language is 'ru', not
one of 'fi', 'et'". The compiled engine (rules/engine.py) decides some leaves for all rules at
once before any rule runs; it passes those answers in `known`, and a leaf found there is not
tested again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from rules.calendars import WEEKDAYS, Calendar
from rules.errors import Mark
from rules.facts import Facts
from rules.fields import Field, Kind
from rules.matchers import Compare, Is, TextMatcher, any_element


class Verdict(NamedTuple):
    """A NamedTuple rather than a frozen dataclass: a message's evaluation makes a dozen, and
    a frozen dataclass's __init__ (object.__setattr__ per field) cost three times as much."""

    matched: bool
    why: str


#: Leaf id -> what matched, for the leaves the engine decided up front (absent: no match).
Known = Mapping[int, str]


class Condition:
    def check(self, facts: Facts, known: Known) -> Verdict:
        raise NotImplementedError

    def matches(self, facts: Facts, known: Known) -> bool:
        """`check` without the explanation: most rules do not match, and only the ones that
        do need their reasons written down."""
        return self.check(facts, known).matched

    def leaves(self) -> Iterator[Leaf]:
        raise NotImplementedError


@dataclass(eq=False)
class Leaf(Condition):
    field: Field
    matcher: TextMatcher | Compare | Is
    mark: Mark
    #: Set by the engine: the leaf's number, and whether the engine decides it up front.
    id: int = -1
    indexed: bool = False

    def check(self, facts: Facts, known: Known) -> Verdict:
        found = known.get(self.id) if self.indexed else self.test(facts)
        if isinstance(self.matcher, Is):
            actual = "true" if self.matcher.expected == (found is not None) else "false"
            return Verdict(found is not None, f"{self.field.name} is {actual}")
        if found is not None:
            return Verdict(True, f"{self.field.name} {self._matched_words(found)}")
        return Verdict(False, f"{self.field.name} {self._shown(facts)}: not {self.describe()}")

    def matches(self, facts: Facts, known: Known) -> bool:
        if self.indexed:
            return self.id in known
        return self.test(facts) is not None

    @property
    def index_key(self) -> str:
        """Leaves with the same key read the same value: the engine indexes them together."""
        return self.field.name

    def value(self, facts: Facts) -> object:
        return self.field.read(facts)

    def test(self, facts: Facts) -> str | None:
        value = self.value(facts)
        if isinstance(self.matcher, TextMatcher):
            if self.field.kind is Kind.TEXT_LIST:
                return any_element(self.matcher, value)  # type: ignore[arg-type]
            return self.matcher.test(str(value))
        return self.matcher.test(value)

    def describe(self) -> str:
        return self.matcher.describe()

    def leaves(self) -> Iterator[Leaf]:
        yield self

    def _matched_words(self, found: str) -> str:
        matcher = self.matcher
        if isinstance(matcher, TextMatcher):
            if matcher.op == "any_keyword":
                return f"has keyword '{found}'"
            if matcher.op == "regex":
                return f"matches {matcher.describe()}: '{found}'"
            if matcher.op in ("equals", "in"):
                return f"is '{found}'"
            return f"{matcher.op.replace('_', ' ')} '{found}'"
        return f"is {found} ({matcher.describe()})"

    def _shown(self, facts: Facts) -> str:
        value = self.field.read(facts)
        if isinstance(value, tuple):
            return "[" + ", ".join(repr(v)[:60] for v in value[:5]) + "]"
        if isinstance(value, str):
            return repr(value if len(value) <= 60 else value[:57] + "...")
        return f"is {value}"


@dataclass(eq=False)
class HeaderLeaf(Leaf):
    """`headers: {x-priority: "1"}`: the field is one header, by its lowercased name."""

    header: str = ""

    @property
    def index_key(self) -> str:
        return f"header:{self.header}"

    def value(self, facts: Facts) -> object:
        return facts.headers.get(self.header)

    def test(self, facts: Facts) -> str | None:
        value = facts.headers.get(self.header)
        if value is None or not isinstance(self.matcher, TextMatcher):
            return None
        return self.matcher.test(value)

    def _matched_words(self, found: str) -> str:
        return f"({self.header}) {super()._matched_words(found)}"

    def _shown(self, facts: Facts) -> str:
        value = facts.headers.get(self.header)
        return f"({self.header}) " + ("absent" if value is None else repr(value[:60]))


@dataclass(eq=False)
class HoursLeaf(Leaf):
    """`in_hours: office` / `out_of_hours: office`: the time against a named calendar."""

    calendar: Calendar | None = None
    inside: bool = True

    def test(self, facts: Facts) -> str | None:
        assert self.calendar is not None
        is_open = self.calendar.is_open(facts.now)
        return self.calendar.describe(facts.now) if is_open == self.inside else None

    def check(self, facts: Facts, known: Known) -> Verdict:
        assert self.calendar is not None
        found = self.test(facts)
        state = "within" if self.inside else "outside"
        when = self.calendar.describe(facts.now)
        if found is not None:
            return Verdict(True, f"{when} is {state} {self.calendar.name} hours")
        return Verdict(False, f"{when} is not {state} {self.calendar.name} hours")


@dataclass(eq=False)
class WeekdayLeaf(Leaf):
    zone: ZoneInfo | None = None

    def test(self, facts: Facts) -> str | None:
        assert isinstance(self.matcher, TextMatcher)
        return self.matcher.test(weekday(facts.now, self.zone))

    def _shown(self, facts: Facts) -> str:
        return repr(weekday(facts.now, self.zone))


def weekday(moment: datetime, zone: ZoneInfo | None) -> str:
    return WEEKDAYS[moment.astimezone(zone).weekday()]


@dataclass(eq=False)
class All(Condition):
    children: list[Condition]

    def check(self, facts: Facts, known: Known) -> Verdict:
        reasons = []
        for child in self.children:
            verdict = child.check(facts, known)
            if not verdict.matched:
                return verdict
            reasons.append(verdict.why)
        return Verdict(True, " and ".join(reasons))

    def matches(self, facts: Facts, known: Known) -> bool:
        # A loop, not all(generator): this runs for every rule a message might match, and
        # creating the generator cost more than the tests (bench/rules.py).
        for child in self.children:  # noqa: SIM110
            if not child.matches(facts, known):
                return False
        return True

    def leaves(self) -> Iterator[Leaf]:
        for child in self.children:
            yield from child.leaves()


@dataclass(eq=False)
class AnyOf(Condition):
    children: list[Condition]

    def check(self, facts: Facts, known: Known) -> Verdict:
        reasons = []
        for child in self.children:
            verdict = child.check(facts, known)
            if verdict.matched:
                return verdict
            reasons.append(verdict.why)
        return Verdict(False, "none of: " + "; ".join(reasons))

    def matches(self, facts: Facts, known: Known) -> bool:
        for child in self.children:  # noqa: SIM110 (see All.matches)
            if child.matches(facts, known):
                return True
        return False

    def leaves(self) -> Iterator[Leaf]:
        for child in self.children:
            yield from child.leaves()


@dataclass(eq=False)
class Not(Condition):
    child: Condition

    def check(self, facts: Facts, known: Known) -> Verdict:
        verdict = self.child.check(facts, known)
        return Verdict(not verdict.matched, f"not ({verdict.why})")

    def matches(self, facts: Facts, known: Known) -> bool:
        return not self.child.matches(facts, known)

    def leaves(self) -> Iterator[Leaf]:
        yield from self.child.leaves()


class Always(Condition):
    """A rule without `when`: it matches every message."""

    def check(self, facts: Facts, known: Known) -> Verdict:
        return Verdict(True, "no conditions")

    def matches(self, facts: Facts, known: Known) -> bool:
        return True

    def leaves(self) -> Iterator[Leaf]:
        return iter(())
