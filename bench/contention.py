"""Do releases started together measure each other? One release alone, then three at once.

Starts its own Prefect server and worker in a scratch state dir (as `pipeline.py` does),
releases the example model alone, then three copies started at the same moment, then alone
again (two solo runs differ too: that is the noise floor), each held at its approval gate and
then rejected. Prints, per round, each release's achieved rate and p95 with its ratio to the
solo run's, then the medians over the rounds and the worst ratio.
Goal: every ratio within 10% of the solo run, median of 3 rounds: the per-turn medians (the
first, second and third release to take the slot) in [0.9, 1.1]; `worst_p95_ratio` and
`worst_rate_ratio` show the single worst run beside them.

    python bench/contention.py [--rounds 3] [--rate 200] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import _configure  # after the path is set


def release_together(settings, registry, projects: list[Path], overrides: dict) -> list[dict]:
    """Start one release per project at once, wait for each at its gate, read its figures,
    reject it (which tears it down)."""
    from prefect.client.orchestration import get_client

    from fearless.release.runs import decide, follow, start_release

    started = [
        start_release(settings, registry, str(p), overrides=overrides, started_by="bench")
        for p in projects
    ]
    rows = []
    with get_client(sync_client=True) as client:
        for release in started:
            run = follow(client, UUID(release.flow_run_id), lambda _: None, poll_s=0.5)
            assert run.state.is_paused(), f"{release.release_id}: {run.state}"
        for release in started:
            evidence = settings.paths.run_dir(release.release_id) / "evidence.json"
            load = json.loads(evidence.read_text())["load"]
            result, slot = load["result"], load.get("slot") or {}
            rows.append(
                {
                    "release": release.release_id,
                    "rps": result["rps"],
                    "p95_ms": result["p95_ms"],
                    "waited_s": slot.get("waited_s", 0.0),
                }
            )
            decide(client, release.release_id, approve=False, approver="bench", comment="")
        for release in started:
            follow(client, UUID(release.flow_run_id), lambda _: None, 0.5, stop_when_paused=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    state = _configure()
    from fearless.composition import build_services
    from fearless.platform.deploy import deploy
    from fearless.platform.server import server_down, server_up
    from fearless.settings import get_settings

    settings = get_settings()
    services = build_services(settings)
    projects = []
    for i in range(3):
        out = state / f"credit-{i}"
        train = [sys.executable, str(ROOT / "examples/credit/train.py"), "--out", str(out)]
        subprocess.run(train, check=True, capture_output=True)
        projects.append(out)
    overrides = {
        "load": {"rate": args.rate, "duration_s": args.duration},
        "drift": {"column_threshold": 0.2},
        "bake": {"window_s": 0},
    }
    ratios: dict[str, list[float]] = {"rps": [], "p95_ms": []}
    by_turn: dict[str, list[list[float]]] = {"rps": [[], [], []], "p95_ms": [[], [], []]}
    noise: dict[str, list[float]] = {"rps": [], "p95_ms": []}
    try:
        server_up(settings)
        deploy(settings)
        for round_ in range(args.rounds):
            (solo,) = release_together(settings, services.registry, projects[:1], overrides)
            together = release_together(settings, services.registry, projects, overrides)
            # The same release alone once more: how far two solo runs differ (the noise floor).
            (again,) = release_together(settings, services.registry, projects[:1], overrides)
            for name, ratios_of in noise.items():
                ratios_of.append(again[name] / solo[name])
            print(f"\nround {round_ + 1}: {args.rate:g} req/s asked for {args.duration} s")
            print(f"| {'run':<22} | {'req/s':>7} | {'p95 ms':>7} | {'rate ratio':>10} "
                  f"| {'p95 ratio':>9} | {'waited s':>8} |")  # fmt: skip
            print("|" + "|".join("-" * w for w in (24, 9, 9, 12, 11, 10)) + "|")
            for turn, row in enumerate(sorted(together, key=lambda r: r["waited_s"])):
                for name in by_turn:
                    by_turn[name][turn].append(row[name] / solo[name])
            rows = [("alone", solo), *(("together", r) for r in together), ("alone again", again)]
            for label, row in rows:
                rate_ratio, p95_ratio = row["rps"] / solo["rps"], row["p95_ms"] / solo["p95_ms"]
                if label == "together":
                    ratios["rps"].append(rate_ratio)
                    ratios["p95_ms"].append(p95_ratio)
                print(f"| {label + ' ' + row['release'][-8:]:<22} | {row['rps']:7.1f} "
                      f"| {row['p95_ms']:7.1f} | {rate_ratio:10.2f} | {p95_ratio:9.2f} "
                      f"| {row['waited_s']:8.0f} |")  # fmt: skip
    finally:
        server_down(settings, services)
    for name, values in ratios.items():
        print(f"{name} ratio to solo: median {statistics.median(values):.2f}, "
              f"min {min(values):.2f}, max {max(values):.2f}")  # fmt: skip
    # The goal's "median of 3": each turn (first, second, third to take the slot) over rounds.
    for name, turns in by_turn.items():
        medians = ", ".join(f"{statistics.median(t):.2f}" for t in turns)
        print(f"{name} ratio per turn, median over rounds: {medians}")
    for name, values in noise.items():
        print(f"{name} noise floor (alone again / alone): median {statistics.median(values):.2f}, "
              f"min {min(values):.2f}, max {max(values):.2f}")  # fmt: skip
    print(f"worst_rate_ratio: {max(ratios['rps'], key=lambda r: abs(r - 1)):.2f}")
    print(f"worst_p95_ratio: {max(ratios['p95_ms'], key=lambda r: abs(r - 1)):.2f}")


if __name__ == "__main__":
    main()
