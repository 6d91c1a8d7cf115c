"""Walking a MIME tree: the readable text, the HTML and the attachments, within bounds.

The walk is iterative and capped (MAX_PARTS, MAX_DEPTH) so that a message of 10,000 nested
parts costs what a message of a few hundred does, and never recurses.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message

from inbox.normalize.charset import decode_bytes
from inbox.normalize.headers import decode_value, unescape_raw
from inbox.normalize.types import NormalizedAttachment

MAX_PARTS = 500
MAX_DEPTH = 40
_BODY_TYPES = ("text/plain", "text/html")
_STATUS_TYPES = ("message/delivery-status", "message/disposition-notification")


@dataclass
class Body:
    plain: str = ""
    html: str = ""
    attachments: list[NormalizedAttachment] = field(default_factory=list)


def walk_parts(
    message: Message, errors: list[str], max_text_chars: int, hints: Sequence[str] = ()
) -> Body:
    """`hints`: the message's declared charsets, for raw 8-bit file names."""
    body = Body()
    plain_parts: list[str] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    walked = 0
    while stack:
        part, depth = stack.pop()
        walked += 1
        if walked > MAX_PARTS:
            errors.append(f"more than {MAX_PARTS} MIME parts; the rest kept only in the raw bytes")
            break
        payload = part.get_payload()
        if not isinstance(payload, list):
            _add_leaf(body, plain_parts, part, errors, max_text_chars, hints)
            continue
        content_type = part.get_content_type()
        if content_type in _STATUS_TYPES:
            # A bounce's status fields (RFC 3464) are what an agent reads to see what failed.
            plain_parts.append("\n".join(_header_block(block) for block in payload))
            continue
        if depth >= MAX_DEPTH:
            errors.append(f"MIME parts nested deeper than {MAX_DEPTH}; the rest kept raw only")
            continue
        if content_type == "message/rfc822":
            _add_forwarded(body, part, errors, hints)
            continue
        children = [p for p in payload if isinstance(p, Message)]
        stack.extend((child, depth + 1) for child in reversed(children))
    plain = "\n".join(plain_parts)
    if len(plain) > max_text_chars:
        errors.append(f"text cut at {max_text_chars} characters")
        plain = plain[:max_text_chars]
    body.plain = plain
    return body


def _add_leaf(
    body: Body,
    plain_parts: list[str],
    part: Message,
    errors: list[str],
    max_text_chars: int,
    hints: Sequence[str],
) -> None:
    content_type = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = _filename(part, hints) if _may_have_filename(part) else ""
    if content_type.startswith("multipart/"):
        # Its boundary never appears (the parser noted a defect): what is there is the body.
        content_type = "text/html" if _looks_like_html(part) else "text/plain"
    if content_type in _BODY_TYPES and disposition != "attachment" and not filename:
        data = _payload_bytes(part)
        decoded = decode_bytes(data[: max_text_chars * 4], _declared_charset(part))
        if decoded.problem:
            errors.append(f"{content_type}: {decoded.problem}")
        if content_type == "text/plain":
            plain_parts.append(decoded.text)
        elif not body.html:
            if len(decoded.text) > max_text_chars:
                errors.append(f"HTML cut at {max_text_chars} characters")
            body.html = decoded.text[:max_text_chars]
        return
    data = _payload_bytes(part)
    body.attachments.append(
        NormalizedAttachment(
            filename=filename,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content=data,
            inline=disposition == "inline",
            content_id=str(part.get("Content-ID", "") or "").strip().strip("<>")[:500],
        )
    )


def _payload_bytes(part: Message) -> bytes:
    """The decoded (base64, quoted-printable) body of a leaf part; never None."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _header_block(block: object) -> str:
    if not isinstance(block, Message):
        return str(block)
    return "\n".join(f"{name}: {decode_value(value)}" for name, value in block.items()) + "\n"


def _looks_like_html(part: Message) -> bool:
    data = _payload_bytes(part)
    return data.lstrip()[:200].lower().startswith((b"<html", b"<!doctype", b"<div", b"<p"))


def _add_forwarded(body: Body, part: Message, errors: list[str], hints: Sequence[str]) -> None:
    """A forwarded message stays whole, as an .eml attachment the agent can open."""
    inner = part.get_payload(0)
    try:
        data = inner.as_bytes() if isinstance(inner, Message) else b""
    except Exception as error:
        errors.append(f"forwarded message unreadable: {error!r}"[:200])
        data = b""
    subject = decode_value(inner.get("Subject")) if isinstance(inner, Message) else ""
    body.attachments.append(
        NormalizedAttachment(
            filename=_filename(part, hints) or f"{subject[:60] or 'forwarded'}.eml",
            content_type="message/rfc822",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content=data,
        )
    )


def _may_have_filename(part: Message) -> bool:
    """Cheap look before the costly parameter parsing: most body parts name no file."""
    for header in ("Content-Disposition", "Content-Type"):
        value = part.get(header)
        if value is not None and "name" in str(value).lower():
            return True
    return False


def _filename(part: Message, hints: Sequence[str]) -> str:
    """RFC 2231 (`filename*=utf-8''...`, continuations) is handled by get_filename; Outlook and
    Gmail also send RFC 2047 encoded words inside a quoted filename, which it leaves as is."""
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:
        return ""
    if isinstance(name, tuple):  # an RFC 2231 value get_param could not collapse
        charset, _language, value = name
        name = decode_bytes(value.encode("latin-1", "replace"), charset).text
    elif "\ufffd" in name:  # raw 8-bit bytes, which compat32 turned into U+FFFD: read them
        name = _raw_filename(part, hints) or name
    return decode_value(name, hints).replace("/", "_").replace("\\", "_")[:1000]


#: A file name parameter, quoted or not, in a header value as written.
_NAME_PARAM = re.compile(r'(?i)(?:^|;)\s*(?:file)?name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')


def _raw_filename(part: Message, hints: Sequence[str]) -> str:
    """The file name from the raw header (8-bit bytes kept as surrogate escapes), decoded the
    way raw header bytes are: UTF-8 if valid, else the charset they plainly are."""
    for header in ("content-disposition", "content-type"):
        for key, value in part.raw_items():
            found = _NAME_PARAM.search(value) if key.lower() == header else None
            if found:
                return unescape_raw(found.group(1) or found.group(2) or "", hints)
    return ""


def declared_charsets(message: Message, limit: int = 50) -> tuple[str, ...]:
    """The charsets the message's parts declare, first part first: a raw 8-bit Subject or
    file name is nearly always in one of them."""
    found: list[str] = []
    stack = [message]
    while stack and limit:
        part = stack.pop()
        limit -= 1
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(p for p in reversed(payload) if isinstance(p, Message))
        elif charset := _declared_charset(part):
            found.append(charset)
    return tuple(dict.fromkeys(found))


def _declared_charset(part: Message) -> str | None:
    try:
        charset = part.get_param("charset")
    except Exception:
        return None
    if isinstance(charset, tuple):
        charset = charset[2]
    return str(charset) if charset else None
