"""`fearless doctor --aws`: a smoke test of a real account, run once after `terraform apply`.

Each check drives the code a release runs (the ECS environments, the inference-log sync, the
janitor's sweep, the production service) and prints one line; what it creates is removed, and
its test environment expires within the hour if a crash leaves it. Cloud Map names and the
internal ALB answer only inside the VPC: run it where flow runs run (infra/README.md).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

from fearless.aws import tag_dict
from fearless.bundles.bundle import Bundle
from fearless.environments import Environment
from fearless.environments.ecs.backend import EcsEnvironments
from fearless.environments.janitor import sweep

# Environment variables whose value is a credential: never to be seen in DescribeTasks.
CREDENTIALS = ("PREFECT_API_AUTH_STRING", "PREFECT_API_KEY", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # "ok", "FAIL" or "skip"
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


class Skip(Exception):
    """A check that does not apply to this account (the message says why)."""


@dataclass
class AwsDoctor:
    """The checks, over the backends `build_services` makes from the settings.

    `start_flow_run` starts a flow run on the ECS work pool, waits for its end and returns its
    id; `reach` maps a URL to where this process reaches it (the identity, inside the VPC);
    `secrets` are values that must appear in no DescribeTasks answer.
    """

    environments: EcsEnvironments
    production: object  # a ProductionService, or None when no model is served on ECS
    logs: object
    bundle: Bundle
    start_flow_run: Callable[[], str]
    flow_log_group: str
    reach: Callable[[str], str] = lambda url: url
    resolve: Callable[[str], str] = socket.gethostbyname
    secrets: tuple[str, ...] = ()
    ship_wait_s: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    release_id: str = field(default_factory=lambda: f"doctor-{datetime.now(UTC):%m%d%H%M%S}")
    _env: Environment | None = None
    _tasks: list[dict] = field(default_factory=list)

    def run(self, echo: Callable[[str], None]) -> list[CheckResult]:
        checks = [
            ("flow-run task starts with tags and logs", self.check_flow_run_task),
            ("test environment resolves in Cloud Map and /ready answers", self.check_environment),
            ("a prediction ships its log to S3 and syncs intact", self.check_prediction),
            ("no secret shows in DescribeTasks", self.check_no_secret),
            ("teardown and the janitor leave nothing", self.check_teardown),
            ("a promotion behind the ALB answers 200", self.check_promotion),
        ]
        results = []
        for name, check in checks:
            try:
                result = CheckResult(name, "ok", check())
            except Skip as exc:
                result = CheckResult(name, "skip", str(exc))
            except Exception as exc:  # noqa: BLE001 - a failure is its line, not the end
                result = CheckResult(name, "FAIL", f"{type(exc).__name__}: {exc}")
            results.append(result)
            echo(result.line())
        return results

    def check_flow_run_task(self) -> str:
        flow_run_id = self.start_flow_run()
        ecs, cluster = self.environments.ecs, self.environments.config.cluster
        for status in ("RUNNING", "STOPPED"):
            arns = ecs.list_tasks(cluster=cluster, desiredStatus=status)["taskArns"]
            for i in range(0, len(arns), 100):
                described = ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100])
                tasks = described["tasks"]
                for task in tasks:
                    tags = ecs.list_tags_for_resource(resourceArn=task["taskArn"])["tags"]
                    if flow_run_id in tag_dict(tags).values():
                        self._tasks.append(task)
                        return f"task {task['taskArn'].split('/')[-1]}, " + self._logs_of(task)
        raise RuntimeError(f"no ECS task in {cluster} is tagged with flow run {flow_run_id}")

    def _logs_of(self, task: dict) -> str:
        task_id = task["taskArn"].split("/")[-1]
        streams = self.logs.describe_log_streams(
            logGroupName=self.flow_log_group, orderBy="LastEventTime", descending=True
        )["logStreams"]
        found = [s["logStreamName"] for s in streams if s["logStreamName"].endswith(task_id)]
        if not found:
            raise RuntimeError(f"no log stream of task {task_id} in {self.flow_log_group}")
        return f"logs in {self.flow_log_group}:{found[0]}"

    def check_environment(self) -> str:
        expires = datetime.now(UTC) + timedelta(minutes=30)
        self._env = env = self.environments.provision(
            self.release_id, "candidate", self.bundle, expires
        )
        host = urlparse(env.url).hostname or ""
        address = self.resolve(host)
        import httpx

        answer = httpx.get(f"{self.reach(env.url)}/ready", timeout=10)
        if answer.status_code != 200:
            raise RuntimeError(f"{env.url}/ready answered {answer.status_code}")
        return f"{host} is {address}; /ready answered 200"

    def check_prediction(self) -> str:
        import httpx
        import pandas as pd

        env = self._require_env()
        reference = self.bundle.path / self.bundle.spec.reference_data
        columns = [c.name for c in self.bundle.spec.input_schema]
        records = pd.read_parquet(reference, columns=columns).head(3)
        body = json.loads(records.to_json(orient="records"))
        answer = httpx.post(f"{self.reach(env.url)}/predict", json={"records": body}, timeout=30)
        answer.raise_for_status()
        deadline = time.monotonic() + self.ship_wait_s
        while True:  # the model API ships every 30 s; the sync checks each chunk's checksum
            folder = self.environments.inference_log_dir(env) / env.model
            rows = sum(len(p.read_bytes().splitlines()) for p in folder.rglob("*.jsonl"))
            if rows >= len(body) or time.monotonic() > deadline:
                break
            self.sleep(5.0)
        if rows < len(body):
            raise RuntimeError(f"{rows} of {len(body)} predictions reached S3 within the wait")
        return f"{rows} records shipped to s3://{self.environments.config.bucket}, checksums match"

    def check_no_secret(self) -> str:
        ecs, cluster = self.environments.ecs, self.environments.config.cluster
        if self._env is not None and "service_arn" in self._env.handle:
            name = self._env.handle["service_arn"].split("/")[-1]
            arns = ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]
            if arns:
                self._tasks += ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        if not self._tasks:
            raise RuntimeError("no task to look at: the checks that start them failed")
        seen = json.dumps(self._tasks, default=str)
        leaked = [n for n in CREDENTIALS if f'"name": "{n}"' in seen]
        leaked += ["a secret value" for s in self.secrets if s and s in seen]
        if leaked:
            raise RuntimeError(f"DescribeTasks shows {', '.join(leaked)}")
        return f"{len(self._tasks)} task(s) described: no credential in their overrides or values"

    def check_teardown(self) -> str:
        removed = self.environments.teardown(self.release_id)
        left = self.environments.inventory.found(self.release_id)
        if left:
            raise RuntimeError(f"teardown left {[e.handle for e in left]}")
        later = datetime.now(UTC) + timedelta(days=1)
        swept = sweep(self.environments, dry_run=True, now=later)
        if any(e.release_id == self.release_id for e in swept):
            raise RuntimeError(f"the janitor still finds {self.release_id}")
        return f"removed {len(removed)} environment(s); the janitor finds nothing of them"

    def check_promotion(self) -> str:
        import httpx

        if self.production is None or self.production.current(self.bundle.name) is None:
            raise Skip(f"no production service of {self.bundle.name} on ECS")
        instance = self.production.start(self.bundle)
        self.production.switch(instance)
        answer = httpx.get(f"{self.reach(instance.url)}/ready", timeout=10)
        if answer.status_code != 200:
            raise RuntimeError(f"{instance.url}/ready answered {answer.status_code}")
        return f"{self.bundle.name} {self.bundle.short_digest} redeployed; {instance.url} 200"

    def _require_env(self) -> Environment:
        if self._env is None:
            raise RuntimeError("no test environment: its check failed")
        return self._env
