"""Problems in a rules file, each pinned to file:line:column, reported all at once.

An admin edits the file on a live server: a report that stops at the first mistake makes them
reload five times. So the loader collects every problem it can find, and each names the place,
the key, what was expected and, for a misspelling, the closest valid name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mark:
    """A place in a file, 1-based as editors show it."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Problem:
    mark: Mark
    #: The dotted path of the key at fault (`rules[3].when.subject`), "" for the file itself.
    key: str
    message: str

    def __str__(self) -> str:
        where = f" {self.key}:" if self.key else ""
        return f"{self.mark}:{where} {self.message}"


class RulesInvalid(Exception):
    """The file cannot be used; `problems` says everything that is wrong with it."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(
            set(problems), key=lambda p: (p.mark.file, p.mark.line, p.mark.column, p.message)
        )
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the rules")

    def report(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """ ", did you mean 'priority'?" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(str(name), sorted(set(choices)), n=1, cutoff=0.6)
    return f", did you mean '{close[0]}'?" if close else ""


def unknown(what: str, name: str, choices: Iterable[str]) -> str:
    """The message for a name that does not exist: the closest one, or the valid ones."""
    options = sorted(set(choices))
    hint = did_you_mean(name, options)
    if hint:
        return f"unknown {what} '{name}'{hint}"
    if not options:
        return f"unknown {what} '{name}' (none is defined)"
    shown = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
    return f"unknown {what} '{name}' (expected one of: {shown})"
