"""A bake's shadow on ECS, against a moto server: production's revisions name it, a window
runs the previous version as the release's `shadow` environment, pairs both sides' inference
logs shipped to S3, and removes it; a shadow a dead worker left goes with its release.

Moto runs no containers, so the environments' waiter is replaced. The rows come from the real
log and shipper: written by `InferenceLog` here, or by two real model API processes, production
forwarding to its shadow (fearless.serving.forwarding) and both shipping to moto's S3.
Production's `/metrics` is a real HTTP server.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fearless.aws.inference_logs import InferenceLogShipper, environment_logs, production_logs
from fearless.bundles.bundle import build_bundle
from fearless.environments.ecs.backend import EcsEnvironments
from fearless.production.bake import Scrape, evaluate_bake
from fearless.production.ecs import EcsProductionService
from fearless.registry.local import LocalRegistry
from fearless.serving.inference_log import InferenceLog
from fearless.spec import with_overrides
from tests.integration.conftest import s3_bucket, stop_processes
from tests.integration.ecs_production import (
    DIGEST,
    bundle,
    describe,
    ecs_account,
    in_hour,
    production_service,
)
from tests.integration.test_serving_process import _free_port, _wait_ready

CLUSTER = "shadow-tests"
BUCKET = "fearless-shadow-tests"
PREVIOUS = "sha256:" + "cd" * 32
METRICS = b"""# TYPE fearless_http_requests counter
fearless_http_requests_total{route="/predict",code="200"} 40
"""


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    return ecs_account(moto_endpoint, CLUSTER)


@pytest.fixture
def production(aws):
    config, ecs, _, autoscaling = aws
    with production_service(config, ecs, autoscaling) as arn:
        yield arn


@pytest.fixture(scope="module")
def s3(moto_endpoint):
    return s3_bucket(moto_endpoint, BUCKET)


@pytest.fixture
def metrics_url():
    """Production's `/metrics`, as its model API would answer it."""

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(METRICS)))
            self.end_headers()
            self.wfile.write(METRICS)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def production_with_shadows(aws, s3, runs, backend=EcsEnvironments):
    """(environments, production service) logging to BUCKET; moto starts no task to wait for."""
    config, ecs, discovery, autoscaling = aws
    config = dataclasses.replace(config, bucket=BUCKET)
    environments = backend(config, ecs, discovery, runs, waiter=lambda env: None, s3=s3)
    service = EcsProductionService(
        config, ecs, autoscaling, waiter=lambda instance: None, shadows=environments
    )
    return environments, service


def serve_metrics_at(ecs, url: str) -> None:
    """Production's service says its model API answers at `url` (a real /metrics here)."""
    arn = ecs.describe_services(cluster=CLUSTER, services=["credit-production"])["services"][0]
    ecs.tag_resource(resourceArn=arn["serviceArn"], tags=[{"key": "fearless:url", "value": url}])


@pytest.fixture
def shadows(aws, s3, tmp_path):
    environments, service = production_with_shadows(aws, s3, tmp_path / "runs")
    yield environments, service
    for env in environments.list():
        environments.teardown(env.release_id)


def _variables(definition: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition["containerDefinitions"][0]["environment"]}


def _ship(s3, where, root, digest: str, source: str, predictions: dict[str, int]) -> None:
    """What a model API of `digest` logs and ships for these requests (id: prediction)."""
    log = InferenceLog(root, "credit", digest)
    for request_id, prediction in predictions.items():
        record = [{"age": int(request_id[1:])}]
        log.append(request_id, record, [{"prediction": prediction, "score": prediction}], 1.0)
    InferenceLogShipper(s3, where, root, source=source).ship_once()


