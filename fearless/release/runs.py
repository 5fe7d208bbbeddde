"""Starting, following, deciding and finishing releases through the Prefect API.

Used by the CLI, the launcher flow and the pipeline's final-state hooks alike, so a release
started from the UI, a schedule or a terminal behaves the same.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel

from fearless.bundles.source import ProjectSource, pack_project
from fearless.release.outcomes import PAUSE_EXPIRED
from fearless.release.recovery import RESUME_GRACE_S
from fearless.settings import Settings
from fearless.spec import load_spec, spec_path_of, with_overrides

PIPELINE_FLOW = "release-pipeline"
PIPELINE_DEPLOYMENT = f"{PIPELINE_FLOW}/release-pipeline"


class ReleaseStarted(BaseModel):
    release_id: str
    flow_run_id: str
    queue: str
    url: str
    source: ProjectSource


def new_release_id(model: str) -> str:
    return f"{model}-{uuid4().hex[:8]}"


def start_release(
    settings: Settings,
    registry,
    model_path: str,
    *,
    overrides: dict[str, Any] | None = None,
    git_ref: str | None = None,
    started_by: str = "cli",
) -> ReleaseStarted:
    """Validate the spec, pack the project (checked against `git_ref` when given) into the
    registry, create the release's own queue and submit its pipeline run there, sized by the
    spec's resources where the pool sizes runs (ECS). The run builds that pack and nothing else.
    """
    from fearless.release.four_eyes import starting_user

    spec_file = spec_path_of(model_path)
    spec = with_overrides(load_spec(spec_file), overrides, source=f"{model_path} (overrides)")
    with tempfile.TemporaryDirectory(prefix="fearless-pack-") as tmp:
        files = [spec_file.name, str(spec.reference_data)]
        if spec.registered_model is None:  # else the build fetches it from MLflow
            files.append(str(spec.model))
        source, archive = pack_project(
            spec_file.parent, files, model=spec.name, git_ref=git_ref, packed_by=started_by,
            into=Path(tmp), user=starting_user(started_by),
        )  # fmt: skip
        registry.store_source(spec.name, source.digest, archive)
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from fearless.platform.queues import create_release_queue, delete_release_queue
    from fearless.platform.work_pools import job_variables_for

    release_id = new_release_id(spec.name)
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(settings.work_pool)
        job_variables = job_variables_for(pool.type, spec.resources)
        queue = create_release_queue(
            client, settings.work_pool, release_id, settings.queue_concurrency
        )
        try:
            flow_run = run_deployment(
                PIPELINE_DEPLOYMENT,
                parameters={
                    "source": source.model_dump(mode="json"),
                    "release_id": release_id,
                    "overrides": overrides or {},
                },
                work_queue_name=queue,
                job_variables=job_variables or None,
                timeout=0,
                as_subflow=False,
                flow_run_name=release_id,
                tags=[f"model:{spec.name}", f"release:{release_id}", f"started-by:{started_by}"],
                _sync=True,  # this library is synchronous even where an event loop runs
            )
        except BaseException:
            delete_release_queue(client, settings.work_pool, release_id)
            raise
    return ReleaseStarted(
        release_id=release_id,
        flow_run_id=str(flow_run.id),
        queue=queue,
        url=f"{settings.ui_url}/runs/flow-run/{flow_run.id}",
        source=source,
    )


def find_flow_run(client, ref: str):
    """A release's pipeline run, by flow run id or by release id (its run name): a run of the
    release-pipeline flow only, never another flow's run that happens to bear that name."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterName,
    )

    try:
        run_id = UUID(ref)
    except ValueError:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[PIPELINE_FLOW])),
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[ref])),
        )
        if not runs:
            raise LookupError(f"no release run named or numbered {ref!r}") from None
        return runs[0]
    run = client.read_flow_run(run_id)
    if client.read_flow(run.flow_id).name != PIPELINE_FLOW:
        raise LookupError(f"flow run {ref} is not a {PIPELINE_FLOW} run")
    return run


