"""A storm of releases: N at once against one embedded server, on SQLite and on PostgreSQL.

For each database it starts a server of its own in a scratch state dir (`--workers` workers,
the pool limited to `--max-running` flow runs at once), starts N releases of the example
model at once (2-s load tests, no bake), approves each as it reaches its gate, and waits
until every one is final. Meanwhile a probe asks the server's API what `fearless status` asks,
every half second. Afterwards it counts what leaked: work queues and test environments left
while the server still runs, files of the releases still open by the server, workers and
preloads, and, once `server down` has run, any process still running with the scratch state
dir in its environment, or listening on a port. The table's last line says whether the goal
was met: all promoted, never more releases running than the pool's limit (as often as the
probe looked), 0 leaks, 0 database errors.

    uv run python bench/storm.py              # 40 releases on each database (~10 min each here)
    uv run python bench/storm.py --n 100      # on a bigger machine
    uv run python bench/storm.py --n 5 --databases postgres

Each database runs in a process of its own (`--one`), as Prefect reads its settings once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID

import psutil

ROOT = Path(__file__).resolve().parent.parent
# 2-s load tests and no bake; so few records that the drift gate would judge noise, so it is
# widened (the storm measures the platform, not the model).
STORM = {
    "load": {"duration_s": 2, "rate": 50},
    "drift": {"column_threshold": 0.9},
    "bake": {"window_s": 0},
}
# What a database that cannot keep up says, in the server's and the workers' logs.
DB_ERRORS = re.compile(
    r"database is locked|OperationalError|too many clients|TooManyConnections|"
    r"ConnectionDoesNotExist|connection was closed|could not connect to server|"
    r"QueuePool limit|DeadlockDetected|deadlock detected",
    re.IGNORECASE,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _configure(database: str, workers: int, max_running: int) -> Path:
    state = Path(tempfile.mkdtemp(prefix="fearless-storm-"))
    port = _free_port()
    os.environ.update(
        {
            "FEARLESS_STATE_DIR": str(state),
            "FEARLESS_SERVER_PORT": str(port),
            "FEARLESS_WORK_POOL": "fearless-storm",
            "FEARLESS_DATABASE": database,
            "FEARLESS_WORKERS": str(workers),
            "FEARLESS_POOL_CONCURRENCY": str(max_running),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_HOME": str(state / "prefect"),
        }
    )
    return state


class ApiProbe(threading.Thread):
    """Asks the server what `fearless status` asks, every `every_s`, and keeps the latencies;
    counts the releases holding a place in the pool (Pending or Running) each time, and keeps
    the most it saw, which the pool's limit bounds."""

    def __init__(self, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every_s, self.latencies_ms, self.errors = every_s, [], []
        self.peak_holding = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        from fearless.platform.rest import PrefectApi

        body = {"flows": {"name": {"any_": ["release-pipeline"]}}, "limit": 20}
        holding = {
            "flows": body["flows"],
            "flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING"]}}},
        }
        with PrefectApi.from_env() as api:
            while not self.stopping.wait(self.every_s):
                began = time.perf_counter()
                try:
                    api.query("flow_runs/filter", body)
                except OSError as exc:
                    self.errors.append(str(exc)[:200])
                    continue
                self.latencies_ms.append((time.perf_counter() - began) * 1000)
                with contextlib.suppress(OSError):
                    count = api.query("flow_runs/count", holding)
                    self.peak_holding = max(self.peak_holding, int(count))

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def approve_until_final(
    client, run_ids: list[UUID], timeout_s: float
) -> dict[UUID, tuple[str, str]]:
    """Approve each release the moment it waits at its gate; return each run's final state
    and its message."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from fearless.release.runs import decide

    final: dict[UUID, tuple[str, str]] = {}
    deadline = time.monotonic() + timeout_s
    while len(final) < len(run_ids) and time.monotonic() < deadline:
        waiting = [r for r in run_ids if r not in final]
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=waiting))
        )
        for run in runs:
            if run.state and run.state.is_final():
                message = "" if run.state.is_completed() else run.state.message or run.state.name
                final[run.id] = (run.state.name, message)
            elif run.state and run.state.is_paused():
                try:
                    decide(client, str(run.id), approve=True, approver="storm", comment="storm")
                except RuntimeError:
                    pass  # resumed between the read and the decision
        time.sleep(2)
    for run_id in run_ids:
        final.setdefault(run_id, ("not final", ""))
    return final


def _our_processes(state: Path) -> list[psutil.Process]:
    """Every process started with this storm's state dir in its environment."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("FEARLESS_STATE_DIR") == str(state) and proc.pid != os.getpid():
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _open_release_files(state: Path) -> list[str]:
    """Files under the run folders or test environments still open by a platform process."""
    roots = (str(state / "runs"), str(state / "environments"))
    held = []
    for proc in _our_processes(state):
        try:
            held += [f.path for f in proc.open_files() if f.path.startswith(roots)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return held


def _listening_ports(procs: list[psutil.Process]) -> list[int]:
    ports = []
    for proc in procs:
        try:
            ports += [c.laddr.port for c in proc.net_connections() if c.status == "LISTEN"]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return ports


def _db_errors(state: Path) -> list[str]:
    lines = []
    for log in (state / "processes").glob("*.log"):
        lines += [
            line for line in log.read_text(errors="replace").splitlines() if DB_ERRORS.search(line)
        ]
    return lines


def storm_once(database: str, n: int, workers: int, max_running: int, timeout_s: float) -> dict:
    """One storm on one database, in this process; what it measured, as a dict."""
    state = _configure(database, workers, max_running)
    from prefect.client.orchestration import get_client

    from fearless.composition import build_services
    from fearless.platform.deploy import deploy
    from fearless.platform.server import server_down, server_up
    from fearless.release.runs import start_release
    from fearless.settings import get_settings

    settings = get_settings()
    services = build_services(settings)
    project = state / "credit"
    subprocess.run(
        [sys.executable, str(ROOT / "examples/credit/train.py"), "--out", str(project)],
        check=True,
        capture_output=True,
    )
    result: dict = {"database": database, "n": n, "workers": workers, "max_running": max_running}
    probe = ApiProbe()
    try:
        server_up(settings, timeout_s=600)  # a fresh database migrates first: slow on a busy host
        deploy(settings)
        probe.start()
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = list(
                pool.map(
                    lambda _: start_release(
                        settings,
                        services.registry,
                        str(project),
                        overrides=STORM,
                        started_by="storm",
                    ),
                    range(n),
                )
            )
        result["started_s"] = time.monotonic() - began
        with get_client(sync_client=True) as client:
            final = approve_until_final(client, [UUID(s.flow_run_id) for s in started], timeout_s)
            result["wall_s"] = time.monotonic() - began
            probe.stopping.set()
            probe.join()
            time.sleep(5)  # the last final-state hooks remove their queues
            queues = client.read_work_queues(work_pool_name=settings.work_pool)
        result["states"] = dict(Counter(name for name, _ in final.values()))
        result["finished"] = sum(1 for name, _ in final.values() if name != "not final")
        result["failures"] = sorted({m[:300] for _, m in final.values() if m})
        result["succeeded"] = sum(1 for name, m in final.values() if name != "not final" and not m)
        result["api_p99_ms"] = probe.p99_ms()
        result["api_p50_ms"] = statistics.median(probe.latencies_ms) if probe.latencies_ms else None
        result["api_errors"] = probe.errors[:5]
        result["peak_holding"] = probe.peak_holding
        result["leaked_queues"] = sorted(q.name for q in queues if q.name != "default")
        result["leaked_environments"] = [
            f"{e.release_id}/{e.role}" for e in services.environments.list()
        ]
        result["leaked_open_files"] = _open_release_files(state)
    finally:
        probe.stopping.set()
        server_down(settings, services)
        time.sleep(2)
        left = _our_processes(state)
        result["leaked_processes"] = [" ".join(p.cmdline()[:4]) for p in left if p.is_running()]
        result["leaked_ports"] = _listening_ports(left)
        errors = _db_errors(state)
        result["db_errors"] = len(errors)
        result["db_error_samples"] = errors[:3]
        shutil.rmtree(state, ignore_errors=True)
    return result


def _leaks(r: dict) -> int:
    keys = ("queues", "environments", "open_files", "processes", "ports")
    return sum(len(r.get(f"leaked_{k}", [])) for k in keys)


def print_table(results: list[dict]) -> bool:
    print(
        "\n| database | releases finished | final states | wall s | releases/min | API p50 / p99 ms "
        "| most running at once (limit) | DB errors | leaked: queues, envs, open files, processes, "
        "ports |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    met = True
    for r in results:
        states = ", ".join(f"{k} {v}" for k, v in sorted(r.get("states", {}).items())) or "-"
        wall = r.get("wall_s", float("nan"))
        rate = r.get("finished", 0) / wall * 60 if wall and not math.isnan(wall) else float("nan")
        leaked = ", ".join(
            str(len(r.get(f"leaked_{k}", [])))
            for k in ("queues", "environments", "open_files", "processes", "ports")
        )
        p50 = r.get("api_p50_ms") or float("nan")
        print(
            f"| {r['database']} | {r.get('finished', 0)}/{r['n']} | {states} | {wall:.0f} "
            f"| {rate:.1f} | {p50:.0f} / {r.get('api_p99_ms', float('nan')):.0f} "
            f"| {r.get('peak_holding', '?')} ({r['max_running']}) "
            f"| {r.get('db_errors', '?')} | {leaked} |"
        )
        ok = r.get("finished") == r["n"] and not _leaks(r) and r.get("db_errors") == 0
        ok = ok and r.get("succeeded") == r["n"] and not r.get("api_errors")
        ok = ok and r.get("peak_holding", 0) <= r["max_running"]
        met = met and ok
        for key in (
            "failures",
            "api_errors",
            "db_error_samples",
            *(
                f"leaked_{k}"
                for k in ("queues", "environments", "open_files", "processes", "ports")
            ),
        ):
            if r.get(key):
                print(f"  {r['database']} {key}: {r[key]}")
    print(
        "\ngoal (all Promoted, never more running than the limit, 0 leaks, 0 database errors): "
        + ("met" if met else "NOT met")
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=40, help="Releases started at once (default 40).")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-running", type=int, default=4, help="The pool's limit (flow runs).")
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.n < 1 or args.workers < 1 or args.max_running < 1:
        parser.error("--n, --workers and --max-running must be at least 1")
    if args.one:
        result = storm_once(args.one, args.n, args.workers, args.max_running, args.timeout_s)
        print("STORM-RESULT " + json.dumps(result, default=str))
        return
    results = []
    for database in args.databases.split(","):
        print(f"storm of {args.n} releases on {database} ...", flush=True)
        argv = [sys.executable, __file__, "--one", database, "--n", str(args.n)]
        argv += ["--workers", str(args.workers), "--max-running", str(args.max_running)]
        argv += ["--timeout-s", str(args.timeout_s)]
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        line = next((x for x in out.stdout.splitlines() if x.startswith("STORM-RESULT ")), None)
        if line is None:
            print(out.stdout[-2000:], out.stderr[-4000:], sep="\n")
            results.append({"database": database, "n": args.n, "db_errors": "?"})
            continue
        results.append(json.loads(line.removeprefix("STORM-RESULT ")))
    load = os.getloadavg()
    print(
        f"(host: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end)"
    )
    sys.exit(0 if print_table(results) else 1)


if __name__ == "__main__":
    main()
