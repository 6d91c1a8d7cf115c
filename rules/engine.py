"""The compiled rules: every rule's conditions decided in a few passes over a message.

Trying a thousand rules one by one costs a thousand regex scans of the message. Instead, at
load time every leaf that can be decided for all rules at once goes into an index:

- `any_keyword` leaves: one word scanner per field (rules/wordscan.py) holds every keyword and
  phrase of every rule; one pass over the text folds it and finds them all as whole words;
- `regex` leaves on text fields: one RE2 set per field matches all patterns in one pass;
- `equals` / `in` leaves: a dictionary from value to leaves, one lookup per field.

A rule can only match if one of its "trigger" leaves did (for `all`, the one of its indexed
children; for `any`, all children must be indexed). Rules without a trigger (only `not`,
numbers, times, ...) are evaluated for every message. The handful of rules a message might
match are asked through their predicates (rules/predicates.py: each condition written out as one
Python function); only those that match walk their condition tree for the explanation. So a
message costs a few passes over its text plus a function call per candidate rule
(bench/rules.py has figures).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import ahocorasick
import re2

from rules.conditions import All, AnyOf, Condition, HeaderLeaf, Leaf, Verdict
from rules.decisions import Decisions
from rules.facts import Facts
from rules.fields import Kind
from rules.matchers import Contains, Equals, Keywords, Regex, re2_text, unicode_classes
from rules.model import Rule, RuleSet
from rules.predicates import FoldedValues, compile_predicates
from rules.text import fold
from rules.wordscan import WordScanner

_SET_OPTIONS = re2.Options()
_SET_OPTIONS.log_errors = False
#: A message costs one pass per set, whatever its size (bench/rules.py: 8 µs over a 2.4 KB
#: body for 7 patterns or 207), so sets are made as large as RE2 compiles them: a set that
#: outgrows its memory budget is split in two until each half compiles. RE2's default budget
#: (8 MB) held about 300 of bench/rules.py's regexes; 64 MB holds more than this many.
REGEXES_PER_SET = 1000
_SET_OPTIONS.max_mem = 64 << 20

#: Between the elements of a list field (To, tags) so that no phrase spans two of them.
_LIST_JOIN = " \n "


class RuleResult(NamedTuple):
    """A NamedTuple for the reason Verdict is one: made for every matching rule."""

    rule: Rule
    verdict: Verdict
    #: False: not evaluated, because an earlier rule stopped the pass.
    evaluated: bool = True


@dataclass
class Evaluation:
    facts: Facts
    version: str
    #: Production: the matching rules. Trace (`rules test`): every rule, matched or not.
    results: list[RuleResult] = field(default_factory=list)
    decisions: Decisions = field(default_factory=Decisions)

    @property
    def matched(self) -> list[RuleResult]:
        return [result for result in self.results if result.verdict.matched]


class _FieldIndex:
    """The indexed leaves that read one value (a field or a header)."""

    def __init__(self, read: Callable[[Facts], object]) -> None:
        self.read = read
        # Each key maps to its leaves as {leaf id: value as written}, merged into a message's
        # hits with one dict.update (a keyword can be in many rules' leaves).
        #: Folded keywords and phrases ("out of office"), found by one scanner.
        self.keywords: dict[str, dict[int, str]] = defaultdict(dict)
        self.scanner: WordScanner | None = None
        #: The keywords' leaves in the scanner's order.
        self.keyword_leaves: list[dict[int, str]] = []
        self.regexes: list[tuple[int, Any, str]] = []
        #: RE2 sets of up to REGEXES_PER_SET patterns: (offset of its first, the set).
        self.regex_sets: list[tuple[int, Any]] = []
        self.equals: dict[str, dict[int, str]] = defaultdict(dict)
        #: `contains` values (folded substrings), found in one Aho-Corasick pass.
        self.contains: dict[str, dict[int, str]] = defaultdict(dict)
        self.contains_automaton: Any = None

    def compile(self) -> None:
        if self.keywords:
            self.scanner = WordScanner(list(self.keywords))
            self.keyword_leaves = list(self.keywords.values())
        self.contains_automaton = _automaton(self.contains, "{}")
        for offset in range(0, len(self.regexes), REGEXES_PER_SET):
            self._add_regex_sets(offset, min(offset + REGEXES_PER_SET, len(self.regexes)))

    def _add_regex_sets(self, start: int, end: int) -> None:
        """The regexes start..end as one RE2 set, or as two halves (recursively) when RE2
        cannot fit them in one."""
        regex_set = re2.Set.SearchSet(_SET_OPTIONS)
        for _, _, pattern in self.regexes[start:end]:
            regex_set.Add(unicode_classes(pattern))
        try:
            regex_set.Compile()
        except re2.error as error:
            if end - start == 1:
                raise RuntimeError(f"RE2 could not compile a regex as a set: {error}") from None
            middle = (start + end) // 2
            self._add_regex_sets(start, middle)
            self._add_regex_sets(middle, end)
            return
        self.regex_sets.append((start, regex_set))

    def finder(self) -> Callable[[Facts, dict[int, str]], None]:
        """The pass over this value, as a closure over what it needs: a message runs one per
        index, and reading a dozen attributes of `self` in each cost more than the lookups."""
        read = self.read
        equals = self.equals or None
        automaton = self.contains_automaton
        scan = self.scanner.scan if self.scanner is not None else None
        keyword_leaves = self.keyword_leaves
        regex_sets = self.regex_sets
        regexes = self.regexes

        def find(facts: Facts, hits: dict[int, str]) -> None:
            value = read(facts)
            if value is None:
                return
            if isinstance(value, tuple):
                values = [str(item) for item in value]
                text = _LIST_JOIN.join(values)
            else:
                text = str(value)
                values = [text]
            if equals is not None:
                for item in values:
                    found = equals.get(fold(item))
                    if found:
                        hits.update(found)
            if regex_sets:  # on an empty text too: /^\s*$/ matches an empty subject
                # RE2 matches UTF-8: encoded once here, not once per set by the wrapper.
                searched = text
                try:
                    encoded = text.encode("utf-8")
                except UnicodeEncodeError:
                    searched = re2_text(text)  # lone surrogates match as "?"
                    encoded = searched.encode("utf-8")
                for offset, regex_set in regex_sets:
                    for position in regex_set.Match(encoded) or ():  # None: nothing matched
                        leaf_id, compiled, _ = regexes[offset + position]
                        match = compiled.search(searched)
                        hits[leaf_id] = match.group(0)[:80] if match else ""
            if not text:
                return
            if automaton is not None:
                for item in values:
                    for _, leaves in automaton.iter(fold(item)):
                        hits.update(leaves)
            if scan is not None:
                for slot in scan(text):
                    hits.update(keyword_leaves[slot])

        return find


class CompiledRules:
    """A RuleSet ready to run. Immutable once built: reloads build a new one."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.version = ruleset.version
        self._indexes: dict[str, _FieldIndex] = {}
        leaves = [leaf for rule in ruleset.rules for leaf in rule.when.leaves()]
        for leaf_id, leaf in enumerate(leaves):
            leaf.id = leaf_id
            leaf.indexed = _indexable(leaf)
        #: Equals leaves on one value (language, channel, a header): cheap to test alone, and
        #: found in most messages, so they trigger a rule only when nothing better can.
        common = {leaf.id for leaf in leaves if _tested_cheaply(leaf)}
        triggers = [_triggers(rule.when, common) for rule in ruleset.rules]
        wanted = set().union(*(trigger for trigger in triggers if trigger is not None))
        for leaf in leaves:
            # An equals leaf that triggers nothing is tested when its rule is looked at: put in
            # the index, a message in Finnish would add every rule's "language: fi" to its hits
            # (a hundred a message in bench/rules.py), to be looked at by no one.
            if leaf.indexed and (leaf.id in wanted or leaf.id not in common):
                self._index(leaf)
            else:
                leaf.indexed = False
        for index in self._indexes.values():
            index.compile()
        self._finders = [index.finder() for index in self._indexes.values()]
        #: Rule positions: those evaluated for every message, and those a leaf's hit triggers.
        self._always: list[int] = []
        self._by_trigger: dict[int, list[int]] = defaultdict(list)
        for rule, trigger in zip(ruleset.rules, triggers, strict=True):
            if trigger is None:
                self._always.append(rule.index)
            else:
                for leaf_id in trigger:
                    self._by_trigger[leaf_id].append(rule.index)
        self._by_trigger = dict(self._by_trigger)
        self.leaf_count = len(leaves)
        self._predicates, self._readers = compile_predicates([rule.when for rule in ruleset.rules])

    def _index(self, leaf: Leaf) -> None:
        """Puts an `_indexable` leaf in its field's index."""
        matcher = leaf.matcher
        index = self._indexes.get(leaf.index_key)
        if index is None:
            read = leaf.value if isinstance(leaf, HeaderLeaf) else leaf.field.read
            index = self._indexes[leaf.index_key] = _FieldIndex(read)
        if isinstance(matcher, Keywords):
            for original, phrase in zip(matcher.values, matcher.folded, strict=True):
                index.keywords[phrase][leaf.id] = original
        elif isinstance(matcher, Regex):
            index.regexes.append((leaf.id, matcher.compiled, matcher.values[0]))
        elif isinstance(matcher, Equals | Contains):
            target = index.equals if type(matcher) is Equals else index.contains
            for original, folded in zip(matcher.values, matcher.folded, strict=True):
                target[folded][leaf.id] = original

    def hits(self, facts: Facts) -> dict[int, str]:
        found: dict[int, str] = {}
        for find in self._finders:
            find(facts, found)
        return found

    def evaluate(self, facts: Facts, *, trace: bool = False) -> Evaluation:
        """The rules for one message. `trace`: record every rule, matched or not (for admins);
        otherwise only the rules that could match are looked at."""
        known = self.hits(facts)
        evaluation = Evaluation(facts, self.version)
        if trace:
            candidates: list[Rule] = list(self.ruleset.rules)
        else:
            chosen = set(self._always)
            by_trigger = self._by_trigger
            # Hits that trigger no rule (a second keyword of an `all` whose trigger is its
            # first) drop out in one set intersection, in C.
            for leaf_id in known.keys() & by_trigger.keys():
                chosen.update(by_trigger[leaf_id])
            rules = self.ruleset.rules
            candidates = [rules[index] for index in sorted(chosen)]
        predicates = self._predicates
        folded = FoldedValues(facts, self._readers)
        decisions = evaluation.decisions
        for rule in candidates:
            if decisions.stopped_by:
                if trace:
                    why = f"not evaluated: rule '{decisions.stopped_by}' stopped the pass"
                    evaluation.results.append(RuleResult(rule, Verdict(False, why), False))
                    continue
                break
            if not trace and not predicates[rule.index](facts, known, folded):
                continue
            verdict = rule.when.check(facts, known)
            if verdict.matched or trace:
                evaluation.results.append(RuleResult(rule, verdict))
            if verdict.matched:
                decisions.apply(rule, facts)
        return evaluation


