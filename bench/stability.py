"""Do verdicts hold from run to run? `make demo` N times and the e2e suite M times, each from a
fresh clone of this checkout's HEAD, as a new user and CI would run them.

Prints one row per run (what ran, pass or fail, wall time, the last line it printed), then
`demo passes: n/N` and `e2e passes: m/M`. The goal is every run passing: a verdict that flips
between runs on the same candidate is a bug, not noise.

    python bench/stability.py [--demos 5] [--e2e 3] [--keep]

The clones share uv's cache, so each installs in seconds; each run starts and stops its own
Prefect server, worker and model APIs (the demo and the test session clean up after
themselves), and the script checks none is left behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
OURS = ("fearless.serving", "prefect server", "prefect worker", "locust", "fearless.platform")


def clone(into: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(into)], check=True)
    return into


def run(kind: str, number: int, argv: list[str], scratch: Path, keep: bool) -> dict:
    checkout = clone(scratch / f"{kind}-{number}")
    log = scratch / f"{kind}-{number}.log"
    started = time.monotonic()
    # As a new user runs it: no virtualenv of this checkout's on the PATH.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    path = env["PATH"].split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if not (Path(p).parent / "pyvenv.cfg").is_file())
    with log.open("w") as out:
        code = subprocess.call(argv, cwd=checkout, stdout=out, stderr=subprocess.STDOUT, env=env)
    wall = time.monotonic() - started
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    left = leftovers(checkout)
    if not keep:
        shutil.rmtree(checkout, ignore_errors=True)
    return {
        "run": f"{kind} {number}",
        "passed": code == 0 and not left,
        "wall_s": wall,
        "last": (f"LEFT RUNNING: {left}" if left else lines[-1] if lines else "")[:90],
        "log": str(log),
    }


def leftovers(checkout: Path) -> list[str]:
    """Processes of ours still running from that checkout."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            cwd = proc.info["cwd"] or ""
        except psutil.Error:
            continue
        if str(checkout) in cmdline + cwd and any(o in cmdline for o in OURS):
            found.append(f"{proc.pid} {cmdline[:60]}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, default=5)
    parser.add_argument("--e2e", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the clones (logs are kept)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="fearless-stability-"))
    e2e = ["bash", "-c", "make install >/dev/null && .venv/bin/python -m pytest -q tests/e2e"]
    rows = [run("demo", i + 1, ["make", "demo"], scratch, args.keep) for i in range(args.demos)]
    rows += [run("e2e", i + 1, e2e, scratch, args.keep) for i in range(args.e2e)]

    print(f"\nlogs in {scratch}")
    print(f"| {'run':<8} | {'result':<6} | {'wall s':>7} | last line")
    print(f"|{'-' * 10}|{'-' * 8}|{'-' * 9}|{'-' * 40}")
    for row in rows:
        result = "pass" if row["passed"] else "FAIL"
        print(f"| {row['run']:<8} | {result:<6} | {row['wall_s']:7.0f} | {row['last']}")
    for kind, asked in (("demo", args.demos), ("e2e", args.e2e)):
        passed = sum(row["passed"] for row in rows if row["run"].startswith(kind))
        print(f"{kind} passes: {passed}/{asked}")


if __name__ == "__main__":
    main()
