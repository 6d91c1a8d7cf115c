"""The Slack normalizer: what a rule and an agent read from a Slack message."""

from __future__ import annotations

import json
from typing import Any

from inbox.normalize.slack import normalize_slack


def envelope(text: str = "", **overrides: Any) -> bytes:
    message = {"type": "message", "user": "UANNA", "text": text, "ts": "1764590000.000200"}
    message.update(overrides.pop("message", {}))
    value = {
        "kind": "message",
        "team": "T1",
        "channel": "C0SHARED",
        "channel_type": "channel",
        "message": message,
        "user": {
            "id": "UANNA",
            "name": "anna",
            "profile": {"real_name": "Anna Virtanen", "email": "Anna@Acme.Example"},
        },
    }
    value.update(overrides)
    return json.dumps(value).encode()


def test_mrkdwn_becomes_the_text_a_person_reads() -> None:
    text = (
        "Γεια σας, <@U024BE7LH> το τιμολόγιο &lt;2026-11&gt; είναι λάθος &amp; διπλό: "
        "<https://acme.example/inv/7|τιμολόγιο 7> "
        "<mailto:billing@acme.example|billing@acme.example> <#C0SHARED|acme-support> <!here>"
    )
    normalized = normalize_slack(envelope(text))
    assert normalized.text == (
        "Γεια σας, @U024BE7LH το τιμολόγιο <2026-11> είναι λάθος & διπλό: "
        "τιμολόγιο 7 (https://acme.example/inv/7) billing@acme.example #acme-support @here"
    )
    assert normalized.language == "el"
    assert normalized.channel == "chat"
    assert normalized.sender is not None
    assert (normalized.sender.address, normalized.sender.name) == ("UANNA", "Anna Virtanen")
    assert normalized.sender_kind == "slack"
    assert normalized.sender_email == "anna@acme.example"
    assert normalized.subject.startswith("Γεια σας")


def test_threads_by_channel_and_thread_and_dms_by_channel() -> None:
    top = normalize_slack(envelope("Tere, arve on vale"))
    reply = normalize_slack(
        envelope("Lisainfo", message={"ts": "1764590100.000300", "thread_ts": "1764590000.000200"})
    )
    dm = normalize_slack(envelope("Hei", channel="D0DM", channel_type="im"))
    assert top.thread_key == reply.thread_key == "slack:C0SHARED:1764590000.000200"
    assert reply.in_reply_to == ("slack:C0SHARED:1764590000.000200",)
    assert dm.thread_key == "slack:D0DM"
    assert top.content_hash != reply.content_hash


def test_an_edit_refers_to_the_original_message() -> None:
    edited = normalize_slack(
        envelope("Fixed text", kind="edited", message={"edited": {"user": "UANNA", "ts": "1.2"}})
    )
    assert edited.revision == ("edited", "C0SHARED:1764590000.000200")
    assert edited.text == "Fixed text"


def test_files_are_listed_and_bots_flagged() -> None:
    normalized = normalize_slack(
        envelope(
            "",
            message={
                "bot_id": "BFORM",
                "files": [{"name": "invoice.pdf", "mimetype": "application/pdf", "size": 48211}],
            },
        )
    )
    assert normalized.text == "[file: invoice.pdf (application/pdf, 48211 bytes)]"
    assert normalized.flags.automatic
    assert normalized.flags.reasons == ("slack bot",)


def test_a_payload_that_is_not_a_slack_envelope_is_kept_with_the_reason() -> None:
    for payload in (b"\xff\xfe not json", b"[1, 2]", json.dumps({"message": "text"}).encode()):
        normalized = normalize_slack(payload)
        assert normalized.errors and "unreadable Slack payload" in normalized.errors[0]
        assert normalized.content_hash
