"""How close Fearless's load generator gets to wrk against the real target, the model API.

Trains the example credit model into a scratch folder, serves it with `python -m
fearless.serving`, and drives it with the same traffic, connections and duration first with
wrk (Debian's package), then with Fearless's runner (Locust, `--processes` if asked). Prints a
table with each tool's throughput, latency and generator CPU, then `ratio: X` (Fearless req/s
divided by wrk req/s, both as fast as answered; the goal is >= 0.9). Then both at one fixed
rate (`--rate`; wrk paced by a per-request delay, Fearless in the open model), for their p50
and p99: wrk's in microseconds, Fearless's to a tenth of a millisecond.

    python bench/loadgen.py [--connections 8] [--duration 10] [--processes 0] [--rounds 2]
                            [--rate 500] [--max-batch N]

The `recs/call` column is the records the model API scored per predict call in that run, and
`api µs/req` the model API's CPU time per request answered. Its micro-batching scores
requests that arrive together in one call, so its cost per request depends on how bunched
the arrivals are: wrk's connections answer in lock step and send together. Where the API is
the bottleneck (its CPU near 100% and the generator's well under), the ratio is the API's cost
per request under each tool's arrivals, not the generators'. `--max-batch 1` turns the
batching off, so both tools meet the same cost per request and the ratio measures the
generators alone.

Run it on a quiet machine: both generators share the cores with the API they measure.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"
RECORDS = 2000
# Each wrk thread cycles through the same request bodies Locust sends, one per line.
WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/predict", nil, bodies[i])
end
"""
# At a fixed rate: each connection waits this many ms before each request.
WRK_DELAY = """
delay = function() return %f end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Sampler(threading.Thread):
    """Mean CPU (used, waited for) of a process tree while it runs, in % of one core."""

    def __init__(self, pid: int) -> None:
        from fearless.loadtest.generator import GeneratorSampler

        super().__init__(daemon=True)
        self.sampler, self.samples, self.stop = GeneratorSampler(pid), [], threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.samples.append(self.sampler.sample())

    def mean(self, busy_over: float = 0.0) -> tuple[float, float]:
        """Means over the samples (the first and last, start-up and exit, left out); with
        `busy_over`, only over samples using more CPU than that (the API while under load)."""
        self.stop.set()
        self.join()
        rows = [r for r in self.samples[1:-1] if r[0] > busy_over] or [(0.0, 0.0)]
        return sum(r[0] for r in rows) / len(rows), sum(r[1] for r in rows) / len(rows)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    url: str,
    bodies: Path,
    connections: int,
    duration: int,
    threads: int,
    api: int,
    rate: float | None = None,
) -> dict:
    script = bodies.with_suffix(".lua")
    pacing = WRK_DELAY % (connections / rate * 1000) if rate else ""
    script.write_text(WRK_SCRIPT % bodies + pacing)
    argv = [WRK, "-t", str(min(threads, connections)), "-c", str(connections)]
    argv += ["-d", f"{duration}s", "--latency", "-s", str(script), url]
    api_cpu = _Sampler(api)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    sampler = _Sampler(proc.pid)
    out, _ = proc.communicate()
    cpu, wait = sampler.mean()
    if proc.returncode != 0:
        sys.exit(f"wrk failed:\n{out}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "errors": int(errors[1]) if errors else 0,
        "cpu": cpu,
        "wait": wait,
        "cores": 1,
        "api_cpu": api_cpu.mean(busy_over=10.0)[0],
    }


def run_fearless(
    url: str,
    traffic: Path,
    connections: int,
    duration: int,
    processes: int,
    api: int,
    out: Path,
    rate: float | None = None,
) -> dict:
    from fearless.loadtest.runner import run_load_test
    from fearless.spec import LoadProfile

    if rate:
        load = LoadProfile(rate=rate, users=connections, duration_s=duration)
    else:
        load = LoadProfile(mode="closed", users=connections, duration_s=duration,
                           spawn_rate=min(10_000, connections * 100))  # fmt: skip
    api_cpu = _Sampler(api)
    r = run_load_test(url, load, traffic, out, processes=processes)
    return {
        "rps": r.rps,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "errors": r.failures,
        "cpu": r.generator_cpu_pct * r.generator_cores,
        "wait": r.generator_cpu_wait_pct * r.generator_cores,
        "cores": r.generator_cores,
        "api_cpu": api_cpu.mean(busy_over=10.0)[0],
    }


def _serve(project: Path, log: Path, max_batch: int | None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    argv = [sys.executable, "-m", "fearless.serving", "--spec", str(project / "fearless.yaml")]
    argv += ["--max-batch", str(max_batch)] if max_batch else []
    with log.open("wb") as out:  # wrk drops connections mid-request at its end: noisy, harmless
        proc = subprocess.Popen([*argv, "--port", str(port)], cwd=ROOT, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the model API exited before it was ready")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("the model API never became ready")


def _batching(url: str) -> tuple[float, float]:
    """(records scored, predict calls) so far, from the model API's metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = [re.search(rf"^fearless_predict_batch_records_{k} (\S+)$", text, re.MULTILINE)
             for k in ("sum", "count")]  # fmt: skip
    return float(found[0][1]), float(found[1][1])


