"""What else the load generator's host did during a load test: its CPU, its steal, and who used it.

A load test measures the API under test only while nothing else competes for the machine. The
load-test slot keeps other load tests away, but a build, a drift check or an unrelated job may
still run beside it, and a cloud VM may lose CPU to its neighbours (steal). So beside the
generator we sample the whole host (`/proc/stat` through psutil) and the processes that belong
to the test: the generator, the model API listening on the target's port when it runs on this
host, and this process. Whatever else the host was busy with is the disturbance; the verdict
turns a failing run that was disturbed beyond a limit into an inconclusive one.

A host can also run slower without any of that showing: a busy sibling hyperthread or a
lower clock, which a VM does not count as steal. So each sample also times a fixed piece of
Python work in CPU time (`work_unit_us`): on a 2-core VM the same work took up to 50% longer
during one load test than during another identical one, with steal at 0. A comparison with the
champion uses it (`fearless.loadtest.compare`); alone it judges nothing, because runs at one
pace still differed in p95 as much.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import time
from urllib.parse import urlsplit

import psutil
from pydantic import BaseModel

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}
TOP_OTHERS = 3
NOTABLE_CORE_PCT = 5.0  # a process below this share of one core is not worth naming
WORK_UNIT_ITERATIONS = 10_000  # about half a millisecond of one core: timed at every sample


class HostLoad(BaseModel):
    """The host's CPU during the test, each in % of all its cores (100 = every core busy)."""

    cores: int
    cpu_pct: float  # busy, steal excluded
    steal_pct: float  # taken by the hypervisor for other guests
    others_pct: float  # busy with anything but the generator, the API under test and Fearless
    top_others: list[str] = []  # "name (pid 12): 80% of a core"
    # CPU time a fixed piece of work took, median over the test (`work_unit_us`): the host's
    # speed per thread; None in older records
    work_unit_us: float | None = None

    @property
    def disturbance_pct(self) -> float:
        """CPU the test could not count on: other processes' and the hypervisor's."""
        return self.others_pct + self.steal_pct

    def describe(self) -> str:
        top = f"; most: {', '.join(self.top_others)}" if self.top_others else ""
        pace = (
            ""
            if self.work_unit_us is None
            else f", a fixed CPU work unit {self.work_unit_us:.0f} µs"
        )
        return (
            f"host CPU {self.cpu_pct:.0f}% of {self.cores} cores, steal {self.steal_pct:.0f}%, "
            f"other processes {self.others_pct:.0f}%{top}{pace}"
        )


def _is_local(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    with contextlib.suppress(OSError):
        address = socket.gethostbyname(host)
        if address.startswith("127."):
            return True
        mine = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}
        return address in mine
    return False


def serving_processes(target_url: str) -> list[psutil.Process]:
    """The processes listening on the target's port, with their children, when it is this host."""
    parts = urlsplit(target_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not _is_local(parts.hostname or ""):
        return []
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(conn.pid)
                    for one in (proc, *proc.children(recursive=True)):
                        found[one.pid] = one
    return list(found.values())


def work_unit_us(iterations: int = WORK_UNIT_ITERATIONS) -> float:
    """CPU time (this thread's, so waiting for a core does not count) a fixed loop takes, µs."""
    started, total = time.thread_time(), 0
    for i in range(iterations):
        total += i * i
    return (time.thread_time() - started) * 1e6


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """Every process's name and CPU time so far."""
    seen = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            seen[proc.pid] = (proc.info["name"] or "?", times.user + times.system)
    return seen


class HostSampler:
    """Each `sample()` gives (host busy, steal, test's own processes but the generator), each
    in % of all cores since the last sample, and the µs a work unit took now; `summary()`
    folds samples into a HostLoad."""

    def __init__(self, target_url: str) -> None:
        self.cores = psutil.cpu_count() or 1
        self.ours = [psutil.Process(), *serving_processes(target_url)]
        for proc in self.ours:
            with contextlib.suppress(psutil.Error):
                proc.cpu_percent(None)
        self.times = psutil.cpu_times()
        self.started, self.at = _cpu_seconds(), time.monotonic()

    def sample(self) -> tuple[float, float, float, float]:
        now, before = psutil.cpu_times(), self.times
        self.times = now
        delta = {f: max(0.0, getattr(now, f) - getattr(before, f)) for f in now._fields}
        busy = sum(delta.get(f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))
        steal = delta.get("steal", 0.0)
        total = busy + steal + delta.get("idle", 0.0) + delta.get("iowait", 0.0)
        ours = 0.0
        for proc in self.ours:
            with contextlib.suppress(psutil.Error):
                ours += proc.cpu_percent(None)
        pace = work_unit_us()
        if total <= 0:
            return 0.0, 0.0, 0.0, pace
        return 100 * busy / total, 100 * steal / total, ours / self.cores, pace

    def summary(
        self,
        samples: list[tuple[float, float, float, float]],
        generator_pct: float,
        exclude: set[int],
    ) -> HostLoad:
        """`generator_pct`: the generator's mean CPU in % of one core; `exclude`: its pids."""
        n = max(len(samples), 1)
        busy, steal, ours = (sum(s[i] for s in samples) / n for i in range(3))
        others = max(0.0, busy - ours - generator_pct / self.cores)
        return HostLoad(
            cores=self.cores,
            cpu_pct=round(busy, 1),
            steal_pct=round(steal, 1),
            others_pct=round(others, 1),
            top_others=self.top_others(exclude | {p.pid for p in self.ours}),
            work_unit_us=round(statistics.median(s[3] for s in samples), 1) if samples else None,
        )

    def top_others(self, exclude: set[int], limit: int = TOP_OTHERS) -> list[str]:
        """The processes (alive at both ends) that used the most CPU meanwhile."""
        ended, started = _cpu_seconds(), self.started
        elapsed = max(time.monotonic() - self.at, 1e-3)
        shares = sorted(
            (
                (100 * (ended[pid][1] - started[pid][1]) / elapsed, name, pid)
                for pid, (name, _) in ended.items()
                if pid in started and pid not in exclude
            ),
            reverse=True,
        )
        return [
            f"{name} (pid {pid}): {share:.0f}% of a core"
            for share, name, pid in shares[:limit]
            if share >= NOTABLE_CORE_PCT
        ]
