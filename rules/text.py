"""Case- and accent-insensitive text, the way admins expect keywords to match.

"kiireellinen" must match "KIIREELLINEN", "επείγον" must match "ΕΠΕΙΓΟΝ" and "Επειγον", and
"cafe" must match "café". Folding is casefold plus removal of the accents of Latin and Greek
letters (ё becomes е too); Cyrillic otherwise keeps its letters (й is not и).

Speed matters here: the body of every message is folded. Measured on 3 KB of text, a
`str.translate` table cost 150 µs (a dictionary lookup per character), more than all the rest
of a rules evaluation. Most of our customers' text fits one Windows code page (Western, Greek
or Cyrillic), so it is encoded to that page, folded with `bytes.translate` (a table lookup in
C) and decoded back: about 5 µs. Text that fits none (mixed scripts) takes the slow path.
"""

from __future__ import annotations

import unicodedata


def _fold_char(char: str) -> str:
    if unicodedata.category(char)[0] != "L":
        return char
    if char in "ёЁ":
        return "е"
    if char == "ς":
        return "σ"
    if not ("\u00c0" <= char < "\u0250" or "\u0370" <= char < "\u0400" or char >= "\u1e00"):
        return char
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base.casefold() or char


def _slow_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for block in (range(0x00C0, 0x0250), range(0x0370, 0x0400), range(0x1E00, 0x2000)):
        for codepoint in block:
            folded = _fold_char(chr(codepoint))
            if folded != chr(codepoint):
                table[codepoint] = folded
    table[ord("ё")] = table[ord("Ё")] = "е"
    return table


_SLOW = _slow_table()


def _page_table(codec: str) -> bytes | None:
    """A 256-byte table folding the code page's letters within the page, or None."""
    table = bytearray(range(256))
    for byte in range(128, 256):
        try:
            char = bytes([byte]).decode(codec)
        except UnicodeDecodeError:
            continue
        if char.casefold() != char:
            continue  # casefold runs first: "ß" and capitals never reach the table
        folded = _SLOW.get(ord(char), char)
        try:
            encoded = folded.encode(codec)
        except UnicodeEncodeError:
            return None
        if len(encoded) != 1:
            return None
        table[byte] = encoded[0]
    return bytes(table)


_PAGES = [
    (codec, table)
    for codec in ("cp1252", "cp1253", "cp1251")
    if (table := _page_table(codec)) is not None
]


def fold(text: str) -> str:
    """Casefolded, accents removed."""
    if text.isascii():
        return text.lower()
    lowered = text.casefold()
    for codec, table in _PAGES:
        try:
            encoded = lowered.encode(codec)
        except UnicodeEncodeError:
            continue
        return encoded.translate(table).decode(codec)
    return lowered.translate(_SLOW)


def is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def whole_word_at(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] stands as whole words: no letter or digit touches it."""
    if start > 0 and is_word_char(text[start - 1]) and is_word_char(text[start]):
        return False
    return not (end < len(text) and is_word_char(text[end]) and is_word_char(text[end - 1]))
