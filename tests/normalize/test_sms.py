"""The SMS normalizer: numbers to E.164, keywords, media, and what cannot be read."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from inbox.normalize.sms import e164, keyword, normalize_sms


def envelope(body: str = "", *, region: str = "FI", media: Any = (), **params: str) -> bytes:
    fields = {
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": "AC" + "a" * 32,
        "From": "040 123 4567",
        "To": "+358 9 4242 4242",
        "Body": body,
        "NumMedia": str(len(media)),
        **params,
    }
    return json.dumps({"params": fields, "region": region, "media": list(media)}).encode()


@pytest.mark.parametrize(
    ("number", "region", "expected"),
    [
        ("040 123 4567", "FI", "+358401234567"),
        ("+358 (0)40-123 4567", "", "+358401234567"),
        ("5123 4567", "EE", "+37251234567"),
        ("+30 697 123 4567", "", "+306971234567"),
        ("8 (912) 345-67-89", "RU", "+79123456789"),
        ("whatsapp:+14155238886", "", "whatsapp:+14155238886"),
        ("ACME", "FI", "ACME"),  # an alphanumeric sender id stays as it is
    ],
)
def test_numbers_become_e164(number: str, region: str, expected: str) -> None:
    assert e164(number, region) == expected


def test_an_sms_is_a_phone_contact_in_a_conversation_per_number_pair() -> None:
    normalized = normalize_sms(envelope("Hei, tilaukseni ei ole vielä tullut perille"))
    assert normalized.channel == "sms"
    assert normalized.sender is not None and normalized.sender.address == "+358401234567"
    assert normalized.sender_kind == "phone"
    assert [a.address for a in normalized.to] == ["+358942424242"]
    assert normalized.thread_key == "sms:+358401234567:+358942424242"
    assert normalized.language == "fi"
    assert normalized.subject == "Hei, tilaukseni ei ole vielä tullut perille"
    assert normalized.content_hash == normalize_sms(envelope("other text")).content_hash


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", "stop"),
        (" stop. ", "stop"),
        ("Arrêt", "stop"),
        ("Lopeta", "stop"),
        ("СТОП", "stop"),
        ("Σταμάτα!", "stop"),
        ("START", "start"),
        ("unstop", "start"),
        ("HELP", "help"),
        ("please stop sending these", ""),
        ("stopped working", ""),
    ],
)
def test_keywords_are_whole_messages_in_many_languages(body: str, expected: str) -> None:
    assert keyword(body) == expected


def test_a_keyword_is_flagged_for_the_store_and_twilios_own_verdict_wins() -> None:
    stop = normalize_sms(envelope("STOP"))
    assert ("x-sms-keyword", "stop") in stop.headers
    advanced = normalize_sms(envelope("Lõpeta palun", OptOutType="STOP"))
    assert ("x-sms-keyword", "stop") in advanced.headers


def test_media_become_attachments_and_a_failed_fetch_keeps_the_text() -> None:
    picture = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    normalized = normalize_sms(
        envelope(
            "Photo of the broken zip",
            media=[
                {"content_type": "image/png", "data": base64.b64encode(picture).decode()},
                {"content_type": "video/mp4", "error": "fetch failed: HTTP 500"},
            ],
        )
    )
    assert normalized.text == "Photo of the broken zip"
    [attachment] = normalized.attachments
    assert (attachment.content_type, attachment.content) == ("image/png", picture)
    assert any("media 1 (video/mp4) not stored: fetch failed" in e for e in normalized.errors)


def test_a_payload_that_is_not_an_sms_envelope_is_kept_with_the_reason() -> None:
    for payload in (b"<xml/>", b"[]", json.dumps({"params": "x"}).encode()):
        normalized = normalize_sms(payload)
        assert normalized.errors and "unreadable SMS payload" in normalized.errors[0]
