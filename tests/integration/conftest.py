"""Shared by the integration tests: one moto server (AWS APIs on 127.0.0.1) per session."""

from __future__ import annotations

import pytest
from moto.server import ThreadedMotoServer

AWS_REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint():
    """The URL of a moto server, with dummy credentials in the environment meanwhile."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.setenv(name, "testing")
        env.setenv("AWS_DEFAULT_REGION", AWS_REGION)
        yield f"http://{host}:{port}"
    server.stop()
