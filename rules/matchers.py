"""How a condition compares a field with what the admin wrote.

Text matchers ignore case and accents (rules/text.py), except `regex`, which is exactly what
was written (add `(?i)` to ignore case). Regexes and globs run on RE2: its matching time grows
linearly with the text, so no message, however hostile, can make a rule backtrack for minutes.
RE2 has no backreferences or lookaround; a pattern that needs them is refused at load time.

Each matcher answers with what matched (for the explanation) or None.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import re2

from rules.text import fold, words

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # our loader reports the error with file:line:column


def compile_re2(pattern: str) -> Any:
    """RE2 with `\\w`, `\\W` and `\\d` in Unicode, as Python's re has them: `\\w` must match
    "ä" and "ж" in our customers' words. ValueError with RE2's reason if it cannot compile.

    RE2's `\\b` knows only ASCII letters: `\\bсчёт` would never match. A pattern with `\\b` or
    `\\B` and a letter outside ASCII is refused rather than left to fail silently."""
    if _WORD_BOUNDARY.search(pattern) and any(c.isalpha() and not c.isascii() for c in pattern):
        raise ValueError(
            "\\b in RE2 knows only ASCII letters, so it cannot mark the edge of this word; "
            "use any_keyword for whole words, or (?:^|\\W) before it and (?:\\W|$) after it"
        )
    try:
        return re2.compile(unicode_classes(pattern), options=_RE2_OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"not a valid RE2 regex: {reason}") from None


def re2_text(text: str) -> str:
    """`text` as RE2 takes it: lone surrogates (bytes no charset could decode, which the email
    package carries through as surrogateescape) become "?"; RE2 would refuse the whole text."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


_CLASSES = {"w": r"\pL\pN_", "d": r"\pN"}
_WORD_BOUNDARY = re.compile(r"(?<!\\)(?:\\\\)*\\[bB]")


def unicode_classes(pattern: str) -> str:
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            letter = escaped.lower()
            if letter in _CLASSES:
                inner = _CLASSES[letter]
                if in_class and escaped.isupper():
                    raise ValueError(
                        f"\\{escaped} inside [...] cannot be made to know all scripts in RE2; "
                        f"write (?:\\{escaped}|...) instead"
                    )
                if in_class:
                    out.append(inner)  # [\w-] -> [\pL\pN_-]
                else:
                    out.append(f"[{'^' if escaped.isupper() else ''}{inner}]")
            else:
                out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] not in ("[", "[^"):
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


