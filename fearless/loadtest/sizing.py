"""How many Locust processes a rate needs: this host's cost per request, measured and cached.

One Locust process sends a few thousand requests/s at most, and a pegged generator makes a run
inconclusive. So before an open-model test we read what one request costs Locust here (CPU
seconds of the generator per request, `calibrate_cost`, cached by `cached_cost`), and start as
many processes as keep each under `HEADROOM` of a core (`processes_for`). A closed model and a
timed replay keep one process: the closed model lets the generator set the pace anyway, and a
replay's every worker would replay the whole log.

The calibration is the open model (paced users cost more per request than as-fast-as-answered
ones: 126-129 against 46-62 µs on this project's 2-core machine, with the locustfile's own
client) with our locustfile and the test's own traffic, in one process, against a stub API
started here that answers at once with the model API's headers and body shape. Not the target:
with the earlier client (FastHttpUser) the stub gave the same cost with answers delayed 0, 1 or
10 ms and on a quiet or a busy host, while a target adds its own noise, takes load meant for
the test, puts the calibration's requests in the inference log the drift gate reads, and must
be up. The real model API on the same host cost Locust more per request than the stub (cause
not isolated): HEADROOM leaves room for that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from pydantic import BaseModel, ValidationError

from fearless.loadtest.runner import LOCUSTFILE, LoadTestError, LoadTestResult, run_load_test
from fearless.loadtest.stub_api import stub_api
from fearless.platform import http1
from fearless.spec import LoadProfile

# Of a core per Locust process: under it latencies are the API's (LOCUST_EVIDENTLY_NOTES: keep
# the generator under ~60%), and it absorbs the real target's dearer requests (see above).
HEADROOM = 0.6
CALIBRATION_RATE = 2000.0  # req/s: 1000 users, as every test from 1000 req/s up has
CALIBRATION_S = 6
CACHE_TTL_S = 24 * 3600.0  # bounds what the key misses (kernel, a calibration on a busy host)
CACHE_FILE = "locust-cost.json"
CALIBRATION_VERSION = 1  # bump when the way of measuring changes

log = logging.getLogger(__name__)


class Calibration(BaseModel):
    """One measured cost per request of Locust on this host, and the run that measured it."""

    key: str
    cost_per_request_s: float
    measured_at: float  # epoch seconds
    requests: int
    rps: float
    generator_cpu_pct: float
    generator_busy_pct: float
    host_disturbance_pct: float | None = None


def cost_key(batch_size: int) -> str:
    """What changes Locust's cost per request: its, gevent's and Python's versions, our
    locustfile and the code it sends with (the simulations package, the platform's HTTP client),
    the batch size, the CPU model and the method; one readable line."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = f"{line.partition(':')[2].strip()} {platform.machine()}"
                break
    sources = hashlib.sha256()
    for path in (*sorted(LOCUSTFILE.parent.glob("*.py")), Path(http1.__file__)):
        sources.update(path.read_bytes())
    locustfile = sources.hexdigest()[:12]
    return (
        f"locust={version('locust')} gevent={version('gevent')} "
        f"python={platform.python_implementation()}-{platform.python_version()} "
        f"batch={batch_size} cpu={cpu} locustfile={locustfile} v{CALIBRATION_VERSION}"
    )


def cost_of(result: LoadTestResult) -> float:
    """CPU seconds of the generator per request: its mean CPU (all its cores) over the test."""
    if result.requests == 0:
        raise LoadTestError("the calibration run sent no requests: no cost to measure")
    cpu_s = result.generator_cpu_pct / 100 * result.generator_cores * result.duration_s
    return cpu_s / result.requests


def calibrate_cost(
    traffic_path: Path, batch_size: int, *, duration_s: int = CALIBRATION_S
) -> Calibration:
    """One process of our locustfile, in the open model at CALIBRATION_RATE, against
    `stub_api`, sending the bodies of `traffic_path`. Raises LoadTestError if Locust fails."""
    load = LoadProfile(rate=CALIBRATION_RATE, duration_s=duration_s, batch_size=batch_size)
    with stub_api(batch_size) as url, tempfile.TemporaryDirectory(prefix="calibration-") as out:
        result = run_load_test(url, load, traffic_path, Path(out))
    if result.failures > result.requests * 0.01:
        raise LoadTestError(f"the calibration run failed: {', '.join(result.top_errors)}")
    return Calibration(
        key=cost_key(batch_size),
        cost_per_request_s=cost_of(result),
        measured_at=time.time(),
        requests=result.requests,
        rps=result.rps,
        generator_cpu_pct=result.generator_cpu_pct,
        generator_busy_pct=result.generator_busy_pct,
        host_disturbance_pct=result.host.disturbance_pct if result.host else None,
    )


def _read_cache(path: Path) -> dict[str, Calibration]:
    """The cached calibrations by key; an unreadable or malformed file counts as empty."""
    try:
        raw = json.loads(path.read_text())
        return {key: Calibration.model_validate(entry) for key, entry in raw.items()}
    except (OSError, ValueError, AttributeError, ValidationError):
        return {}


def cached_cost(
    cache_dir: Path,
    traffic_path: Path,
    batch_size: int,
    *,
    ttl_s: float = CACHE_TTL_S,
    measure: Callable[[Path, int], Calibration] | None = None,
    now: Callable[[], float] = time.time,
) -> Calibration:
    """This host's calibration for `batch_size` from `cache_dir/CACHE_FILE` when younger than
    `ttl_s` and made under the same key, else measured now (`measure`, by default
    `calibrate_cost`) and written back; a corrupt file is replaced. Raises LoadTestError when
    a measurement is needed and fails."""
    path, key = cache_dir / CACHE_FILE, cost_key(batch_size)
    entries = _read_cache(path)
    hit = entries.get(key)
    if hit is not None and 0 <= now() - hit.measured_at < ttl_s:
        return hit
    fresh = (measure or calibrate_cost)(traffic_path, batch_size)
    entries[key] = fresh
    partial = path.with_name(f".{path.name}.{os.getpid()}")  # concurrent writers: last wins
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({k: e.model_dump() for k, e in entries.items()}, indent=1))
        partial.replace(path)
    except OSError as exc:  # the next release measures again; this one has its cost
        log.warning("could not keep Locust's cost per request in %s: %s", path, exc)
    return fresh


