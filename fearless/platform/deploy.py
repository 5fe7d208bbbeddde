"""Apply `prefect.yaml` and `deployments/automations.yaml` to the configured Prefect server.

Safe to run twice: the work pool is created or its template updated, deployments are upserted
by `prefect deploy`, automations replaced by name.
"""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from fearless.platform.server import prefect_env
from fearless.platform.work_pools import ensure_work_pool, kind_for
from fearless.settings import PROJECT_ROOT, Settings

AUTOMATIONS_FILE = PROJECT_ROOT / "deployments" / "automations.yaml"


def deploy_flows(settings: Settings) -> None:
    env = {**os.environ, **prefect_env(settings)}
    # The pull step's working directory: this checkout, or where the flow image holds it.
    env["FEARLESS_PROJECT_DIR"] = kind_for(settings).project_dir(settings)
    if os.environ.get("PREFECT_API_URL"):
        env["PREFECT_API_URL"] = os.environ["PREFECT_API_URL"]
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"prefect deploy failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def apply_automations(client) -> list[str]:
    """Create each automation in the file, resolving deployment names to ids."""
    from prefect.automations import Automation

    spec = yaml.safe_load(AUTOMATIONS_FILE.read_text())
    applied = []
    for item in spec["automations"]:
        for action in item["actions"]:
            if "deployment" in action:
                action["deployment_id"] = str(
                    client.read_deployment_by_name(action.pop("deployment")).id
                )
        for existing in client.read_automations_by_name(item["name"]):
            client.delete_automation(existing.id)
        Automation.model_validate(item).create()
        applied.append(item["name"])
    return applied


def deploy(settings: Settings) -> list[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        ensure_work_pool(client, settings)
    deploy_flows(settings)
    with get_client(sync_client=True) as client:
        names = [f"{d.name}" for d in client.read_deployments()]
        return names + apply_automations(client)