def _automaton(keys: dict[str, dict[int, str]], shape: str) -> Any:
    """An Aho-Corasick automaton of `shape.format(key)` to the key's leaves, or None."""
    if not keys:
        return None
    automaton = ahocorasick.Automaton()
    for key, leaves in keys.items():
        automaton.add_word(shape.format(key), leaves)
    automaton.make_automaton()
    return automaton


def _indexable(leaf: Leaf) -> bool:
    """Whether the engine can decide `leaf` for all rules at once, in a pass over its field."""
    if type(leaf) not in (Leaf, HeaderLeaf) or leaf.field.kind not in (Kind.TEXT, Kind.TEXT_LIST):
        return False
    matcher = leaf.matcher
    if isinstance(matcher, Keywords) or type(matcher) is Equals:
        return True
    if isinstance(matcher, Regex):
        return leaf.field.kind is Kind.TEXT
    return type(matcher) is Contains and all(matcher.folded)


def _tested_cheaply(leaf: Leaf) -> bool:
    return leaf.indexed and type(leaf.matcher) is Equals and leaf.field.kind is Kind.TEXT


def _triggers(condition: Condition, common: set[int]) -> frozenset[int] | None:
    """Leaves of which one must match for `condition` to match; None: no such set. Where
    there is a choice (the children of an `all`), the one least likely to match: a set without
    `common` leaves, then the smallest."""
    if isinstance(condition, Leaf):
        return frozenset((condition.id,)) if condition.indexed else None
    if isinstance(condition, All):
        sets = [
            found for child in condition.children if (found := _triggers(child, common)) is not None
        ]
        return min(
            sets, key=lambda leaves: (not common.isdisjoint(leaves), len(leaves)), default=None
        )
    if isinstance(condition, AnyOf):
        union: set[int] = set()
        for child in condition.children:
            found = _triggers(child, common)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    return None
