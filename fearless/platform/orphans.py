"""Flow runs whose process died with their worker, found when a new worker starts.

A release run marked Crashed here is resumed by the cleanup automation
(`fearless.release.recovery`); any other run ends Crashed, as it did.
"""

from __future__ import annotations


def engine_alive(infrastructure_pid: str | None) -> bool:
    """Whether a process-pool flow run's process (`infrastructure_pid`) still runs Prefect."""
    import psutil

    try:
        cmdline = " ".join(psutil.Process(int(infrastructure_pid or "")).cmdline())
    except (ValueError, psutil.Error):
        return False
    return "prefect" in cmdline or "fearless.platform.flow_start" in cmdline


def ecs_task_alive(settings, infrastructure_pid: str | None) -> bool:
    """Whether an ECS-pool flow run's task (`cluster::task_arn`, as the ECS worker records it)
    has not stopped. An AWS error raises: a run is never called lost on a failed question."""
    from fearless.aws import aws_client

    cluster, _, task_arn = (infrastructure_pid or "").partition("::")
    if not task_arn:
        return False
    found = aws_client(settings, "ecs").describe_tasks(cluster=cluster, tasks=[task_arn])
    # A task whose container exited wants STOPPED at once; it reaches it a minute later.
    return any(
        "STOPPED" not in (task.get("lastStatus"), task.get("desiredStatus"))
        for task in found.get("tasks", [])
    )


def crash_orphaned_runs(client, work_pool: str) -> list[str]:
    """Mark Crashed the flow runs of this host's process pool whose process is gone.

    Called when a worker starts where none ran: the previous one was killed, and the runs it
    had started may have died with it. Without this, such a run is noticed only when its
    heartbeats have been silent long enough (the automation), which takes minutes.
    """
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
            )
        ),
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool])),
    )
    crashed = []
    for run in runs:
        if run.infrastructure_pid and not engine_alive(run.infrastructure_pid):
            message = f"its process (pid {run.infrastructure_pid}) is gone: its worker was lost"
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            crashed.append(run.name)
    return crashed
