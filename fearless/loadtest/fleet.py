"""Where the load comes from: Locust on this machine, or a master and its workers.

`LoadGenerator` is all a pipeline step needs. `LocalLocust` is the runner as it always was
(one process, or `--processes` for every core). `LocustFleet` plans a distributed run: a
headless master that waits for N workers, and N workers that connect to it, all with the same
locustfile and environment (the master plays the LoadTestShape and gathers the figures).
`LocalFleet` starts that plan on this machine, which proves the master/worker protocol with
our locustfile; `fearless.loadtest.ecs_fleet` runs it as ECS tasks on the AWS backend.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fearless.loadtest.runner import LOCUSTFILE, LoadTestResult, run_load_test
from fearless.platform.processes import free_port
from fearless.spec import LoadProfile

MASTER_PORT = 5557  # Locust's default; workers also use port + 1 on older versions


class LoadGenerator(Protocol):
    def run(
        self, url: str, profile: LoadProfile, traffic_path: Path, out_dir: Path
    ) -> LoadTestResult:
        """Drive `url` with the traffic under the profile; raises LoadTestError if it cannot."""
        ...


@dataclass(frozen=True)
class LocalLocust:
    """Locust as a subprocess here; `processes` > 0 forks that many (-1: one per core)."""

    processes: int = 0

    def run(
        self, url: str, profile: LoadProfile, traffic_path: Path, out_dir: Path
    ) -> LoadTestResult:
        return run_load_test(url, profile, traffic_path, out_dir, processes=self.processes)


@dataclass(frozen=True)
class LocustFleet:
    """One master and `workers` workers; the master starts the test once all have connected."""

    workers: int
    master_host: str = "127.0.0.1"
    master_port: int = MASTER_PORT
    wait_for_workers_s: int = 60  # then the master gives up and fails the run
    locustfile: str = str(LOCUSTFILE)
    python: str = sys.executable

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"a Locust fleet needs at least one worker, not {self.workers}")
        if not 0 <= self.master_port <= 65535:
            raise ValueError(f"master port {self.master_port} is not a TCP port")

    def master_args(self) -> list[str]:
        """Added to the headless run's arguments (`--host`, reports) to make it the master."""
        return [
            "--master",
            "--master-bind-port", str(self.master_port),
            "--expect-workers", str(self.workers),
            "--expect-workers-max-wait", str(self.wait_for_workers_s),
        ]  # fmt: skip

    def worker_argv(self) -> list[str]:
        """A worker: same locustfile, no reports, load shape and stats left to the master."""
        return [
            self.python, "-m", "locust", "-f", self.locustfile, "--worker",
            "--master-host", self.master_host, "--master-port", str(self.master_port),
        ]  # fmt: skip

    def master_argv(self, url: str, report_prefix: str) -> list[str]:
        """The master's whole command, reports at `report_prefix` (.json, _stats.csv, .html)."""
        return [
            self.python, "-m", "locust", "-f", self.locustfile, "--headless", "--only-summary",
            "--host", url, "--json-file", report_prefix, "--csv", report_prefix,
            "--html", f"{report_prefix}.html", "--exit-code-on-error", "0", *self.master_args(),
        ]  # fmt: skip


@dataclass(frozen=True)
class LocalFleet:
    """A fleet on this machine: one shell starts the workers, then becomes the master, so
    every worker is the master's child (sampled with it, killed with its session)."""

    workers: int
    wait_for_workers_s: int = 30

    @property
    def cores(self) -> int:
        return self.workers

    def command(self, argv: list[str]) -> list[str]:
        plan = LocustFleet(self.workers, "127.0.0.1", free_port(), self.wait_for_workers_s)
        master = [*argv, *plan.master_args(), "--master-bind-host", "127.0.0.1"]
        workers = " ".join(f"{shlex.join(plan.worker_argv())} &" for _ in range(self.workers))
        return ["/bin/sh", "-c", f"{workers} exec {shlex.join(master)}"]

    def run(
        self, url: str, profile: LoadProfile, traffic_path: Path, out_dir: Path
    ) -> LoadTestResult:
        return run_load_test(url, profile, traffic_path, out_dir, launcher=self)
