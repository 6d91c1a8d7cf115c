"""Header values to text: RFC 2047 encoded words, raw 8-bit bytes, broken encodings.

compat32 hands header values over as str, with raw 8-bit bytes smuggled in as surrogate escapes;
we decode those with the same charset logic as bodies rather than losing them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from email.message import Message

from inbox.normalize.charset import decode_bytes

_WHITESPACE = re.compile(r"\s+")
_NEEDS_FOLDING = re.compile(r"[\t\r\n\x0b\x0c]|  ")
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
#: An RFC 2047 encoded word: charset (with an optional *language), B or Q, text. Found also
#: where broken clients glue it to other text or split a character across two words.
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_value(value: object, hints: Sequence[str] = ()) -> str:
    """One header value as readable text, whitespace folded. Never raises. `hints`: the
    charsets the message declares, for raw 8-bit bytes (see charset.decode_bytes)."""
    if value is None:
        return ""
    text = str(value)
    if "=?" not in text and text.isascii() and not _NEEDS_FOLDING.search(text):
        return text.strip()  # most values: plain ASCII on one line
    text = _decode_encoded_words(text, hints) if "=?" in text else unescape_raw(text, hints)
    return _WHITESPACE.sub(" ", text).strip()


def unescape_raw(text: str, hints: Sequence[str] = ()) -> str:
    """Raw 8-bit header bytes (surrogate escapes) decoded as text; other text unchanged."""
    if _has_raw_bytes(text):
        return decode_bytes(text.encode("ascii", "surrogateescape"), None, hints).text
    return text


def _has_raw_bytes(text: str) -> bool:
    return not text.isascii() and any("\udc80" <= char <= "\udcff" for char in text)


def _decode_encoded_words(text: str, hints: Sequence[str]) -> str:
    """RFC 2047, word by word. Whitespace between two encoded words goes (section 6.2),
    whitespace between a word and plain text stays, and none is added where the sender
    wrote none. Adjacent words of one charset are joined as bytes before decoding: clients
    split a multi-byte character across two words. A word that cannot be decoded (broken
    base64) stays as written, and the rest of the value is still decoded."""
    parts: list[str] = []
    pending = bytearray()
    pending_charset = ""
    position = 0
    after_word = False

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset:
            parts.append(decode_bytes(bytes(pending), pending_charset, hints).text)
        pending.clear()
        pending_charset = ""

    for word in _ENCODED_WORD.finditer(text):
        between = text[position : word.start()]
        position = word.end()
        data = _word_bytes(word.group(2), word.group(3))
        if not (after_word and between.isspace()) and between:
            flush()
            parts.append(unescape_raw(between, hints))
        if data is None:
            flush()
            parts.append(word.group())
            after_word = False
            continue
        charset = word.group(1).lower()
        if charset != pending_charset:
            flush()
            pending_charset = charset
        pending += data
        after_word = True
    flush()
    parts.append(unescape_raw(text[position:], hints))
    return "".join(parts)


def _word_bytes(encoding: str, encoded: str) -> bytes | None:
    """An encoded word's bytes, or None if they cannot be had (the word is kept as text)."""
    try:
        raw = encoded.encode("ascii")
    except UnicodeEncodeError:
        return None
    if encoding in "qQ":
        return _Q_ESCAPE.sub(
            lambda escape: bytes.fromhex(escape.group(1).decode()), raw.replace(b"_", b" ")
        )
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def message_ids(value: object) -> tuple[str, ...]:
    """All Message-IDs in a header, without angle brackets, in order, without repeats."""
    if not value:
        return ()
    text = unescape_raw(str(value))
    found = _MESSAGE_ID.findall(text)
    if not found:
        # Some clients omit the brackets; take whitespace-separated tokens that look like ids.
        found = [token.strip("<>,;") for token in text.split() if "@" in token]
    return tuple(dict.fromkeys(i for i in found if i))


class RawHeaders:
    """Header values as written, raw 8-bit bytes kept as surrogate escapes (compat32's get()
    wraps such values in a Header whose str() turns them into replacement characters).
    Indexed once per message: looking headers up one by one scanned them all each time."""

    def __init__(self, message: Message) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in message.raw_items():
            self._values.setdefault(key.lower(), []).append(value)

    def all(self, name: str) -> list[str]:
        return self._values.get(name, [])

    def names(self) -> list[str]:
        """Lowercased names, in the order they first appear."""
        return list(self._values)

    def first(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[0] if values else None
