"""Case- and accent-insensitive text, the way admins expect keywords to match.

"kiireellinen" must match "KIIREELLINEN", "επείγον" must match "ΕΠΕΙΓΟΝ" and "Επειγον", and
"cafe" must match "café". Folding is casefold plus removal of combining accents in Latin and
Greek script, done with one `str.translate` table built at import (a per-character Python loop
over a 4 KB message cost more than the whole rules evaluation). Cyrillic keeps its letters
(й is not и), except ё, which Russian writers commonly type as е.
"""

from __future__ import annotations

import unicodedata

_FOLDED_RANGES = (
    range(0x00C0, 0x0250),  # Latin-1 Supplement, Latin Extended-A and -B
    range(0x1E00, 0x1F00),  # Latin Extended Additional (Vietnamese, ...)
    range(0x0370, 0x0400),  # Greek
    range(0x1F00, 0x2000),  # Greek Extended (polytonic)
)


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for block in _FOLDED_RANGES:
        for codepoint in block:
            char = chr(codepoint)
            if unicodedata.category(char)[0] != "L":
                continue
            base = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            folded = base.casefold()
            if folded != char:
                table[codepoint] = folded
    for char in "ёЁ":
        table[ord(char)] = "е"
    table[ord("ς")] = "σ"  # final sigma: "επείγονς" never, but "σας" vs "ΣΑΣ" always
    return table


_TABLE = _build_table()


def fold(text: str) -> str:
    """Casefolded, accents removed; same length in most scripts, never shorter per word."""
    if text.isascii():
        return text.lower()
    return text.casefold().translate(_TABLE)


def is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def whole_word_at(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] stands as whole words: no letter or digit touches it."""
    if start > 0 and is_word_char(text[start - 1]) and is_word_char(text[start]):
        return False
    return not (end < len(text) and is_word_char(text[end]) and is_word_char(text[end - 1]))
