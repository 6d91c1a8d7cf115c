"""The notifier's pace per Slack channel (inbox/outbox/pacing.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inbox.outbox.pacing import Pacer

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def test_a_burst_then_the_rate_and_each_channel_on_its_own() -> None:
    pacer = Pacer(rate=2, burst=3)
    assert [pacer.take("D1", at(0)) for _ in range(4)] == [True, True, True, False]
    assert pacer.take("D2", at(0))  # another channel is not held back
    assert pacer.next_free(at(0)) == at(0.5)
    assert not pacer.take("D1", at(0.4))
    assert pacer.take("D1", at(0.5)) and not pacer.take("D1", at(0.5))
    # Quiet for long enough, a channel has its whole burst again, and nothing is waited for.
    assert pacer.next_free(at(10)) is None
    assert [pacer.take("D1", at(10)) for _ in range(4)] == [True, True, True, False]


def test_rate_zero_never_holds_back() -> None:
    pacer = Pacer(rate=0, burst=1)
    assert all(pacer.take("D1", at(0)) for _ in range(100))
    assert pacer.next_free(at(0)) is None
