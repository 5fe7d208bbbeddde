"""The model API's throughput per model family against a bare FastAPI echo app, same load.

For each family (FAMILIES: scikit-learn linear, HistGradientBoosting, RandomForest,
ExtraTrees, GradientBoosting; XGBoost and LightGBM when installed) trains the diabetes
pipeline ending in it, writes the project as `fearless init` does, builds its bundle in a
scratch dir and starts the model API on it (inference logging on); starts a bare FastAPI app
echoing its JSON body; then drives each in turn with the same load generator (wrk when
/usr/bin/wrk exists, else a raw asyncio HTTP/1.1 keep-alive client in a process of its own)
with the same connections and one-record bodies, in alternating rounds. Prints one row per
family (req/s, p50, ratio to the bare echo, records per predict call, how it scores); the
last line is `ratio: X`, the lowest family's req/s over the bare echo's.

    python bench/serving.py [--connections 16] [--duration 6] [--rounds 3] [--family NAME]...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
WRK = Path("/usr/bin/wrk")


def echo_app():
    """The bare baseline: FastAPI parsing a JSON body and answering it."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/predict")
    async def echo(payload: dict) -> dict:
        return payload

    @app.get("/ready")
    async def ready() -> dict:
        return {"ready": True}

    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _connection(host: str, port: int, request: bytes, stop_at: float, latencies: list):
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            errors += head[9:12] != b"200"
    finally:
        writer.close()
    return errors


