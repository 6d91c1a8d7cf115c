"""Canned answers: the pre-written replies a desk relies on, one file per answer and language
in the `answers/` folder beside the rules file: `answers/NAME.LANG.md` (`shipping.fi.md`,
`shipping.en.md`), UTF-8, Markdown allowed (an email reply then gets an HTML part).

Placeholders in braces are filled from the conversation when the answer is used:
`{customer_name}`, `{customer_first_name}`, `{agent_name}`, `{conversation_id}`, `{subject}`;
`{{` and `}}` write braces. A rule's `extract` adds its own (`{order_number}`): an answer that
uses one is refused for a conversation in which no rule found it, rather than sent with a
hole. An answer is picked in the conversation's language and falls back to English, so every
answer needs its `.en.md`. `inbox answers check` says what is wrong with each file, at once,
before anyone uses it.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

PLACEHOLDERS = frozenset(
    {
        "customer_name",
        "customer_first_name",
        "agent_name",
        "conversation_id",
        "subject",
        # When the desk opens next ("Monday 08:00 (Europe/Helsinki)"): auto-replies fill it.
        "next_open",
    }
)
FALLBACK = "en"
FILE_NAME = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)\.(?P<language>[a-z]{2})\.md$")
MAX_BYTES = 64 * 1024


class AnswerError(ValueError):
    """An answer that cannot be used, with every reason (`problems`)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


@dataclass(frozen=True)
class Answers:
    folder: Path
    #: name -> language -> text
    texts: Mapping[str, Mapping[str, str]]

    def pick(self, name: str, language: str) -> tuple[str, str]:
        """The text of `name` in `language`, else in English; (language used, text)."""
        by_language = self.texts.get(name)
        if by_language is None:
            known = ", ".join(sorted(self.texts)) or "none"
            raise AnswerError(f"no answer named {name!r} in {self.folder} (known: {known})")
        for candidate in (language, FALLBACK):
            if candidate in by_language:
                return candidate, by_language[candidate]
        raise AnswerError(f"answer {name!r} has neither {language!r} nor {FALLBACK!r}")

    def render(self, name: str, language: str, values: Mapping[str, str]) -> str:
        _, text = self.pick(name, language)
        missing = sorted(
            field for field in _fields(text) if field not in PLACEHOLDERS and not values.get(field)
        )
        if missing:
            holes = ", ".join("{" + field + "}" for field in missing)
            raise AnswerError(
                f"answer {name!r} needs {holes}, which no rule found in this conversation"
            )
        return string.Formatter().vformat(text, (), {**{k: "" for k in PLACEHOLDERS}, **values})


def answers_folder(rules_file: Path) -> Path:
    return rules_file.parent / "answers"


def load_answers(
    folder: Path, extracted: frozenset[str] = frozenset()
) -> tuple[Answers, list[str]]:
    """Every answer that can be used, and a problem per file or answer that cannot.
    `extracted`: the placeholders the rules' `extract` actions fill."""
    problems: list[str] = []
    texts: dict[str, dict[str, str]] = {}
    if not folder.is_dir():
        return Answers(folder, texts), [f"{folder}: no such folder"]
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        match = FILE_NAME.match(path.name)
        if match is None:
            problems.append(f"{path.name}: not NAME.LANG.md (e.g. shipping.fi.md)")
            continue
        text, reason = _read(path, PLACEHOLDERS | extracted)
        if reason:
            problems.append(f"{path.name}: {reason}")
            continue
        texts.setdefault(match["name"], {})[match["language"]] = text
    for name, by_language in sorted(texts.items()):
        if FALLBACK not in by_language:
            problems.append(f"{name}: no {name}.{FALLBACK}.md to fall back on")
    return Answers(folder, texts), problems


def _fields(text: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]


def _read(path: Path, known: frozenset[str]) -> tuple[str, str]:
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        return "", f"{len(data):,} bytes; an answer may have at most {MAX_BYTES:,}"
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as error:
        return "", f"not UTF-8 (byte {error.start})"
    if not text:
        return "", "empty"
    try:
        fields = _fields(text)
    except ValueError as error:
        return "", f"braces do not pair ({error}); write {{{{ and }}}} for literal braces"
    unknown = sorted({field for field in fields if field not in known})
    if unknown:
        allowed = ", ".join("{" + name + "}" for name in sorted(known))
        return "", f"unknown placeholder {', '.join(unknown)} (allowed: {allowed})"
    return text, ""


class AnswersInForce:
    """The answers of a folder as they are now, read again when a file in it changes (the
    daemon's pings list them, and a thread's `!answer` uses them, without a restart)."""

    def __init__(self, folder: Path, extracted: Callable[[], frozenset[str]] = frozenset) -> None:
        self.folder = folder
        #: The rules' `extract` names in force (they change with a rules reload).
        self.extracted = extracted
        self._seen: tuple[object, ...] | None = None
        self._answers = Answers(folder, {})

    def current(self) -> Answers:
        names = self.extracted()
        stamp = (*self._stamp(), tuple(sorted(names)))
        if stamp != self._seen:
            self._answers, problems = load_answers(self.folder, names)
            self._seen = stamp
            if problems and self.folder.is_dir():
                log.warning("answers_not_usable", folder=str(self.folder), problems=problems[:20])
        return self._answers

    def names(self) -> list[str]:
        return sorted(self.current().texts)

    def _stamp(self) -> tuple[tuple[str, int, int], ...]:
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return ()
        stamps = []
        for entry in entries:
            try:
                stat = entry.stat()
            except OSError:
                continue
            stamps.append((entry.name, stat.st_mtime_ns, stat.st_size))
        return tuple(sorted(stamps))