def glob_to_regex(pattern: str) -> str:
    """`*@example.*` style: * any run, ? one character, [...] a set; all else literal."""
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and "]" in pattern[index + 2 :]:
            end = pattern.index("]", index + 2)
            body = pattern[index + 1 : end].replace("\\", "\\\\")
            if body.startswith("!"):  # [!abc], as in shell globs and fnmatch
                out.append("[^" + body[1:] + "]")
            else:  # a leading ^ is just a character there, as in fnmatch
                out.append("[" + ("\\" + body if body.startswith("^") else body) + "]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "(?s)^" + "".join(out) + "$"


@dataclass(frozen=True)
class TextMatcher:
    op: str
    values: tuple[str, ...]
    folded: tuple[str, ...] = field(init=False, repr=False)
    #: The RE2 patterns of `glob` and `regex`.
    compiled: Any = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folded", tuple(fold(value) for value in self.values))

    def test(self, text: str) -> str | None:
        raise NotImplementedError

    def describe(self) -> str:
        shown = ", ".join(repr(value) for value in self.values[:5])
        more = f" (+{len(self.values) - 5} more)" if len(self.values) > 5 else ""
        words = _OP_WORDS.get(self.op, self.op.replace("_", " "))
        if self.op == "equals" and len(self.values) > 1:
            words = "one of"
        return f"{words} {shown}{more}".strip()


class Equals(TextMatcher):
    #: Folded value -> the first value written that folds to it.
    by_folded: dict[str, str]

    def __post_init__(self) -> None:
        super().__post_init__()
        by_folded: dict[str, str] = {}
        for value, folded in zip(self.values, self.folded, strict=True):
            by_folded.setdefault(folded, value)
        object.__setattr__(self, "by_folded", by_folded)

    def test(self, text: str) -> str | None:
        return self.by_folded.get(fold(text))


class Contains(TextMatcher):
    def test(self, text: str) -> str | None:
        folded = fold(text)
        return next((v for v, w in zip(self.values, self.folded, strict=True) if w in folded), None)


class StartsWith(TextMatcher):
    def test(self, text: str) -> str | None:
        folded = fold(text)
        hit = (v for v, w in zip(self.values, self.folded, strict=True) if folded.startswith(w))
        return next(hit, None)


class EndsWith(TextMatcher):
    def test(self, text: str) -> str | None:
        folded = fold(text)
        hit = (v for v, w in zip(self.values, self.folded, strict=True) if folded.endswith(w))
        return next(hit, None)


def keyword_text(text: str) -> str:
    """A text's words joined by single spaces, padded with one on each side: a keyword or
    phrase is a whole-word match exactly where " phrase " occurs in it."""
    return " " + " ".join(words(text)) + " "


class Keywords(TextMatcher):
    """Whole words or phrases: "kiire" matches "Kiire!" but not "kiireellinen"."""

    def __post_init__(self) -> None:
        super().__post_init__()
        phrases = tuple(" ".join(words(value)) for value in self.values)
        if not all(phrases):
            raise ValueError("a keyword needs a letter or a digit")
        object.__setattr__(self, "folded", phrases)

    def test(self, text: str) -> str | None:
        return self.test_prepared(keyword_text(text))

    def test_prepared(self, prepared: str) -> str | None:
        for value, phrase in zip(self.values, self.folded, strict=True):
            if f" {phrase} " in prepared:
                return value
        return None


class Glob(TextMatcher):
    def __post_init__(self) -> None:
        super().__post_init__()
        compiled = [compile_re2(glob_to_regex(value)) for value in self.folded]
        object.__setattr__(self, "compiled", compiled)

    def test(self, text: str) -> str | None:
        folded = re2_text(fold(text))
        for value, pattern in zip(self.values, self.compiled, strict=True):
            if pattern.search(folded):
                return value
        return None


class Regex(TextMatcher):
    """One pattern; searched anywhere in the text unless anchored."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "folded", self.values)
        object.__setattr__(self, "compiled", compile_re2(self.values[0]))

    def test(self, text: str) -> str | None:
        match = self.compiled.search(re2_text(text))
        return match.group(0)[:80] if match else None

    def describe(self) -> str:
        return f"regex /{self.values[0]}/"


_OP_WORDS = {
    "equals": "",
    "in": "one of",
    "any_keyword": "any of the keywords",
    "glob": "matching",
}

TEXT_MATCHERS: dict[str, type[TextMatcher]] = {
    "equals": Equals,
    "in": Equals,
    "contains": Contains,
    "starts_with": StartsWith,
    "ends_with": EndsWith,
    "any_keyword": Keywords,
    "glob": Glob,
    "regex": Regex,
}

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_SYMBOLS = {"equals": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
COMPARISON_OPS = tuple(_COMPARISONS)


@dataclass(frozen=True)
class Compare:
    op: str
    value: float | timedelta
    shown: str

    def test(self, actual: Any) -> str | None:
        return str(actual) if _COMPARISONS[self.op](actual, self.value) else None

    def describe(self) -> str:
        return f"{_SYMBOLS[self.op]} {self.shown}"


@dataclass(frozen=True)
class Is:
    expected: bool

    def test(self, actual: Any) -> str | None:
        return str(bool(actual)).lower() if bool(actual) == self.expected else None

    def describe(self) -> str:
        return f"is {str(self.expected).lower()}"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.I)
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """`90m`, `2h`, `3d`, `1w`; ValueError otherwise."""
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a duration like 30m, 2h, 3d or 1w")
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
    except OverflowError:
        raise ValueError(f"'{value}' is longer than any conversation can be") from None


def any_element(matcher: TextMatcher, values: Sequence[str]) -> str | None:
    for value in values:
        found = matcher.test(value)
        if found is not None:
            return found
    return None
