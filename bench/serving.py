"""The model API's throughput against a bare FastAPI echo app, under the same load.

Trains the example model and builds its bundle in a scratch dir, starts the model API on it
(inference logging on) and a bare FastAPI app echoing its JSON body, then drives each in turn
with the same load generator (wrk when /usr/bin/wrk exists, else a raw asyncio HTTP/1.1
keep-alive client in a process of its own) with the same connections and one-record bodies,
in alternating rounds. Prints a table; the last line is `ratio: X` (model API req/s / bare).

    python bench/serving.py [--connections 16] [--duration 10] [--rounds 5]
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


def bench(connections: int, duration_s: float, rounds: int) -> None:
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from fearless.bundles.bundle import build_bundle
    from fearless.registry.local import LocalRegistry

    tmp = Path(tempfile.mkdtemp(prefix="fearless-bench-serving-"))
    processes: list[subprocess.Popen] = []
    try:
        project = tmp / "credit"
        train = [sys.executable, str(ROOT / "examples/credit/train.py"), "--out", str(project)]
        subprocess.run(train, check=True, capture_output=True, cwd=ROOT)
        bundle = build_bundle(project, LocalRegistry(tmp / "registry"))
        record = pd.read_parquet(project / "reference.parquet").head(1).to_dict("records")
        body = json.dumps({"records": record}).encode()

        api_url, echo_url = f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
        api = [sys.executable, "-m", "fearless.serving", "--bundle", str(bundle.path)]
        api += ["--port", api_url.rsplit(":", 1)[1], "--log-dir", str(tmp / "inference")]
        echo = [sys.executable, __file__, "--echo", "--port", echo_url.rsplit(":", 1)[1]]
        processes += [_start(api, api_url, tmp / "api.log")]
        processes += [_start(echo, echo_url, tmp / "echo.log")]
        scoring = httpx.get(f"{api_url}/metadata").json()["scoring"]

        use_wrk = WRK.exists()
        generator = "wrk" if use_wrk else "raw asyncio HTTP/1.1 client (separate process)"

        def load(url: str, seconds: float) -> dict:
            args = (url, body, connections, seconds)
            return drive_wrk(*args, tmp) if use_wrk else drive(*args)

        for url in (api_url, echo_url):  # warm both up (first requests, JIT-free but caches)
            load(url, 2)
        # Alternate short rounds, so a change in the machine's other load hits both alike.
        targets = {"model API": api_url, "bare echo": echo_url}
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, url in targets.items():
                runs[name].append(load(url, duration_s / rounds))
        rows = {name: _combine(found) for name, found in runs.items()}
        logged = sum(1 for f in (tmp / "inference").rglob("*.jsonl") for _ in f.open())
    finally:
        for process in processes:
            _stop(process)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"load generator: {generator}; {connections} connections, {duration_s:.0f} s each")
    print(f"in {rounds} alternating rounds; model API scores with {scoring['path']}")
    print(f"{'target':<10} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in rows.items():
        print(
            f"{name:<10} {row['requests']:>9} {row['errors']:>7} {row['rps']:>9.0f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
        )
    print(f"inference log rows written: {logged}")
    p99 = {name: f"{row['p99_ms']:.2f}" for name, row in rows.items()}
    print(f"p99_ms: model API {p99['model API']}, bare {p99['bare echo']}")
    print(f"ratio: {rows['model API']['rps'] / rows['bare echo']['rps']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per target")
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
        bench(args.connections, args.duration, args.rounds)


if __name__ == "__main__":
    main()
