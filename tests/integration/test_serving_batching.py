"""Micro-batching over real HTTP: concurrent one-record requests to a tree model served by
uvicorn share predict calls, counted by the model API's own /metrics."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pandas as pd
import pytest
import uvicorn

from fearless.serving.app import create_app
from fearless.spec import load_spec
from tests.conftest import _free_port
from tests.unit.serving_models import tree_project

DIGEST = "sha256:" + "ef" * 32
REQUESTS = 16


@contextmanager
def serving(app) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _request(record: dict) -> bytes:
    body = json.dumps({"records": [record]}).encode()
    head = (
        "POST /predict HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def _status(connection: socket.socket) -> int:
    """Read one keep-alive answer off `connection`; its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            v
            for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
            if k.lower() == b"content-length"
        )
    )
    while len(body) < length:
        body += connection.recv(65536)
    return int(head.split(b" ", 2)[1])


def _predict_calls(url: str) -> tuple[float, float]:
    """Predict calls and records scored, from the model API's Prometheus histogram."""
    found = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        found[name] = value
    return (
        float(found["fearless_predict_batch_records_count"]),
        float(found["fearless_predict_batch_records_sum"]),
    )


@pytest.mark.parametrize("family", ["RandomForestRegressor", "HistGradientBoostingClassifier"])
def test_concurrent_one_record_requests_share_predict_calls(tmp_path, family):
    project = tree_project(tmp_path / "project", family)
    spec = load_spec(project)
    records = pd.read_parquet(project / spec.reference_data).head(REQUESTS).to_dict("records")
    app = create_app(spec, project / spec.model, DIGEST, tmp_path / "inference")
    entered, all_sent = threading.Event(), threading.Event()
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        # Keep-alive connections, each answered once first, as a load generator holds them.
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in records]
        for connection, record in zip(connections, records, strict=True):
            connection.sendall(_request(record))
            assert _status(connection) == 200
        calls_before, _ = _predict_calls(url)

        predictor = app.state.served.predictor
        real = predictor.predict

        def busy_until_all_are_sent(batch):
            # The first call stays busy until every other request is on the wire: they wait
            # in the socket buffers meanwhile, as they do behind a busy model under load.
            predictor.predict = real
            entered.set()
            all_sent.wait(timeout=30)
            return real(batch)

        predictor.predict = busy_until_all_are_sent
        first, *others = connections
        first.sendall(_request(records[0]))
        assert entered.wait(timeout=30)
        for connection, record in zip(others, records[1:], strict=True):
            connection.sendall(_request(record))
        all_sent.set()
        codes = [_status(connection) for connection in connections]
        for connection in connections:
            connection.close()
        calls, scored = _predict_calls(url)

    assert codes == [200] * REQUESTS
    assert scored == 2 * REQUESTS
    calls -= calls_before
    assert calls < REQUESTS / 2, f"{REQUESTS} concurrent requests took {calls:.0f} predict calls"
