"""A release whose process was lost (its worker or host killed) is resumed, not lost.

A lost run ends Crashed: the engine says so when it can, the heartbeat automation
(`deployments/automations.yaml`, through `crash_if_lost`) when the process vanished silently,
and `fearless server up` at once for the runs of this host whose process is gone. The cleanup flow then puts the same
flow run back on its own queue; the next worker runs it from the top, and every finished step
returns its persisted result (see `tasks.run_scoped`). Test environments that did not survive
are removed first and provisioned again. After `MAX_RESUMES` the release is torn down and ends
`ProcessLost`, naming the command that starts it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

RESUMED_TAG = "resumed:"  # resumed:<n>, on the flow run: how often it was resumed
REPROVISION_TAG = "reprovision:"  # reprovision:<n>: its environments were made anew n times
MAX_RESUMES = 3
# How long a follower waits for a crashed run's cleanup to resume it before calling it final.
RESUME_GRACE_S = 180.0
RESUME_LOCK_WAIT_S = 300.0


def counted(tags: list[str], prefix: str) -> int:
    """The largest n of the `prefix<n>` tags (0 without one)."""
    return max((int(t[len(prefix) :]) for t in tags if t.startswith(prefix) and t[len(prefix) :].isdigit()), default=0)  # fmt: skip


def tagged(tags: list[str], prefix: str, n: int) -> list[str]:
    """`tags` with its `prefix<…>` tag replaced by `prefix<n>`."""
    return sorted({t for t in tags if not t.startswith(prefix)} | {f"{prefix}{n}"})


@dataclass(frozen=True)
class ResumePlan:
    resume: bool
    attempt: int  # the attempt this resume starts (1 for the first resume)
    message: str


def plan_resume(tags: list[str], crash_message: str | None, max_resumes: int = MAX_RESUMES):
    """Whether a crashed release run goes back to its queue, and what its state says."""
    attempt = counted(tags, RESUMED_TAG) + 1
    why = crash_message or "its process was lost"
    if attempt > max_resumes:
        return ResumePlan(
            False,
            attempt - 1,
            f"its process was lost {attempt - 1} times (last: {why}); torn down",
        )
    return ResumePlan(
        True,
        attempt,
        f"resumed after its process was lost ({why}): attempt {attempt} of {max_resumes}",
    )


def provision_generation() -> int:
    """How often this run's test environments were made anew (a cache key part of provision)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return counted(list(context.flow_run.tags), REPROVISION_TAG) if context else 0


def broken_environments(environments, release_id: str) -> list[str]:
    """The release's test environments that no longer answer (each described)."""
    mine = [env for env in environments.list() if env.release_id == release_id]
    return [down.describe() for env in mine if (down := environments.check(env)) is not None]


@contextmanager
def one_resume_at_a_time() -> Iterator[None]:
    """One crash may start two cleanups: Prefect publishes an automation's action before it
    commits the evaluation, and evaluates the event again when SQLite refuses that commit
    (`busy_retry`). Both read the run Crashed; without this lock both resumed it, and the
    second counted a crash that never happened (CI saw `resumed:2` after one host loss)."""
    from fearless.platform.slots import RESUME_LOCK, ensure_limit, leased_slot

    with leased_slot(ensure_limit(RESUME_LOCK, 1), timeout_s=RESUME_LOCK_WAIT_S):
        yield


def resume_once(services, client, flow_run_id) -> list[str]:
    """Resume the crashed run unless another cleanup did meanwhile; what was done."""
    with one_resume_at_a_time():
        run = client.read_flow_run(flow_run_id)  # as it is now, not as the cleanup began
        if run.state is None or not run.state.is_crashed():
            return []
        return resume_release(services, client, run)


def resume_release(services, client, run) -> list[str]:
    """Put a crashed release run back on its queue, or tear it down for good; what was done."""
    from prefect.states import Failed, Scheduled

    from fearless.platform.slots import release_lost_slot
    from fearless.release.runs import finish_release

    release_id = run.parameters["release_id"]
    plan = plan_resume(list(run.tags), run.state.message if run.state else None)
    tags = release_lost_slot(client, list(run.tags))  # the lost process can no longer give it
    crash_lost_steps(client, run.id)
    if plan.resume and not queue_exists(client, services.settings.work_pool, release_id):
        plan = ResumePlan(False, plan.attempt - 1, "its process was lost and its queue is gone")
    if not plan.resume:
        removed = finish_release(services, release_id)
        client.update_flow_run(run.id, tags=tags)
        model = run.parameters.get("source", {}).get("path", "PATH")
        client.set_flow_run_state(
            run.id,
            Failed(
                name="ProcessLost",
                message=f"{plan.message}. Start it again: fearless release {model}",
            ),
            force=True,
        )
        return [*removed, "ended ProcessLost"]
    done = []
    tags = tagged(tags, RESUMED_TAG, plan.attempt)
    broken = broken_environments(services.environments, release_id)
    if broken:
        torn = services.environments.teardown(release_id)
        done += [f"{e.role} environment {e.url} (did not survive)" for e in torn]
        tags = tagged(tags, REPROVISION_TAG, counted(tags, REPROVISION_TAG) + 1)
    client.update_flow_run(run.id, tags=tags)
    client.set_flow_run_state(run.id, Scheduled(message=plan.message), force=True)
    return [*done, plan.message]


def crash_if_lost(settings, client, run, silent_s: int) -> list[str]:
    """Its heartbeats were silent for `silent_s`: mark the run Crashed if its process is gone.

    Silence alone is no proof. A busy server evaluates its events late (SQLite locked for
    seconds on a 2-core host), and the heartbeat automation then fires for runs that are well:
    crashing one would resume it while its process still runs, two engines on one release.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    from fearless.platform.work_pools import kind_for

    # Only a running engine heartbeats. A run resumed meanwhile is Scheduled or Pending, and
    # still names its lost process until its next one starts: not lost again.
    if run.state is None or run.state.type != StateType.RUNNING:
        return []  # it ended, waits for its approver, or was resumed meanwhile
    pid = run.infrastructure_pid
    if pid and kind_for(settings).run_alive(settings, pid):
        return [f"no heartbeat for {silent_s} s, but its process ({pid}) runs: left running"]
    message = f"no heartbeat for {silent_s} s: its process was lost"
    client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    return [f"marked Crashed ({message})"]


def queue_exists(client, pool: str, release_id: str) -> bool:
    """A resumed run goes back to its queue: one removed meanwhile would strand it."""
    from prefect.exceptions import ObjectNotFound

    from fearless.platform.queues import queue_name_for

    try:
        client.read_work_queue_by_name(name=queue_name_for(release_id), work_pool_name=pool)
    except ObjectNotFound:
        return False
    return True


def crash_lost_steps(client, flow_run_id) -> None:
    """The steps the lost process was running say so (they would show Running for ever)."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    running = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.RUNNING]))
        ),
    )
    for step in running:
        client.set_task_run_state(step.id, Crashed(message="its process was lost"), force=True)
