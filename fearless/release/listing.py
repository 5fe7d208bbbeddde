"""Releases as the server has them, read through its REST API alone (`fearless status`,
`fearless pending`): a few calls, nothing from the worker's disk, no `import prefect`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

PIPELINE_FLOW = "release-pipeline"
_PIPELINE = {"flows": {"name": {"any_": [PIPELINE_FLOW]}}}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class ReleaseRun:
    """A release-pipeline flow run: its name is the release id. A plain dataclass: `fearless
    status` builds a few from the API's JSON, and defining a pydantic model costs more."""

    id: UUID
    name: str
    state_type: str | None = None
    state_name: str | None = None
    message: str | None = None
    since: datetime | None = None
    decide_by: datetime | None = None
    """When the approval gate times out, for a waiting release."""
    tags: list[str] = field(default_factory=list)
    pool: str | None = None
    queue: str | None = None

    def tagged(self, prefix: str) -> str | None:
        """The rest of the first tag starting with `prefix` (`waiting:`, `holds:`), if any."""
        return next((t.removeprefix(prefix) for t in self.tags if t.startswith(prefix)), None)

    @classmethod
    def from_api(cls, run: dict) -> ReleaseRun:
        state = run.get("state") or {}
        details = state.get("state_details") or {}
        return cls(
            id=UUID(run["id"]),
            name=run["name"],
            state_type=state.get("type"),
            state_name=state.get("name"),
            message=state.get("message") or None,
            since=_time(state.get("timestamp")),
            decide_by=_time(details.get("pause_timeout")),
            tags=run.get("tags") or [],
            pool=run.get("work_pool_name"),
            queue=run.get("work_queue_name"),
        )


def recent_releases(api, limit: int = 20) -> list[ReleaseRun]:
    """The latest releases, newest first (`api`: a `fearless.platform.rest.PrefectApi`)."""
    body = {**_PIPELINE, "sort": "START_TIME_DESC", "limit": limit}
    return [ReleaseRun.from_api(run) for run in api.query("flow_runs/filter", body)]


def waiting_releases(api) -> list[ReleaseRun]:
    """Releases paused at their approval gate, oldest first."""
    body = {
        **_PIPELINE,
        "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
        "sort": "EXPECTED_START_TIME_ASC",
    }
    return [ReleaseRun.from_api(run) for run in api.query("flow_runs/filter", body)]


def find_release(api, ref: str) -> ReleaseRun:
    """A release by id (its run name) or flow run id; a LookupError when no release has it."""
    try:
        by = {"id": {"any_": [str(UUID(ref))]}}
    except ValueError:
        by = {"name": {"any_": [ref]}}
    runs = api.query("flow_runs/filter", {**_PIPELINE, "flow_runs": by, "limit": 1})
    if not runs:
        raise LookupError(f"no release run named or numbered {ref!r}")
    return ReleaseRun.from_api(runs[0])
