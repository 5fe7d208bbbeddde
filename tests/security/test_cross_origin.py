"""A web page on another origin cannot drive the embedded Prefect server: it may neither read a
CSRF token (CORS allows only the server's own UI) nor change anything without one (CSRF on).

Prefect 3.8 defaults to CORS `*` and CSRF off: a page the developer opened could resume a
suspended release with `approve: true`, or create a deployment whose pull step runs a command.
These use the session's shared server (the `platform` fixture).
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def api(platform) -> str:
    from fearless.settings import get_settings

    return get_settings().api_url


def _as_a_page_would_send(api: str, path: str, body: dict) -> httpx.Response:
    """A JSON POST from a page on another origin, as its browser sends it once the preflight
    passes (with CORS `*` every preflight did): no CSRF token, which such a page cannot read."""
    headers = {"Origin": EVIL, "Content-Type": "application/json"}
    return httpx.post(f"{api}{path}", content=json.dumps(body), headers=headers, timeout=10)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/flow_runs/{uuid.uuid4()}/resume", {"run_input": {"approve": True, "approver": "x"}}),
        ("/deployments/", {"name": "pwn", "flow_id": str(uuid.uuid4()), "pull_steps": []}),
        ("/flows/", {"name": "cross-origin-probe"}),
    ],
    ids=["resume", "create-deployment", "create-flow"],
)
def test_a_change_without_a_csrf_token_is_refused(api, path, body):
    answer = _as_a_page_would_send(api, path, body)
    assert answer.status_code == 403 and "CSRF" in answer.text, answer.text


def test_another_origin_cannot_read_a_csrf_token(api):
    answer = httpx.get(f"{api}/csrf-token", params={"client": "evil"}, headers={"Origin": EVIL})
    assert answer.status_code == 200  # minted, but the browser keeps it from the page:
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_preflight_from_another_origin_is_refused(api, method):
    answer = httpx.options(
        f"{api}/flow_runs/{uuid.uuid4()}/resume",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,prefect-csrf-token",
        },
    )
    assert answer.status_code == 400
    assert answer.headers.get("access-control-allow-origin") != "*"


def test_the_servers_own_ui_is_still_allowed(api):
    from fearless.settings import get_settings

    origin = get_settings().ui_url
    preflight = httpx.options(
        f"{api}/flows/",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    ui = httpx.get(api.removesuffix("/api") + "/ui-settings").json()
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert ui["csrf_enabled"] is True


def test_prefects_client_fetches_a_token_and_still_writes(api):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("csrf-client-probe")
        assert client.read_flow(flow_id).name == "csrf-client-probe"


def test_an_approval_through_prefects_client_still_resumes_a_paused_run(api):
    """`fearless approve` resumes through Prefect's client (`decide` calls resume_flow_run, as
    here; it looks up release-pipeline runs only): the client gets a CSRF token itself."""
    import threading

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.flow_runs import pause_flow_run, resume_flow_run
    from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    from fearless.release.approval import ApprovalDecision

    received = []

    @flow(name="csrf-approval-probe")
    def waits_for_a_decision():
        received.append(pause_flow_run(wait_for_input=ApprovalDecision, timeout=120))

    def run_without_api_logs():  # none left to ship after the session's server stops
        with temporary_settings({PREFECT_LOGGING_TO_API_ENABLED: False}):
            waits_for_a_decision()

    worker = threading.Thread(target=run_without_api_logs, daemon=True)
    worker.start()
    with get_client(sync_client=True) as client:
        run = None
        probe = FlowFilter(name=FlowFilterName(any_=["csrf-approval-probe"]))
        for _ in range(600):
            runs = client.read_flow_runs(flow_filter=probe)
            run = next((r for r in runs if r.state and r.state.is_paused()), None)
            if run is not None:
                break
            time.sleep(0.1)
        assert run is not None, "the probe flow never paused"
        decision = {"approve": True, "approver": "ann", "comment": "ok"}
        resume_flow_run(run.id, run_input=decision, _sync=True)
    worker.join(timeout=60)
    assert [(d.approve, d.approver) for d in received] == [(True, "ann")]