def test_production_revisions_name_the_models_shadow_and_nothing_derived_copies_it(
    aws, production, shadows, tmp_path
):
    _, ecs, _, _ = aws
    environments, service = shadows
    promoted = service.start(bundle(tmp_path))
    variables = _variables(describe(ecs, promoted.handle["task_definition_arn"]))
    assert variables["FEARLESS_SHADOW_URL"] == "http://credit-shadow.shadow-tests.internal:8080"
    assert variables["FEARLESS_SHADOW_SAMPLE"] == "1"
    service.switch(promoted)

    env = environments.provision("credit-0301", "candidate", bundle(tmp_path), in_hour())
    copied = _variables(describe(ecs, env.handle["task_definition_arn"]))
    assert "FEARLESS_SHADOW_URL" not in copied and "FEARLESS_SHADOW_SAMPLE" not in copied
    assert environments.parity(env) == []  # production's shadow variables are its own

    quiet = bundle(tmp_path, digest=PREVIOUS)
    bake = quiet.spec.bake.model_copy(update={"shadow": False})
    quiet = dataclasses.replace(quiet, spec=quiet.spec.model_copy(update={"bake": bake}))
    variables = _variables(describe(ecs, service.start(quiet).handle["task_definition_arn"]))
    assert "FEARLESS_SHADOW_URL" not in variables  # copied from the running one, then dropped


def test_a_bake_window_runs_the_previous_version_as_the_releases_shadow_and_pairs_the_logs(
    aws, production, shadows, s3, metrics_url, tmp_path
):
    config, ecs, discovery, _ = aws
    environments, service = shadows
    service.switch(service.start(bundle(tmp_path)))
    serve_metrics_at(ecs, metrics_url)
    release = "credit-0302"
    until = datetime.now(UTC) + timedelta(seconds=60)
    with service.bake_window(
        "credit", shadow=bundle(tmp_path, digest=PREVIOUS), release_id=release, until=until
    ) as reader:
        _wait(reader.settled)
        [shadow] = environments.inventory.found(release)
        assert (shadow.role, shadow.digest) == ("shadow", PREVIOUS)
        assert shadow.url == "http://credit-shadow.shadow-tests.internal:8080"
        assert shadow.expires_at >= until
        task = describe(ecs, shadow.handle["task_definition_arn"])
        assert task["containerDefinitions"][0]["image"].endswith(":cdcdcdcdcdcd")
        assert "FEARLESS_SHADOW_URL" not in _variables(task)  # never copies to itself

        live = production_logs(BUCKET, config.inference_prefix)
        copied = environment_logs(BUCKET, config.inference_prefix, release, "shadow")
        answers = {f"r{i}": i % 2 for i in range(10)}
        _ship(s3, live, tmp_path / "task-a", DIGEST, "task-a", dict(list(answers.items())[:6]))
        _ship(s3, live, tmp_path / "task-b", DIGEST, "task-b", dict(list(answers.items())[6:]))
        _ship(s3, live, tmp_path / "old", PREVIOUS, "old", {"r0": 0})  # draining: not compared
        disagree = {"r0": 1, "r1": 1}  # r0 differs by 1, r1 agrees
        _ship(s3, copied, tmp_path / "shadow", PREVIOUS, "shadow", {**answers, **disagree})
        seen = reader.read()
        assert (seen.requests, seen.compared, seen.agreed, seen.shift) == (40, 10, 9, 1.0)
        assert reader.read().compared == 10  # each chunk is read once

    assert environments.inventory.found(release) == []
    names = [s["Name"] for s in discovery.list_services()["Services"]]
    assert "credit-shadow" not in names


def test_a_shadow_left_by_a_dead_worker_is_removed_with_its_release(
    aws, production, shadows, tmp_path
):
    _, _, discovery, _ = aws
    environments, _ = shadows
    release = "credit-0303"
    environments.provision(
        release, "shadow", bundle(tmp_path, digest=PREVIOUS), in_hour(), dns_name="credit-shadow"
    )
    assert "credit-shadow" in [s["Name"] for s in discovery.list_services()["Services"]]
    [removed] = environments.teardown(release)
    assert removed.role == "shadow"
    assert "credit-shadow" not in [s["Name"] for s in discovery.list_services()["Services"]]


