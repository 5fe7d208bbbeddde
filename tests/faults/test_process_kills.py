"""A process killed (SIGKILL) at each place: the production model API, the production front, the
candidate and the champion (while provisioning, in the load test, in the drift check after it,
and while the release waits for approval).

Production's own processes are started again by the supervisor `fearless server up` runs (here
started the same way, `python -m fearless.production.fronts`), while a client sends
predictions through the front the whole time and counts every answer that is not a 2xx: the
row says how many failed and how long production took to answer again. A candidate or champion
killed during a release's load test is judged by the gate (named, the comparison skipped), and
the release's environments are torn down with nothing left running.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Self

import httpx
import pandas as pd
import psutil
import pytest

from fearless.bundles.bundle import build_bundle
from fearless.environments.local import LocalEnvironments
from fearless.log_files import log_files, read_log_file
from fearless.platform import processes
from fearless.platform.preload import Launcher
from fearless.production.fronts import SUPERVISOR_SOCKET
from fearless.production.hold import wait_for_port
from fearless.production.local import LocalProductionService
from fearless.production.promotion import promote
from fearless.registry.local import LocalRegistry
from fearless.release.candidate import TestEnvironments
from fearless.release.gates import run_drift_gate, run_load_test_gate, score_records
from fearless.release.liveness import (
    WHILE_AWAITING_APPROVAL,
    CandidateDown,
    candidate_of,
    environments_down,
)
from fearless.release.provisioning import provision_test_environments
from tests.conftest import CREDIT_RECORD, ROOT
from tests.faults.matrix import FaultRow, record
from tests.integration.test_loadtest_crash import candidate_of as candidate_in
from tests.integration.test_loadtest_crash import kill_later
from tests.integration.test_production import preloaded
from tests.integration.test_production_front import nginx_in_group

__all__ = ["preloaded"]  # a fixture shared with the integration tests
RELEASE = "credit-kills"


class Client:
    """One client sending predictions back to back on a keep-alive connection, each answer
    timed: what a caller of production saw."""

    def __init__(self, url: str) -> None:
        self.url, self.stopping = url, threading.Event()
        self.answers: list[tuple[float, int, str]] = []  # (monotonic time, status, digest)
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stopping.is_set():
                try:
                    answer = client.post("/predict", json={"records": [CREDIT_RECORD]})
                    status = answer.status_code
                    digest = answer.json().get("digest", "") if status == 200 else answer.text[:80]
                except (httpx.HTTPError, ValueError) as exc:
                    status, digest = 0, type(exc).__name__  # no answer: as bad as a 5xx
                self.answers.append((time.monotonic(), status, digest))
                if status != 200:
                    time.sleep(0.01)  # a refused connection is instant: do not spin

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)

    def wait_for(self, answers: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answers) < answers and time.monotonic() < deadline:
            time.sleep(0.02)

    def wait_until_answered_after(self, since: float, timeout_s: float = 60.0) -> None:
        """Until a 2xx answer after the fault and after its last failure, and 20 more answers
        (a request in flight at the fault may still answer 2xx before the failures start)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answers = list(self.answers)
            last_failure = max((t for t, status, _ in answers if status != 200), default=since)
            after = max(since, last_failure)
            ok = [i for i, (t, status, _) in enumerate(answers) if t > after and status == 200]
            if ok and len(answers) >= ok[0] + 20:
                return
            time.sleep(0.05)
        raise AssertionError(
            f"no 2xx and 20 more answers {timeout_s:.0f} s after the fault: " + self.story(since)
        )

    def story(self, since: float) -> str:
        """The answers since `since`, runs of one status and detail collapsed: for a failure."""
        runs: list[list] = []
        for t, status, detail in self.answers:
            if t <= since:
                continue
            key = (status, detail if status != 200 else "")
            if runs and runs[-1][0] == key:
                runs[-1][2] += 1
            else:
                runs.append([key, t - since, 1])
        return "; ".join(f"+{at:.2f}s {n}x {s} {d}".rstrip() for (s, d), at, n in runs)

    def failed(self) -> list[tuple[float, int, str]]:
        return [a for a in self.answers if a[1] != 200]

    def recover_s(self, since: float) -> float:
        """From the fault to the first 2xx after the last failure (0 if nothing failed)."""
        failures = self.failed()
        if not failures:
            return 0.0
        last = failures[-1][0]
        recovered = [t for t, status, _ in self.answers if t > last and status == 200]
        assert recovered, "the last answer failed: " + self.story(since)
        return recovered[0] - since


