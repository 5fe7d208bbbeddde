"""The gate's own security, on one whole release: decisions by the wrong person, sent the way
the UI's form and `fearless approve` send them, are refused inside the flow and leave it
waiting with the reason on its form; a listed approver who did not start it proceeds. The run
had secrets in its environment and a token in its git remote: none of them appears in its
logs (read through the Prefect API), its artifacts, its parameters or its evidence files.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from tests.e2e.conftest import FAST
from tests.faults.matrix import FaultRow, record

pytestmark = pytest.mark.e2e

AUTHOR = ("Dana Lee", "dana@example.com")


def committed_project(credit_project: Path, into: Path, token: str) -> Path:
    """The example project as a git checkout by Dana, its remote URL holding a CI token."""
    project = Path(shutil.copytree(credit_project, into / "credit"))
    name, email = AUTHOR
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
    env |= {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "PATH": "/usr/bin:/bin"}
    remote = f"https://ci-token:{token}@git.example.com/ml/credit.git"
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-q", "-m", "credit model"],
        ["remote", "add", "origin", remote],
    ):
        subprocess.run(["git", "-C", str(project), *args], env=env, check=True)
    return project


def paused_at(releases, run_id: str, key: str, within_s: float = 300):
    deadline = time.monotonic() + within_s
    while True:
        run = releases.run(run_id)
        if run.state.is_paused() and run.state.state_details.pause_key == key:
            return run
        assert time.monotonic() < deadline, (run.state.name, run.state.state_details.pause_key)
        time.sleep(0.5)


def everything_the_run_shows(client, releases, started) -> dict[str, str]:
    """The run's logs, artifacts and parameters from the Prefect API, and its evidence files."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    run_id = UUID(started.flow_run_id)
    of_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
    logs, page = [], None
    while page is None or len(page) == 200:
        page = client.read_logs(log_filter=of_run, limit=200, offset=len(logs))
        logs += page
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    shown = {"logs": "\n".join(log.message for log in logs)}
    shown["artifacts"] = "\n".join(f"{a.key} {a.description} {a.data}" for a in artifacts)
    shown["parameters"] = str(client.read_flow_run(run_id).parameters)
    run_dir = releases.settings.paths.run_dir(started.release_id)
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in {".md", ".html", ".json", ".jsonl", ".txt", ".log"}:
            shown[str(path.relative_to(run_dir))] = path.read_text(errors="replace")
    shown["decisions"] = (
        releases.settings.paths.registry / "credit" / "decisions.jsonl"
    ).read_text()
    return shown


def test_wrong_deciders_are_refused_in_the_flow_and_no_secret_is_shown(
    releases, credit_project, tmp_path, monkeypatch
):
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    from fearless.platform import work_pools
    from fearless.release.approval_gate import await_verdict, gate_of
    from fearless.release.runs import decide

    secrets = {
        "PREFECT_API_AUTH_STRING": f"admin:auth-{uuid4().hex}",
        "AWS_ACCESS_KEY_ID": f"AKIA{uuid4().hex[:16].upper()}",
        "AWS_SECRET_ACCESS_KEY": f"aws-secret-{uuid4().hex}",
    }
    token = f"glpat-{uuid4().hex}"
    # The platform gives the run these, as a pool's job variables give a worker's runs theirs.
    monkeypatch.setattr(work_pools, "job_variables_for", lambda kind, res: {"env": secrets})
    project = committed_project(credit_project, tmp_path, token)
    overrides = {**FAST, "approval": {"approvers": ["frank", "dana"]}}
    started = releases.start(project, overrides=overrides)
    assert started.source.git_author == "Dana Lee <dana@example.com>"
    assert started.source.repository == "https://git.example.com/ml/credit.git"
    assert releases.wait(started, timeout_s=600).state.is_paused()

    # The UI's Resume form, filled in by Dana, who wrote the commit released and is listed.
    run = paused_at(releases, started.flow_run_id, "approval")
    asked = time.monotonic()
    resume_flow_run(
        started.flow_run_id, run_input={"approve": True, "approver": "dana"}, _sync=True
    )
    run = paused_at(releases, started.flow_run_id, "approval-1")
    with get_client(sync_client=True) as client:
        refused = gate_of(client, run).refused
    assert refused.startswith("four eyes: dana started this release (Dana Lee <dana@example.com>)")

    # What `fearless approve --by erin` sends and reads back, erin not on the model's list.
    with get_client(sync_client=True) as client:
        run = decide(client, started.release_id, approve=True, approver="erin", comment="")
        verdict = await_verdict(client, run, timeout_s=300)
    assert verdict is not None and not verdict.accepted
    assert verdict.note == "erin is not an approver of this model (approval.approvers: frank, dana)"
    run = paused_at(releases, started.flow_run_id, "approval-2")
    waited_s = time.monotonic() - asked

    with get_client(sync_client=True) as client:
        decide(client, started.release_id, approve=True, approver="frank", comment="ok")
    done = releases.wait(started, paused_ok=False, timeout_s=600)
    assert done.state.name == "Promoted", done.state

    with get_client(sync_client=True) as client:
        shown = everything_the_run_shows(client, releases, started)
    assert "four eyes: dana started this release" in shown["logs"]  # the refusal is logged
    assert any(k.endswith("evidence.md") for k in shown), list(shown)
    leaks = [
        f"{name} in {where}"
        for name, value in {**secrets, "git remote token": token}.items()
        for where, text in shown.items()
        if value in text or value.split(":")[-1] in text
    ]
    record(
        FaultRow(
            fault="approval by the release's git author (UI form), then by an unlisted user (CLI)",
            step="approval",
            outcome="both refused in the flow, run kept waiting with the reason; a listed "
            "approver promoted it",
            recover_s=round(waited_s, 2),
        )
    )
    record(
        FaultRow(
            fault="secrets in the run's environment and its git remote",
            step="whole release",
            outcome=f"searched {len(shown)} logs, artifacts, parameters and evidence files: "
            f"{len(leaks)} secrets shown",
            leaked=len(leaks),
        )
    )
    assert not leaks, leaks
