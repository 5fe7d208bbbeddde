"""A bundle's model API with only what its image installs: the bundle's requirements and
Fearless's wheel without its dependencies."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

import httpx
import pandas as pd
import pytest
from packaging.requirements import Requirement

from fearless.bundles.bundle import stage_bundle
from fearless.platform.processes import free_port
from fearless.spec import load_spec
from tests.integration.conftest import s3_bucket, stop_processes
from tests.integration.test_serving_process import _wait_ready
from tests.unit.serving_models import tree_project


def _installed_by(requirements: list[str]) -> set[str]:
    """The distributions `pip install -r` of these pins installs: them and, transitively,
    what they require without extras (as this environment's metadata says)."""
    todo = [Requirement(line).name for line in requirements if line.strip()]
    found: set[str] = set()
    while todo:
        name = metadata.Distribution.from_name(todo.pop()).metadata["Name"]
        key = name.lower().replace("_", "-")
        if key in found:
            continue
        found.add(key)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def _importable_in(installed: set[str]) -> list[str]:
    """The top-level modules those distributions hold, and Fearless's own (its wheel)."""
    owners = metadata.packages_distributions()
    tops = {top for top, dists in owners.items()
            if any(d.lower().replace("_", "-") in installed for d in dists)}  # fmt: skip
    return sorted(tops | {"fearless"})


# `python -c IMAGE_ONLY <importable tops as JSON> <the model API's arguments>`: the model API
# where every module outside the standard library and those tops fails to import, as it
# would in the image (an optional one is then done without, as there).
IMAGE_ONLY = """
import json, runpy, sys
from importlib.machinery import PathFinder
importable = set(json.loads(sys.argv.pop(1)))
site = [p for p in sys.path if "-packages" in p]
sys.path[:] = [p for p in sys.path if p not in site]

class ImageOnly:
    \"\"\"Finds a top-level module in site-packages only if the image has it.\"\"\"
    def find_spec(self, name, path=None, target=None):
        if path is not None:
            return None  # a submodule: found as usual, in its package
        if name in importable:
            return PathFinder.find_spec(name, site)
        if PathFinder.find_spec(name, site) is not None:
            print(f"not in the image: {name}", flush=True)
        return None

sys.meta_path.insert(0, ImageOnly())
sys.argv[0] = "fearless.serving"
runpy.run_module("fearless.serving", run_name="__main__", alter_sys=True)
"""


# (family, how its image scores it): the example's linear model, a forest through ONNX
# Runtime (the fast-trees extra), a booster through its own library (the boosters extra).
FAMILIES = [
    ("credit", "numpy"),
    ("RandomForestRegressor", "onnxruntime"),
    ("XGBRegressor", "numpy"),
]


@pytest.mark.parametrize(("family", "scoring"), FAMILIES)
def test_a_bundle_serves_with_only_what_its_image_installs(
    family, scoring, credit_project, moto_endpoint, tmp_path
):
    """The image installs the bundle's requirements and Fearless's wheel without its
    dependencies. The model API runs here as there, with ECS's log shipping on, and must
    answer, score as it does here, on uvicorn's C parser and loop, and ship what it logged.
    Without httpx (the shadow's client), pydantic-settings and boto3 (log shipping) pinned it
    failed to start; without httptools and uvloop it served on h11 and asyncio's loop,
    several times slower."""
    for library in {"onnxruntime": ["onnxruntime", "skl2onnx"]}.get(scoring, []) + (
        ["xgboost"] if family.startswith("XGB") else []
    ):
        pytest.importorskip(library)
    project = credit_project if family == "credit" else tree_project(tmp_path / "p", family)
    spec = load_spec(project)
    record = pd.read_parquet(project / spec.reference_data).head(1).to_dict("records")[0]
    bundle = tmp_path / "bundle"
    stage_bundle(project, bundle)
    installed = _installed_by((bundle / "requirements.txt").read_text().splitlines())
    s3 = s3_bucket(moto_endpoint, "fearless-image-logs")
    port, output = free_port(), tmp_path / "api.log"
    argv = [sys.executable, "-c", IMAGE_ONLY, json.dumps(_importable_in(installed))]
    argv += ["--bundle", str(bundle), "--port", str(port), "--log-dir", str(tmp_path / "logs")]
    env = {
        **os.environ,
        "FEARLESS_AWS_ENDPOINT_URL": moto_endpoint,
        "FEARLESS_INFERENCE_LOG_S3": f"s3://fearless-image-logs/{family}",
    }
    with output.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, output)
        answer = httpx.post(f"{url}/predict", json={"records": [record]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"{url}/metadata", timeout=10).json()["scoring"]["path"] == scoring
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200
        proc.terminate()  # SIGTERM, as ECS stops a task: the last shipping pass runs
        proc.wait(timeout=60)
    finally:
        stop_processes(proc)
    said = output.read_text()
    assert "Traceback" not in said, said
    blocked = set(re.findall(r"^not in the image: (\S+)$", said, re.MULTILINE))
    assert not blocked & {"httpx", "httptools", "uvloop", "boto3", "pydantic_settings"}, said
    assert "serving on h11" not in said
    shipped = s3.list_objects_v2(Bucket="fearless-image-logs", Prefix=family).get("Contents", [])
    assert shipped, f"nothing shipped to S3:\n{said}"
