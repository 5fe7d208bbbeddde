"""Pacing for a timed replay: when each request of a recorded log is due.

Kept free of Locust imports so it can be unit-tested. The locustfile's users share one
`ReplayClock`: each takes the next slot, sleeps until it is due, then sends that slot's body.
Once the log is exhausted it starts again, one mean gap after its last record, so a test
longer than the log keeps the recorded rhythm.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path


def batch_offsets(offsets_s: list[float], batch_size: int) -> list[float]:
    """Offsets of the request bodies built from consecutive records: each batch's first record."""
    return offsets_s[::batch_size]


def read_offsets(path: Path) -> list[float]:
    """The offsets written beside a traffic file by `fearless.loadtest.traffic.write_traffic`."""
    if not path.is_file():
        raise ValueError(f"{path}: no offsets for a timed replay (write the traffic as a replay)")
    return [float(x) for x in json.loads(path.read_text())]


class ReplayClock:
    """Hands out slots in recorded order, each with when it is due (s after the start)."""

    def __init__(self, offsets_s: list[float], speed: float = 1.0) -> None:
        if not offsets_s:
            raise ValueError("a timed replay needs at least one offset")
        if speed <= 0:
            raise ValueError(f"replay speed must be positive, got {speed}")
        if any(b < a for a, b in itertools.pairwise(offsets_s)):
            raise ValueError("replay offsets must be in recorded (non-decreasing) order")
        first = offsets_s[0]
        self.offsets = [o - first for o in offsets_s]
        span = self.offsets[-1]
        gap = span / (len(self.offsets) - 1) if len(self.offsets) > 1 and span > 0 else 1.0
        self.period = span + gap
        self.speed = speed
        self.taken = 0

    def next(self) -> tuple[int, float]:
        """The next slot: (index into the bodies, seconds after the start it is due)."""
        lap, index = divmod(self.taken, len(self.offsets))
        self.taken += 1
        return index, (lap * self.period + self.offsets[index]) / self.speed
