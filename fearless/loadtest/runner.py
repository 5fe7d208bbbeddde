"""Run the Locust test against a model API in its own process and read back the figures.

Locust runs as a subprocess because gevent's monkey-patching fights Prefect's event loop
(and Evidently's ssl) inside one process. While it runs we sample the generator's CPU: a
pegged generator inflates the latency it reports, so the verdict must know.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal, Protocol

import httpx
from pydantic import BaseModel

from fearless.loadtest.generator import GeneratorSampler
from fearless.loadtest.host import HostLoad, HostSampler
from fearless.settings import PROJECT_ROOT
from fearless.spec import LoadProfile

LOCUSTFILE = PROJECT_ROOT / "simulations" / "locustfile.py"
START_MARGIN_S = 30.0  # Locust's own start and stop; measured at 2 s alone, 5 s with --processes
SAMPLE_S = 0.5
LOG_TAIL_CHARS = 3000


class LoadTestError(RuntimeError):
    """The load test could not be run (target down, Locust failed or hung); no figures exist."""


class Launcher(Protocol):
    """Starts Locust as master and workers: all descend from one process, sampled and killed."""

    cores: int

    def command(self, argv: list[str]) -> list[str]: ...


class LoadTestResult(BaseModel):
    """What Locust measured, summed over endpoints; latencies in ms, to 1% or finer where the
    locustfile's own histogram saw every request, else rounded as Locust rounds.

    In the open model `target_rps` is the full rate asked for and `expected_requests` what the
    profile's table should have sent in all; both are None in the closed model and in a replay.
    """

    profile: str
    users: int
    mode: Literal["open", "closed"] = "closed"
    target_rps: float | None = None
    expected_requests: float | None = None
    requests: int
    failures: int
    rps: float
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float = 0.0  # the fastest request: what the API takes at its best
    # p95_ms/p99_ms: the range the true percentile lies in, 95% sure, from this many requests
    latency_bounds_ms: dict[str, tuple[float, float]] = {}
    duration_s: float
    wall_s: float
    generator_cpu_pct: float
    generator_cpu_max_pct: float
    generator_cores: int
    generator_cpu_wait_pct: float = 0.0  # ready to run but waiting for a CPU (shared machine)
    top_errors: list[str] = []
    host: HostLoad | None = None  # what else the generator's host did meanwhile
    generator_measured: bool = True  # False: it ran elsewhere (ECS tasks), its CPU unknown
    report_html: str
    csv_prefix: str
    json_path: str
    log_path: str

    @property
    def held_share(self) -> float | None:
        """Share of the open model's requests that were sent; None when no rate was asked."""
        if not self.expected_requests:
            return None
        return self.requests / self.expected_requests

    @property
    def generator_busy_pct(self) -> float:
        """CPU the generator used or waited for, in % of its cores: at ~100 it set the pace."""
        return self.generator_cpu_pct + self.generator_cpu_wait_pct


def locust_env(
    load: LoadProfile, traffic_path: Path, replay_speed: float | None = None
) -> dict[str, str]:
    """The environment variables the locustfile reads (see `simulations/profiles.py`)."""
    env = {
        "FEARLESS_TRAFFIC": str(traffic_path.resolve()),
        "FEARLESS_MODE": load.mode,
        "FEARLESS_PROFILE": load.profile,
        "FEARLESS_SPAWN_RATE": str(load.spawn_rate),
        "FEARLESS_DURATION_S": str(load.duration_s),
        "FEARLESS_BATCH_SIZE": str(load.batch_size),
    }
    if load.rate is not None:
        env["FEARLESS_RATE"] = str(load.rate)
    if load.users is not None:
        env["FEARLESS_USERS"] = str(load.users)
    if replay_speed is not None:
        env["FEARLESS_REPLAY_SPEED"] = str(replay_speed)
    return env


def percentile(histogram: dict[int, int], q: float) -> float:
    """Locust's percentile rule over a {rounded_ms: count} histogram; 0 when it is empty."""
    total = sum(histogram.values())
    allowed_above = int(total * q)
    seen = 0
    for ms in sorted(histogram, reverse=True):
        seen += histogram[ms]
        if total - seen <= allowed_above:
            return float(ms)
    return 0.0


BOUNDS_Z = 1.96  # 95% two-sided


def order_statistic(histogram: dict[int, int], rank: int) -> float:
    """The `rank`-th fastest request (1-based) of a {rounded_ms: count} histogram."""
    seen = 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= rank:
            return float(ms)
    return float(max(histogram, default=0))


def percentile_bounds(histogram: dict[int, int], q: float) -> tuple[float, float]:
    """Where the true q-quantile lies, 95% sure: the order statistics at ranks
    n*q -/+ 1.96*sqrt(n*q*(1-q)) (the binomial count of requests below it), with no
    assumption on the latencies' distribution. From 120 requests a p99 is anywhere between
    about the 116th fastest and the slowest: one slow request moves it."""
    n = sum(histogram.values())
    if n == 0:
        return (0.0, 0.0)
    spread = BOUNDS_Z * math.sqrt(n * q * (1 - q))
    low, high = max(1, math.floor(n * q - spread)), min(n, math.ceil(n * q + spread))
    return (order_statistic(histogram, low), order_statistic(histogram, high))


