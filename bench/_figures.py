"""How the benchmarks print a spread of latencies, the same way in each."""

from __future__ import annotations

import statistics


def spread(values: list[float]) -> str:
    """Median, p95 and max of seconds, in milliseconds ("none" for no values)."""
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"median {statistics.median(ordered) * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms, "
        f"max {ordered[-1] * 1000:,.0f} ms"
    )
