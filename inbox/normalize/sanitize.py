"""Text safe for every store: no NUL (PostgreSQL refuses it in text columns) and no lone
surrogates (no database encoder accepts them). Applied to a normalized message as a last step,
so that one hostile message can never fail its batch's transaction."""

from __future__ import annotations

import dataclasses
from typing import Any

from inbox.normalize.types import Address, NormalizedAttachment, NormalizedMessage


def clean_text(text: str) -> str:
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


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
        cleaned = clean_text(value)
        return value if cleaned == value else cleaned
    if isinstance(value, Address):
        address, name = clean_text(value.address), clean_text(value.name)
        written = clean_text(value.written)
        if (address, name, written) == (value.address, value.name, value.written):
            return value
        return Address(address, name, written)
    if isinstance(value, NormalizedAttachment):
        filename, content_id = clean_text(value.filename), clean_text(value.content_id)
        content_type = clean_text(value.content_type)
        if (filename, content_id, content_type) == (
            value.filename,
            value.content_id,
            value.content_type,
        ):
            return value
        return dataclasses.replace(
            value, filename=filename, content_id=content_id, content_type=content_type
        )
    if isinstance(value, tuple):
        items = tuple(_clean_value(item) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value