def latency_bounds(histogram: dict[int, int], unit_ms: float = 1.0) -> dict:
    return {
        f"p{q}_ms": tuple(round(v * unit_ms, 6) for v in percentile_bounds(histogram, q / 100))
        for q in (95, 99)
    }


def summarize_stats(entries: list[dict]) -> dict:
    """Overall counts, rps and percentiles from Locust's per-endpoint JSON (it has no total row).

    Also the test's start and end (`start_ts`, `end_ts`, epoch seconds) from Locust's clock.
    """
    histogram: dict[int, int] = {}
    for entry in entries:
        for ms, count in entry["response_times"].items():
            histogram[int(ms)] = histogram.get(int(ms), 0) + count
    requests = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    starts = [e["start_time"] for e in entries if e.get("start_time")]
    ends = [e["last_request_timestamp"] for e in entries if e.get("last_request_timestamp")]
    window = max(ends) - min(starts) if starts and ends else 0.0
    return {
        "requests": requests,
        "failures": failures,
        "rps": requests / window if window > 0 else 0.0,
        "error_rate": failures / requests if requests else 0.0,
        "p50_ms": percentile(histogram, 0.50),
        "p95_ms": percentile(histogram, 0.95),
        "p99_ms": percentile(histogram, 0.99),
        "min_ms": float(min(histogram, default=0)),
        "latency_bounds_ms": latency_bounds(histogram),
        "duration_s": window,
        "start_ts": min(starts) if starts else 0.0,
        "end_ts": max(ends) if ends else 0.0,
    }


def finer_percentiles(latency_path: Path, requests: int) -> dict[str, float] | None:
    """p50/p95/p99 and the fastest request to 1% or finer from the locustfile's own histogram
    (`{"unit_ms": ..., "counts": {bucket: n}}`), when it saw every request (Locust rounds to
    whole milliseconds); else None."""
    if not latency_path.is_file():
        return None
    kept = json.loads(latency_path.read_text())
    unit_ms, counts = kept["unit_ms"], {int(k): v for k, v in kept["counts"].items()}
    if not counts or sum(counts.values()) < requests:  # forked workers keep their own
        return None
    finer = {f"p{q}_ms": round(percentile(counts, q / 100) * unit_ms, 6) for q in (50, 95, 99)}
    bounds = latency_bounds(counts, unit_ms=unit_ms)
    return {**finer, "min_ms": round(min(counts) * unit_ms, 6), "latency_bounds_ms": bounds}


def read_top_errors(failures_csv: Path, limit: int = 3) -> list[str]:
    """The most frequent failure messages from Locust's `_failures.csv`."""
    if not failures_csv.is_file():
        return []
    with failures_csv.open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: -int(r["Occurrences"] or 0))
    return [f"{r['Method']} {r['Name']}: {r['Error']} (x{r['Occurrences']})" for r in rows[:limit]]


def check_target(url: str) -> None:
    """Raise LoadTestError unless `url` answers GET /ready with 200."""
    try:
        response = httpx.get(f"{url}/ready", timeout=5.0)
    except httpx.HTTPError as exc:
        raise LoadTestError(f"target {url} is not answering: {exc}") from exc
    if response.status_code != 200:
        raise LoadTestError(
            f"target {url} is not ready: GET /ready gave HTTP {response.status_code}"
        )


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if path.is_file() else ""


Sample = tuple[float, float, float, float, float, float]


def parent_death_signal():
    """A function for the generator to call before it starts: SIGKILL it when the process that
    started it dies (Linux's parent-death signal). A release's process lost mid-test (its host
    or worker killed) would otherwise leave Locust loading the candidate while the resumed
    release tests it again. Resolved here, in the parent: between fork and exec the child may
    only call it, never load a library (another thread may hold the loader's lock)."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the generator outlives a lost release
        return None
    PR_SET_PDEATHSIG = 1
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_sampled(
    argv: list[str], env: dict[str, str], log_path: Path, timeout_s: float, host: HostSampler
) -> tuple[list[Sample], set[int]]:
    """Run Locust to the end, sampling its process tree and the host. Each sample: (time,
    generator CPU used, CPU waited for, in % of one core; host busy, steal, the test's other
    processes, in % of all cores). Also the generator's pids."""
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=parent_death_signal(),  # noqa: PLW1509 (one prctl call, no locks)
        )  # fmt: skip
    samples: list[Sample] = []
    sampler = None
    try:
        sampler = GeneratorSampler(proc.pid)
        while proc.poll() is None:
            if time.monotonic() - started > timeout_s:
                raise LoadTestError(
                    f"locust ran past {timeout_s:.0f} s; killed.\n{_tail(log_path)}"
                )
            time.sleep(SAMPLE_S)
            samples.append((time.time(), *sampler.sample(), *host.sample()))
    finally:
        # Its own session: this reaches forked workers too, and leaves nothing behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.returncode != 0:
        raise LoadTestError(
            f"locust failed (exit code {proc.returncode}); log {log_path}:\n{_tail(log_path)}"
        )
    return samples, set(sampler.known) if sampler else set()


