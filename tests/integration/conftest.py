"""Shared by the integration tests: one moto server (AWS APIs on 127.0.0.1) per session."""

from __future__ import annotations

import pytest
from moto.server import ThreadedMotoServer

AWS_REGION = "us-east-1"


@pytest.fixture(scope="session")
def aws_calls():
    """Every AWS call Fearless makes from here on, with the role that makes it (aws_calls.py)."""
    from tests.integration.aws_calls import AwsCalls

    with pytest.MonkeyPatch.context() as patch:
        yield AwsCalls().install(patch)


@pytest.fixture(autouse=True)
def only_granted_aws_calls(request):
    """A test on moto fails if Fearless made a call there that infra/ grants no role making it
    (checked after the test, on the calls made since the last check: its fixtures' too)."""
    if "moto_endpoint" not in request.fixturenames:
        yield
        return
    from tests.unit.iam_policies import ungranted

    recorded = request.getfixturevalue("aws_calls")
    yield
    calls, recorded.checked = recorded.calls[recorded.checked :], len(recorded.calls)
    missing = ungranted((c.role, c.action) for c in calls)
    assert not missing, "not granted in infra/: " + "; ".join(
        str(c) for c in calls if (c.role, c.action) in missing
    )


@pytest.fixture(scope="module")
def moto_endpoint(moto_server):
    """The moto server, its account emptied for each test module: modules count what exists."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"))
    return moto_server


@pytest.fixture(scope="session")
def moto_server(aws_calls):
    """The URL of a moto server, with dummy credentials in the environment meanwhile; every
    call Fearless makes to it is recorded in `aws_calls`."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.setenv(name, "testing")
        env.setenv("AWS_DEFAULT_REGION", AWS_REGION)
        yield f"http://{host}:{port}"
    server.stop()


def s3_bucket(moto_endpoint: str, bucket: str):
    """An S3 client of the moto server, with `bucket` created."""
    import boto3

    client = boto3.client("s3", region_name=AWS_REGION, endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=bucket)
    return client


def serve_model(project, log_dir=None):
    """`python -m fearless.serving` for a model project on a free port, once it is ready."""
    import subprocess
    import sys

    from tests.integration.test_loadtest_runner import _free_port, _wait_ready

    port = _free_port()
    argv = [sys.executable, "-m", "fearless.serving", "--spec", str(project / "fearless.yaml")]
    argv += ["--port", str(port)] + (["--log-dir", str(log_dir)] if log_dir else [])
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(proc, url, timeout_s=60)
    return proc, url


def stop_processes(*procs) -> None:
    """Terminate, then kill what has not exited within 10 s."""
    import subprocess

    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def model_api(credit_project, tmp_path_factory):
    """The example credit model served as a data scientist would try it, logging what it
    serves; one per test module, so each module's log holds only its own traffic."""
    log_dir = tmp_path_factory.mktemp("served")
    proc, url = serve_model(credit_project, log_dir)
    try:
        yield url, log_dir
    finally:
        stop_processes(proc)