def follow(
    client,
    flow_run_id: UUID,
    emit: Callable[[str], None],
    poll_s: float = 0.5,
    stop_when_paused: bool = True,
    timeout_s: float | None = None,
    on_paused: Callable[[Any], None] | None = None,
):
    """Report each step's state as it changes until the run is final (or paused);
    `on_paused(run)` is called each time the run starts waiting (for approval)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    seen: dict[str, str] = {}
    crashed_at: float | None = None
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        run = client.read_flow_run(flow_run_id)
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        for task_run in sorted(tasks, key=lambda t: t.expected_start_time or t.created):
            label = task_run.state.name if task_run.state else "?"
            if seen.get(str(task_run.id)) != label:
                seen[str(task_run.id)] = label
                emit(f"  step {task_run.name:<32} {label}")
        label = f"{run.state.type.value}:{run.state.name}" if run.state else "?"
        if seen.get("flow") != label:
            seen["flow"] = label
            emit(
                f"run {run.name}: {run.state.name}"
                + (f" ({run.state.message})" if run.state.message else "")
            )
            if on_paused is not None and run.state and run.state.is_paused():
                on_paused(run)
        if run.state and run.state.is_crashed():
            # Its cleanup resumes a lost run: final only if that does not come.
            crashed_at = crashed_at or time.monotonic()
            if time.monotonic() - crashed_at > RESUME_GRACE_S:
                return run
        elif run.state and (run.state.is_final() or (stop_when_paused and run.state.is_paused())):
            return run
        else:
            crashed_at = None
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run.name} still {run.state.name} after {timeout_s} s")
        time.sleep(poll_s)


def decide(client, ref: str, *, approve: bool, approver: str, comment: str, key=None):
    """Give a waiting release the decision a person made (the same path as the UI form),
    signed with `key` (default: the user's SSH key) where its gate requires a signature."""
    from prefect.flow_runs import resume_flow_run

    from fearless.release.approval_gate import signed_input

    run = find_flow_run(client, ref)
    if not (run.state and run.state.is_paused()):
        state = run.state.name if run.state else "unknown"
        raise RuntimeError(f"release {run.name} is {state}, not waiting for approval")
    decision = {"approve": approve, "approver": approver, "comment": comment, "key": key}
    resume_flow_run(run.id, run_input=signed_input(client, run, **decision), _sync=True)
    return run


def finish_release(services, release_id: str) -> list[str]:
    """Remove everything a release created: its environments, then its work queue."""
    from prefect.client.orchestration import get_client

    from fearless.ids import checked_id
    from fearless.platform.queues import delete_release_queue

    release_id = checked_id(release_id, "release id")
    removed = [f"{e.role} environment {e.url}" for e in services.environments.teardown(release_id)]
    with get_client(sync_client=True) as client:
        if delete_release_queue(client, services.settings.work_pool, release_id):
            removed.append(f"work queue release-{release_id}")
    return removed


def close_release(services, client, flow_run_id: UUID) -> list[str]:
    """Finish a release whose run ended with no process of its own to run the hooks.

    That happens when an approval times out (the server fails the suspended run), when a
    waiting run is cancelled, or when its process was lost: then it is resumed instead, up to
    `recovery.MAX_RESUMES` times. A timeout counts as a rejection.
    """
    from prefect.states import Failed

    from fearless.release.approval import TIMEOUT_APPROVER, record_decision
    from fearless.release.recovery import resume_once

    run = client.read_flow_run(flow_run_id)
    release_id = run.parameters.get("release_id")
    if not release_id or not (run.state and run.state.is_final()):
        return []  # resumed meanwhile (a second cleanup of one crash), or not over: not ours
    if run.state.is_crashed():
        return resume_once(services, client, run.id)
    removed = finish_release(services, release_id)
    if run.state and run.state.is_failed() and run.state.message == PAUSE_EXPIRED:
        model = next(
            (t.removeprefix("model:") for t in run.tags if t.startswith("model:")), "unknown"
        )
        record_decision(
            services.settings.paths.registry,
            model,
            release_id,
            "",
            {"approve": False, "approver": TIMEOUT_APPROVER, "comment": "approval timed out"},
            {},
        )
        client.set_flow_run_state(
            run.id,
            Failed(
                name="TimedOut", message="approval timed out: rejected, test environment torn down"
            ),
            force=True,
        )
        removed.append("marked TimedOut")
    return removed
