"""An Open Inference Protocol request is bounded before it is decoded, and decoded off the
event loop: a 2 MB binary tensor of half a million elements once spent most of a second
decoding on the loop, stalling every other request of the model API."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from fearless.serving.app import ServingOptions, create_app
from fearless.serving.records import MAX_RECORDS
from fearless.spec import load_spec

INFER = "/v2/models/credit/infer"


def binary_request(tensors: list[tuple[str, str, int, bytes]]) -> tuple[bytes, dict]:
    """A Triton binary-extension body: (name, datatype, elements, raw bytes) per input."""
    inputs = [
        {"name": n, "datatype": d, "shape": [k], "parameters": {"binary_data_size": len(raw)}}
        for n, d, k, raw in tensors
    ]
    header = json.dumps({"inputs": inputs}).encode()
    body = header + b"".join(raw for *_, raw in tensors)
    return body, {"Inference-Header-Content-Length": str(len(header))}


def empty_strings(count: int) -> bytes:
    return struct.pack("<I", 0) * count


def reference_tensors(credit_project, rows: int) -> list[tuple[str, str, int, bytes]]:
    frame = pd.read_parquet(credit_project / "reference.parquet")
    frame = pd.concat([frame] * (rows // len(frame) + 1)).head(rows)
    spec = load_spec(credit_project)
    tensors = []
    for column in spec.input_schema:
        values = frame[column.name]
        if column.type.value == "category":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
            tensors.append((column.name, "BYTES", rows, raw))
        elif column.type.value == "int":
            tensors.append((column.name, "INT64", rows, values.to_numpy(np.int64).tobytes()))
        else:
            tensors.append((column.name, "FP64", rows, values.to_numpy(np.float64).tobytes()))
    return tensors


async def _send(credit_project, *requests, spy=None):
    spec = load_spec(credit_project)
    app = create_app(
        spec, credit_project / spec.model, "sha256:" + "0" * 64, None, ServingOptions()
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            answers = []
            for body, headers in requests:
                started = time.perf_counter()
                answer = await client.post(INFER, content=body, headers=headers)
                answers.append((answer, time.perf_counter() - started))
            return answers


def test_half_a_million_elements_are_refused_before_decoding(credit_project):
    body, headers = binary_request([("purpose", "BYTES", 500_000, empty_strings(500_000))])
    assert len(body) < ServingOptions().max_body_bytes  # under the body limit: it gets in

    [(answer, seconds)] = asyncio.run(_send(credit_project, (body, headers)))

    assert answer.status_code == 413, answer.text
    assert f"at most {MAX_RECORDS}" in answer.json()["error"]
    assert seconds < 0.2


def test_a_json_tensor_over_the_limit_is_refused_too(credit_project):
    rows = MAX_RECORDS + 1
    tensor = {"name": "age", "shape": [rows], "datatype": "INT64", "data": [30] * rows}
    body = json.dumps({"inputs": [tensor]}).encode()

    [(answer, _)] = asyncio.run(_send(credit_project, (body, {})))

    assert answer.status_code == 413 and f"at most {MAX_RECORDS}" in answer.json()["error"]


@pytest.mark.parametrize(
    ("declared", "raw"),
    [(2, np.zeros(200_000, np.int64).tobytes()), (2, empty_strings(400_000))],
    ids=["int64", "bytes"],
)
def test_binary_data_larger_than_its_shape_is_refused(credit_project, declared, raw):
    datatype = "BYTES" if len(raw) == 4 * 400_000 else "INT64"
    body, headers = binary_request([("age", datatype, declared, raw)])

    [(answer, seconds)] = asyncio.run(_send(credit_project, (body, headers)))

    assert answer.status_code == 400 and "binary_data_size" in answer.json()["error"], answer.text
    assert seconds < 0.2


def test_decoding_happens_off_the_event_loop_and_a_full_batch_still_scores(
    credit_project, monkeypatch
):
    from fearless.serving import oip

    threads, parse = [], oip.parse_infer_request

    def spied(*args, **kwargs):
        threads.append(threading.get_ident())
        return parse(*args, **kwargs)

    monkeypatch.setattr(oip, "parse_infer_request", spied)
    body, headers = binary_request(reference_tensors(credit_project, MAX_RECORDS))

    [(answer, _)] = asyncio.run(_send(credit_project, (body, headers)))

    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["prediction"]["shape"] == [MAX_RECORDS]
    assert threads and threading.get_ident() not in threads
