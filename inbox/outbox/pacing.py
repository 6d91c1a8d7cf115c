"""Our own pace per Slack channel, so that Slack seldom has to tell us to slow down.

Slack lets an app post about one message a second to one channel, with short bursts above
that; past it, chat.postMessage answers 429 and every ping to that channel waits out
Retry-After (bench/notify.py: with 5% of posts refused, the median ping took 2.1 s instead of
0.16 s). A token bucket per channel (an agent's DM or a team's channel) lets a burst through
and then spaces the rest at the rate, and the other channels are not held back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class _Bucket:
    tokens: float
    at: datetime


class Pacer:
    """Token buckets by target, filled at `rate` a second up to `burst`. `rate` 0: no pacing."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, target: str, now: datetime) -> bool:
        """Whether `target` may have a post now; if so, the post is counted."""
        if self.rate <= 0:
            return True
        with self._lock:
            bucket = self._filled(target, now)
            if bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True

    def next_free(self, now: datetime) -> datetime | None:
        """When the first target now out of posts has one again; None if none is out.
        Buckets that are full again are dropped here: one is the same as none."""
        if self.rate <= 0:
            return None
        with self._lock:
            short = [1 - self._filled(target, now).tokens for target in list(self._buckets)]
            self._buckets = {
                target: bucket
                for target, bucket in self._buckets.items()
                if bucket.tokens < self.burst
            }
        waits = [missing for missing in short if missing > 0]
        return now + timedelta(seconds=min(waits) / self.rate) if waits else None

    def _filled(self, target: str, now: datetime) -> _Bucket:
        bucket = self._buckets.get(target)
        if bucket is None:
            bucket = self._buckets[target] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.at = now
        return bucket
