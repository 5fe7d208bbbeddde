"""A Locust fleet as ECS tasks: the AWS backend's load generator.

`EcsFleetTasks` turns a `LocustFleet` plan into ECS RunTask requests; `EcsFleet` runs them for
one release: the traffic goes to S3, each task runs `fearless.loadtest.fleet_task` (which
fetches it, runs Locust and, on the master, uploads the reports), and the reports come back
to be read as the local runner reads them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from uuid import uuid4

from fearless.aws import TAG_PREFIX, tag_list
from fearless.aws.inference_logs import S3Location
from fearless.environments.ecs.config import LOADGEN_STARTED_BY
from fearless.loadtest.fleet import LocustFleet
from fearless.loadtest.runner import (
    LOG_TAIL_CHARS,
    LoadTestError,
    LoadTestResult,
    check_target,
    locust_env,
    read_stats,
    result_from_reports,
)
from fearless.spec import LoadProfile

log = logging.getLogger(__name__)

RUN_TASK_MAX = 10  # ECS starts at most 10 tasks per RunTask call
TASK_ENTRYPOINT = ("python", "-m", "fearless.loadtest.fleet_task")
MASTER_ROLE, WORKER_ROLE = "loadgen-master", "loadgen-worker"


@dataclass(frozen=True)
class EcsFleetTasks:
    """How the AWS backend starts a fleet: ECS RunTask requests for the master, then (once its
    private IP is known) the workers. The image holds this project (the flow image, at
    `project_dir`); each task runs `fearless.loadtest.fleet_task`, which fetches the traffic
    from S3 to `traffic_path` before Locust starts, and the master uploads its reports."""

    cluster: str
    task_definition: str
    subnets: list[str]
    security_groups: list[str]
    container: str = "locust"
    project_dir: str = "/opt/fearless"
    traffic_path: str = "/tmp/fearless/traffic.jsonl"
    report_prefix: str = "/tmp/locust/locust"
    tags: dict[str, str] = field(default_factory=dict)

    def _plan(self, fleet: LocustFleet, master_host: str = "127.0.0.1") -> LocustFleet:
        locustfile = f"{self.project_dir}/simulations/locustfile.py"
        return replace(fleet, master_host=master_host, locustfile=locustfile, python="python")

    def _env(self, load: LoadProfile) -> dict[str, str]:
        # The locustfile imports `simulations.*`: the project, wherever the task starts.
        return {**locust_env(load, Path(self.traffic_path)), "PYTHONPATH": self.project_dir}

    def _request(self, role: str, command: list[str], env: dict[str, str], count: int) -> dict:
        return {
            "cluster": self.cluster,
            "taskDefinition": self.task_definition,
            "launchType": "FARGATE",
            "count": count,
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": self.subnets,
                    "securityGroups": self.security_groups,
                    "assignPublicIp": "DISABLED",
                }
            },
            "overrides": {
                "containerOverrides": [
                    {
                        "name": self.container,
                        "command": command,
                        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
                    }
                ]
            },
            "tags": tag_list({**self.tags, f"{TAG_PREFIX}role": role}),
            "startedBy": LOADGEN_STARTED_BY,  # how a release's teardown finds those left
        }

    def master_request(
        self, fleet: LocustFleet, url: str, load: LoadProfile, traffic_url: str, reports_url: str
    ) -> dict:
        """The master: fetches `traffic_url`, runs Locust, uploads its reports to `reports_url`."""
        env = {**self._env(load), "FEARLESS_LATENCY_PATH": f"{self.report_prefix}_latency.json"}
        command = [
            *TASK_ENTRYPOINT, "master", "--traffic", traffic_url, "--reports", reports_url,
            "--report-prefix", self.report_prefix,
            "--", *self._plan(fleet).master_argv(url, self.report_prefix),
        ]  # fmt: skip
        return self._request(MASTER_ROLE, command, env, 1)

    def worker_requests(
        self, fleet: LocustFleet, master_ip: str, load: LoadProfile, traffic_url: str
    ) -> list[dict]:
        """One request per 10 workers (RunTask's limit), all pointing at the master."""
        command = [
            *TASK_ENTRYPOINT, "worker", "--traffic", traffic_url,
            "--", *self._plan(fleet, master_ip).worker_argv(),
        ]  # fmt: skip
        counts = [RUN_TASK_MAX] * (fleet.workers // RUN_TASK_MAX)
        counts += [fleet.workers % RUN_TASK_MAX] if fleet.workers % RUN_TASK_MAX else []
        return [self._request(WORKER_ROLE, command, self._env(load), n) for n in counts]


class FleetFailed(LoadTestError):
    """The fleet's master did not end well: it stopped before Locust ran, or Locust failed."""


class FleetTimedOut(LoadTestError):
    """The master did not start, or did not end, in time; every task was stopped."""


class ReportsMissing(LoadTestError):
    """The master ended well but its Locust results are not where it uploads them."""


@dataclass(frozen=True)
class FleetRun:
    """The tasks a fleet run started: its master first, then its workers (ARNs)."""

    cluster: str
    master: str
    workers: list[str]


def private_ip(task: dict) -> str | None:
    """A Fargate task's private IPv4 address (its network interface's), once it has one."""
    for attachment in task.get("attachments", []):
        for detail in attachment.get("details", []):
            if detail.get("name") == "privateIPv4Address" and detail.get("value"):
                return detail["value"]
    return None


def stopped_reason(task: dict, container: str) -> str | None:
    """Why a stopped task did not end well, or None when `container` exited with 0."""
    codes = [c.get("exitCode") for c in task.get("containers", []) if c.get("name") == container]
    reason = task.get("stoppedReason") or "no reason given"
    if not codes or codes[0] is None:
        return f"stopped before Locust ran: {reason}"
    return None if codes[0] == 0 else f"exited with code {codes[0]} ({reason})"


class EcsFleet:
    """A Locust master and its workers as ECS tasks (see `EcsFleetTasks`), for one release.

    `run` uploads the traffic to `s3://bucket/<prefix>/<release>/<run>/traffic.jsonl`, starts
    the master, waits for its private IP, starts the workers pointing at it, waits for the
    master to stop (at most the workers' wait, the profile's duration and `stop_margin_s`),
    fetches the reports the master uploaded (`.../reports/`) into `out_dir` and reads them as
    the local runner does. It stops every task it started, whatever happens; a worker keeps
    running after its master otherwise. `started` is told which tasks run once all are started.
    The master waits `plan.wait_for_workers_s` for its workers: on Fargate, give it the time a
    task takes to start (a minute or two) on top of the master's own start.

    The generator's CPU is not measured: these processes run on other machines. The result says
    0% busy and no host, so the verdict never calls the run inconclusive for its generator;
    size the workers so that they cannot be the bottleneck: `workers_for(profile, traffic)`
    sizes each run (composition passes this host's calibrated cost), else `plan.workers`.
    """

    def __init__(
        self,
        tasks: EcsFleetTasks,
        plan: LocustFleet,
        ecs,
        s3,
        bucket: str,
        release_id: str,
        *,
        prefix: str = "loadgen",
        poll_s: float = 5.0,
        start_timeout_s: float = 600.0,
        stop_margin_s: float = 120.0,
        started: Callable[[FleetRun], None] | None = None,
        workers_for: Callable[[LoadProfile, Path], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        tags = {**tasks.tags, f"{TAG_PREFIX}release-id": release_id}
        self.tasks, self.plan = replace(tasks, tags=tags), plan
        self.ecs, self.s3, self.bucket, self.release_id = ecs, s3, bucket, release_id
        self.prefix, self.poll_s, self.sleep = prefix.strip("/"), poll_s, sleep
        self.start_timeout_s, self.stop_margin_s = start_timeout_s, stop_margin_s
        self.started, self.workers_for = started, workers_for

    @property
    def cores(self) -> int:
        return self.plan.workers

    def run(
        self, url: str, profile: LoadProfile, traffic_path: Path, out_dir: Path
    ) -> LoadTestResult:
        url = url.rstrip("/")
        check_target(url)
        plan = self.plan
        if self.workers_for is not None:  # sized to the profile's rate
            plan = replace(plan, workers=self.workers_for(profile, traffic_path))
        out_dir.mkdir(parents=True, exist_ok=True)
        prefix = out_dir / "locust"
        for stale in (prefix.with_suffix(".json"), Path(f"{prefix}_latency.json")):
            stale.unlink(missing_ok=True)
        where = S3Location(self.bucket, "/".join([self.prefix, self.release_id, uuid4().hex[:12]]))
        traffic_url = f"s3://{self.bucket}/{where.key('traffic.jsonl')}"
        self.s3.upload_file(str(traffic_path), self.bucket, where.key("traffic.jsonl"))
        reports = S3Location(self.bucket, where.key("reports"))
        arns: list[str] = []
        begun = time.monotonic()
        try:
            master = self.tasks.master_request(plan, url, profile, traffic_url, reports.url)
            arns += self._start(master)
            ip = self._wait(arns[0], "RUNNING", self.start_timeout_s)
            for request in self.tasks.worker_requests(plan, ip, profile, traffic_url):
                arns += self._start(request)
            if self.started is not None:
                self.started(FleetRun(self.tasks.cluster, arns[0], arns[1:]))
            timeout = plan.wait_for_workers_s + profile.duration_s + self.stop_margin_s
            failure = self._wait(arns[0], "STOPPED", timeout)
            self._download(reports, out_dir)
        finally:
            self._stop(arns)
        if failure:
            raise FleetFailed(f"the load generator's master {failure}{_log_tail(prefix)}")
        if not prefix.with_suffix(".json").is_file():
            raise ReportsMissing(
                f"the load generator's master wrote no results to {reports.url}/locust.json"
                f"{_log_tail(prefix)}"
            )
        stats = read_stats(prefix)
        del stats["start_ts"], stats["end_ts"]
        result = result_from_reports(
            profile,
            stats,
            prefix,
            replay_speed=None,
            wall_s=time.monotonic() - begun,
            generator_cpu_pct=0.0,  # not measured (see the class): never "saturated"
            generator_cpu_max_pct=0.0,
            generator_cpu_wait_pct=0.0,
            generator_cores=plan.workers,
            host=None,
        )
        return result.model_copy(update={"generator_measured": False})

    def _start(self, request: dict) -> list[str]:
        answer = self.ecs.run_task(**request)
        arns = [t["taskArn"] for t in answer.get("tasks", [])]
        if answer.get("failures") or len(arns) < request["count"]:
            self._stop(arns)
            failures = answer.get("failures") or []
            reasons = "; ".join(f"{f.get('arn', '?')}: {f.get('reason')}" for f in failures)
            raise FleetFailed(f"ECS started {len(arns)} of {request['count']} tasks: {reasons}")
        return arns

    def _wait(self, arn: str, status: str, timeout_s: float) -> str | None:
        """Until the task is RUNNING with an IP (that IP) or STOPPED (why it failed, or None)."""
        deadline = time.monotonic() + timeout_s
        while True:
            task = self.ecs.describe_tasks(cluster=self.tasks.cluster, tasks=[arn])["tasks"][0]
            if task.get("lastStatus") == "STOPPED":
                why = stopped_reason(task, self.tasks.container)
                if status == "STOPPED":
                    return why
                raise FleetFailed(f"the load generator's master {why or 'ended before it ran'}")
            if status == "RUNNING" and task.get("lastStatus") == "RUNNING" and private_ip(task):
                return private_ip(task)
            if time.monotonic() >= deadline:
                what = "did not start" if status == "RUNNING" else "did not end"
                raise FleetTimedOut(
                    f"the load generator's master {arn} {what} within {timeout_s:.0f} s "
                    f"(last status {task.get('lastStatus')}); stopped all its tasks"
                )
            self.sleep(self.poll_s)

    def _download(self, reports: S3Location, out_dir: Path) -> None:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{reports.prefix}/")
        for item in listed.get("Contents", []):
            name = item["Key"].rsplit("/", 1)[-1]
            self.s3.download_file(self.bucket, item["Key"], str(out_dir / name))

    def _stop(self, arns: list[str]) -> None:
        for arn in arns:
            try:
                self.ecs.stop_task(
                    cluster=self.tasks.cluster, task=arn, reason="fearless: load test over"
                )
            except Exception as exc:  # noqa: BLE001 - the others must still be stopped
                log.warning("could not stop load generator task %s: %s", arn, exc)


def _log_tail(prefix: Path) -> str:
    log_path = prefix.with_suffix(".log")
    if not log_path.is_file():
        return ""
    return f"; its log {log_path}:\n{log_path.read_text(errors='replace')[-LOG_TAIL_CHARS:]}"
