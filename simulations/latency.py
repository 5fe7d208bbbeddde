"""The locustfile's latency histogram buckets, apart from Locust so tests can import them.

Locust keeps latencies rounded to whole milliseconds: a 1.4 ms p95 reads as 2. A bucket here
is a hundredth of a millisecond below 10 ms, a tenth below 100 ms and a whole one above: within
1% everywhere, so a step of the histogram (a tenth is 7% of 1.4 ms) is never taken for a
regression, and a run's keys stay a few thousand at most.
"""

from __future__ import annotations

UNIT_MS = 0.01  # buckets are keyed in hundredths of a millisecond


def latency_bucket(response_time_ms: float) -> int:
    """The bucket of a latency, in hundredths of a millisecond, to 1% or finer."""
    hundredths = round(response_time_ms * 100)
    step = 1 if hundredths < 1_000 else 10 if hundredths < 10_000 else 100
    return round(hundredths / step) * step
