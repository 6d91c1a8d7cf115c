"""Automatic mail is recognised (RFC 3834 and what real autoresponders and MTAs send)."""

from __future__ import annotations

import pytest

from inbox.normalize.email import normalize_email


def flags_of(headers: str, content_type: str = "text/plain", sender: str = "aino@example.fi"):  # type: ignore[no-untyped-def]
    raw = f"From: {sender}\r\nSubject: x\r\nContent-Type: {content_type}\r\n{headers}\r\nbody\r\n"
    return normalize_email(raw.encode()).flags


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ("Auto-Submitted: auto-replied\r\n", "auto_submitted"),
        ("Auto-Submitted: auto-generated; owner-email=x@y\r\n", "auto_submitted"),
        ("X-Autoreply: yes\r\n", "auto_submitted"),
        ("X-Auto-Response-Suppress: All\r\n", "auto_submitted"),  # Exchange
        ("Precedence: bulk\r\n", "bulk"),
        ("Precedence: junk\r\n", "bulk"),
        ("Precedence: list\r\n", "list_mail"),
        ("List-Id: <news.northwind.example>\r\n", "list_mail"),
        ("List-Unsubscribe: <mailto:u@x>\r\n", "list_mail"),
        ("Return-Path: <>\r\n", "bounce"),
    ],
)
def test_automatic_mail_is_flagged_with_its_reason(headers: str, field: str) -> None:
    flags = flags_of(headers)
    assert getattr(flags, field)
    assert flags.automatic
    assert headers.split(":")[0] in " ".join(flags.reasons) or "null Return-Path" in flags.reasons


def test_auto_submitted_no_is_a_person() -> None:
    assert not flags_of("Auto-Submitted: no\r\n").automatic


def test_plain_mail_is_a_person() -> None:
    assert not flags_of("").automatic


def test_mailer_daemon_delivery_reports_are_bounces() -> None:
    flags = flags_of(
        "",
        'multipart/report; report-type=delivery-status; boundary="b"',
        "MAILER-DAEMON@mx.example",
    )
    assert flags.bounce
    assert "sender mailer-daemon" in flags.reasons
    assert "report-type=delivery-status" in flags.reasons


def test_a_bare_delivery_status_is_a_bounce_with_readable_status() -> None:
    # A broken MTA that sends the status part alone, without the multipart/report wrapper.
    raw = (
        b"From: postmaster@mx.example\r\nSubject: Delivery delayed\r\n"
        b"Content-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example\r\n\r\n"
        b"Final-Recipient: rfc822; aino@example.fi\r\nAction: delayed\r\nStatus: 4.2.2\r\n"
    )
    normalized = normalize_email(raw)
    assert normalized.flags.bounce
    assert "Status: 4.2.2" in normalized.text
