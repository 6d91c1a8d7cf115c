"""SMS and MMS, as the twilio connector hands them over, into the normalized form.

The payload is the connector's JSON envelope (see `connectors/twilio_sms.py`): Twilio's own
fields for the message (the webhook's form fields, or the REST resource turned into the same
names), the media already fetched (base64, or why it could not be), and the region that local
numbers are read in. Pure: no I/O here.

Phone numbers become E.164 with `phonenumbers`, so "+358 40 123 4567", "040 1234567" (region
FI) and "+358401234567" are one identity. A conversation is the pair (customer number, our
number): the same customer writing to two of our numbers is two conversations, as it is for
them.

Opt-out keywords: a message that is only a keyword (as carriers and Twilio read it: the whole
body, any case, surrounding space and punctuation ignored) is flagged in the headers as
`x-sms-keyword: stop|start|help`; the store records it on the contact. Twilio's Advanced
Opt-Out sends its own verdict (`OptOutType`), which wins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import phonenumbers

from inbox.normalize.language import detect_language
from inbox.normalize.sanitize import clean_message
from inbox.normalize.types import Address, NormalizedAttachment, NormalizedMessage

DEFAULT_LANGUAGES = ("en", "fi", "et", "sv", "de", "fr", "es", "ru", "el")
MAX_TEXT_CHARS = 20_000

#: The keywords Twilio acts on by default (its "opt-out keywords" support article: English on
#: long codes and toll-free, plus French for Canada), and the usual words for the same in the
#: languages our customers write. Matched on the whole body, accents and case folded.
_STOP_WORDS = (
    # Twilio's defaults: English, and French for Canada
    "stop stopall unsubscribe cancel end quit revoke optout arret arrete arrett "
    # Spanish, Portuguese, Italian, German, Dutch, Finnish, Swedish, Estonian, Greek, Russian
    "parar alto detener cancelar basta annulla stopp abmelden afmelden lopeta peruuta avsluta "
    "peata loobu σταματα διακοπη стоп отписаться"
)
KEYWORDS: dict[str, frozenset[str]] = {
    "stop": frozenset(_STOP_WORDS.split()),
    "start": frozenset(["start", "yes", "unstop", "subscribe", "commencer", "aloita", "alusta"]),
    "help": frozenset(["help", "info", "aide", "ayuda", "hilfe", "apua", "hjalp", "abi", "помощь"]),
}
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def normalize_sms(
    payload: bytes, *, languages: Sequence[str] = DEFAULT_LANGUAGES
) -> NormalizedMessage:
    """Never raises on a bad payload: what cannot be read is said in `errors`."""
    try:
        envelope = json.loads(payload)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("params"), dict):
            raise ValueError("not an SMS envelope")
    except (ValueError, UnicodeDecodeError) as error:
        return NormalizedMessage(
            channel="sms",
            sender=None,
            text=payload[:2000].decode("utf-8", "replace"),
            content_hash=hashlib.sha256(payload).hexdigest(),
            errors=(f"unreadable SMS payload: {error}"[:300],),
        )
    return clean_message(_normalize(envelope, languages))


def e164(number: str, region: str = "") -> str:
    """The number in E.164, or the input stripped when it is not a phone number (a short
    code, an alphanumeric sender id, "whatsapp:+..."): kept as it is rather than lost."""
    raw = number.strip()
    prefix = ""
    if ":" in raw and not raw.startswith("+"):
        prefix, _, raw = raw.partition(":")
        prefix += ":"
    try:
        parsed = phonenumbers.parse(raw, region.upper() or None)
    except phonenumbers.NumberParseException:
        return prefix + raw
    if not phonenumbers.is_possible_number(parsed):
        return prefix + raw
    return prefix + phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def keyword(body: str) -> str:
    """ "stop", "start", "help" or "" for a message that is (only) one of those words."""
    word = _EDGE_PUNCTUATION.sub("", body.strip()).casefold()
    if not word or len(word) > 20 or " " in word:
        return ""
    folded = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    for kind, words in KEYWORDS.items():
        if word in words or folded in words:
            return kind
    return ""


def thread_key(customer: str, ours: str) -> str:
    return f"sms:{customer}:{ours}"


def _normalize(envelope: dict[str, Any], languages: Sequence[str]) -> NormalizedMessage:
    params: dict[str, Any] = envelope["params"]
    region = str(envelope.get("region") or "")
    errors: list[str] = []
    sid = str(params.get("MessageSid") or params.get("SmsSid") or "")
    customer = e164(str(params.get("From") or ""), region)
    ours = e164(str(params.get("To") or ""), region)
    body = str(params.get("Body") or "")[:MAX_TEXT_CHARS]
    attachments = _attachments(envelope.get("media") or [], errors)
    if not body and not attachments:
        errors.append("SMS without text or media")
    opt = str(params.get("OptOutType") or "").lower() or keyword(body)
    headers = [("x-twilio-message-sid", sid)]
    if opt:
        headers.append(("x-sms-keyword", opt))
    if params.get("MessagingServiceSid"):
        headers.append(("x-twilio-messaging-service", str(params["MessagingServiceSid"])))
    for field in ("FromCountry", "FromCity", "FromState"):
        if params.get(field):
            headers.append((f"x-twilio-{field.lower()}", str(params[field])[:100]))
    return NormalizedMessage(
        channel="sms",
        sender=Address(address=customer) if customer else None,
        to=(Address(address=ours),) if ours else (),
        subject=_subject(body, customer),
        sent_at=_when(envelope.get("sent_at")),
        message_id=f"twilio:{sid}" if sid else "",
        text=body,
        new_text=body,
        language=detect_language(body, languages) if not opt else "",
        attachments=tuple(attachments),
        headers=tuple(headers),
        content_hash=hashlib.sha256(f"twilio:{sid}".encode()).hexdigest()
        if sid
        else hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest(),
        errors=tuple(errors),
        sender_kind="phone",
        thread_key=thread_key(customer, ours)[:300],
    )


def _attachments(media: list[Any], errors: list[str]) -> list[NormalizedAttachment]:
    found: list[NormalizedAttachment] = []
    for index, item in enumerate(media):
        if not isinstance(item, dict):
            continue
        content_type = str(item.get("content_type") or "application/octet-stream")
        if item.get("error"):
            errors.append(f"media {index} ({content_type}) not stored: {item['error']}"[:300])
            continue
        try:
            content = base64.b64decode(str(item.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            errors.append(f"media {index} ({content_type}) unreadable")
            continue
        found.append(
            NormalizedAttachment(
                filename=str(item.get("filename") or f"media-{index}"),
                content_type=content_type,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                content=content,
            )
        )
    return found


def _subject(body: str, customer: str) -> str:
    first = next((line.strip() for line in body.splitlines() if line.strip()), "")
    if len(first) > 80:
        first = first[:79].rstrip() + "…"
    return first or (f"SMS from {customer}" if customer else "SMS")


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