@pytest.fixture
def production(tmp_path: Path, preloaded, credit_project) -> Iterator[tuple]:
    """The example model promoted to production, with the supervisor `server up` starts."""
    registry = LocalRegistry(tmp_path / "registry")
    champion = build_bundle(credit_project, registry)
    service = LocalProductionService(
        tmp_path / "production", tmp_path / "inference", 90.0, Launcher(preloaded, cwd=ROOT)
    )
    argv = [
        *(sys.executable, "-m", "fearless.production.fronts"),
        *("--root", str(service.root / "fronts"), "--preload", str(preloaded)),
        *("--interval", "0.5"),
    ]
    # As `fearless server up` does: the supervisor first, so it starts (and keeps) the front.
    supervisor = processes.spawn(argv, tmp_path / "supervisor.log")
    try:
        asks = service.root / "fronts" / SUPERVISOR_SOCKET
        deadline = time.monotonic() + 60
        while not asks.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        promote(champion, registry, service, actor="ann", reason="first")
        assert wait_for_port(service.front("credit").hold, 60), processes.log_tail(supervisor)
        yield service, champion
    finally:
        processes.stop(supervisor)
        service.stop_all()


def leftovers(service: LocalProductionService, handles, front_pid: int) -> int:
    """Processes of this production still running after it was stopped."""
    alive = [h for h in handles if processes.is_alive(h)]
    return len(alive) + len(nginx_in_group(front_pid))


def acknowledged_rows_lost(service: LocalProductionService, client: Client) -> int:
    """Predictions answered 200 with no row in production's inference log (stopped first)."""
    rows = sum(
        read_log_file(path, ["digest"]).num_rows
        for path in log_files(service.inference_logs, "credit")
    )
    answered = sum(1 for _, status, _ in client.answers if status == 200)
    return max(0, answered - rows)


def answers_cut_mid_way(error_log: Path) -> int:
    """Answers nginx had begun relaying when their upstream closed: headers sent, body cut."""
    text = error_log.read_text(errors="replace") if error_log.exists() else ""
    return text.count("upstream prematurely closed connection while reading upstream")


def outcome_of(client: Client, what: str) -> str:
    failed, total = len(client.failed()), len(client.answers)
    codes = sorted({status for _, status, _ in client.failed()})
    failures = f"{failed} of {total} requests failed during the restart"
    return f"{what}; {failures} {codes}" if codes else f"{what}; {failures}"


def test_a_killed_production_model_api_is_restarted_on_its_slot_by_the_supervisor(production):
    service, champion = production
    killed = service.current("credit")
    url, front_pid = killed.url, service.front("credit").handle.pid
    with Client(url) as client:
        client.wait_for(50)
        at = time.monotonic()
        os.kill(killed.handle.pid, signal.SIGKILL)
        client.wait_until_answered_after(at)
    deadline = time.monotonic() + 30  # the supervisor records it once its /ready says so
    while (restarted := service.current("credit")).handle == killed.handle:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert restarted.handle != killed.handle and processes.is_alive(restarted.handle)
    assert (restarted.slot, restarted.upstream) == (killed.slot, killed.upstream)
    assert {d for _, s, d in client.answers if s == 200} == {champion.digest}
    # Held by the front until the model API was back: refused and reset requests waited. The
    # one exception no proxy can hide: an answer the model API had begun to send (its headers
    # already relayed to the client) when it was killed is cut, and nginx logs it as such.
    failed = client.failed()
    cut = answers_cut_mid_way(service.fronts.nginx("credit").error_log)
    assert len(failed) <= min(cut, 1), (cut, client.story(at))
    assert all(detail == "RemoteProtocolError" for _, _, detail in failed), client.story(at)
    recover_s = next(t for t, s, _ in client.answers if t > at and s == 200) - at
    assert recover_s < 60, recover_s
    service.stop_all()
    record(
        FaultRow(
            fault="production model API SIGKILL",
            step="serving (any step)",
            outcome=outcome_of(
                client, "restarted by the supervisor on its slot, same version, requests held"
            ),
            leaked=leftovers(service, [killed.handle, restarted.handle], front_pid),
            lost_rows=acknowledged_rows_lost(service, client),
            recover_s=round(recover_s, 2),
        )
    )


