"""The Open Inference Protocol (KServe V2 REST), so tritonclient and KServe clients work as is.

One input tensor per schema column (shape `[n]` or `[n, 1]`; INT64 for ints, FP64 for floats,
BYTES for categories, BOOL for bools; any integer or float datatype is accepted where it
fits), JSON or Triton's binary tensor extension; outputs `prediction` and `score` (`[n]`).
Errors answer `{"error": message}`: 400 for a bad request, 404 for another model's name.
"""

import struct
import uuid
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fearless.serving.openapi import inline_schema
from fearless.spec import ColumnType, ModelSpec

DATATYPE = {
    ColumnType.int: "INT64",
    ColumnType.float: "FP64",
    ColumnType.category: "BYTES",
    ColumnType.bool: "BOOL",
}
NUMPY = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
HEADER_LENGTH = "inference-header-content-length"


class V2Error(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class TensorInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    shape: list[int] = Field(max_length=2)
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[TensorInput] = Field(min_length=1)
    outputs: list[dict[str, Any]] | None = None


def _error(message: str, status: int = 400) -> Response:
    return Response(orjson.dumps({"error": message}), status, media_type="application/json")


def _flat(data: list[Any]) -> list[Any]:
    if data and isinstance(data[0], list):
        return [item for row in data for item in (row if isinstance(row, list) else [row])]
    return data


def _binary(tensor: TensorInput, raw: bytes) -> list[Any]:
    """Values of a tensor sent in Triton's binary extension (little-endian; BYTES as 4-byte
    lengths each followed by that many bytes)."""
    if tensor.datatype == "BYTES":
        values, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise V2Error(f"input {tensor.name!r}: truncated BYTES tensor")
            (size,) = struct.unpack_from("<I", raw, at)
            chunk = raw[at + 4 : at + 4 + size]
            if len(chunk) != size:
                raise V2Error(f"input {tensor.name!r}: truncated BYTES tensor")
            try:
                values.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise V2Error(f"input {tensor.name!r}: BYTES element is not UTF-8") from None
            at += 4 + size
        return values
    dtype = NUMPY.get(tensor.datatype)
    if dtype is None:
        raise V2Error(f"input {tensor.name!r}: unsupported datatype {tensor.datatype!r}")
    if len(raw) % np.dtype(dtype).itemsize:
        raise V2Error(f"input {tensor.name!r}: {len(raw)} bytes is not a whole {tensor.datatype}")
    return np.frombuffer(raw, dtype=dtype).tolist()


def parse_infer_request(body: bytes, header_length: str | None) -> tuple[InferRequest, dict]:
    """The request and each input's values (flat lists), from JSON or JSON + binary tensors."""
    json_part, rest = body, b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise V2Error("Inference-Header-Content-Length is not a number") from None
        if not 0 <= size <= len(body):
            raise V2Error("Inference-Header-Content-Length is outside the body")
        json_part, rest = body[:size], body[size:]
    try:
        request = InferRequest.model_validate_json(json_part)
    except ValidationError as exc:
        raise V2Error(f"invalid inference request: {_short(exc)}") from None
    values, at = {}, 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or at + size > len(rest):
                raise V2Error(f"input {tensor.name!r}: binary_data_size outside the body")
            values[tensor.name] = _binary(tensor, rest[at : at + size])
            at += size
        elif tensor.data is not None:
            values[tensor.name] = _flat(tensor.data)
        else:
            raise V2Error(f"input {tensor.name!r}: no data")
    return request, values


def _short(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )


def tensors_to_records(spec: ModelSpec, request: InferRequest, values: dict) -> list[dict]:
    """One record per row, checked for names and lengths (types are checked by the caller)."""
    names = spec.column_names
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise V2Error(f"inputs not in the model's schema: {', '.join(unknown)}")
    missing = [c.name for c in spec.input_schema if c.name not in values and not c.nullable]
    if missing:
        raise V2Error(f"missing inputs: {', '.join(missing)}")
    rows = {len(v) for v in values.values()}
    if len(rows) != 1:
        raise V2Error("every input must have the same number of elements (one per record)")
    for tensor in request.inputs:
        count = 1
        for dim in tensor.shape:
            count *= dim
        if count != len(values[tensor.name]) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise V2Error(f"input {tensor.name!r}: shape {tensor.shape} does not match its data")
    [n] = rows
    present = [c for c in names if c in values]
    return [{c: values[c][i] for c in present} for i in range(n)]


def _output(name: str, data: list[Any]) -> dict[str, Any]:
    sample = next((v for v in data if v is not None), 0.0)
    if isinstance(sample, bool):
        datatype = "BOOL"
    elif isinstance(sample, int):
        datatype = "INT64"
    elif isinstance(sample, float):
        datatype = "FP64"
    else:
        datatype, data = "BYTES", [str(v) for v in data]
    return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}


