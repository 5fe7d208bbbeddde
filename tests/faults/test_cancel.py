"""Cancelling a release (from the UI, the CLI or the API: all set Cancelling) at a step stops
what the step started (mid-load-test: its load generator), tears down its environments and
removes its queue. Cancelling at the approval gate is in tests/e2e/test_release.py."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Cancelling

from fearless.bundles.bundle import build_bundle
from fearless.platform import processes
from fearless.platform.slots import LEASE_TAG
from fearless.production.front import port_is_free
from fearless.production.promotion import promote
from fearless.production.slot import promotion_slot
from tests.e2e.conftest import FAST, fearless_cli
from tests.faults.matrix import FaultRow, record
from tests.faults.test_worker_loss import (
    faults_project,
    leaks,
    running_step,
    wait_until,
)

pytestmark = pytest.mark.e2e


def test_cancelling_mid_load_test_stops_the_generator_and_tears_everything_down(
    releases, credit_project, tmp_path
):
    project = faults_project(credit_project, tmp_path, "credit-cancel")
    started = releases.start(project, overrides={**FAST, "load": {"duration_s": 20, "rate": 40}})
    flow_run_id = UUID(started.flow_run_id)
    with get_client(sync_client=True) as client:
        wait_until(lambda: running_step(client, flow_run_id, "run-load-test"), "a load test")
        cancelled_at = time.time()
        client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
    end = releases.wait(started, paused_ok=False)
    left = leaks(releases, started.release_id)
    record(
        FaultRow(
            fault="cancel",
            step="load test",
            outcome=f"release {end.state.name}",
            leaked=len(left),
            lost_releases=0 if end.state.is_cancelled() else 1,
            recover_s=time.time() - cancelled_at,
        )
    )
    assert left == [], left


# Where a cancel lands before the gate, besides the load test above: the step's name prefix.
STEPS = {"build": "build-bundle", "provision": "provision-env", "drift": "check-drift"}


def test_cancelling_at_build_provision_or_drift_ends_cancelled_leaving_nothing(
    releases, credit_project, tmp_path
):
    """Three releases at once, each cancelled while one of its steps runs."""
    started = {
        label: releases.start(faults_project(credit_project, tmp_path, f"credit-cancel-{label}"))
        for label in STEPS
    }
    cancelled_at, leases = {}, {}
    with get_client(sync_client=True) as client:
        for label, step in STEPS.items():  # in the order the steps come
            flow_run_id = UUID(started[label].flow_run_id)

            def holding_a_slot(run=flow_run_id, step=step, label=label):
                tags = client.read_flow_run(run).tags
                held = [UUID(t.removeprefix(LEASE_TAG)) for t in tags if t.startswith(LEASE_TAG)]
                if not running_step(client, run, step):
                    return None
                # Drift may end before its slot is seen on it: only its cancel is checked there.
                return held if held or label != "drift" else ["no lease seen"]

            leases[label] = wait_until(holding_a_slot, f"the {label} step holding its slot")
            cancelled_at[label] = time.time()
            client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
    for label in STEPS:
        end = releases.wait(started[label], paused_ok=False)
        left = leaks(releases, started[label].release_id)
        # Its stopped step's slot was given back, not left to its lease running out (2 min)
        # while the next load test waited for it: the lease is gone, it cannot be renewed.
        with get_client(sync_client=True) as client:
            for lease_id in (x for x in leases[label] if isinstance(x, UUID)):
                with pytest.raises(PrefectHTTPStatusError, match="410"):
                    client.renew_concurrency_lease(lease_id=lease_id, lease_duration=60)
        record(
            FaultRow(
                fault="cancel",
                step=label,
                outcome=f"release {end.state.name}",
                leaked=len(left),
                lost_releases=0 if end.state.is_cancelled() else 1,
                recover_s=time.time() - cancelled_at[label],
            )
        )
        assert left == [], (label, left)


def test_cancelling_at_promote_or_bake_puts_the_champion_back(
    releases, credit_project, credit_challenger, tmp_path
):
    """A champion serves; a challenger is approved, then cancelled while it promotes (one model)
    or while it bakes (another). A cancelled release leaves production as it found it: the
    champion serves, the registry names it, no shadow, no mirror, no second model API."""
    services = releases.services
    production, registry = services.production, services.registry
    steps = {"promote": "promote-model", "bake": "bake"}

    def shadow_of(model: str) -> Path:
        return production.root / "shadows" / f"{model}.json"

    started, champions, cancelled_at = {}, {}, {}
    overrides = {**FAST, "slos": {"max_regression": 0.9}, "bake": {"window_s": 30}}
    for label in steps:
        model = f"credit-cancel-{label}"
        champion = faults_project(credit_project, tmp_path / "champion", model)
        champions[label] = build_bundle(champion, registry)
        promote(champions[label], registry, production, actor="ann", reason="the champion")
        challenger = faults_project(credit_challenger, tmp_path / "challenger", model)
        started[label] = releases.start(challenger, overrides)
    try:
        for label in steps:
            assert releases.wait(started[label]).state.is_paused()
        with get_client(sync_client=True) as client:
            # The promotion waits on its model's slot, held here, so it is seen running; it
            # is cancelled once the slot is let go and its new model API listens.
            with promotion_slot("credit-cancel-promote"):
                for label in steps:
                    approved = fearless_cli("approve", started[label].release_id, "--by", "ann")
                    assert approved.returncode == 0, approved.stderr
                for label, step in steps.items():
                    run = UUID(started[label].flow_run_id)
                    wait_until(lambda r=run, s=step: running_step(client, r, s), label)
                # Mid-bake: the previous version runs as the shadow, mirrored to.
                wait_until(lambda: shadow_of("credit-cancel-bake").exists(), "the shadow")
                cancel(client, started["bake"], cancelled_at, "bake")
            # Once its model API listens in the idle slot: about to switch, or switching.
            idle = [port for slot, port in production.front("credit-cancel-promote").slots.items()
                    if slot != production.current("credit-cancel-promote").slot]  # fmt: skip
            wait_until(lambda: not port_is_free(idle[0]), "the promoted version started")
            cancel(client, started["promote"], cancelled_at, "promote")
        for label in steps:
            model, champion = f"credit-cancel-{label}", champions[label].digest
            end = releases.wait(started[label], paused_ok=False)
            left = leaks(releases, started[label].release_id)
            serving = production.current(model)
            slots = production.front(model).slots
            apis = [slot for slot, port in slots.items() if not port_is_free(port)]
            record(
                FaultRow(
                    fault="cancel",
                    step=label,
                    outcome=f"release {end.state.name}; production back on the champion",
                    leaked=len(left) + len(apis) - 1,
                    lost_releases=0 if end.state.is_cancelled() else 1,
                    recover_s=time.time() - cancelled_at[label],
                )
            )
            assert end.state.is_cancelled(), (label, end.state)
            assert left == [], (label, left)
            assert (serving.digest, registry.get_alias(model, "production")) == (champion,) * 2
            assert apis == [serving.slot] and processes.is_alive(serving.handle), apis
            assert not shadow_of(model).exists()
            assert not (production.fronts.nginx(model).flags / "shadow").exists()
            assert httpx.get(f"{serving.url}/metadata").json()["digest"] == champion
    finally:
        for label in steps:
            production.stop(f"credit-cancel-{label}")


def cancel(client, started, cancelled_at: dict, label: str) -> None:
    cancelled_at[label] = time.time()
    client.set_flow_run_state(UUID(started.flow_run_id), Cancelling(), force=True)
