"""The Open Inference Protocol (KServe V2 REST), so tritonclient and KServe clients work as is.

The request and output formats are in `oip_codec`. Errors answer `{"error": message}`: 400
for a bad request, 404 for another model's name, 413 for an input of more than MAX_RECORDS
values (refused before anything is decoded; decoding runs off the event loop).
"""

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from fearless.serving.forwarding import forward_after
from fearless.serving.oip_codec import (
    DATATYPE,
    HEADER_LENGTH,
    InferRequest,
    V2Error,
    output_tensor,
    parse_infer_request,
    short,
    tensors_to_records,
)
from fearless.serving.openapi import inline_schema
from fearless.serving.records import MAX_RECORDS
from fearless.serving.routes import new_request_id
from fearless.serving.served import ServedDep, ServedModel
from fearless.spec import ModelSpec


def _error(message: str, status: int = 400) -> Response:
    return Response(orjson.dumps({"error": message}), status, media_type="application/json")


def decode(served: ServedModel, body: bytes, header_length: str | None) -> tuple:
    """The request and its records, validated as /predict validates them (V2Error if not)."""
    parsed, values = parse_infer_request(body, header_length, MAX_RECORDS)
    records = tensors_to_records(served.spec, parsed, values)
    try:
        return parsed, served.records.validate_python({"records": records})["records"]
    except ValidationError as exc:
        raise V2Error(short(exc)) from None


def oip_router(spec: ModelSpec) -> APIRouter:
    """The V2 routes for the one model this process serves, under its spec name."""
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
        ok = served.ready()
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
            header_length = request.headers.get(HEADER_LENGTH)
            # Bounded (MAX_RECORDS values per input) but still CPU work: off the event loop.
            parsed, checked = await run_in_threadpool(decode, served, body, header_length)
        except V2Error as exc:
            return _error(str(exc), exc.status)
        finally:
            served.batcher.receiving -= 1
        request_id = parsed.id or request.headers.get("x-request-id") or new_request_id()
        try:
            predictions = await served.predict(request_id, served.complete(checked))
        except HTTPException as exc:
            return _error(str(exc.detail), 400 if exc.status_code == 422 else exc.status_code)
        outputs = [output_tensor("prediction", [p["prediction"] for p in predictions])]
        if any(p["score"] is not None for p in predictions):
            outputs.append(output_tensor("score", [p["score"] for p in predictions]))
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
        return Response(
            orjson.dumps(answer),
            media_type="application/json",
            background=forward_after(request, body, request_id),
        )

    return router
