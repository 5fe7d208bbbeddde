"""Helpers for driving whole releases against the session's real Prefect server and worker."""

from __future__ import annotations

import os
import subprocess
import sys
from uuid import UUID

import pytest

from tests.conftest import ROOT

# A short load test serves a few hundred records: few enough that an undrifted sample can
# cross the default 0.1 column threshold by chance, so the e2e runs use a wider one.
FAST = {
    "load": {"duration_s": 3, "rate": 40},
    "drift": {"column_threshold": 0.2},
    "bake": {"window_s": 2},
}


def print_run_logs(client, flow_run_id: UUID, last: int = 60) -> None:
    """The run's last log lines (its process's own output is not kept): for a failure."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    print(f"last {last} log lines of the run:")
    for line in logs[-last:]:
        print(f"  {line.timestamp:%H:%M:%S} {line.message[:300]}")


@pytest.fixture
def releases(platform):
    """Start releases and follow them; everything is torn down by the pipeline itself."""
    from prefect.client.orchestration import get_client

    from fearless.release.runs import follow, start_release

    class Releases:
        services = platform
        settings = platform.settings

        def start(self, path, overrides=FAST):
            return start_release(
                self.settings,
                self.services.registry,
                str(path),
                overrides=overrides,
                started_by="test",
            )

        def wait(self, started, paused_ok=True, timeout_s=240):
            with get_client(sync_client=True) as client:
                try:
                    return follow(
                        client,
                        UUID(started.flow_run_id),
                        print,
                        poll_s=0.5,
                        stop_when_paused=paused_ok,
                        timeout_s=timeout_s,
                    )
                except TimeoutError:
                    print_run_logs(client, UUID(started.flow_run_id))
                    raise

        def run(self, flow_run_id):
            with get_client(sync_client=True) as client:
                return client.read_flow_run(UUID(flow_run_id))

    return Releases()


def fearless_cli(*args: str) -> subprocess.CompletedProcess:
    """The `fearless` command exactly as a person runs it, against the test server."""
    return subprocess.run(
        [sys.executable, "-m", "fearless.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
        check=False,
    )
