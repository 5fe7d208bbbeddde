"""Models registered in MLflow, against a real `mlflow server` (SQLite backend, artifacts it
stores itself and serves over HTTP), started once for the tests that ask for it."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import pytest
import yaml
from typer.testing import CliRunner

from fearless.bundles.bundle import BundleError, build_bundle, open_bundle
from fearless.bundles.model_files import load_model_file
from fearless.production.promotion import promote, rollback
from fearless.registry.local import LocalRegistry
from fearless.spec import load_spec

pytest.importorskip("mlflow")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """The tracking URI of an `mlflow server` on 127.0.0.1 (slow to start: one per session)."""
    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    argv = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    with (root / "server.log").open("wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a busy 2-core machine takes over a minute
        while True:
            assert server.poll() is None, (root / "server.log").read_text()[-2000:]
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server not up after 300 s"
            time.sleep(0.5)
        import mlflow

        # this process only: the worker (and any process it starts) never learns the server
        # from the environment; a spec names it, or fearless init records it
        before = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(url)
        yield url
        mlflow.set_tracking_uri(before)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


def credit_spec(credit_dir: Path, model: str, **more) -> dict:
    """A spec of the example model's columns naming `model`."""
    spec = yaml.safe_load((credit_dir / "fearless.yaml").read_text())
    return {"name": "credit", "model": model, "reference_data": "reference.parquet",
            "schema": spec["schema"], **more}  # fmt: skip


def register(credit_dir: Path, name: str, *, alias: str | None = None) -> tuple[str, str]:
    """Log the example model (skops format, with its signature and reference data) as a new
    version of `name`; return (version, run id)."""
    import mlflow
    import pandas as pd
    import skops.io as sio
    from mlflow.models import infer_signature

    model = load_model_file(credit_dir / "model.skops", trust_pickle=False)
    frame = pd.read_parquet(credit_dir / "reference.parquet")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops",
            skops_trusted_types=sio.get_untrusted_types(data=sio.dumps(model)),
            signature=infer_signature(frame, model.predict(frame.head())),
            registered_model_name=name, pip_requirements=["scikit-learn", "skops"],
        )  # fmt: skip
        mlflow.log_artifact(str(credit_dir / "reference.parquet"))
    version = str(info.registered_model_version)
    if alias is not None:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return version, run.info.run_id


def test_init_from_mlflow_then_the_bundle_records_the_version(
    mlflow_server, credit_project, tmp_path
):
    """`fearless init --from-mlflow`: the schema from the signature, the reference data from
    the run; the bundle's model is the registered file, its source names version and run."""
    from fearless.cli import app

    name = f"credit-{uuid4().hex[:6]}"
    version, run_id = register(credit_project, name, alias="candidate")
    project = tmp_path / "credit"

    result = CliRunner().invoke(
        app,
        ["init", str(project), "--from-mlflow", f"models:/{name}@candidate", "--name", "credit"],
    )

    assert result.exit_code == 0, result.output
    spec = load_spec(project)
    assert spec.registered_model == f"models:/{name}@candidate"
    expected = credit_spec(credit_project, "model.skops")["schema"]
    assert {c.name: c.type.value for c in spec.input_schema} == {
        column: declared["type"] for column, declared in expected.items()
    }
    purpose = next(c for c in spec.input_schema if c.name == "purpose")
    assert set(purpose.values) == set(expected["purpose"]["values"])
    assert sorted(p.name for p in project.iterdir()) == ["fearless.yaml", "reference.parquet"]
    registry = LocalRegistry(tmp_path / "registry")
    bundle = build_bundle(project, registry)
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert manifest["source"]["mlflow"] | {"tracking_uri": None} == {
        "uri": f"models:/{name}@candidate", "name": name, "version": version, "run_id": run_id,
        "tracking_uri": None, "flavour": "sklearn", "serialization_format": "skops",
    }  # fmt: skip
    assert manifest["source"]["mlflow"]["tracking_uri"] == mlflow_server
    assert bundle.spec.model == Path("model.skops") and "mlflow" not in manifest["files"]
    assert bundle.model_path.read_bytes().startswith(b"PK\x03\x04")
    # the record is outside the digest: the same version by number is the same bundle
    pinned = tmp_path / "pinned"
    shutil.copytree(project, pinned)
    text = (pinned / "fearless.yaml").read_text()
    (pinned / "fearless.yaml").write_text(text.replace("@candidate", f"/{version}"))
    assert build_bundle(pinned, registry).digest == bundle.digest


class Evil:
    """Pickled, it runs `touch` when loaded: what a crafted model file can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_version(tmp_path: Path, name: str, fmt: str, payload: bytes, extra: dict) -> None:
    """Register a version whose MLmodel says sklearn flavour and whose file is `payload`."""
    import mlflow

    model_dir = tmp_path / f"crafted-{fmt}"
    model_dir.mkdir()
    file = "model.pkl" if fmt == "pickle" else "model.skops"
    (model_dir / file).write_bytes(payload)
    flavour = {"pickled_model": file, "serialization_format": fmt, **extra}
    (model_dir / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": flavour}}))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), "model")
    mlflow.register_model(f"runs:/{run.info.run_id}/model", name)


def test_a_crafted_model_version_never_runs_code(mlflow_server, credit_project, tmp_path):
    """A pickle is refused without FEARLESS_TRUST_PICKLE (nothing ran); a skops file whose own
    MLmodel trusts a function is refused by Fearless's list, which the model cannot extend."""
    import numpy as np
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    name = f"crafted-{uuid4().hex[:6]}"
    marker = tmp_path / "ran"
    crafted_version(tmp_path, name, "pickle", pickle.dumps(Evil(marker)), {})
    clip = sio.dumps(FunctionTransformer(func=np.clip))
    crafted_version(tmp_path, name, "skops", clip, {"skops_trusted_types": ["numpy.clip"]})
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(credit_project / "reference.parquet", project)
    registry = LocalRegistry(tmp_path / "registry")

    for version, refusal in ((1, "pickle files are not trusted"), (2, "numpy.clip")):
        spec = credit_spec(credit_project, f"models:/{name}/{version}")
        (project / "fearless.yaml").write_text(yaml.safe_dump(spec))
        with pytest.raises(BundleError, match=refusal):
            build_bundle(project, registry)
    assert not marker.exists()


