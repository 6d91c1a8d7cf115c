"""Which of many keywords and phrases occur as whole words in a text: one pass, whatever their
number.

The engine asks this of every message body for every `any_keyword` of every rule. Words are
what `rules.text.words` says they are (folded: case, accents; split at anything that is not a
letter, digit or "_"); a phrase matches where its words follow each other.

Two implementations give the same answers (tests/rules/test_wordscan.py holds them to it):

- native (`rules/_wordscan.c`, built with the package when a C compiler is there): a table
  lookup per character and a hash lookup per word. On bench/rules.py's 2.4 KB bodies it is
  about 5 times faster than:
- Python: `words()`, a set intersection and an Aho-Corasick automaton for phrases. Used for the
  texts the native scanner leaves to it (letters beyond the Basic Multilingual Plane), and for
  everything when the extension is not built.

The native scanner's character table is built here, from `rules.text`'s own folding, so the two
cannot drift apart.
"""

from __future__ import annotations

import functools
import unicodedata
from array import array
from collections.abc import Sequence
from typing import Any

import ahocorasick

from rules.text import _SLOW_LIST, is_word_char, words

try:
    from rules import _wordscan  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: the Python path does it all
    _wordscan = None

NATIVE = _wordscan is not None

_BMP = 0x10000
_NFC_FLAG = 1 << 31
_SEP, _CHAR, _DROP, _EXPANSION = (kind << 29 for kind in range(4))
#: Hangul vowel and trailing jamo: NFC joins them to the syllable before.
_JAMO_SECONDS = (range(0x1161, 0x1176), range(0x11A8, 0x11C3))


#: Blocks whose every character is a letter that folds to itself and NFC leaves alone (CJK
#: ideographs, Yi, Hangul syllables), or no letter at all (private use): a third of the BMP
#: built in one go instead of character by character. tests/rules/test_wordscan.py checks
#: them against the character-by-character way.
_UNIFORM_BLOCKS = (
    (range(0x3400, 0x4DC0), True),
    (range(0x4E00, 0xA000), True),
    (range(0xA000, 0xA48D), True),
    (range(0xAC00, 0xD7A4), True),
    (range(0xD800, 0xE000), False),  # surrogates: no letter when alone
    (range(0xE000, 0xF900), False),
)


@functools.cache
def _tables() -> tuple[bytes, bytes]:
    """The native scanner's per-character table and its expansions (see _wordscan.c). Built
    once per process (about 0.1 s): every BMP character folded the way `words()` folds it."""
    seconds = _composition_seconds()
    table = array("I", bytes(4 * _BMP))
    expansions = array("I")
    uniform: set[int] = set()
    for block, letters in _UNIFORM_BLOCKS:
        for codepoint in block:
            table[codepoint] = _CHAR | codepoint if letters else _SEP
        uniform.update(block)
    for codepoint in range(_BMP):
        if codepoint not in uniform:
            table[codepoint] = _entry(codepoint, seconds, expansions)
    return table.tobytes(), expansions.tobytes()


def _entry(codepoint: int, seconds: set[int], expansions: array[int]) -> int:
    """One character's table entry; an expansion is appended to `expansions`."""
    char = chr(codepoint)
    if 0xD800 <= codepoint < 0xE000:
        return _SEP  # a lone surrogate is no letter
    folded = char.casefold().replace("\u0307", "").translate(_SLOW_LIST)
    items = [_CHAR | ord(out) if is_word_char(out) else _SEP for out in folded]
    if len(items) == 1:
        entry = items[0]
    elif not items:
        entry = _DROP
    else:
        entry = _EXPANSION | len(expansions)
        expansions.append(len(items))
        expansions.extend(items)
    if codepoint in seconds or _may_change_under_nfc(char):
        entry |= _NFC_FLAG
    return entry


def _composition_seconds() -> set[int]:
    """Characters NFC can join to the one before (a composition's second part)."""
    seconds = {codepoint for block in _JAMO_SECONDS for codepoint in block}
    for codepoint in range(_BMP):
        parts = unicodedata.decomposition(chr(codepoint)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(int(parts[1], 16))
    return seconds


def _may_change_under_nfc(char: str) -> bool:
    return unicodedata.combining(char) != 0 or unicodedata.normalize("NFC", char) != char


class WordScanner:
    """Finds keywords and phrases given folded, words joined by one space (what
    `Keywords.folded` holds). `scan` answers with their positions in that list."""

    def __init__(self, keywords: Sequence[str]) -> None:
        self.keywords = list(keywords)
        if len(set(self.keywords)) < len(self.keywords):
            raise ValueError("each keyword once: a scan reports a keyword's position")
        if any("" in keyword.split(" ") for keyword in self.keywords):
            # Keywords.folded never makes one; refused here by both paths alike.
            raise ValueError("a keyword is words joined by single spaces, none empty")
        self._single = {word: slot for slot, word in enumerate(self.keywords) if " " not in word}
        self._phrases: Any = None
        if len(self._single) < len(self.keywords):
            self._phrases = ahocorasick.Automaton()
            for slot, phrase in enumerate(self.keywords):
                if " " in phrase:
                    self._phrases.add_word(f" {phrase} ", slot)
            self._phrases.make_automaton()
        self._native = self._build_native() if NATIVE else None

    def _build_native(self) -> Any:
        vocabulary: dict[str, int] = {}
        word_slots: list[int] = []

        def word_id(word: str, slot: int) -> int:
            known = vocabulary.get(word)
            if known is None:
                known = vocabulary[word] = len(word_slots)
                word_slots.append(slot)
            elif slot >= 0:
                word_slots[known] = slot
            return known

        phrases: list[list[int]] = []
        phrase_slots: list[int] = []
        for slot, keyword in enumerate(self.keywords):
            parts = keyword.split(" ")
            if len(parts) == 1:
                word_id(keyword, slot)
            else:
                phrases.append([word_id(part, -1) for part in parts])
                phrase_slots.append(slot)
        table, expansions = _tables()
        return _wordscan.Scanner(
            table, expansions, list(vocabulary), word_slots, phrases, phrase_slots
        )

    def scan(self, text: str) -> list[int]:
        """The positions of the keywords and phrases found in `text`, each once."""
        native = self._native
        if native is not None:
            found: list[int] | None = native.scan(text, True)
            if found is not None:
                return found
            if not unicodedata.is_normalized("NFC", text):
                text = unicodedata.normalize("NFC", text)
            found = native.scan(text, False)
            if found is not None:
                return found
        return self.scan_in_python(text)

    def scan_in_python(self, text: str) -> list[int]:
        tokens = words(text)
        single = self._single
        found = [single[word] for word in set(tokens) if word in single]
        if self._phrases is not None:
            seen = set(found)
            for _, slot in self._phrases.iter(" " + " ".join(tokens) + " "):
                if slot not in seen:
                    seen.add(slot)
                    found.append(slot)
        return found
