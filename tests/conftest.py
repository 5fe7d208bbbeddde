"""Test-wide setup: every test session gets its own state dir and Prefect server port.

The environment is set here, at import time, before any test module imports Prefect, so
nothing a test does can touch a developer's own `.fearless/` or server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fearless.platform.processes import free_port as _free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "credit"

# One applicant the example credit model scores; tests that need a valid record use it.
CREDIT_RECORD = {
    "age": 40,
    "income": 52000.0,
    "loan_amount": 12000.0,
    "credit_history_months": 60,
    "debt_ratio": 0.3,
    "purpose": "car",
    "employment": "salaried",
}

_STATE = Path(tempfile.mkdtemp(prefix="fearless-test-"))


os.environ["FEARLESS_STATE_DIR"] = str(_STATE)
os.environ["FEARLESS_SERVER_PORT"] = str(_free_port())
os.environ["FEARLESS_WORK_POOL"] = "fearless-test"
os.environ.pop("PREFECT_API_KEY", None)
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{os.environ['FEARLESS_SERVER_PORT']}/api"
os.environ["PREFECT_HOME"] = str(_STATE / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_STATE, ignore_errors=True)


_NOTEWORTHY = ("error", "exception", "traceback", "locked", "failed", "automation", "action")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used the shared server reports what its server and worker logged
    that looks wrong: the state dir is gone when the session ends, and CI keeps only stdout."""
    report = yield
    if report.failed and "platform" in getattr(item, "fixturenames", ()):
        for log in sorted((_STATE / "processes").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()
            shown = [line for line in lines if any(w in line.lower() for w in _NOTEWORTHY)]
            report.sections.append((f"{log.name} (noteworthy, last 40)", "\n".join(shown[-40:])))
    return report


def train_example(into: Path, challenger: bool = False) -> Path:
    """A copy of the example model project, trained into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, str(EXAMPLE / "train.py"), "--out", str(into)]
    subprocess.run(args + (["--challenger"] if challenger else []), check=True, capture_output=True)
    return into


@pytest.fixture(scope="session")
def credit_project(tmp_path_factory) -> Path:
    """The example credit model (champion version), trained once per session. Do not modify."""
    return train_example(tmp_path_factory.mktemp("credit"))


@pytest.fixture(scope="session")
def credit_challenger(tmp_path_factory) -> Path:
    """The example credit model's challenger version, trained once per session."""
    return train_example(tmp_path_factory.mktemp("credit-challenger"), challenger=True)


@pytest.fixture
def project_copy(credit_project, tmp_path) -> Path:
    """A private, modifiable copy of the trained example project."""
    return Path(shutil.copytree(credit_project, tmp_path / "credit"))


# The session's releases alert through this block, as a team's would: a generic webhook that
# posts to `alert_receiver` (the worker and every command started from here read it).
TEST_ALERTS = "custom-webhook/fearless-test-alerts"


@pytest.fixture(scope="session")
def alert_receiver():
    """What the session's releases sent through TEST_ALERTS (approval waiting, failed, rolled
    back), as (path, JSON body) pairs."""
    from tests.receiver import Receiver

    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def platform(alert_receiver):
    """The one Prefect server, worker and deployments shared by the whole test session."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from fearless.composition import build_services
    from fearless.platform.deploy import deploy
    from fearless.platform.server import server_down, server_up
    from fearless.settings import get_settings

    os.environ["FEARLESS_NOTIFICATION_BLOCKS"] = json.dumps([TEST_ALERTS])
    settings = get_settings()
    services = build_services(settings)
    try:
        server_up(settings, timeout_s=300)  # a busy 2-core machine takes minutes, not 15 s
        deploy(settings)
        CustomWebhookNotificationBlock(
            name="fearless tests",
            url=f"http://127.0.0.1:{alert_receiver.port}/alerts",
            json_data={"subject": "{{subject}}", "text": "{{body}}"},
        ).save(TEST_ALERTS.split("/")[1], overwrite=True)
        yield services
    finally:
        server_down(settings, services)
