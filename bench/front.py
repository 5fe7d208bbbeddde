"""Production through its front (nginx) against the model API direct, under the same load.

Trains the example model and builds its bundle in a scratch dir, puts it in production with
the embedded default's production service (the model API in a slot behind the model's own
nginx front, as `fearless release` leaves it), then drives the front's address and the model
API's own port in alternating rounds with the same load generator (wrk -t1 when
/usr/bin/wrk exists, else bench/serving.py's raw asyncio client) and one-record bodies.
Prints a table; the last lines are `added p50 ms: Y` and `ratio: X` (front req/s / direct).
Goal: ratio >= 0.9 and added p50 <= 0.5 ms.

    python bench/front.py [--connections 16] [--duration 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from serving import WRK, _combine, drive, drive_wrk

ROOT = Path(__file__).resolve().parent.parent


def bench(connections: int, duration_s: float, rounds: int) -> None:
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from fearless.bundles.bundle import build_bundle
    from fearless.platform.preload import Launcher
    from fearless.production.local import LocalProductionService
    from fearless.registry.local import LocalRegistry

    tmp = Path(tempfile.mkdtemp(prefix="fearless-bench-front-"))
    service = LocalProductionService(
        tmp / "production", tmp / "inference", 120.0, Launcher(cwd=ROOT)
    )
    try:
        project = tmp / "credit"
        train = [sys.executable, str(ROOT / "examples/credit/train.py"), "--out", str(project)]
        subprocess.run(train, check=True, capture_output=True, cwd=ROOT)
        bundle = build_bundle(project, LocalRegistry(tmp / "registry"))
        record = pd.read_parquet(project / "reference.parquet").head(1).to_dict("records")
        body = json.dumps({"records": record}).encode()
        instance = service.start(bundle)
        service.switch(instance)

        use_wrk = WRK.exists()
        generator = "wrk -t1" if use_wrk else "raw asyncio HTTP/1.1 client (separate process)"

        def load(url: str, seconds: float) -> dict:
            args = (url, body, connections, seconds)
            return drive_wrk(*args, tmp) if use_wrk else drive(*args)

        targets = {"front": instance.url, "direct": instance.upstream}
        for url in targets.values():  # warm both up (connections, caches)
            load(url, 2)
        # Alternate short rounds, so a change in the machine's other load hits both alike.
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, url in targets.items():
                runs[name].append(load(url, duration_s / rounds))
        rows = {name: _combine(found) for name, found in runs.items()}
    finally:
        service.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"load generator: {generator}; {connections} connections, {duration_s:.0f} s each")
    print(f"in {rounds} alternating rounds; front: nginx, one worker, upstream keep-alive")
    print(f"{'target':<8} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in rows.items():
        print(
            f"{name:<8} {row['requests']:>9} {row['errors']:>7} {row['rps']:>9.0f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
        )
    print(f"added p50 ms: {rows['front']['p50_ms'] - rows['direct']['p50_ms']:.2f}")
    print(f"ratio: {rows['front']['rps'] / rows['direct']['rps']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per target")
    args = parser.parse_args()
    bench(args.connections, args.duration, args.rounds)


if __name__ == "__main__":
    main()
