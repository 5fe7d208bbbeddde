"""The model API container's health check against a real model API: unhealthy, and saying why,
while its inference log cannot be written (issue 22, defect 6). Its /ready alone says 200 then,
while every prediction is refused: that is what the task definitions' health check adds."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pandas as pd
import pytest

from tests.integration.conftest import serve_model, stop_processes


def probe(url: str, *options: str) -> subprocess.CompletedProcess:
    """The health check as a task definition runs it (fearless.environments.ecs.definitions)."""
    argv = [sys.executable, "-m", "fearless.bundles.health", "--url", f"{url}/ready", *options]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def unwritable(credit_project, tmp_path_factory):
    """A model API whose log dir cannot be created, even by root (its parent is a file)."""
    blocker = tmp_path_factory.mktemp("unwritable") / "not-a-folder"
    blocker.write_text("")
    proc, url = serve_model(credit_project, blocker / "inference")
    try:
        yield url, blocker / "inference"
    finally:
        stop_processes(proc)


def test_an_unwritable_log_dir_fails_the_health_check_and_says_why(
    unwritable, credit_project, tmp_path
):
    url, log_dir = unwritable
    records = pd.read_parquet(credit_project / "reference.parquet").head(2).to_dict("records")
    assert httpx.get(f"{url}/ready").status_code == 200  # /ready alone: the defect
    assert httpx.post(f"{url}/predict", json={"records": records}).status_code == 503

    tell = tmp_path / "model-api-stderr"
    checked = probe(url, "--log-dir", str(log_dir), "--tell", str(tell))
    assert checked.returncode == 1
    why = f"inference log dir {log_dir} is not writable"
    assert why in checked.stderr
    assert tell.read_text().startswith(f"health check failed: {why}")


def test_a_writable_log_dir_and_a_ready_model_api_pass(model_api):
    url, log_dir = model_api
    checked = probe(url, "--log-dir", str(log_dir))
    assert (checked.returncode, checked.stderr) == (0, "")
    assert [p for p in log_dir.rglob("*") if p.name.startswith(".health-")] == []


def test_a_model_api_that_does_not_answer_fails_the_health_check(tmp_path):
    from tests.integration.test_loadtest_runner import _free_port

    checked = probe(f"http://127.0.0.1:{_free_port()}", "--log-dir", str(tmp_path))
    assert checked.returncode == 1 and "/ready did not answer" in checked.stderr
