"""Whole releases through the real server, worker, model APIs, Locust and Evidently."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from prefect.client.orchestration import get_client

from fearless.platform.queues import queue_name_for
from tests.conftest import CREDIT_RECORD
from tests.e2e.conftest import FAST, fearless_cli
from tests.faults.matrix import FaultRow, record

pytestmark = pytest.mark.e2e


def queue_exists(settings, release_id) -> bool:
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_queue_by_name(
                queue_name_for(release_id), work_pool_name=settings.work_pool
            )
            return True
        except ObjectNotFound:
            return False


def assert_torn_down(releases, release_id, within_s: float = 0):
    """Nothing of the release is left (at once, or within `within_s` for hook-driven teardown)."""
    deadline = time.monotonic() + within_s
    while True:
        left = [e for e in releases.services.environments.list() if e.release_id == release_id]
        queued = queue_exists(releases.settings, release_id)
        if (not left and not queued) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert left == [] and not queued, (left, queued)


def load_test_window(releases, release_id: str) -> tuple[float, float]:
    """When a release's load test sent its first and last request (Locust's own clock)."""
    import json

    folder = releases.settings.paths.run_dir(release_id) / "loadtest"
    entries = [e for path in folder.rglob("locust.json") for e in json.loads(path.read_text())]
    return min(e["start_time"] for e in entries), max(e["last_request_timestamp"] for e in entries)


def wait_for_load_test(releases, release_id: str, within_s: float = 120) -> None:
    """Until the release's load test has started (Locust opened its log)."""
    locust_log = releases.settings.paths.run_dir(release_id) / "loadtest" / "locust.log"
    deadline = time.monotonic() + within_s
    while not locust_log.is_file():
        assert time.monotonic() < deadline, "the load test never started"
        time.sleep(0.2)


def slot_waits(releases, release_id: str) -> tuple[dict, list[str]]:
    """The load test's own wait for the host's slot, and what the heavy steps waited for."""
    import json

    evidence = releases.settings.paths.run_dir(release_id) / "evidence.json"
    page = json.loads(evidence.read_text())
    return page["load"]["slot"], page["host_waits"]


def alerts_about(alert_receiver, words: str) -> list[dict]:
    """The alerts the session's block received whose subject names `words`."""
    import json

    sent = [json.loads(body) for body in alert_receiver.bodies("/alerts")]
    return [alert for alert in sent if words in alert["subject"]]


