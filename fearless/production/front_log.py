"""A bake window's figures from the production front's access log, read as it grows.

The front writes one JSON line per request while a bake watches (`front.LOG_FORMAT`): the
upstream that answered, the status, and the request's time at the front in milliseconds (what
clients waited, the front included). `AccessLog` counts the prediction requests one upstream
answered, as the cumulative counts a bake compares: 5xx answers (the front's own 502/504
included) are errors, and the latency buckets are each millisecond nginx can tell apart.

A long window at high traffic does not fill the disk: past `ROTATE_BYTES` the log is renamed,
nginx is asked to reopen it, and the renamed file is read to its end and removed a moment later.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from fearless.production.bake import SERVED_ROUTE_ENDINGS, Scrape

ROTATE_BYTES = 64 * 1024 * 1024
# How long nginx's workers may take to write their last buffered lines to the renamed log.
REOPEN_GRACE_S = 1.0


class _Tail:
    """Complete lines appended to one open file since the last read."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.partial = file, b""

    def lines(self) -> list[bytes]:
        data = self.partial + self.file.read()
        *complete, self.partial = data.split(b"\n")
        return complete


class AccessLog:
    def __init__(self, path: Path, upstream: str, reopen: Callable[[], None]) -> None:
        self.path, self.upstream, self.reopen = path, upstream, reopen
        self.tail: _Tail | None = None
        self.renamed: tuple[_Tail, Path, float] | None = None
        self.requests = self.errors = 0
        self.by_ms: Counter[int] = Counter()

    def scrape(self) -> Scrape:
        """What the upstream answered since the log was emptied, as cumulative counts."""
        if self.renamed is not None:
            old, path, at = self.renamed
            if time.monotonic() - at >= REOPEN_GRACE_S:
                self._count(old.lines())
                old.file.close()
                path.unlink(missing_ok=True)
                self.renamed = None
        if self.tail is None:
            try:
                self.tail = _Tail(self.path.open("rb"))
            except FileNotFoundError:
                return self._figures()
        self._count(self.tail.lines())
        if self.renamed is None and self.tail.file.tell() > ROTATE_BYTES:
            path = self.path.with_name(self.path.name + ".old")
            os.replace(self.path, path)
            self.reopen()
            self.renamed, self.tail = (self.tail, path, time.monotonic()), None
        return self._figures()

    def _count(self, lines: list[bytes]) -> None:
        for line in lines:
            try:
                entry = json.loads(line)
                upstream = entry["upstream"].rsplit(",", 1)[-1].strip()
                if upstream != self.upstream or not entry["uri"].endswith(SERVED_ROUTE_ENDINGS):
                    continue
                status, seconds = int(entry["status"]), float(entry["request_time"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not a line of ours (or a torn one): nothing to count
            self.requests += 1
            self.errors += status >= 500
            self.by_ms[round(seconds * 1000)] += 1

    def _figures(self) -> Scrape:
        # nginx truncates to the millisecond: a request logged at m ms took m to m+1 ms, so
        # each one seen is a bucket from m to m+1 (the p95 is interpolated within it).
        buckets, below = [], 0.0
        for ms in sorted(self.by_ms):
            buckets.append((ms / 1000, below))
            below += self.by_ms[ms]
            buckets.append(((ms + 1) / 1000, below))
        return Scrape(requests=self.requests, server_errors=self.errors, buckets=buckets)

    def close(self) -> None:
        for tail in (self.tail, self.renamed[0] if self.renamed else None):
            if tail is not None:
                tail.file.close()
        if self.renamed is not None:
            self.renamed[1].unlink(missing_ok=True)
