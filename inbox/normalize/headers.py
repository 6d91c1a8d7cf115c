"""Header values to text: RFC 2047 encoded words, raw 8-bit bytes, broken encodings.

compat32 hands header values over as str, with raw 8-bit bytes smuggled in as surrogate escapes;
we decode those with the same charset logic as bodies rather than losing them.
"""

from __future__ import annotations

import re
from email.header import decode_header
from email.message import Message

from inbox.normalize.charset import decode_bytes

_WHITESPACE = re.compile(r"\s+")
_NEEDS_FOLDING = re.compile(r"[\t\r\n\x0b\x0c]|  ")
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
# Encoded words glued to text or split mid-character by broken clients: decode_header needs
# whitespace around them.
_GLUED_WORD = re.compile(r"(?<=[^\s(])(=\?[^?\s]+\?[bBqQ]\?)|(\?=)(?=[^\s)])")


def decode_value(value: object) -> str:
    """One header value as readable text, whitespace folded. Never raises."""
    if value is None:
        return ""
    text = str(value)
    if "=?" not in text and text.isascii() and not _NEEDS_FOLDING.search(text):
        return text.strip()  # most values: plain ASCII on one line
    text = _decode_encoded_words(text) if "=?" in text else unescape_raw(text)
    return _WHITESPACE.sub(" ", text).strip()


def unescape_raw(text: str) -> str:
    """Raw 8-bit header bytes (surrogate escapes) decoded as text; other text unchanged."""
    if _has_raw_bytes(text):
        return decode_bytes(text.encode("ascii", "surrogateescape"), None).text
    return text


def _has_raw_bytes(text: str) -> bool:
    return not text.isascii() and any("\udc80" <= char <= "\udcff" for char in text)


def _decode_encoded_words(text: str) -> str:
    text = unescape_raw(text)
    spaced = _GLUED_WORD.sub(lambda m: f" {m.group(1)}" if m.group(1) else f"{m.group(2)} ", text)
    try:
        chunks = decode_header(spaced)
    except Exception:  # broken base64 and friends: keep the raw text, it is still readable
        return text
    parts = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            parts.append(chunk)
        else:
            parts.append(decode_bytes(chunk, charset).text)
    # Where an encoded word was glued to plain text, keep a space between the two.
    joined = ""
    for index, part in enumerate(parts):
        changed_charset = index and chunks[index - 1][1] != chunks[index][1]
        if changed_charset and not joined.endswith(" ") and not part.startswith(" "):
            joined += " "
        joined += part
    return joined


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