def run_load_test(
    target_url: str,
    load: LoadProfile,
    traffic_path: Path,
    out_dir: Path,
    *,
    processes: int = 0,
    replay_speed: float | None = None,
    launcher: Launcher | None = None,
) -> LoadTestResult:
    """Drive `target_url` with the traffic file under the load profile; keep Locust's reports.

    `processes` > 0 forks that many Locust workers (-1: one per core) for more generator CPU.
    `replay_speed` paces a replayed log by its recorded offsets (1.0 = real time); it needs
    one process, as each forked worker would replay the whole log. `launcher`: see Launcher.
    Raises LoadTestError when the target is down or Locust fails, hangs or crashes.
    """
    if replay_speed is not None and (processes or launcher):
        raise ValueError("a timed replay runs in one Locust process; drop processes/launcher")
    url = target_url.rstrip("/")
    check_target(url)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / "locust"
    json_path, html_path, log_path = (prefix.with_suffix(s) for s in (".json", ".html", ".log"))
    latency_path = Path(f"{prefix}_latency.json")
    for stale in (json_path, latency_path):
        stale.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"]
    argv += ["--host", url, "--json-file", str(prefix), "--csv", str(prefix)]
    argv += ["--html", str(html_path), "--exit-code-on-error", "0"]
    if processes:
        argv += ["--processes", str(processes)]
    cores = 1 if not processes else (os.cpu_count() or 1) if processes < 0 else processes
    if launcher is not None:
        argv, cores = launcher.command(argv), launcher.cores

    started = time.monotonic()
    env = {
        **locust_env(load, traffic_path, replay_speed),
        "FEARLESS_LATENCY_PATH": str(latency_path),
    }
    host = HostSampler(url)
    samples, generator_pids = _run_sampled(
        argv, env, log_path, load.duration_s + START_MARGIN_S, host
    )
    wall_s = time.monotonic() - started
    if not json_path.is_file():
        raise LoadTestError(f"locust wrote no results ({json_path}):\n{_tail(log_path)}")
    stats = read_stats(prefix)
    start_ts, end_ts = stats.pop("start_ts"), stats.pop("end_ts")
    # Only samples from within the test itself: Locust's start-up burns a core too.
    during = [s for s in samples if start_ts + SAMPLE_S <= s[0] <= end_ts] or samples
    cpu = [s[1] / cores for s in during] or [0.0]
    waited = [s[2] / cores for s in during] or [0.0]
    generator_core_pct = sum(s[1] for s in during) / max(len(during), 1)
    return result_from_reports(
        load,
        stats,
        prefix,
        replay_speed=replay_speed,
        wall_s=wall_s,
        generator_cpu_pct=sum(cpu) / len(cpu),
        generator_cpu_max_pct=max(cpu),
        generator_cpu_wait_pct=sum(waited) / len(waited),
        generator_cores=cores,
        host=host.summary([s[3:] for s in during], generator_core_pct, generator_pids),
    )


def read_stats(prefix: Path) -> dict:
    """The figures of Locust's reports at `prefix` (`<prefix>.json`, and `<prefix>_latency.json`
    for finer percentiles when it saw every request): `summarize_stats`' fields."""
    stats = summarize_stats(json.loads(prefix.with_suffix(".json").read_text()))
    stats.update(finer_percentiles(Path(f"{prefix}_latency.json"), stats["requests"]) or {})
    return stats


def result_from_reports(
    load: LoadProfile,
    stats: dict,
    prefix: Path,
    *,
    replay_speed: float | None,
    wall_s: float,
    generator_cpu_pct: float,
    generator_cpu_max_pct: float,
    generator_cpu_wait_pct: float,
    generator_cores: int,
    host: HostLoad | None,
) -> LoadTestResult:
    """The result of a run whose reports are at `prefix` (`read_stats` without its clock)
    under `load`, with what was measured of the generator and its host."""
    from simulations.profiles import expected_requests, stages_for

    paced = load.target_rate is not None and replay_speed is None
    return LoadTestResult(
        profile=load.profile,
        users=load.concurrency,
        mode=load.mode,
        target_rps=load.target_rate if paced else None,
        expected_requests=expected_requests(stages_for(load)) if paced else None,
        **stats,
        wall_s=wall_s,
        generator_cpu_pct=generator_cpu_pct,
        generator_cpu_max_pct=generator_cpu_max_pct,
        generator_cpu_wait_pct=generator_cpu_wait_pct,
        generator_cores=generator_cores,
        top_errors=read_top_errors(Path(f"{prefix}_failures.csv")),
        host=host,
        report_html=str(prefix.with_suffix(".html")),
        csv_prefix=str(prefix),
        json_path=str(prefix.with_suffix(".json")),
        log_path=str(prefix.with_suffix(".log")),
    )