def _wait(done, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the shadow never finished starting"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def versions(credit_project, credit_challenger, tmp_path_factory):
    """(champion, challenger) bundles of the example model: their predictions differ."""
    registry = LocalRegistry(tmp_path_factory.mktemp("registry"))
    return build_bundle(credit_project, registry), build_bundle(credit_challenger, registry)


@pytest.fixture
def model_apis(moto_endpoint, tmp_path):
    """Starts model APIs (`start(bundle, name, **environment)`) shipping to moto's S3; each
    is stopped (and ships what it logged) at the latest at the end."""
    started: list[subprocess.Popen] = []

    def start(bundle, name: str, **settings: str) -> tuple[str, subprocess.Popen]:
        port, folder = _free_port(), tmp_path / name
        argv = [sys.executable, "-m", "fearless.serving", "--bundle", str(bundle.path)]
        argv += ["--port", str(port), "--log-dir", str(folder / "inference")]
        folder.mkdir()
        output = folder / "api.log"
        env = {**os.environ, "FEARLESS_AWS_ENDPOINT_URL": moto_endpoint, **settings}
        with output.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, output)
        return url, process

    yield start
    stop_processes(*started)


def _forwards_sent(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fearless_shadow_forwards_total" and sample.labels["outcome"] == "sent"
    )


def test_real_model_apis_forward_and_ship_and_the_ecs_bake_judges_their_drift(
    aws, production, shadows, metrics_url, versions, model_apis, credit_project
):
    """Production's model API copies each request to the previous version's; both ship their
    logs to S3; the ECS window pairs them, and the bake's thresholds see the drift."""
    config, ecs, _, _ = aws
    environments, service = shadows
    champion, challenger = versions
    service.switch(service.start(challenger))
    serve_metrics_at(ecs, metrics_url)
    release = "credit-0304"
    copied = environment_logs(BUCKET, config.inference_prefix, release, "shadow")
    live = production_logs(BUCKET, config.inference_prefix)
    records = pd.read_parquet(credit_project / "reference.parquet").head(30).to_dict("records")
    until = datetime.now(UTC) + timedelta(seconds=60)
    with service.bake_window("credit", shadow=champion, release_id=release, until=until) as reader:
        _wait(reader.settled)
        shadow_url, shadow_api = model_apis(
            champion, "shadow", FEARLESS_INFERENCE_LOG_S3=copied.url
        )
        live_url, live_api = model_apis(
            challenger,
            "live",
            FEARLESS_INFERENCE_LOG_S3=live.url,
            FEARLESS_SHADOW_URL=shadow_url,
        )
        for record in records:
            answer = httpx.post(f"{live_url}/predict", json={"records": [record]}, timeout=30)
            assert answer.status_code == 200, answer.text
        _wait(lambda: _forwards_sent(live_url) == len(records), timeout_s=60)
        stop_processes(live_api, shadow_api)  # each ships what it logged as it stops
        seen = reader.read()
    assert seen.compared == len(records)
    spec = with_overrides(
        challenger.spec, {"bake": {"min_requests": 20, "max_prediction_shift": 1e-6}}, "test"
    )
    verdict = evaluate_bake(Scrape(), seen, spec)
    assert not verdict.passed and verdict.compared == len(records), verdict
    assert verdict.prediction_shift > 1e-6
    [reason] = verdict.reasons
    assert reason.startswith("prediction drift from the previous version: mean score shift")
    assert environments.inventory.found(release) == []


class _FailingRemoval(EcsEnvironments):
    """ECS refuses the shadow's removal (throttled, say) while the window ends."""

    def teardown_role(self, release_id: str, role: str):
        raise RuntimeError("Rate exceeded")


def test_a_shadow_that_cannot_be_removed_at_the_windows_end_is_left_to_the_releases_teardown(
    aws, production, s3, metrics_url, tmp_path, caplog
):
    ecs = aws[1]
    failing, service = production_with_shadows(aws, s3, tmp_path / "runs", _FailingRemoval)
    service.switch(service.start(bundle(tmp_path)))
    serve_metrics_at(ecs, metrics_url)
    release = "credit-0305"
    with service.bake_window(
        "credit", shadow=bundle(tmp_path, digest=PREVIOUS), release_id=release, until=in_hour()
    ) as reader:
        _wait(reader.settled)
        assert reader.read().requests == 40
    assert "left for the release's teardown: Rate exceeded" in caplog.text
    [left] = failing.inventory.found(release)
    assert left.role == "shadow"
    assert [e.role for e in failing.teardown(release)] == ["shadow"]
    assert failing.inventory.found(release) == []