async def _drive(url: str, body: bytes, connections: int, duration_s: float) -> dict:
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + duration_s
    errors = await asyncio.gather(
        *(_connection(host, int(port), request, stop_at, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": sum(errors),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def drive(url: str, body: bytes, connections: int, duration_s: float) -> dict:
    """Load `url`/predict from a separate process; its figures."""
    argv = [sys.executable, __file__, "--drive", url, "--body", body.decode()]
    argv += ["--connections", str(connections), "--duration", str(duration_s)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def drive_wrk(url: str, body: bytes, connections: int, duration_s: float, tmp: Path) -> dict:
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"requests\\": %d, \\"errors\\": %d, \\"rps\\": %f, '
        '\\"p50_ms\\": %f, \\"p99_ms\\": %f}\\n", summary.requests, summary.errors.status, '
        "summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, "
        "latency:percentile(99) / 1000))\nend\n"
    )
    argv = [str(WRK), "-t1", f"-c{connections}", f"-d{int(duration_s)}s", "-s", str(script)]
    out = subprocess.run([*argv, f"{url}/predict"], check=True, capture_output=True, text=True)
    [line] = [line for line in out.stdout.splitlines() if line.startswith("JSON ")]
    return json.loads(line.removeprefix("JSON "))


def _start(argv: list[str], url: str, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{argv} exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"{argv} not ready:\n{log.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _combine(runs: list[dict]) -> dict:
    """Rounds of one target as one row: total requests over total time, the worst p99."""
    return {
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "rps": sum(r["rps"] for r in runs) / len(runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
    }


# One row per model family: the estimator after the same diabetes pipeline (numeric columns
# scaled, `sex` one-hot encoded). A family whose library is not installed is left out.
FAMILIES = {
    "linear": ("sklearn.linear_model", "Ridge", {}),
    "HistGradientBoosting": ("sklearn.ensemble", "HistGradientBoostingRegressor", {}),
    "RandomForest": ("sklearn.ensemble", "RandomForestRegressor", {"n_estimators": 100}),
    "ExtraTrees": ("sklearn.ensemble", "ExtraTreesRegressor", {"n_estimators": 100}),
    "GradientBoosting": ("sklearn.ensemble", "GradientBoostingRegressor", {}),
    "XGBoost": ("xgboost", "XGBRegressor", {"n_estimators": 100}),
    "LightGBM": ("lightgbm", "LGBMRegressor", {"n_estimators": 100, "verbose": -1}),
}


def installed_families(names: list[str]) -> list[str]:
    import importlib.util

    return [n for n in names if importlib.util.find_spec(FAMILIES[n][0]) is not None]


def diabetes_project(family: str, into: Path) -> Path:
    """A model project as `fearless init` writes it: the diabetes pipeline ending in `family`."""
    import importlib

    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_diabetes
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from fearless.bundles.notebook import write_project

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = frame["sex"].map({1.0: "f", 2.0: "m"})
    numeric = [c for c in frame.columns if c not in ("sex", "target")]
    module, name, params = FAMILIES[family]
    estimator = getattr(importlib.import_module(module), name)(random_state=0, **params)
    features = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex"]),
        ]
    )
    model = Pipeline([("features", features), ("model", estimator)])
    model.fit(frame.drop(columns="target"), frame["target"])
    write_project(model, frame, into, name=family.lower(), target="target")
    return into


def bench(families: list[str], connections: int, duration_s: float, rounds: int) -> None:
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from fearless.bundles.bundle import build_bundle
    from fearless.registry.local import LocalRegistry

    tmp = Path(tempfile.mkdtemp(prefix="fearless-bench-serving-"))
    processes: list[subprocess.Popen] = []
    try:
        registry = LocalRegistry(tmp / "registry")
        apis, scoring, bodies = {}, {}, {}
        echo_url = f"http://127.0.0.1:{_free_port()}"
        echo = [sys.executable, __file__, "--echo", "--port", echo_url.rsplit(":", 1)[1]]
        processes += [_start(echo, echo_url, tmp / "echo.log")]
        for family in families:
            bundle = build_bundle(diabetes_project(family, tmp / family), registry)
            record = pd.read_parquet(bundle.reference_path).head(1).to_dict("records")
            bodies[family] = json.dumps({"records": record}).encode()
            url = f"http://127.0.0.1:{_free_port()}"
            api = [sys.executable, "-m", "fearless.serving", "--bundle", str(bundle.path)]
            api += ["--port", url.rsplit(":", 1)[1], "--log-dir", str(tmp / "inference")]
            processes += [_start(api, url, tmp / f"{family}.log")]
            apis[family] = url
            scoring[family] = httpx.get(f"{url}/metadata").json()["scoring"]

        use_wrk = WRK.exists()
        generator = "wrk" if use_wrk else "raw asyncio HTTP/1.1 client (separate process)"

        def load(url: str, body: bytes, seconds: float) -> dict:
            args = (url, body, connections, seconds)
            return drive_wrk(*args, tmp) if use_wrk else drive(*args)

        targets = {"bare echo": echo_url, **apis}
        body_of = {"bare echo": next(iter(bodies.values())), **bodies}
        for name, url in targets.items():  # warm each up (first requests, caches)
            load(url, body_of[name], 2)
        # Alternate short rounds, so a change in the machine's other load hits all alike.
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, url in targets.items():
                runs[name].append(load(url, body_of[name], duration_s / rounds))
        rows = {name: _combine(found) for name, found in runs.items()}
        batches = {
            family: _mean_batch(httpx.get(f"{url}/metrics").text) for family, url in apis.items()
        }
    finally:
        for process in processes:
            _stop(process)
        shutil.rmtree(tmp, ignore_errors=True)

    bare = rows["bare echo"]["rps"]
    print(f"load generator: {generator}; {connections} connections, one record per request,")
    print(f"{duration_s:.0f} s per target in {rounds} alternating rounds")
    print(
        f"{'target':<21} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'ratio':>6} {'batch':>6}  scoring"
    )
    for name, row in rows.items():
        how = "" if name not in scoring else f"{scoring[name]['path']}: {scoring[name]['detail']}"
        batch = f"{batches[name]:.1f}" if name in batches else ""
        print(
            f"{name:<21} {row['rps']:>7.0f} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} "
            f"{row['errors']:>6} {row['rps'] / bare:>6.2f} {batch:>6}  {how}"
        )
    worst = min(families, key=lambda family: rows[family]["rps"])
    print(f"ratio: {rows[worst]['rps'] / bare:.2f} (lowest: {worst})")


def _mean_batch(metrics: str) -> float:
    """Records per predict call, from the model API's Prometheus histogram."""
    values = {}
    for line in metrics.splitlines():
        for key in ("fearless_predict_batch_records_sum", "fearless_predict_batch_records_count"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    count = values.get("fearless_predict_batch_records_count", 0.0)
    return values.get("fearless_predict_batch_records_sum", 0.0) / count if count else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per target")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per target")
    parser.add_argument(
        "--family",
        action="append",
        choices=list(FAMILIES),
        help="a model family to serve (repeat it; default: every installed one)",
    )
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        import uvicorn

        uvicorn.run(echo_app(), host="127.0.0.1", port=args.port, log_level="warning", workers=1)
    elif args.drive:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        stats = asyncio.run(_drive(args.drive, args.body.encode(), args.connections, args.duration))
        print(json.dumps(stats))
    else:
        families = installed_families(args.family or list(FAMILIES))
        bench(families, args.connections, args.duration, args.rounds)


if __name__ == "__main__":
    main()
