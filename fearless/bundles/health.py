"""The model API container's health check: it answers /ready, and it can write its inference log.

`python -m fearless.bundles.health [--log-dir DIR] [--tell PATH]` exits 0 when both hold and
1 otherwise, saying why on stderr. A model API that cannot write its inference log answers
every prediction 503 while /ready still says 200; failing the health check instead makes ECS
replace the task, and a deployment of it trips the circuit breaker. ECS keeps no output of a
health check, so a log dir problem is also appended to `--tell` (task definitions give
/proc/1/fd/2, the model API's own stderr, which reaches the task's log stream).

Standard library only, and nothing else of fearless imported: it runs every 10 s in the task,
within a 3 s timeout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

READY_URL = "http://127.0.0.1:8080/ready"


def log_dir_problem(log_dir: Path) -> str | None:
    """None when a file can be created (and removed) in `log_dir`; otherwise why not."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=log_dir, prefix=".health-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return (
            f"inference log dir {log_dir} is not writable by uid {os.getuid()}: "
            f"{exc.strerror or exc} (predictions would be refused)"
        )
    return None


def ready_problem(url: str = READY_URL, timeout_s: float = 2.0) -> str | None:
    """None when `url` answers 200; otherwise what it answered, or why it did not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        return f"{url} did not answer: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def check(log_dir: Path | None, url: str = READY_URL, tell: Path | None = None) -> str | None:
    """The first reason the container is unhealthy, or None; log dir problems also go to `tell`."""
    problem = log_dir_problem(log_dir) if log_dir is not None else None
    if problem is not None and tell is not None:
        try:
            with tell.open("a") as out:
                out.write(f"health check failed: {problem}\n")
        except OSError:
            pass  # telling is best effort; the exit status is what ECS acts on
    return problem or ready_problem(url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fearless.bundles.health")
    parser.add_argument("--log-dir", type=Path, help="the model API's --log-dir, if it has one")
    parser.add_argument("--url", default=READY_URL)
    parser.add_argument("--tell", type=Path, help="also append a log dir problem to this file")
    args = parser.parse_args(argv)
    problem = check(args.log_dir, args.url, args.tell)
    if problem is not None:
        sys.exit(f"unhealthy: {problem}")


if __name__ == "__main__":
    main()
