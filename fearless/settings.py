"""One typed settings object, read from `FEARLESS_*` environment variables.

Defaults run on one laptop with no cloud account: a local Prefect server, a process work pool
and local model API processes, all state under a project-local `.fearless/` folder.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fearless.ids import checked_id
from fearless.urls import reports_url_of, ui_url_of

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEARLESS_", extra="ignore")

    state_dir: Path = Field(default=PROJECT_ROOT / ".fearless", description="All local state.")
    backend: Literal["local", "aws"] = Field(
        default="local", description="local: processes and folders; aws: ECS, S3, ECR."
    )
    server_host: str = "127.0.0.1"
    server_port: int = Field(default=4200, ge=1, le=65535)
    public_url: str = Field(
        default="",
        description="The server's address as people reach it (a proxy's, a host name); report "
        "links start with it. Default: http://server_host:server_port.",
    )
    server_allowed_hosts: list[str] = Field(
        default=[],
        description="Host names the embedded server answers to besides localhost, 127.0.0.1, "
        "[::1], server_host and public_url's (a DNS name of this machine; *.example.com works).",
    )
    work_pool: str = Field(default="fearless-local", min_length=1)
    queue_concurrency: int = Field(default=1, ge=1, description="Runs at once in a release queue.")
    worker_query_s: float = Field(default=1.0, gt=0, description="How often the worker polls.")
    database: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="The embedded server's database: sqlite (a file), or postgres (a PostgreSQL "
        "Fearless runs from the state dir; for many releases at once).",
    )
    workers: int = Field(default=1, ge=1, le=64, description="Workers `server up` starts.")
    pool_concurrency: int | None = Field(
        default=None,
        ge=0,
        description="Flow runs the work pool runs at once (releases beyond it wait Scheduled in "
        "their queues); 0: no limit; unset: the pool's limit stays as it is.",
    )
    env_grace_s: int = Field(
        default=600, ge=0, description="Life of a test environment beyond its approval timeout."
    )
    health_timeout_s: float = Field(default=60.0, gt=0)
    trust_pickle: bool = Field(
        default=False,
        description="Also load joblib/pickle model files: they can run code, so only when you "
        "trust where they came from. .skops files never need it.",
    )
    allowed_signers: Path | None = Field(
        default=None,
        description="ssh-keygen allowed_signers file of the people who may approve. Set, every "
        "approval must be signed by a key it lists for that approver; unset, approvals are taken "
        "unsigned (and recorded so).",
    )
    notification_blocks: list[str] = Field(
        default=[],
        description="Prefect notification blocks alerts go through, as <block-type-slug>/<name> "
        '(e.g. ["slack-webhook/ml-team"]): drift, approval waiting, rollback, failed release. '
        "Empty: no alert is sent.",
    )

    @field_validator("notification_blocks")
    @classmethod
    def _block_refs(cls, value: list[str]) -> list[str]:
        bad = [ref for ref in value if ref.count("/") != 1 or "" in ref.split("/")]
        if bad:
            raise ValueError(
                f"FEARLESS_NOTIFICATION_BLOCKS: {', '.join(map(repr, bad))} is not "
                "<block-type-slug>/<block-name>, e.g. slack-webhook/ml-team"
            )
        return value

    aws_region: str = Field(default="us-east-1", description="Region of every AWS resource.")
    aws_endpoint_url: str | None = Field(
        default=None, description="Send every AWS call here (a moto server in tests)."
    )
    aws_retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard",
        description="How every AWS client retries throttling and 5xx answers, with backoff "
        "(botocore's retry modes; adaptive also slows its own calls down).",
    )
    aws_max_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts of one AWS call, the first included."
    )
    aws_cluster: str = Field(default="", description="ECS cluster the test environments run in.")
    aws_subnets: list[str] = Field(default=[], description="Private subnets of the services.")
    aws_security_groups: list[str] = Field(default=[], description="Security groups of services.")
    aws_ecr_repository: str = Field(
        default="", description="ECR repository URI; a bundle's image is tagged by short digest."
    )
    aws_bucket: str = Field(default="", description="S3 bucket of the registry and artifacts.")
    aws_registry_prefix: str = Field(default="registry", description="Registry key prefix.")
    aws_reports_prefix: str = Field(
        default="reports", description="Key prefix of the reports (evidence, Locust, Evidently)."
    )
    report_link_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Life of a presigned report link on AWS (S3 allows at most 7 days).",
    )
    aws_namespace_id: str = Field(
        default="", description="Cloud Map private DNS namespace the environments register in."
    )
    aws_execution_role_arn: str = Field(default="", description="Role ECS pulls images with.")
    aws_task_role_arn: str = Field(default="", description="Role the model API runs as.")
    aws_log_group: str = Field(default="/fearless/environments", description="Model API logs.")
    aws_creator: str = Field(
        default="fearless", description="Value of the fearless:creator tag on what we create."
    )
    aws_vpc_id: str = Field(default="", description="VPC of the subnets (flow-run tasks need it).")
    aws_flow_image: str = Field(
        default="", description="Image of flow-run tasks in the ECS work pool (default: Prefect's)."
    )
    aws_flow_task_role_arn: str = Field(
        default="", description="Role flow-run tasks run as (the worker module's role)."
    )
    aws_flow_security_groups: list[str] = Field(
        default=[], description="Security groups of flow-run tasks (may reach model APIs on 8080)."
    )
    aws_prefect_auth_secret_arn: str = Field(
        default="",
        description="Secret flow-run tasks get PREFECT_API_AUTH_STRING from (ECS secret).",
    )
    aws_flow_project_dir: str = Field(
        default="/opt/fearless", description="Where the flow image holds this project."
    )
    aws_inference_prefix: str = Field(
        default="inference", description="S3 key prefix of the model APIs' inference logs."
    )
    aws_loadgen_task_definition: str = Field(
        default="",
        description="Task definition (family) of the load generator's ECS tasks; empty: "
        "Locust runs in the flow-run task.",
    )
    aws_loadgen_max_workers: int = Field(
        default=20, ge=1, description="Most Locust worker tasks one load test starts on ECS."
    )
    aws_production_min_tasks: int = Field(
        default=2, ge=1, description="Fewest tasks of a production service (production_min_tasks)."
    )
    aws_production_max_tasks: int = Field(
        default=10, ge=1, description="Most tasks of a production service (production_max_tasks)."
    )
    aws_production_target_cpu_percent: float = Field(
        default=60.0,
        gt=0,
        le=100,
        description="Average CPU production services scale to (production_target_cpu_percent).",
    )
    inference_log_s3: str = Field(
        default="",
        description="s3://bucket/prefix a model API ships its inference log to; empty: keep local.",
    )
    run_id: str = Field(default="", description="Release a model API serves; tags what it ships.")

    @model_validator(mode="after")
    def _aws_complete(self) -> Settings:
        required = (
            "aws_cluster",
            "aws_subnets",
            "aws_security_groups",
            "aws_ecr_repository",
            "aws_bucket",
            "aws_namespace_id",
            "aws_execution_role_arn",
            "aws_task_role_arn",
        )
        missing = [f"FEARLESS_{n.upper()}" for n in required if not getattr(self, n)]
        if self.backend == "aws" and missing:
            raise ValueError(f"backend 'aws' needs {', '.join(missing)} (see infra/README.md)")
        return self

    @model_validator(mode="after")
    def _production_scaling(self) -> Settings:
        if self.aws_production_min_tasks > self.aws_production_max_tasks:
            raise ValueError(
                f"FEARLESS_AWS_PRODUCTION_MIN_TASKS ({self.aws_production_min_tasks}) is more "
                f"than FEARLESS_AWS_PRODUCTION_MAX_TASKS ({self.aws_production_max_tasks})"
            )
        return self

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("allowed_signers", mode="before")
    @classmethod
    def _absolute_or_none(cls, value):
        return Path(value).expanduser().resolve() if value not in (None, "") else None

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    @property
    def ui_url(self) -> str:
        return ui_url_of(self.server_host, self.server_port)

    @property
    def reports_url(self) -> str:
        """Where the server serves the run folders' reports, as people reach it."""
        return reports_url_of(self.public_url, self.server_host, self.server_port)

    @cached_property
    def paths(self) -> StatePaths:
        return StatePaths(self.state_dir)


class StatePaths:
    """Where each kind of local state lives under the state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefect_home = root / "prefect"
        self.registry = root / "registry"
        self.runs = root / "runs"
        self.environments = root / "environments"
        self.production = root / "production"
        self.inference_logs = root / "inference"
        self.processes = root / "processes"
        self.loadgen = root / "loadgen"  # this host's Locust cost per request (sizing)

    def run_dir(self, release_id: str) -> Path:
        return self.runs / checked_id(release_id, "release id")


def get_settings() -> Settings:
    return Settings()
