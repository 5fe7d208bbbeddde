"""`make demo`: release the example credit model twice on the embedded default, end to end.

First the champion (nothing in production yet), then a challenger that is compared with it.
Each release goes through every step and is approved with `fearless approve`, the command a
person would use. Everything this script starts is stopped before it exits.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEARLESS = [sys.executable, "-m", "fearless.cli"]
timings: list[tuple[str, float]] = []


def step(title: str, argv: list[str]) -> str:
    print(
        f"\n==> {title}\n    $ {' '.join(Path(a).name if a == sys.executable else a for a in argv)}",
        flush=True,
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    for line in proc.stdout:
        print("    " + line.rstrip(), flush=True)
        lines.append(line)
    if proc.wait() != 0:
        raise SystemExit(f"demo failed at: {title}")
    timings.append((title, time.monotonic() - started))
    return "".join(lines)


def release_and_approve(label: str, comment: str) -> str:
    output = step(
        f"release the {label} (build, provision, load test, drift, approval gate)",
        [*FEARLESS, "release", "examples/credit"],
    )
    release_id = re.search(r"^release (\S+) on queue", output, re.MULTILINE).group(1)
    step(
        f"approve the {label} with fearless approve, then promote and tear down",
        [*FEARLESS, "approve", release_id, "--by", "demo", "--comment", comment, "--wait"],
    )
    return release_id


def main() -> None:
    began = time.monotonic()
    try:
        step("train the champion model", [sys.executable, "examples/credit/train.py"])
        step("start the local Prefect server and worker", [*FEARLESS, "server", "up"])
        step("deploy the flows and automations", [*FEARLESS, "deploy"])
        first = release_and_approve("champion", "first version of the credit model")
        step(
            "train the challenger model",
            [sys.executable, "examples/credit/train.py", "--challenger"],
        )
        second = release_and_approve("challenger", "passes SLOs and drift against the champion")
        step("what serves now", [*FEARLESS, "status"])
        runs = ROOT / ".fearless" / "runs"
        print(f"\nReports (Locust, Evidently, evidence): {runs / first}, {runs / second}")
        print(
            "Prefect UI while the server is up: `fearless server up`, then open the address it prints."
        )
    finally:
        step("stop everything the demo started", [*FEARLESS, "server", "down"])
    print("\nstep timings:")
    for title, seconds in timings:
        print(f"  {seconds:6.1f} s  {title}")
    print(f"  {time.monotonic() - began:6.1f} s  total")


if __name__ == "__main__":
    main()
