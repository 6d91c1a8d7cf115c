"""Each rule's condition as one Python function, written when the rules are compiled.

Asking a condition tree whether it matches costs a method call per node: a rule such as
`{body: {any_keyword: [...]}, language: fi}` is All.matches, two Leaf.matches, Leaf.test,
Equals.test and fold, six Python calls, and a message has a handful of such candidate rules
(bench/rules.py: half of a message's time after the index passes). Written out, the same rule
is one function of one line:

    def rule_1(facts, known, folded):
        return (17 in known) and (folded[0] in v2)

- a leaf the engine decided up front is a lookup in `known`;
- an `equals`/`in` leaf on a text field or a header is a lookup of the message's folded value,
  which `FoldedValues` folds once a message, the first time a rule asks for it;
- any other leaf calls its own `test`, and a condition of a kind this module does not know
  (or nested deeper than Python's parser allows) its own `matches`.

So the function decides exactly what `rule.when.matches` decides; tests/rules/test_engine.py
holds them to that. Explanations (`check`) still walk the tree: only matching rules need them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rules.conditions import (
    All,
    Always,
    AnyOf,
    Condition,
    HeaderLeaf,
    Known,
    Leaf,
    Not,
)
from rules.facts import Facts
from rules.fields import Kind
from rules.matchers import Equals
from rules.text import fold

Predicate = Callable[[Facts, Known, "FoldedValues"], bool]
Reader = Callable[[Facts], "str | None"]

#: Deeper than this, a subtree is asked through its own `matches`: Python's parser refuses an
#: expression nested 200 parentheses deep, and an admin's file may nest that deep.
MAX_DEPTH = 40


class FoldedValues(dict[int, "str | None"]):
    """One message's field values as `equals` compares them (str, folded), by slot; a slot is
    read and folded the first time a rule asks, then kept for the message's other rules."""

    __slots__ = ("facts", "readers")

    def __init__(self, facts: Facts, readers: Sequence[Reader]) -> None:
        super().__init__()
        self.facts = facts
        self.readers = readers

    def __missing__(self, slot: int) -> str | None:
        value = self.readers[slot](self.facts)
        self[slot] = value
        return value


def _field_reader(leaf: Leaf) -> Reader:
    """What Leaf.test hands an Equals matcher, folded as Equals.test folds it."""
    read = leaf.field.read
    return lambda facts: fold(str(read(facts)))


def _header_reader(header: str) -> Reader:
    """What HeaderLeaf.test hands its matcher, folded; None when the header is absent (then
    no value is `in` an Equals matcher's values)."""

    def read(facts: Facts) -> str | None:
        value = facts.headers.get(header)
        return None if value is None else fold(value)

    return read


class _Writer:
    """Writes the functions' source and the namespace of values it refers to."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {}
        self.readers: list[Reader] = []
        self._slots: dict[str, int] = {}

    def value(self, prefix: str, value: object) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def slot(self, leaf: Leaf) -> int:
        key = leaf.index_key
        if key not in self._slots:
            self._slots[key] = len(self.readers)
            if isinstance(leaf, HeaderLeaf):
                self.readers.append(_header_reader(leaf.header))
            else:
                self.readers.append(_field_reader(leaf))
        return self._slots[key]

    def expression(self, condition: Condition, depth: int = 0) -> str:
        if depth > MAX_DEPTH:
            return f"{self.value('c', condition)}.matches(facts, known)"
        kind = type(condition)
        if kind is All or kind is AnyOf:
            children = condition.children  # type: ignore[attr-defined]
            if not children:  # what all() and any() of nothing answer
                return "True" if kind is All else "False"
            joiner = " and " if kind is All else " or "
            return "(" + joiner.join(self.expression(c, depth + 1) for c in children) + ")"
        if kind is Not:
            return f"(not {self.expression(condition.child, depth + 1)})"  # type: ignore[attr-defined]
        if kind is Always:
            return "True"
        if isinstance(condition, Leaf):
            return self._leaf(condition)
        return f"{self.value('c', condition)}.matches(facts, known)"

    def _leaf(self, leaf: Leaf) -> str:
        if leaf.indexed:
            return f"({leaf.id} in known)"
        matcher = leaf.matcher
        if (
            type(leaf) in (Leaf, HeaderLeaf)
            and type(matcher) is Equals
            and leaf.field.kind is Kind.TEXT
        ):
            return f"(folded[{self.slot(leaf)}] in {self.value('v', matcher.by_folded)})"
        return f"({self.value('t', leaf.test)}(facts) is not None)"


def compile_predicates(conditions: Sequence[Condition]) -> tuple[list[Predicate], list[Reader]]:
    """One function a condition, in the same order; and the readers FoldedValues needs."""
    writer = _Writer()
    source = [
        f"def rule_{number}(facts, known, folded):\n    return {writer.expression(condition)}\n"
        for number, condition in enumerate(conditions)
    ]
    namespace = writer.namespace
    # The source holds numbers and the names _Writer made, never a word of the rules file:
    # what an admin wrote reaches the functions only as values in the namespace.
    exec(compile("\n".join(source), "<rules>", "exec"), namespace)
    # Taken out of their namespace, which is their globals: no cycle for a reload to leave to
    # the garbage collector.
    predicates = [namespace.pop(f"rule_{number}") for number in range(len(conditions))]
    return predicates, writer.readers