def test_a_killed_production_front_is_restarted_on_its_address_and_last_good_slot(production):
    service, champion = production
    serving, front = service.current("credit"), service.front("credit")
    slot = service.fronts.nginx("credit").active()
    with Client(front.url) as client:
        client.wait_for(50)
        at = time.monotonic()
        os.killpg(front.handle.pid, signal.SIGKILL)  # the master and its workers
        client.wait_until_answered_after(at)
    deadline = time.monotonic() + 10  # the supervisor records the new master once it listens
    while (again := service.front("credit")).handle == front.handle and time.monotonic() < deadline:
        time.sleep(0.05)
    assert again.handle != front.handle and again.url == front.url
    # The supervisor kept the front's socket: new connections waited for the next nginx, and
    # nothing was refused. Only the request in flight died with the worker that held it.
    failed = client.failed()
    assert len(failed) <= 1 and "ConnectError" not in str(failed), client.story(at)
    assert service.fronts.nginx("credit").active() == slot
    assert processes.is_alive(serving.handle)  # the model API behind it never moved
    assert {d for _, s, d in client.answers if s == 200} == {champion.digest}
    recover_s = client.recover_s(at)
    assert recover_s < 30, recover_s
    service.stop_all()
    # Stopped from this process, reaped by the supervisor that started it: gone, no zombie.
    assert not psutil.pid_exists(again.handle.pid)
    record(
        FaultRow(
            fault="production front SIGKILL (nginx master and workers)",
            step="serving (any step)",
            outcome=outcome_of(client, "restarted by the supervisor, same address and slot"),
            leaked=leftovers(service, [serving.handle], front.handle.pid)
            + len(nginx_in_group(again.handle.pid)),
            lost_rows=acknowledged_rows_lost(service, client),
            recover_s=round(recover_s, 2),
        )
    )


@pytest.fixture
def environments(tmp_path, preloaded) -> Iterator[LocalEnvironments]:
    environments = LocalEnvironments(
        tmp_path / "envs", tmp_path / "runs", launcher=Launcher(preloaded, cwd=ROOT)
    )
    yield environments
    environments.teardown(RELEASE)


def test_test_environments_killed_in_the_load_test_are_named_and_torn_down(
    environments, credit_project, tmp_path
):
    """One load test, both killed (the champion early, the candidate later): each is named by
    the gate (the integration tests kill each alone, `test_loadtest_crash`)."""
    candidate = candidate_in(credit_project, tmp_path, slos={"max_regression": 0.5})
    envs = provision_both(environments, candidate)
    started = time.monotonic()
    after_s = {"champion": 0.5, "candidate": 3.0}
    for role, delay in after_s.items():
        kill_later(getattr(envs, role), delay)
    outcome = run_load_test_gate(candidate, envs, tmp_path, environments)
    named_s = time.monotonic() - started
    assert not outcome.passed and not outcome.inconclusive, outcome.reasons
    assert re.fullmatch(
        r"candidate model API exited( \(signal 9\))? \d+ s into the load test", outcome.reasons[0]
    )
    assert outcome.notes[0].startswith("comparison with the champion skipped: champion")
    said = {
        "candidate": f"GateFailed: load-test gate: {outcome.reasons[0]}",
        "champion": f"candidate judged without it, noted: {outcome.notes[0]}",
    }
    torn = {env.role for env in environments.teardown(RELEASE)}
    assert torn == {"candidate", "champion"}
    leaked = still_running(envs)
    for role in ("candidate", "champion"):
        record(
            FaultRow(
                fault=f"{role} model API SIGKILL",
                step="load test",
                outcome=f"{said[role]}; environments torn down",
                leaked=leaked.count(role),
                recover_s=round(named_s - after_s[role], 2),  # from the kill to the verdict
            )
        )


