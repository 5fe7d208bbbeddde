"""Open Inference Protocol (KServe V2 REST) requests as records, and outputs as tensors.

One input tensor per schema column (shape `[n]` or `[n, 1]`; INT64 for ints, FP64 for floats,
BYTES for categories, BOOL for bools; any integer or float datatype is accepted where it
fits), JSON or Triton's binary tensor extension (little-endian; BYTES as 4-byte lengths each
followed by that many bytes).
"""

import struct
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


def flat(data: list[Any]) -> list[Any]:
    if data and isinstance(data[0], list):
        return [item for row in data for item in (row if isinstance(row, list) else [row])]
    return data


def _binary(tensor: TensorInput, raw: bytes, count: int) -> list[Any]:
    """Values of a tensor sent in Triton's binary extension (little-endian; BYTES as 4-byte
    lengths each followed by that many bytes): `count` of them, the number its shape says."""
    if tensor.datatype == "BYTES":
        values, at = [], 0
        while at < len(raw):
            if len(values) == count:
                raise V2Error(f"input {tensor.name!r}: binary_data_size holds over {count} values")
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
    if len(raw) != count * np.dtype(dtype).itemsize:
        raise V2Error(
            f"input {tensor.name!r}: binary_data_size {len(raw)} is not {count} "
            f"{tensor.datatype} values as its shape says"
        )
    return np.frombuffer(raw, dtype=dtype).tolist()


def _elements(tensor: TensorInput, max_records: int) -> int:
    """How many values a tensor's shape declares, refused (413) over `max_records` before
    anything is decoded, so the work a request can ask for is bounded by the limit."""
    if any(dim < 0 for dim in tensor.shape):
        raise V2Error(f"input {tensor.name!r}: shape {tensor.shape} has a negative dimension")
    count = 1
    for dim in tensor.shape:
        count *= dim
    if count > max_records:
        raise V2Error(
            f"input {tensor.name!r}: shape {tensor.shape} is {count} values; at most "
            f"{max_records} records per request",
            413,
        )
    return count


def parse_infer_request(
    body: bytes, header_length: str | None, max_records: int
) -> tuple[InferRequest, dict]:
    """The request and each input's values (flat lists), from JSON or JSON + binary tensors;
    no input may hold more than `max_records` values (413), nor data its shape does not say."""
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
        raise V2Error(f"invalid inference request: {short(exc)}") from None
    counts = [_elements(tensor, max_records) for tensor in request.inputs]
    values, at = {}, 0
    for tensor, count in zip(request.inputs, counts, strict=True):
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or at + size > len(rest):
                raise V2Error(f"input {tensor.name!r}: binary_data_size outside the body")
            values[tensor.name] = _binary(tensor, rest[at : at + size], count)
            at += size
        elif tensor.data is not None:
            if len(tensor.data) > max_records:
                raise V2Error(
                    f"input {tensor.name!r}: {len(tensor.data)} values; at most "
                    f"{max_records} records per request",
                    413,
                )
            values[tensor.name] = flat(tensor.data)
        else:
            raise V2Error(f"input {tensor.name!r}: no data")
    return request, values


def short(exc: ValidationError) -> str:
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


def output_tensor(name: str, data: list[Any]) -> dict[str, Any]:
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