class RecordingProduction:
    """A production service stand-in that records what it was asked; `fail_switch` makes the
    next switch fail, as a front that cannot reload would."""

    def __init__(self) -> None:
        self.serving: str | None = None
        self.fail_switch = False

    def start(self, bundle):
        return SimpleNamespace(digest=bundle.digest, url="http://127.0.0.1:1/")

    def switch(self, instance) -> None:
        if self.fail_switch:
            raise RuntimeError("front did not reload")
        self.serving = instance.digest

    def current(self, model: str):
        return SimpleNamespace(digest=self.serving) if self.serving else None

    def discard(self, instance) -> None:
        pass


def test_promotion_moves_the_mlflow_alias_and_rollback_moves_it_back(
    mlflow_server, credit_project, credit_challenger, tmp_path
):
    import mlflow

    name = f"credit-{uuid4().hex[:6]}"
    client = mlflow.MlflowClient()
    first, _ = register(credit_project, name)
    second, _ = register(credit_challenger, name)
    registry, production = LocalRegistry(tmp_path / "registry"), RecordingProduction()
    bundles = {}
    for version, source in ((first, credit_project), (second, credit_challenger)):
        project = tmp_path / f"v{version}"
        project.mkdir()
        shutil.copy(source / "reference.parquet", project)
        spec = credit_spec(
            source, f"models:/{name}/{version}", mlflow={"promote_alias": "champion"}
        )
        (project / "fearless.yaml").write_text(yaml.safe_dump(spec))
        bundles[version] = open_bundle(build_bundle(project, registry).path)

    def champion() -> str:
        return client.get_model_version_by_alias(name, "champion").version

    promote(bundles[first], registry, production, actor="ann", reason="first")
    assert champion() == first
    promote(bundles[second], registry, production, actor="ann", reason="second")
    assert champion() == second and production.serving == bundles[second].digest

    rollback("credit", registry, production, actor="bob", reason="bad")
    assert champion() == first and production.serving == bundles[first].digest

    production.fail_switch = True  # the service stays on the first: so does the alias
    with pytest.raises(RuntimeError, match="did not reload"):
        promote(bundles[second], registry, production, actor="ann", reason="again")
    assert champion() == first
    assert registry.get_alias("credit", "production") == bundles[first].digest


@pytest.mark.e2e
def test_a_release_of_a_registered_model_waits_in_the_ci_summary_and_moves_its_alias(
    platform, mlflow_server, credit_project, tmp_path
):
    """The whole release, through the session's Prefect worker: `fearless trigger --watch`
    writes the approval notice to $GITHUB_STEP_SUMMARY while the release waits; approved, it
    ends promoted, and MLflow's `champion` alias names the version the bundle was built from.
    The worker reaches MLflow through the spec's tracking_uri."""
    from prefect.client.orchestration import get_client

    from fearless.release.runs import decide
    from tests.conftest import ROOT

    name = f"credit-{uuid4().hex[:6]}"
    version, run_id = register(credit_project, name, alias="candidate")
    project = tmp_path / "mlflow-credit"
    project.mkdir()
    shutil.copy(credit_project / "reference.parquet", project)
    spec = credit_spec(
        credit_project, f"models:/{name}@candidate", name="mlflow-credit",
        mlflow={"tracking_uri": mlflow_server, "promote_alias": "champion"},
        load={"duration_s": 3, "rate": 40}, drift={"column_threshold": 0.2}, bake={"window_s": 2},
    )  # fmt: skip
    (project / "fearless.yaml").write_text(yaml.safe_dump(spec))
    summary, out = tmp_path / "step_summary.md", tmp_path / "trigger.out"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    argv = [sys.executable, "-m", "fearless.cli", "trigger", str(project), "--watch"]
    with out.open("w") as handle:
        trigger = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 420
        while "waits for approval" not in (summary.read_text() if summary.exists() else ""):
            assert trigger.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(1)
        text = summary.read_text()
        release_id = out.read_text().split()[1]
        assert f"fearless approve {release_id} --by NAME" in text, text
        assert "| p95_ms |" in text and "Drift:" in text and "Champion: none" in text, text
        with get_client(sync_client=True) as client:
            decide(client, release_id, approve=True, approver="ann", comment="from MLflow")
        assert trigger.wait(timeout=300) == 0, out.read_text()
    finally:
        if trigger.poll() is None:
            trigger.kill()
            trigger.wait()

    import mlflow

    assert mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version == version
    digest = platform.registry.get_alias("mlflow-credit", "production")
    manifest = json.loads(
        (platform.registry.get_bundle("mlflow-credit", digest).path / "manifest.json").read_text()
    )
    assert manifest["source"]["mlflow"]["run_id"] == run_id
    assert "promoted" in out.read_text()
