"""Outbox rows are typed by kind, and rows written by another version still read."""

from __future__ import annotations

import pytest

from inbox.store.outbox_kinds import (
    AssignmentPing,
    NotifyPing,
    QueuedPing,
    ThreadFollowUp,
    UnknownKind,
    read_payload,
    slack_target,
    stored,
)


@pytest.mark.parametrize(
    "payload",
    [
        AssignmentPing(agent="aino", slack_user="U1", previous_agent="mart", by="esko", note="VIP"),
        QueuedPing(team="nordic", slack_channel="C0NORDIC", skipped={"aino": "off hours"}),
        NotifyPing(target="team:nordic", text="Lasku 7781 erääntyi", slack_channel="C0NORDIC"),
    ],
)
def test_a_payload_reads_back_as_it_was_written(
    payload: AssignmentPing | QueuedPing | NotifyPing,
) -> None:
    assert read_payload(payload.KIND, stored(payload)) == payload


def test_a_row_of_an_older_version_reads_with_defaults_and_a_newer_ones_extras_are_ignored() -> (
    None
):
    # What a rule's assignment ping looked like before `by` and `note` were written always,
    # plus a field a later version might add.
    old = {"agent": "aino", "slack_user": "U1", "previous_agent": None, "rule": "nordic"}
    ping = read_payload("slack.assignment", {**old, "buttons": ["claim"]})
    assert ping == AssignmentPing(agent="aino", slack_user="U1", rule="nordic")
    assert slack_target(ping) == "U1"


def test_a_damaged_row_reads_as_nobody_to_send_to() -> None:
    ping = read_payload("slack.notify", {"text": "hi"})
    assert slack_target(ping) == ""


def test_a_kind_this_version_does_not_send_is_refused_by_name() -> None:
    with pytest.raises(UnknownKind, match=r"email\.reply"):
        read_payload("email.reply", {})


def test_a_flag_reads_back_as_it_was_stored() -> None:
    for notice in (True, False):
        payload = ThreadFollowUp("C1", "1.2", text="Snoozed", notice=notice)
        assert read_payload(payload.KIND, stored(payload)) == payload
    # A row from before the flag existed is no notice.
    assert read_payload("slack.thread", {"slack_channel": "C1", "thread_ts": "1.2"}) == (
        ThreadFollowUp("C1", "1.2")
    )
