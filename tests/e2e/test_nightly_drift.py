"""The nightly drift flow against the session's Prefect server: event, automation, alert."""

from __future__ import annotations

import json
import time

from tests.e2e.conftest import fearless_cli
from tests.integration.test_drift_nightly import put_in_production, serve_records


def wait_for(read, timeout_s: float = 180, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := read():
            return found
        time.sleep(poll_s)
    raise AssertionError(f"nothing after {timeout_s:g} s")


def test_drift_emits_the_event_and_the_automation_records_an_alert(
    platform, credit_project, tmp_path
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    from flows.nightly_drift import nightly_drift

    paths = platform.settings.paths
    moved = put_in_production(credit_project, platform.registry, "nightly-moved", tmp_path)
    put_in_production(credit_project, platform.registry, "nightly-silent", tmp_path)
    serve_records(paths.inference_logs, moved, 600, drifted=True)

    results = {r.model: r for r in nightly_drift(hours=24)}

    assert results["nightly-moved"].status == "drifted"
    assert results["nightly-silent"].status == "no-logs"

    def events(model):
        def read():
            with get_client(sync_client=True) as client:
                return client.read_events(  # the default limit (100) is over the server's 50
                    EventFilter(
                        event=EventNameFilter(name=["fearless.drift.detected"]),
                        resource=EventResourceFilter(id=[f"fearless.model.{model}"]),
                    ),
                    limit=50,
                ).events

        return read

    (event,) = wait_for(events("nightly-moved"))
    assert event.resource.name == "nightly-moved"
    scores = event.payload["scores"]
    assert next(c for c in scores["columns"] if c["column"] == "income")["drifted"]
    assert not events("nightly-silent")()  # no logs is reported, never announced as drift

    def alert_run():
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["drift-alert"]))
            )
        return [
            r
            for r in runs
            if r.parameters.get("model") == "nightly-moved" and r.state and r.state.is_final()
        ]

    (run,) = wait_for(alert_run)
    assert run.state.is_completed(), run.state
    alerts = (paths.root / "alerts" / "drift.jsonl").read_text().splitlines()
    alert = json.loads(alerts[-1])
    assert alert["model"] == "nightly-moved" and "income" in alert["message"]
    assert alert["scores"]["drifted_share"] > 0


def test_fearless_drift_prints_the_verdict_of_one_model(platform, credit_project, tmp_path):
    paths = platform.settings.paths
    moved = put_in_production(credit_project, platform.registry, "by-hand-moved", tmp_path)
    put_in_production(credit_project, platform.registry, "by-hand-silent", tmp_path)
    serve_records(paths.inference_logs, moved, 600, drifted=True)

    drifted = fearless_cli("drift", "by-hand-moved", "--since", "2h")
    silent = fearless_cli("drift", "by-hand-silent")
    unknown = fearless_cli("drift", "no-such-model")

    assert drifted.returncode == 1, drifted.stderr
    assert "by-hand-moved sha256:" in drifted.stdout and ": drifted (600 records)" in drifted.stdout
    assert "income" in drifted.stdout and "DRIFTED" in drifted.stdout
    assert "outside the reference range" in drifted.stdout and "report: " in drifted.stdout
    assert silent.returncode == 1 and "no-logs (0 records)" in silent.stdout
    assert "no inference logs for by-hand-silent" in silent.stdout
    assert unknown.returncode == 2 and "no production alias" in unknown.stderr