class Sizing(BaseModel):
    """Locust processes for a rate; `note` says when the cores cannot keep each under headroom."""

    processes: int
    needed: int
    core_pct_each: float  # expected CPU of each process, in % of a core
    note: str | None = None


def processes_for(
    rate: float, cost_per_request_s: float, cores: int, headroom: float = HEADROOM
) -> Sizing:
    """How many processes send `rate` req/s at `cost_per_request_s` each with every process
    under `headroom` of a core (exactly at it is fine), at most `cores` of them."""
    if rate <= 0 or cost_per_request_s <= 0 or cores < 1 or not 0 < headroom <= 1:
        raise ValueError(f"no sizing for {rate=}, {cost_per_request_s=}, {cores=}, {headroom=}")
    load_cores = rate * cost_per_request_s
    needed = max(1, math.ceil(load_cores / headroom - 1e-9))
    processes = min(needed, cores)
    each = 100 * load_cores / processes
    note = None
    if needed > processes:
        outcome = (
            "cannot send it: expect an inconclusive run"
            if each >= 100
            else "the generator may set the pace and its latencies read high"
        )
        note = (
            f"{rate:g} req/s at {cost_per_request_s * 1e6:.0f} µs of Locust CPU per request "
            f"needs {needed} processes under {headroom:.0%} of a core each, but only {cores} "
            f"cores are here: {processes} processes at ~{each:.0f}% of a core each {outcome}; "
            "give the load generator more cores"
        )
    return Sizing(processes=processes, needed=needed, core_pct_each=round(each, 1), note=note)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


class LoadPlan(BaseModel):
    """What `SizedLocust` runs: `processes` as `run_load_test` takes it (0: one process)."""

    processes: int
    reason: str
    note: str | None = None
    calibration: Calibration | None = None


@dataclass(frozen=True)
class SizedLocust:
    """A LoadGenerator (see fleet.py) that starts as many Locust processes as the rate needs,
    from this host's cost per request cached in `cache_dir`. `cores`: default, the affinity.
    With `replay_speed` it replays a log by its recorded offsets, in one process."""

    cache_dir: Path
    cores: int | None = None
    headroom: float = HEADROOM
    ttl_s: float = CACHE_TTL_S
    replay_speed: float | None = None

    def plan(self, profile: LoadProfile, traffic_path: Path) -> LoadPlan:
        """The processes for `profile`; a failed calibration falls back to one, with a note."""
        rate = profile.target_rate
        if rate is None:
            return LoadPlan(processes=0, reason="closed model: one Locust process")
        if self.replay_speed is not None:
            return LoadPlan(processes=0, reason="timed replay: one Locust process")
        cores = self.cores or available_cores()
        if cores == 1:  # nothing to size: no calibration to pay for
            return LoadPlan(processes=0, reason="one core for the generator: one Locust process")
        try:
            calibration = cached_cost(
                self.cache_dir, traffic_path, profile.batch_size, ttl_s=self.ttl_s
            )
        except LoadTestError as exc:
            note = f"could not measure Locust's cost per request ({exc}); one process"
            return LoadPlan(processes=0, reason="not calibrated: one Locust process", note=note)
        cost = calibration.cost_per_request_s
        sizing = processes_for(rate, cost, cores, self.headroom)
        reason = (
            f"{rate:g} req/s at {cost * 1e6:.0f} µs per request: {sizing.processes} Locust "
            f"process{'es' if sizing.processes > 1 else ''} at ~{sizing.core_pct_each:.0f}% "
            "of a core each"
        )
        processes = 0 if sizing.processes == 1 else sizing.processes
        return LoadPlan(
            processes=processes, reason=reason, note=sizing.note, calibration=calibration
        )

    def run(
        self, url: str, profile: LoadProfile, traffic_path: Path, out_dir: Path
    ) -> LoadTestResult:
        plan = self.plan(profile, traffic_path)
        log.log(logging.WARNING if plan.note else logging.INFO, plan.note or plan.reason)
        return run_load_test(
            url, profile, traffic_path, out_dir,
            processes=plan.processes, replay_speed=self.replay_speed,
        )  # fmt: skip
