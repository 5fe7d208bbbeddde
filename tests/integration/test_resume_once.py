"""One crash, two cleanups at once (Prefect can fire an automation's action twice): the release
run is resumed once, and its resume count says one. Real server (the session's)."""

from __future__ import annotations

import threading
import time
from uuid import uuid4

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Crashed, Pending

from fearless.platform.queues import create_release_queue, delete_release_queue
from fearless.release import recovery
from fearless.release.recovery import RESUMED_TAG
from fearless.release.runs import close_release


@flow(name="resume-probe")
def probe(release_id: str) -> None:
    """Never run: its flow run only stands for a release whose process was lost."""


def test_two_cleanups_of_one_crash_resume_it_once(platform, monkeypatch):
    release_id = f"probe-{uuid4().hex[:8]}"
    real_check = recovery.broken_environments

    def slow_check(environments, release):  # widens the window two cleanups could share
        time.sleep(1.0)
        return real_check(environments, release)

    monkeypatch.setattr(recovery, "broken_environments", slow_check)
    pool = platform.settings.work_pool
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(
            probe, name=release_id, parameters={"release_id": release_id}, state=Pending()
        )
        create_release_queue(client, pool, release_id, concurrency_limit=1)
        try:
            client.set_flow_run_state(run.id, Crashed(message="its process was lost"), force=True)
            done: list[list[str]] = []
            start = threading.Barrier(2)

            def cleanup():
                start.wait()
                with get_client(sync_client=True) as own:
                    done.append(close_release(platform, own, run.id))

            threads = [threading.Thread(target=cleanup) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)

            assert sorted(map(bool, done)) == [False, True], done  # one resumed, one found it so
            after = client.read_flow_run(run.id)
            assert after.state.is_scheduled(), after.state
            assert f"{RESUMED_TAG}1" in after.tags and f"{RESUMED_TAG}2" not in after.tags
            history = client.read_flow_run_states(run.id)
            assert sum(s.is_scheduled() for s in history) == 1, [s.name for s in history]
        finally:
            delete_release_queue(client, pool, release_id)
            client.delete_flow_run(run.id)