def _measured(url: str, run, *args) -> dict:
    """`run(url, *args)`'s figures, with the records per predict call the API scored then."""
    before = _batching(url)
    result = run(url, *args)
    records, calls = (after - then for after, then in zip(_batching(url), before, strict=True))
    return {**result, "records_per_call": records / calls if calls else 0.0}


def _traffic(project: Path, into: Path) -> tuple[Path, Path]:
    """The same records for both tools: JSONL for Fearless, one request body a line for wrk."""
    from fearless.bundles.bundle import read_reference
    from fearless.loadtest.traffic import synthesize_traffic, write_traffic
    from fearless.spec import load_spec

    spec = load_spec(project / "fearless.yaml")
    records = synthesize_traffic(
        read_reference(spec, project / spec.reference_data), spec, RECORDS, 0
    )
    bodies = into / "bodies.txt"
    bodies.write_text("".join(json.dumps({"records": [r]}) + "\n" for r in records))
    return write_traffic(records, into / "traffic.jsonl"), bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--processes", type=int, default=0, help="Locust workers (0: one process)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each tool")
    parser.add_argument("--rate", type=float, default=500, help="req/s of the fixed-rate runs")
    parser.add_argument(
        "--max-batch", type=int, help="the model API's records per predict call (1: no batching)"
    )
    args = parser.parse_args()
    if not Path(WRK).is_file():
        sys.exit("wrk is not installed (/usr/bin/wrk). Install it with: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="fearless-loadgen-") as tmp:
        scratch = Path(tmp)
        project = scratch / "credit"
        train = [
            sys.executable,
            str(ROOT / "examples" / "credit" / "train.py"),
            "--out",
            str(project),
        ]
        subprocess.run(train, check=True, capture_output=True)
        traffic, bodies = _traffic(project, scratch)
        api, url = _serve(project, scratch / "api.log", args.max_batch)
        try:
            run_wrk(url, bodies, args.connections, 2, args.threads, api.pid)  # warm-up
            rows: list[tuple[str, dict]] = []
            for round_ in range(args.rounds):
                # Alternate who goes first, so a machine that gets busier or quieter over the
                # run does not favour one tool.
                order = ["wrk", "fearless"] if round_ % 2 == 0 else ["fearless", "wrk"]
                for tool in order:
                    if tool == "wrk":
                        r = _measured(url, run_wrk, bodies, args.connections, args.duration,
                                      args.threads, api.pid)  # fmt: skip
                    else:
                        r = _measured(url, run_fearless, traffic, args.connections,
                                      args.duration, args.processes, api.pid,
                                      scratch / f"locust-{round_}")  # fmt: skip
                    rows.append((tool, r))
            paced = [
                ("wrk", run_wrk(url, bodies, args.connections, args.duration, args.threads,
                                api.pid, rate=args.rate)),
                ("fearless", run_fearless(url, traffic, args.connections, args.duration, 0,
                                          api.pid, scratch / "locust-rate", rate=args.rate)),
            ]  # fmt: skip
        finally:
            api.terminate()
            api.wait(timeout=10)

    batching = f"at most {args.max_batch} a call" if args.max_batch else "micro-batched"
    print(f"\n{args.connections} connections, {args.duration} s, POST /predict (1 record, "
          f"{batching}), {psutil.cpu_count()} cores; CPU in % of one core")  # fmt: skip
    print(f"| {'tool':<9}| {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'errors':>6} "
          f"| {'gen cpu':>7} | {'gen wait':>8} | {'procs':>5} | {'api cpu':>7} "
          f"| {'recs/call':>9} | {'api µs/req':>10} |")  # fmt: skip
    print("|" + "|".join("-" * w for w in (10, 10, 9, 9, 8, 9, 10, 7, 9, 11, 12)) + "|")
    for tool, r in rows:
        api_us = r["api_cpu"] / 100 / r["rps"] * 1e6 if r["rps"] else 0.0
        print(f"| {tool:<9}| {r['rps']:8.0f} | {r['p50_ms']:7.2f} | {r['p99_ms']:7.2f} "
              f"| {r['errors']:6d} | {r['cpu']:6.0f}% | {r['wait']:7.0f}% | {r['cores']:5d} "
              f"| {r['api_cpu']:6.0f}% | {r['records_per_call']:9.2f} | {api_us:10.1f} |")  # fmt: skip
    print(f"\nat a fixed rate of {args.rate:g} req/s, {args.connections} connections:")
    print(f"| {'tool':<9}| {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'gen cpu':>7} |")
    print("|" + "|".join("-" * w for w in (10, 10, 9, 9, 9)) + "|")
    for tool, r in paced:
        print(f"| {tool:<9}| {r['rps']:8.0f} | {r['p50_ms']:7.2f} | {r['p99_ms']:7.2f} "
              f"| {r['cpu']:6.0f}% |")  # fmt: skip
    mean = {t: sum(r["rps"] for n, r in rows if n == t) / args.rounds for t in ("wrk", "fearless")}
    print(f"\nmean req/s over {args.rounds} rounds: wrk {mean['wrk']:.0f}, "
          f"fearless {mean['fearless']:.0f}")  # fmt: skip
    print(f"ratio: {mean['fearless'] / mean['wrk']:.2f}")


if __name__ == "__main__":
    main()
