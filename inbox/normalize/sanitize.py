"""Text safe for every store: no NUL (PostgreSQL refuses it in text columns) and no lone
surrogates (no database encoder accepts them). Applied to a normalized message as a last step,
so that one hostile message can never fail its batch's transaction.

It runs on every message, so a clean string (nearly all of them) costs one `in` test and, if it
is not ASCII, one regex search; only dirty values are rebuilt.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from inbox.normalize.types import Address, NormalizedAttachment, NormalizedMessage

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def is_clean(text: str) -> bool:
    return "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None)


def clean_text(text: str) -> str:
    if is_clean(text):
        return text
    text = text.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", text)


def clean_message(message: NormalizedMessage) -> NormalizedMessage:
    changes: dict[str, Any] = {}
    for item in dataclasses.fields(message):
        value = getattr(message, item.name)
        cleaned = _clean_value(value)
        if cleaned is not value:
            changes[item.name] = cleaned
    return dataclasses.replace(message, **changes) if changes else message


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return value if is_clean(value) else clean_text(value)
    if isinstance(value, Address):
        if is_clean(value.address) and is_clean(value.name):
            return value
        return Address(clean_text(value.address), clean_text(value.name))
    if isinstance(value, NormalizedAttachment):
        texts = (value.filename, value.content_id, value.content_type)
        if all(is_clean(text) for text in texts):
            return value
        return dataclasses.replace(
            value,
            filename=clean_text(value.filename),
            content_id=clean_text(value.content_id),
            content_type=clean_text(value.content_type),
        )
    if isinstance(value, tuple):
        if not value:
            return value
        items = tuple(_clean_value(item) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value