def test_test_environments_killed_in_the_drift_check_are_named_and_torn_down(
    environments, credit_project, tmp_path
):
    """The drift check after a load test: the champion already gone, the candidate killed
    while Evidently runs; the gate names the candidate and skips the comparison."""
    candidate = candidate_in(credit_project, tmp_path)
    envs = provision_both(environments, candidate)
    reference = pd.read_parquet(candidate.bundle().reference_path).head(200)
    records = reference[candidate.spec.column_names].to_dict("records")
    score_records(envs.candidate.url, records)  # what the load test left in its log
    champion = processes.ProcessHandle(**envs.champion.handle)
    os.kill(champion.pid, signal.SIGKILL)
    wait_until(lambda: not processes.is_alive(champion), "the champion is gone")
    started = time.monotonic()
    kill_later(envs.candidate, 1.0)
    served = environments.inference_log_dir(envs.candidate)
    outcome = run_drift_gate(candidate, envs, served, tmp_path / "drift", environments)
    named_s = time.monotonic() - started
    assert not outcome.passed, outcome
    assert re.fullmatch(
        r"candidate model API exited( \(signal 9\))? \d+ s into the drift check",
        outcome.reasons[0],
    )
    assert outcome.notes[0].startswith("comparison with the champion skipped: champion")
    assert outcome.scores.prediction_drift is None  # no champion predictions compared
    torn = {env.role for env in environments.teardown(RELEASE)}
    assert torn == {"candidate", "champion"}
    leaked = still_running(envs)
    said = {
        "candidate": f"GateFailed: drift gate: {outcome.reasons[0]}",
        "champion": f"candidate judged without it, noted: {outcome.notes[0]}",
    }
    for role, recover_s in (("candidate", named_s - 1.0), ("champion", named_s)):
        record(
            FaultRow(
                fault=f"{role} model API SIGKILL",
                step="drift",
                outcome=f"{said[role]}; environments torn down",
                leaked=leaked.count(role),
                recover_s=round(recover_s, 2),  # from the kill to the verdict
            )
        )


def wait_until(done, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.05)


def provision_both(environments: LocalEnvironments, candidate) -> TestEnvironments:
    expires = datetime.now(UTC) + timedelta(hours=1)
    return TestEnvironments(
        **{
            role: environments.provision(RELEASE, role, candidate.bundle(), expires)
            for role in ("candidate", "champion")
        }
    )


def still_running(envs: TestEnvironments) -> list[str]:
    """The roles whose model API process is still alive (after a teardown: leaked)."""
    return [
        env.role
        for env in (envs.candidate, envs.champion)
        if processes.is_alive(processes.ProcessHandle(**env.handle))
    ]


class KillsWhileProvisioning:
    """The local backend, with a SIGKILL at a point of provisioning: the candidate's model API
    as the champion's provisioning begins, or the champion's as soon as it is up."""

    def __init__(self, backend: LocalEnvironments, victim: str) -> None:
        self.backend, self.victim = backend, victim

    def provision(self, release_id, role, bundle, expires_at):
        if role == "champion" and self.victim == "candidate":
            kill_and_wait(self.backend.list()[0])
        env = self.backend.provision(release_id, role, bundle, expires_at)
        if role == "champion" and self.victim == "champion":
            kill_and_wait(env)
        return env

    def __getattr__(self, name: str):
        return getattr(self.backend, name)


def kill_and_wait(env) -> None:
    handle = processes.ProcessHandle(**env.handle)
    os.kill(handle.pid, signal.SIGKILL)
    wait_until(lambda: not processes.is_alive(handle), f"the {env.role} is gone")


def with_champion(environments, credit_project, credit_challenger, tmp_path, victim: str):
    """Services as `provision_test_environments` reads them: the example in production, its
    challenger the candidate, and a backend that kills `victim` while provisioning."""
    candidate = candidate_in(credit_challenger, tmp_path)
    registry = LocalRegistry(tmp_path / "registry")
    champion = build_bundle(credit_project, registry)
    registry.set_alias(
        champion.spec.name, "production", champion.digest, expected=None, actor="t", reason="test"
    )
    return candidate, SimpleNamespace(
        settings=SimpleNamespace(env_grace_s=60),
        environments=KillsWhileProvisioning(environments, victim),
        registry=registry,
    )


def test_a_candidate_killed_while_provisioning_fails_the_release_named(
    environments, credit_project, credit_challenger, tmp_path
):
    candidate, services = with_champion(
        environments, credit_project, credit_challenger, tmp_path, "candidate"
    )
    started = time.monotonic()
    with pytest.raises(CandidateDown) as raised:
        provision_test_environments(services, RELEASE, candidate)
    named_s = time.monotonic() - started
    assert re.fullmatch(
        r"candidate model API exited( \(signal 9\))? while its test environments were "
        r"provisioned",
        str(raised.value),
    )
    assert pickle.loads(pickle.dumps(raised.value)).down == raised.value.down  # kept by Prefect
    # The flow ends GateFailed on it (release_pipeline); its end tears both down.
    listed = environments.list()
    assert {env.role for env in listed} == {"candidate", "champion"}
    torn = environments.teardown(RELEASE)
    leaked = still_running(TestEnvironments(candidate=torn[0], champion=torn[1]))
    record(
        FaultRow(
            fault="candidate model API SIGKILL",
            step="provision",
            outcome=f"GateFailed: provisioning: {raised.value}; environments torn down",
            leaked=len(leaked),
            recover_s=round(named_s, 2),  # the kill came first: to the verdict
        )
    )


