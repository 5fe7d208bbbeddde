"""How busy the load generator was: the CPU its process tree used, and the time it waited for one.

On a machine shared with other work (a CI runner, a laptop) a generator can be the bottleneck
without using a whole core: it is ready to run but waits in the scheduler's queue. Linux
counts that wait per thread in `/proc/<pid>/task/<tid>/schedstat` (second field, ns); CPU used
plus CPU waited for is what the generator asked for. Elsewhere the wait reads as 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil


def _runqueue_wait_ns(pid: int) -> int:
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total


class GeneratorSampler:
    """Samples a process and its children; each `sample()` covers the time since the last one."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.known: dict[int, psutil.Process] = {}
        self.waited: dict[int, int] = {}
        self.at = time.monotonic()
        self.sample()

    def _tree(self) -> list[psutil.Process]:
        try:
            root = self.known.get(self.pid) or psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> tuple[float, float]:
        """(CPU used, CPU waited for) since the last sample, each in % of one core."""
        now = time.monotonic()
        elapsed_ns, self.at = max(now - self.at, 1e-3) * 1e9, now
        cpu, waited_ns = 0.0, 0
        for proc in self._tree():
            try:
                cpu += self.known.setdefault(proc.pid, proc).cpu_percent(None)
            except psutil.Error:
                continue
            wait = _runqueue_wait_ns(proc.pid)
            waited_ns += max(0, wait - self.waited.get(proc.pid, wait))
            self.waited[proc.pid] = wait
        return cpu, 100.0 * waited_ns / elapsed_ns
