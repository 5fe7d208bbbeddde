"""One work queue per release run, so experiments never wait on each other.

A release's queue is created before its pipeline run is submitted and removed when that run
reaches a final state (never earlier: a suspended run goes back to its queue on resume).
"""

from __future__ import annotations

from prefect.client.orchestration import SyncPrefectClient
from prefect.exceptions import ObjectNotFound


def queue_name_for(release_id: str) -> str:
    return f"release-{release_id}"


def create_release_queue(
    client: SyncPrefectClient, pool: str, release_id: str, concurrency_limit: int
) -> str:
    name = queue_name_for(release_id)
    client.create_work_queue(
        name=name,
        work_pool_name=pool,
        concurrency_limit=concurrency_limit,
        description=f"Runs of release {release_id} only; removed when it ends.",
    )
    return name


def delete_release_queue(client: SyncPrefectClient, pool: str, release_id: str) -> bool:
    """Remove the release's queue; False if it was already gone."""
    try:
        queue = client.read_work_queue_by_name(name=queue_name_for(release_id), work_pool_name=pool)
        client.delete_work_queue_by_id(queue.id)
    except ObjectNotFound:
        return False
    return True
