"""How fast the read-only commands answer on a live server: `fearless status`, `pending`,
`models`, `evidence ID`, each run 5 times as a person runs them (a fresh process each).

    uv run --frozen python bench/cli.py            # starts a server as the tests do, seeds it
    uv run --frozen python bench/cli.py --running  # uses the server FEARLESS_* settings name

The seeded server holds 25 release runs (3 waiting at their gate, one with an evidence page),
and one model in production; the registry three models with a history of moves. The table's
last line is the goal: every median <= 0.5 s. The CPU column (the command's own user + system
time) is what a busy machine inflates least: read it beside the wall time on a shared host,
whose load average the first line gives.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 0.5
RUNS = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(settings) -> str:
    """Release runs on the server, an evidence page and a production record; a waiting id."""
    from fearless.platform.prefect_env import use_server
    from fearless.platform.rest import PrefectApi
    from fearless.production.board import ServingRecord, server_board

    use_server(settings)
    now = datetime.now(UTC)
    with PrefectApi.from_env() as api:
        flow = api.send("POST", "flows/", {"name": "release-pipeline"}).raise_for_status().json()
        for i in range(25):
            body = {"flow_id": flow["id"], "name": f"credit-bench{i:03d}"}
            run = api.send("POST", "flow_runs/", body).raise_for_status().json()
            state = {"type": "COMPLETED", "name": "Promoted"}
            if i < 3:
                timeout = (now + timedelta(hours=1)).isoformat()
                state = {"type": "PAUSED", "name": "Suspended",
                         "state_details": {"pause_timeout": timeout}}  # fmt: skip
            body = {"state": state, "force": True}
            api.send("POST", f"flow_runs/{run['id']}/set_state", body).raise_for_status()
    digest = "sha256:" + "ab" * 32
    server_board(
        "credit", ServingRecord(model="credit", digest=digest, url="http://127.0.0.1:9", since=now)
    )
    seed_registry(settings.paths.registry)
    page = settings.paths.run_dir("credit-bench000") / "evidence.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("<html><body>evidence</body></html>")
    page.with_suffix(".md").write_text("# evidence")
    return "credit-bench000"


def seed_registry(root: Path) -> None:
    """Three models, each moved to production four times, with a previous version."""
    from fearless.registry.local import LocalRegistry

    registry, by = LocalRegistry(root), {"actor": "bench", "reason": "seed"}
    for model in ("credit", "fraud", "churn"):
        (root / model / "bundles").mkdir(parents=True, exist_ok=True)
        current = None
        for i in range(4):
            digest = f"sha256:{i}{model}".ljust(71, "0")
            registry.set_alias(model, "production", digest, expected=current, **by)
            current = digest
        registry.set_alias(model, "previous", "sha256:" + "e" * 64, expected=None, **by)


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def time_command(args: list[str]) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of RUNS fresh `fearless ARGS` processes."""
    fearless = str(Path(sys.executable).parent / "fearless")
    walls, cpus = [], []
    for _ in range(RUNS):
        cpu, started = _cpu(), time.perf_counter()
        done = subprocess.run(
            [fearless, *args], check=False, capture_output=True, text=True, cwd=ROOT
        )
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
        if done.returncode != 0:
            raise SystemExit(f"fearless {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--running", action="store_true", help="Use the configured server.")
    parser.add_argument("--release", help="Release id for `fearless evidence` (with --running).")
    args = parser.parse_args()
    if not args.running:
        os.environ["FEARLESS_STATE_DIR"] = tempfile.mkdtemp(prefix="fearless-bench-")
        os.environ["FEARLESS_SERVER_PORT"] = str(_free_port())
        os.environ["FEARLESS_WORK_POOL"] = "fearless-bench"
        os.environ.pop("PREFECT_API_URL", None)
    from fearless.platform.server import server_down, server_up
    from fearless.settings import get_settings

    settings = get_settings()
    try:
        if not args.running:
            server_up(settings)
        release = args.release or (seed(settings) if not args.running else None)
        commands = [["--help"], ["status"], ["pending"], ["models"]]
        commands += [["evidence", release]] if release else []
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min)")
        print(f"{'command':<34} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s':>7}")
        medians = []
        for command in commands:
            times, cpus = time_command(command)
            medians.append(statistics.median(times))
            label = "fearless " + " ".join(command)
            print(
                f"{label:<34} {medians[-1]:>9.3f} {min(times):>7.3f} {max(times):>7.3f} "
                f"{statistics.median(cpus):>7.3f}"
            )
    finally:
        if not args.running:
            server_down(settings)
    worst = max(medians[1:])
    verdict = "met" if worst <= GOAL_S else "NOT met"
    print(
        f"goal: every read-only command's median <= {GOAL_S} s: {verdict} (slowest {worst:.3f} s)"
    )


if __name__ == "__main__":
    main()