def test_a_champion_killed_while_provisioning_is_noted_by_the_load_test(
    environments, credit_project, credit_challenger, tmp_path
):
    candidate, services = with_champion(
        environments, credit_project, credit_challenger, tmp_path, "champion"
    )
    started = time.monotonic()
    envs = provision_test_environments(services, RELEASE, candidate)  # no candidate lost
    assert envs.champion is not None
    outcome = run_load_test_gate(candidate, envs, tmp_path, environments)
    named_s = time.monotonic() - started
    assert outcome.candidate_down is None and outcome.result is not None
    assert outcome.notes[0].startswith("comparison with the champion skipped: champion model API")
    assert outcome.regression is None
    torn = {env.role for env in environments.teardown(RELEASE)}
    assert torn == {"candidate", "champion"}
    record(
        FaultRow(
            fault="champion model API SIGKILL",
            step="provision",
            outcome=f"candidate judged without it, noted: {outcome.notes[0]}; torn down",
            leaked=len(still_running(envs)),
            recover_s=round(named_s, 2),
        )
    )


def test_test_environments_stopped_during_the_approval_wait_are_found_when_it_ends(
    environments, credit_project, tmp_path
):
    """Nothing watches a release suspended for approval; the look after the decision finds
    each model API that stopped meanwhile, and the candidate's stop is what fails a release
    (the e2e row below goes through the flow)."""
    candidate = candidate_in(credit_project, tmp_path)
    envs = provision_both(environments, candidate)
    assert environments_down(environments, envs, WHILE_AWAITING_APPROVAL) == []
    kill_and_wait(envs.champion)
    down = environments_down(environments, envs, WHILE_AWAITING_APPROVAL)
    assert [d.role for d in down] == ["champion"] and candidate_of(down) is None  # promotable
    assert down[0].describe().endswith("while the release waited for approval")
    kill_and_wait(envs.candidate)
    down = environments_down(environments, envs, WHILE_AWAITING_APPROVAL)
    assert re.fullmatch(  # the signal, once the preloaded parent that reaped it wrote it
        r"candidate model API exited( \(signal 9\))? while the release waited for approval",
        candidate_of(down).describe(),
    )
    environments.teardown(RELEASE)
    assert still_running(envs) == []


@pytest.mark.e2e
def test_a_candidate_killed_during_the_approval_wait_is_not_promoted(
    releases, credit_project, tmp_path
):
    """Approved after its candidate's model API died while the run was suspended: the flow's
    look after the decision fails the release, named, before promotion, and tears it down."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tests.e2e.conftest import fearless_cli
    from tests.faults.test_worker_loss import faults_project, leaks

    project = faults_project(credit_project, tmp_path, "credit-kill-approval")
    started = releases.start(project)
    waiting = releases.wait(started)
    assert waiting.state.name == "Suspended", waiting.state
    (env,) = [
        e for e in releases.services.environments.list() if e.release_id == started.release_id
    ]
    kill_and_wait(env)
    killed_at = time.monotonic()
    approved = fearless_cli("approve", started.release_id, "--by", "ann")
    assert approved.returncode == 0, approved.stderr
    end = releases.wait(started, paused_ok=False)
    recover_s = time.monotonic() - killed_at
    left = leaks(releases, started.release_id)
    assert end.state.name == "GateFailed", end.state
    assert re.fullmatch(
        r"approval: candidate model API exited( \(signal 9\))? while the release waited for "
        r"approval; not promoted, start the release again",
        end.state.message,
    )
    mine = FlowRunFilter(id=FlowRunFilterId(any_=[end.id]))
    with get_client(sync_client=True) as client:
        names = {run.name for run in client.read_task_runs(flow_run_filter=mine)}
    assert not any(name.startswith("promote-model") for name in names), names
    assert releases.services.registry.get_alias("credit-kill-approval", "production") is None
    record(
        FaultRow(
            fault="candidate model API SIGKILL",
            step="approval wait",
            outcome=f"{end.state.name}: {end.state.message}; torn down",
            leaked=len(left),
            recover_s=round(recover_s, 2),  # from the kill (then the approval) to the end
        )
    )
    assert left == []
