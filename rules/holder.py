"""The rules in force, and their safe replacement on SIGHUP or when the file changes.

A reload builds and compiles the new file completely before it swaps one reference; a file
that fails validation is refused with its errors logged, and the rules in force stay. The
pipeline takes the reference once per batch, so every message of a batch (and so every
conversation in flight) sees either the old rules or the new ones, never a mix.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import structlog

from rules.answers import AnswersInForce, answers_folder
from rules.engine import CompiledRules
from rules.errors import Mark, Problem, RulesInvalid
from rules.loader import load_rules

log = structlog.get_logger(__name__)


def compile_file(path: Path, *, text: str | None = None) -> CompiledRules:
    """Load and compile; RulesInvalid (every problem) if the file cannot be used. `text`: see
    `load_rules`."""
    ruleset = load_rules(path, text=text)
    try:
        return CompiledRules(ruleset)
    except RuntimeError as error:  # RE2 refusing a set of regexes: a limit, not a typo
        raise RulesInvalid([Problem(Mark(str(path), 1, 1), "rules", str(error))]) from None


class RulesInForce:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: CompiledRules = compile_file(path)
        #: The canned answers beside the file (answers/), read again when one changes; the
        #: placeholders they may use follow the rules in force (`extract`).
        self.answers = AnswersInForce(
            answers_folder(path), lambda: self.current.ruleset.extracted_names()
        )
        self._stamps = self._read_stamps()
        self.reloads = 0
        self.failed_reloads = 0
        log.info(
            "rules_loaded",
            path=str(path),
            rules=len(self.current.ruleset.rules),
            version=self.current.version,
        )

    def reload(self, reason: str) -> bool:
        """Try the file on disk; True if it is now in force."""
        stamps = self._read_stamps()
        try:
            candidate = compile_file(self.path)
        except RulesInvalid as invalid:
            self._stamps = stamps  # do not retry the same broken text on every poll
            self.failed_reloads += 1
            log.error(
                "rules_reload_refused",
                reason=reason,
                path=str(self.path),
                problems=[str(problem) for problem in invalid.problems[:50]],
                kept_version=self.current.version,
            )
            return False
        except Exception:
            self._stamps = stamps
            self.failed_reloads += 1
            log.exception("rules_reload_failed", reason=reason, kept_version=self.current.version)
            return False
        previous = self.current.version
        self.current = candidate
        # The stamps read before compiling: a save made meanwhile is seen at the next look.
        self._stamps = {**self._read_stamps(), **stamps}
        self.reloads += 1
        log.info(
            "rules_reloaded",
            reason=reason,
            rules=len(candidate.ruleset.rules),
            version=candidate.version,
            previous_version=previous,
        )
        return True

    def reload_if_changed(self) -> bool:
        """Cheap enough for every poll: a stat of each file the rules came from."""
        if self._read_stamps() == self._stamps:
            return False
        return self.reload("file changed")

    def _read_stamps(self) -> dict[str, object]:
        files = {str(self.path), *self.current.ruleset.files}
        globs = self.current.ruleset.watch_globs
        stamps: dict[str, object] = {}
        for name in sorted(files):
            try:
                status = os.stat(name)
                stamps[name] = (status.st_mtime_ns, status.st_size)
            except OSError:
                stamps[name] = None
        for pattern in globs:
            stamps[f"glob:{pattern}"] = tuple(sorted(glob.glob(pattern)))
        return stamps
