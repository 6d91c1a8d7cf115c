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

import codecs
import re
import threading
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
#: The same as a list indexed by code point (beyond it, IndexError leaves a character as it
#: is): str.translate looks a list up about 2.5 times faster than a dictionary.
_SLOW_LIST = [chr(codepoint) for codepoint in range(max(_SLOW) + 1)]
for _codepoint, _folded in _SLOW.items():
    _SLOW_LIST[_codepoint] = _folded


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


def _words_table(codec: str, fold_table: bytes) -> bytes:
    """The fold table with every byte that is not part of a word turned into a space."""
    table = bytearray(fold_table)
    for byte in range(256):
        try:
            char = bytes([byte]).decode(codec)
        except UnicodeDecodeError:
            table[byte] = 0x20
            continue
        if not is_word_char(char):
            table[byte] = 0x20
    return bytes(table)


def is_word_char(char: str) -> bool:
    """Letters, digits and "_", in any script: what `\\w` means in keywords and regexes."""
    return char.isalnum() or char == "_"


_PAGES = [
    (codec, table, _words_table(codec, table))
    for codec in ("cp1252", "cp1253", "cp1251")
    if (table := _page_table(codec)) is not None
]
#: The words tables with NUL kept: it marks the runs _mixed_words sets aside.
_ASIDE_TABLES = {codec: b"\x00" + words_table[1:] for codec, _, words_table in _PAGES}
_ASCII_WORDS = _words_table("ascii", bytes(range(128)) + bytes(128))
_WORD = re.compile(r"\w+")
_FIRST_BEYOND_ASCII = re.compile(r"[^\x00-\x7f]")
_NOT_WORD = re.compile(r"\W+")


def _casefolded(text: str) -> str:
    """Composed first (macOS mail clients send "é" as e + accent; NFC makes it one letter),
    then casefolded; "İ" casefolds to "i" + a dot above, which is dropped."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    lowered = text.casefold()
    return lowered.replace("\u0307", "") if "\u0307" in lowered else lowered


def fold(text: str) -> str:
    """Casefolded, accents removed."""
    if text.isascii():
        return text.lower()
    lowered = _casefolded(text)
    return _through_page(lowered, 1) or lowered.translate(_SLOW_LIST)


def words(text: str) -> list[str]:
    """The folded words of a text, in order: what keywords are matched against. A word is a
    run of letters, digits and underscores; everything else separates words (so "e-mail" is
    the two words "e mail", in keywords and in text alike)."""
    if text.isascii():
        return text.lower().encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()
    lowered = _casefolded(text)
    through = _through_page(lowered, 2)
    if through is not None:
        return through.split()
    return _mixed_words(lowered)


_aside = threading.local()


def _set_aside(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeEncodeError)
    _aside.runs.append(error.object[error.start : error.end])
    return "\x00", error.end


codecs.register_error("inbox-rules-aside", _set_aside)


def _mixed_words(lowered: str) -> list[str]:
    """A text no one code page holds: a Finnish mail quoting a Russian invoice number, say.
    The page of its first letter beyond ASCII takes the text, the runs it cannot hold are set
    aside (a NUL in their place), folded on their own, and put back as words of their own.
    Measured: half the time of folding the whole text character by character."""
    first = _FIRST_BEYOND_ASCII.search(lowered)
    if "\x00" in lowered or first is None:
        return _WORD.findall(lowered.translate(_SLOW_LIST))
    page = next((p for p in _PAGES if _fits(first.group(), p[0])), _PAGES[0])
    codec = page[0]
    _aside.runs = []
    encoded = lowered.encode(codec, "inbox-rules-aside")
    runs: list[str] = _aside.runs
    pieces = encoded.translate(_ASIDE_TABLES[codec]).decode(codec).split("\x00")
    joined: list[str] = []
    for index, piece in enumerate(pieces):
        joined.append(piece)
        if index < len(runs):
            # Folded on its own, separators made spaces; letters glue to the neighbours.
            joined.append(_NOT_WORD.sub(" ", runs[index].translate(_SLOW_LIST)))
    return "".join(joined).split()


def _fits(char: str, codec: str) -> bool:
    try:
        char.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _through_page(lowered: str, table: int) -> str | None:
    """`lowered` translated by table 1 (fold) or 2 (fold and words) of the first code page
    that holds all of it; None when none does (mixed scripts)."""
    for codec, fold_table, words_table in _PAGES:
        try:
            encoded = lowered.encode(codec)
        except UnicodeEncodeError:
            continue
        return encoded.translate(fold_table if table == 1 else words_table).decode(codec)
    return None
