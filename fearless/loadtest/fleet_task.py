"""What a load generator task on ECS runs: fetch the traffic, run Locust, ship the reports.

    python -m fearless.loadtest.fleet_task master --traffic s3://b/k --reports s3://b/p \\
        --report-prefix /tmp/locust/locust -- python -m locust ... --master ...
    python -m fearless.loadtest.fleet_task worker --traffic s3://b/k -- python -m locust ...

The traffic object is saved where the locustfile reads it (FEARLESS_TRAFFIC). The Locust
command after `--` is `LocustFleet.master_argv` or `worker_argv`, as `EcsFleetTasks` plans
it. Its output goes to stdout (the task's log stream) and, for the master, to
`<report-prefix>.log`; once Locust ends the master uploads every `<report-prefix>*` file
(`.json`, `_stats.csv`, `_failures.csv`, `.html`, `_latency.json`, `.log`) under `--reports`,
also when Locust failed, so its log can be read. Exits with Locust's exit code, or 2 with a
one-line reason when the traffic cannot be fetched or the reports cannot be uploaded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from fearless.aws.inference_logs import S3Location

TRAFFIC_VARIABLE = "FEARLESS_TRAFFIC"


class FleetTaskError(RuntimeError):
    """The task cannot do its part (no traffic, no upload): said in one line, exit code 2."""


def s3_client():
    """S3 as settings say (FEARLESS_AWS_*), in the task's region when none is set."""
    from fearless.aws import aws_client
    from fearless.settings import Settings

    region = os.environ.get("FEARLESS_AWS_REGION") or os.environ.get("AWS_REGION")
    return aws_client(Settings(**({"aws_region": region} if region else {})), "s3")


def fetch_traffic(s3, url: str, dest: Path) -> None:
    where = S3Location.parse(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3.download_file(where.bucket, where.prefix, str(dest))
    except Exception as exc:  # botocore's ClientError: 404, 403, ...
        raise FleetTaskError(f"cannot fetch the traffic {url}: {exc}") from exc


def upload_reports(s3, prefix: Path, url: str) -> list[str]:
    """Every file named `<prefix>*` to `url`, under its own name; the keys written."""
    where = S3Location.parse(url)
    keys = []
    for path in sorted(prefix.parent.glob(f"{prefix.name}*")):
        key = where.key(path.name)
        try:
            s3.upload_file(str(path), where.bucket, key)
        except Exception as exc:
            raise FleetTaskError(
                f"cannot upload {path} to s3://{where.bucket}/{key}: {exc}"
            ) from exc
        keys.append(key)
    return keys


def run_locust(argv: list[str], log_path: Path | None) -> int:
    """Run Locust to its end, its output on stdout and in `log_path`; its exit code."""
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(log_path or os.devnull, "wb") as log:
        for line in proc.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            log.write(line)
    return proc.wait()


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    split = args.index("--") if "--" in args else len(args)
    args, argv = args[:split], args[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="fleet_task",
        description=__doc__.splitlines()[0],
        usage="%(prog)s [options] -- LOCUST...",
    )
    parser.add_argument("role", choices=["master", "worker"])
    parser.add_argument("--traffic", required=True, help="s3://bucket/key of the JSONL traffic")
    parser.add_argument("--reports", help="s3://bucket/prefix the master uploads reports to")
    parser.add_argument("--report-prefix", type=Path, help="the master's local report prefix")
    options = parser.parse_args(args)
    if not argv:
        parser.error("give Locust's command after --")
    if options.role == "master" and not (options.reports and options.report_prefix):
        parser.error("the master needs --reports and --report-prefix")
    if not os.environ.get(TRAFFIC_VARIABLE):
        parser.error(f"set {TRAFFIC_VARIABLE} to where the locustfile reads the traffic")
    try:
        s3 = s3_client()
        fetch_traffic(s3, options.traffic, Path(os.environ[TRAFFIC_VARIABLE]))
        if options.role == "worker":
            return run_locust(argv, None)
        prefix = options.report_prefix
        code = run_locust(argv, prefix.with_suffix(".log"))
        upload_reports(s3, prefix, options.reports)
    except FleetTaskError as exc:
        print(f"fleet_task {options.role}: {exc}", file=sys.stderr, flush=True)
        return 2
    if code != 0:
        print(f"fleet_task master: locust failed (exit code {code})", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