def alert_sent(alert_receiver, words: str, within_s: float = 60) -> dict:
    """The one alert about `words`, waited for: a final-state hook sends it after the state."""
    deadline = time.monotonic() + within_s
    while not (found := alerts_about(alert_receiver, words)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(found) == 1, f"{len(found)} alerts about {words!r}: {found}"
    return found[0]


def assert_reports_fetched_from_their_links(releases, release_id: str) -> None:
    """The link artifacts a release made (the Locust and Evidently reports, the evidence page)
    each fetch the file over HTTP, and the evidence names no path on the worker's disk."""
    from fearless.platform.rest import PrefectApi

    kinds = ("load-test-report", "drift-report", "evidence-page")
    keys = [f"{kind}-{release_id}" for kind in kinds]
    with PrefectApi.from_env() as api:
        found = api.query("artifacts/filter", {"artifacts": {"key": {"any_": keys}}})
    links = {a["key"]: re.search(r"\]\((http[^)]+)\)", a["data"])[1] for a in found}
    assert sorted(links) == sorted(keys), found
    run_dir = releases.settings.paths.run_dir(release_id)
    for url in links.values():
        name = url.split(f"/fearless/runs/{release_id}/", 1)[1]
        answer = httpx.get(url)
        assert answer.status_code == 200 and answer.content == (run_dir / name).read_bytes(), url
    assert str(run_dir) not in (run_dir / "evidence.md").read_text()


def test_two_releases_run_at_once_each_on_its_own_queue_then_approve_and_reject(
    releases, credit_project, credit_challenger
):
    champion = releases.start(credit_project)
    rival = releases.start(credit_challenger)
    first, second = releases.wait(champion), releases.wait(rival)
    assert first.state.is_paused() and second.state.is_paused(), (first.state, second.state)
    # One machine: their load tests took turns.
    windows = sorted([load_test_window(releases, r.release_id) for r in (champion, rival)])
    assert windows[0][1] <= windows[1][0], windows
    assert first.work_queue_name == queue_name_for(champion.release_id)
    assert second.work_queue_name == queue_name_for(rival.release_id)
    assert first.work_queue_name != second.work_queue_name
    waiting = [
        e for e in releases.services.environments.list() if e.release_id == champion.release_id
    ]
    assert waiting[0].role == "candidate"
    in_production = releases.services.registry.get_alias("credit", "production")
    has_champion = in_production not in (None, waiting[0].digest)
    assert [e.role for e in waiting] == ["candidate"] + (["champion"] if has_champion else [])
    assert httpx.get(f"{waiting[0].url}/ready").status_code == 200

    approved = fearless_cli("approve", champion.release_id, "--by", "ann", "--comment", "ship it")
    assert approved.returncode == 0, approved.stderr
    rejected = fearless_cli("reject", rival.release_id, "--by", "bob", "--comment", "not now")
    assert rejected.returncode == 0, rejected.stderr

    done = releases.wait(champion, paused_ok=False)
    assert done.state.is_completed() and done.state.name == "Promoted", done.state
    lost = releases.wait(rival, paused_ok=False)
    assert lost.state.name == "Rejected" and "bob" in lost.state.message
    for started in (champion, rival):
        assert_torn_down(releases, started.release_id)

    registry = releases.services.registry
    digest = registry.get_alias("credit", "production")
    instance = releases.services.production.current("credit")
    assert instance.digest == digest
    answer = httpx.post(
        f"{instance.url}/predict",
        json={"records": [CREDIT_RECORD]},
    )
    assert answer.status_code == 200 and answer.json()["digest"] == digest
    decisions = (releases.settings.paths.registry / "credit" / "decisions.jsonl").read_text()
    assert "ann" in decisions and "bob" in decisions


def test_challenger_is_compared_with_the_champion_and_promoted(
    releases, credit_project, credit_challenger, alert_receiver
):
    registry = releases.services.registry
    if registry.get_alias("credit", "production") is None:
        first = releases.start(credit_project)
        releases.wait(first)
        assert fearless_cli("approve", first.release_id, "--by", "ann").returncode == 0
        assert releases.wait(first, paused_ok=False).state.is_completed()
    champion = registry.get_alias("credit", "production")
    same_load = {**FAST, "slos": {"max_regression": 0.9}}
    candidate = releases.start(credit_challenger if champion else credit_project, same_load)
    paused = releases.wait(candidate)
    assert paused.state.is_paused(), paused.state
    roles = sorted(
        e.role
        for e in releases.services.environments.list()
        if e.release_id == candidate.release_id
    )
    assert roles == ["candidate", "champion"]
    run_dir = releases.settings.paths.run_dir(candidate.release_id)
    assert (run_dir / "drift" / "report.html").is_file()
    assert list((run_dir / "loadtest" / "candidate").glob("*.html"))
    evidence = (run_dir / "evidence.md").read_text()
    assert "agrees with the champion" in evidence
    assert "Against the champion, same load" in evidence
    assert (run_dir / "loadtest" / "champion" / "locust.json").is_file()
    assert_reports_fetched_from_their_links(releases, candidate.release_id)
    # The team's alert block was told it waits: the evidence link, its figures, the commands.
    (notice,) = alerts_about(alert_receiver, f"release {candidate.release_id} awaits approval")
    evidence_link = re.search(r"Evidence: (\S+)", notice["text"]).group(1)
    assert httpx.get(evidence_link).status_code == 200, evidence_link
    assert "| p95_ms |" in notice["text"] and "agrees with the champion on" in notice["text"]
    assert f"fearless approve {candidate.release_id} --by NAME" in notice["text"]
    result = fearless_cli("approve", candidate.release_id, "--by", "cat", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Promoted" in result.stdout
    assert registry.get_alias("credit", "production") != champion
    assert registry.get_alias("credit", "previous") == champion
    assert_torn_down(releases, candidate.release_id)

    promoted = registry.get_alias("credit", "production")
    rolled = fearless_cli("rollback", "credit", "--by", "dan", "--reason", "error rate up")
    assert rolled.returncode == 0, rolled.stderr
    assert registry.get_alias("credit", "production") == champion
    assert registry.get_alias("credit", "previous") == promoted
    instance = releases.services.production.current("credit")
    assert instance.digest == champion
    assert httpx.get(f"{instance.url}/metadata").json()["digest"] == champion
    assert "rollback: error rate up" in registry.history("credit")[-2].reason
    by_dan = f"credit production is back at `{champion}` (rolled back by dan): error rate up"
    rolled_back = [a["text"] for a in alerts_about(alert_receiver, "Fearless: credit rolled back")]
    assert by_dan in rolled_back, rolled_back


def test_a_failed_slo_gate_stops_before_approval_and_tears_down(
    releases, credit_project, alert_receiver
):
    started = releases.start(credit_project, {**FAST, "slos": {"p95_ms": 0.001}})
    run = releases.wait(started, paused_ok=False)
    assert run.state.name == "GateFailed" and "load-test gate" in run.state.message
    assert "p95" in run.state.message
    assert_torn_down(releases, started.release_id)
    failed = alert_sent(alert_receiver, f"release {started.release_id} load-test-gate-failed")
    assert "ended load-test-gate-failed: load-test gate" in failed["text"], failed
    assert f"/runs/flow-run/{started.flow_run_id}" in failed["text"]


def test_a_load_test_waits_for_the_hosts_slot_and_says_behind_whom(
    releases, credit_project, credit_challenger
):
    # Long enough that the waiter's flow run starts inside it, even on a busy 2-core machine.
    long_test = {**FAST, "load": {"rate": 40, "duration_s": 12}}
    holder = releases.start(credit_project, long_test)
    wait_for_load_test(releases, holder.release_id)
    waiter = releases.start(credit_challenger)  # its build waits for the holder's load test
    for started in (holder, waiter):
        assert releases.wait(started).state.is_paused()
    # The waiter waited behind the holder: at its build (which keeps a core busy, so it runs
    # beside no load test), or at its own load test if it got there first.
    wait, step_waits = slot_waits(releases, waiter.release_id)
    assert wait["behind"] in ([], [holder.release_id]), wait
    waits = step_waits + [f"load test behind {', '.join(wait['behind'])}"]
    assert any(line.endswith(f"behind {holder.release_id}") for line in waits), waits
    held, waited = (load_test_window(releases, r.release_id) for r in (holder, waiter))
    assert held[1] <= waited[0], (held, waited)
    assert slot_waits(releases, holder.release_id)[0]["behind"] == []
    evidence = releases.settings.paths.run_dir(waiter.release_id) / "evidence.md"
    assert f"behind {holder.release_id}" in evidence.read_text()
    for started in (holder, waiter):
        assert fearless_cli("reject", started.release_id, "--by", "test").returncode == 0
        assert releases.wait(started, paused_ok=False).state.name == "Rejected"


def test_a_candidate_killed_mid_load_test_fails_the_gate_naming_the_crash(releases, credit_project):
    started = releases.start(credit_project, {**FAST, "load": {"rate": 40, "duration_s": 10}})
    wait_for_load_test(releases, started.release_id)
    time.sleep(2)
    (candidate,) = [
        env
        for env in releases.services.environments.list()
        if env.release_id == started.release_id and env.role == "candidate"
    ]
    os.kill(candidate.handle["pid"], signal.SIGKILL)
    run = releases.wait(started, paused_ok=False)
    assert run.state.name == "GateFailed", run.state.message
    assert re.search(
        r"load-test gate: candidate model API exited \(signal 9\) \d+ s into the load test",
        run.state.message,
    ), run.state.message
    assert_torn_down(releases, started.release_id)


def test_a_broken_model_fails_at_build_before_anything_is_provisioned(releases, project_copy):
    (project_copy / "model.skops").write_bytes(b"PK\x03\x04garbage")
    started = releases.start(project_copy)
    run = releases.wait(started, paused_ok=False)
    assert run.state.is_failed()
    assert "model.skops" in run.state.message and "not a loadable model file" in run.state.message
    assert (
        not releases.services.settings.paths.run_dir(started.release_id)
        .joinpath("loadtest")
        .exists()
    )
    assert_torn_down(releases, started.release_id, within_s=60)


def test_a_bad_spec_is_refused_before_a_queue_or_run_exists(releases, project_copy):
    from fearless.spec import SpecError

    spec = project_copy / "fearless.yaml"
    spec.write_text(spec.read_text().replace("rate: ", "rate: many #"))
    with pytest.raises(SpecError, match="load.rate"):
        releases.start(project_copy)
    result = fearless_cli("release", str(project_copy))
    assert result.returncode == 2 and "load.rate" in result.stderr


def test_approval_timeout_rejects_and_tears_down(releases, credit_project):
    started = releases.start(credit_project, {**FAST, "approval": {"timeout_s": 2}})
    assert releases.wait(started).state.is_paused()
    run = releases.wait(started, paused_ok=False)
    assert run.state.is_failed()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = releases.run(started.flow_run_id)
        if run.state.name == "TimedOut" and not queue_exists(releases.settings, started.release_id):
            break
        time.sleep(1)
    assert run.state.name == "TimedOut", run.state
    assert_torn_down(releases, started.release_id, within_s=60)
    record(FaultRow(fault="approval timeout", step="approval", outcome="rejected, TimedOut"))


def test_bad_decisions_are_refused_then_cancelling_the_waiting_release_tears_it_down(
    releases, credit_project
):
    from prefect.flow_runs import resume_flow_run

    started = releases.start(credit_project)
    assert releases.wait(started).state.is_paused()
    result = fearless_cli("status", started.release_id)
    assert "Suspended" in result.stdout or "Paused" in result.stdout, result.stdout

    nameless = fearless_cli("approve", started.release_id, "--by", "")
    assert nameless.returncode != 0 and "Cannot resume" in nameless.stderr, nameless.stderr
    for bad in ({"approve": "perhaps", "approver": "eve"}, {"approve": True}):
        with pytest.raises(RuntimeError, match="Cannot resume this run"):
            resume_flow_run(started.flow_run_id, run_input=bad, _sync=True)
    time.sleep(2)  # a wrongly accepted input would have the worker resume the run by now
    run = releases.run(started.flow_run_id)
    assert run.state.is_paused(), run.state
    assert not (releases.settings.paths.registry / "credit" / "decisions.jsonl").exists() or (
        started.release_id
        not in (releases.settings.paths.registry / "credit" / "decisions.jsonl").read_text()
    )

    cancel = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "cancel", started.flow_run_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert_torn_down(releases, started.release_id, within_s=90)
    assert releases.run(started.flow_run_id).state.is_cancelled()
    record(FaultRow(fault="cancel", step="approval (suspended)", outcome="release Cancelled"))


def test_a_release_started_like_the_ui_does_gets_its_own_queue_too(releases, credit_project):
    """The `release` deployment (what the UI's Run button and schedules start) hands off too."""
    from prefect.deployments import run_deployment

    launcher = run_deployment(
        "release/release",
        parameters={"model_path": str(credit_project), "overrides": FAST},
        timeout=120,
        poll_interval=1,
    )
    assert launcher.state.is_completed(), launcher.state
    started = launcher.state.result()
    assert launcher.work_queue_name == "default"
    paused = releases.wait(started)
    assert paused.state.is_paused() and paused.work_queue_name == queue_name_for(started.release_id)
    assert "started-by:prefect" in paused.tags
    # It built the worker's copy of the folder, packed by the launcher, and the evidence says so.
    assert started.source.packed_by == "prefect" and started.source.path == str(credit_project)
    evidence = releases.settings.paths.run_dir(started.release_id) / "evidence.md"
    assert f"built from `{credit_project}`" in evidence.read_text()
    assert "packed by prefect" in evidence.read_text()
    assert fearless_cli("reject", started.release_id, "--by", "ui").returncode == 0
    assert releases.wait(started, paused_ok=False).state.name == "Rejected"
    assert_torn_down(releases, started.release_id)