def oip_router(spec: ModelSpec) -> APIRouter:
    """The V2 routes for the one model this process serves, under its spec name."""
    from fearless.serving.app import ServedDep

    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (KServe V2)"])
    model_inputs = [
        {"name": c.name, "datatype": DATATYPE[c.type], "shape": [-1]} for c in spec.input_schema
    ]

    def unknown_model(name: str) -> Response | None:
        if name == spec.name:
            return None
        return _error(f"unknown model {name!r}; this server serves {spec.name!r}", 404)

    @router.get("")
    def server_metadata() -> dict[str, Any]:
        return {"name": "fearless", "version": "2", "extensions": ["binary_tensor_data"]}

    @router.get("/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/health/ready")
    def server_ready(served: ServedDep) -> Response:
        ok = served.predictor is not None
        return Response(
            orjson.dumps({"ready": ok}), 200 if ok else 503, media_type="application/json"
        )

    @router.get("/models/{name}")
    def model_metadata(name: str, served: ServedDep) -> Any:
        if (refused := unknown_model(name)) is not None:
            return refused
        outputs = [
            {"name": "prediction", "datatype": "FP64", "shape": [-1]},
            {"name": "score", "datatype": "FP64", "shape": [-1]},
        ]
        return {
            "name": spec.name,
            "versions": [served.digest],
            "platform": "sklearn",
            "inputs": model_inputs,
            "outputs": outputs,
        }

    @router.get("/models/{name}/ready")
    def model_ready(name: str, served: ServedDep) -> Response:
        return unknown_model(name) or server_ready(served)

    @router.post(
        "/models/{name}/infer",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": inline_schema(InferRequest.model_json_schema())}
                },
            }
        },
        responses={
            400: {"description": "Bad inference request"},
            404: {"description": "Unknown model"},
        },
    )
    async def infer(name: str, request: Request, served: ServedDep) -> Response:
        if (refused := unknown_model(name)) is not None:
            return refused
        served.batcher.receiving += 1
        try:
            body = await request.body()
            parsed, values = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
            records = tensors_to_records(spec, parsed, values)
            try:
                checked = served.records.validate_python({"records": records})["records"]
            except ValidationError as exc:
                raise V2Error(_short(exc)) from None
        except V2Error as exc:
            return _error(str(exc), exc.status)
        finally:
            served.batcher.receiving -= 1
        request_id = parsed.id or request.headers.get("x-request-id") or uuid.uuid4().hex
        try:
            predictions = await served.predict(request_id, served.complete(checked))
        except HTTPException as exc:
            return _error(str(exc.detail), 400 if exc.status_code == 422 else exc.status_code)
        outputs = [_output("prediction", [p["prediction"] for p in predictions])]
        if any(p["score"] is not None for p in predictions):
            outputs.append(_output("score", [p["score"] for p in predictions]))
        wanted = {o.get("name") for o in parsed.outputs or []}
        if wanted:
            unknown = wanted - {o["name"] for o in outputs}
            if unknown:
                return _error(f"unknown outputs: {', '.join(sorted(map(str, unknown)))}")
            outputs = [o for o in outputs if o["name"] in wanted]
        answer = {
            "model_name": spec.name,
            "model_version": served.digest,
            "id": request_id,
            "outputs": outputs,
        }
        return Response(orjson.dumps(answer), media_type="application/json")

    return router
