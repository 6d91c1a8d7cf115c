"""Logs: JSON lines off a terminal, with connector and conversation on lines about a message,
and no message text above debug."""

from __future__ import annotations

import io

from tests.conftest import Store
from tests.helpers import ingest, mail, make_pipeline, parsed, raw


def test_lines_about_a_message_carry_connector_and_conversation(
    store: Store, log_lines: io.StringIO
) -> None:
    body = mail(message_id="dup@example.fi", body="Salainen tilausnumero 4411\n")
    pipeline = make_pipeline(store)
    ingest(pipeline, raw(body, connector="support"))
    ingest(pipeline, raw(b"Delivered-To: sales@x\r\n" + body, connector="sales"))
    lines = parsed(log_lines)
    duplicate = next(line for line in lines if line["event"] == "duplicate_delivery")
    assert duplicate["connector"] == "sales"
    assert isinstance(duplicate["conversation_id"], int)
    batches = [line for line in lines if line["event"] == "batch_stored"]
    assert {line["connector"] for line in batches} == {"support", "sales"}
    assert all(line["level"] == "info" and "timestamp" in line for line in batches)
    assert "4411" not in log_lines.getvalue()


def test_a_poll_that_brings_nothing_new_is_not_logged_at_info(
    store: Store, log_lines: io.StringIO
) -> None:
    """A Maildir polled every few seconds must not fill the journal with empty batches."""
    pipeline = make_pipeline(store)
    message = raw(mail(message_id="once@example.fi"), connector="support")
    ingest(pipeline, message, cursor="1")
    ingest(pipeline, cursor="2")  # nothing new
    ingest(pipeline, message, cursor="3")  # seen again: stored already
    batches = [line for line in parsed(log_lines) if line["event"] == "batch_stored"]
    assert [line["stored"] for line in batches] == [1]
