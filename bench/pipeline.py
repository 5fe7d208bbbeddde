"""How long a release takes beyond its load test, on the embedded default.

Starts its own Prefect server and worker in a scratch state dir, releases the example model
twice (a first release with no champion, then a challenger beside the champion), approving
each the moment it reaches the gate, and prints each step's wall time. The last line is
`overhead_s`: the slower release's wall time minus its load test's and bake window's configured
durations (both are waits the spec asks for). It runs BENCH_ROUNDS rounds (3) and prints each
row's min, median and max, so one noisy run does not decide; `overhead_s` is the median.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
LOAD_S = int(os.environ.get("BENCH_LOAD_S", "10"))
BAKE_S = 5
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _configure() -> Path:
    state = Path(tempfile.mkdtemp(prefix="fearless-bench-"))
    port = _free_port()
    os.environ.update(
        {
            "FEARLESS_STATE_DIR": str(state),
            "FEARLESS_SERVER_PORT": str(port),
            "FEARLESS_WORK_POOL": "fearless-bench",
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_HOME": str(state / "prefect"),
        }
    )
    return state


def _seconds(a, b) -> float:
    return (b - a).total_seconds() if a and b else float("nan")


def timed_release(settings, project: Path) -> tuple[list[tuple[str, float]], float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from fearless.release.runs import decide, follow, start_release

    overrides = {"load": {"duration_s": LOAD_S}, "bake": {"window_s": BAKE_S}}
    began = time.monotonic()
    from fearless.composition import build_services

    registry = build_services(settings).registry
    started = start_release(
        settings, registry, str(project), overrides=overrides, started_by="bench"
    )
    quiet = lambda _line: None
    with get_client(sync_client=True) as client:
        run_id = UUID(started.flow_run_id)
        paused = follow(client, run_id, quiet, poll_s=0.1)
        gate_reached = time.monotonic()
        decide(client, started.release_id, approve=True, approver="bench", comment="")
        final = follow(client, run_id, quiet, poll_s=0.1, stop_when_paused=False)
        total = time.monotonic() - began
        assert paused.state.is_paused() and final.state.is_completed(), final.state
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    rows = [
        (
            "submit + worker pickup + flow start",
            _seconds(final.expected_start_time, final.start_time),
        )
    ]
    for task in sorted(tasks, key=lambda t: t.start_time or t.expected_start_time):
        if task.state.name != "Cached":
            step = re.sub(r"-[0-9a-f]{3}$", "", task.name)  # Prefect's per-run suffix
            rows.append((step, _seconds(task.start_time, task.end_time)))
    rows.append(("start to approval gate (wall)", gate_reached - began))
    rows.append(("approval to final state (wall)", total - (gate_reached - began)))
    rows.append(("release total (wall)", total))
    return rows, total


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:6.1f} | {statistics.median(ordered):6.1f} | {ordered[-1]:6.1f}"


def main() -> None:
    state = _configure()
    from fearless.composition import build_services
    from fearless.platform.deploy import deploy
    from fearless.platform.server import server_down, server_up
    from fearless.settings import get_settings

    settings = get_settings()
    services = build_services(settings)
    projects = {}
    for label, flag in (("champion", []), ("challenger", ["--challenger"])):
        out = state / label
        subprocess.run(
            [sys.executable, str(ROOT / "examples/credit/train.py"), "--out", str(out), *flag],
            check=True,
            capture_output=True,
        )
        projects[label] = out
    # Per release label, per row: one figure per round (a round releases both, in order).
    figures: dict[str, dict[str, list[float]]] = {label: {} for label in projects}
    overheads: list[float] = []
    try:
        server_up(settings)
        deploy(settings)
        for round_no in range(1, ROUNDS + 1):
            totals = []
            for label, project in projects.items():
                rows, total = timed_release(settings, project)
                totals.append(total)
                for name, seconds in rows:
                    figures[label].setdefault(name, []).append(seconds)
            overheads.append(max(totals) - LOAD_S - BAKE_S)
            print(f"round {round_no}: overhead_s {overheads[-1]:.1f}", flush=True)
    finally:
        server_down(settings, services)
    for label, rows in figures.items():
        print(f"\n{label} release (load test {LOAD_S} s, bake window {BAKE_S} s), {ROUNDS} rounds")
        print(
            f"| {'step':<40} |    min | median |    max |\n|{'-' * 42}|--------|--------|--------|"
        )
        for name, values in rows.items():
            print(f"| {name:<40} | {_spread(values)} |")
    print(f"\noverhead_s (min | median | max): {_spread(overheads)}")
    print(f"overhead_s: {statistics.median(overheads):.1f}")


if __name__ == "__main__":
    main()
