"""The model API's own routes: probes, /metadata, /metrics and POST /predict."""

import itertools
import os

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from fearless.serving.forwarding import ShadowConfig, forward_after
from fearless.serving.openapi import inline_schema
from fearless.serving.records import request_model
from fearless.serving.served import ServedDep, ServedModel
from fearless.spec import Column, ModelSpec


class Prediction(BaseModel):
    prediction: str | int | float | bool
    score: float | None


class PredictResponse(BaseModel):
    model: str
    digest: str
    predictions: list[Prediction]


class Scoring(BaseModel):
    path: str = Field(
        description='"numpy": the model compiled into NumPy calls; "onnxruntime": the same, '
        "its final tree ensemble run by ONNX Runtime (scores within float32 rounding); both "
        'checked at load against the model itself on the reference sample; "pandas": the model '
        "itself, given a DataFrame."
    )
    detail: str = Field(
        description="The compiled steps, and why a runtime or the compiled model is not used."
    )


class Metadata(BaseModel):
    name: str
    digest: str
    input_schema: list[Column] = Field(serialization_alias="schema")
    unknown_categories: dict[str, int] = Field(
        description="Records seen per category column with a value outside the spec's values."
    )
    scoring: Scoring | None = Field(description="How records are scored; null before loading.")
    shadow: ShadowConfig | None = Field(
        description="Where a sample of the predictions answered is forwarded (url) and which "
        "fraction of them (sample); null when none is (`fearless.serving.forwarding`)."
    )


_PROCESS = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """Unique within a process run and across runs: a random prefix drawn once, then a
    counter (uuid4 reads the OS's random source on every request, a syscall)."""
    return f"{_PROCESS}-{next(_COUNTER):x}"


probes = APIRouter()


@probes.get("/health")
def health() -> dict[str, str]:
    """The process is up (says nothing about the model)."""
    return {"status": "ok"}


@probes.get("/ready")
def ready(served: ServedDep) -> JSONResponse:
    """200 once the model is loaded and requests can be scored (their log written), else 503."""
    ready = served.ready()
    code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse({"ready": ready}, status_code=code)


@probes.get("/metadata")
def metadata(served: ServedDep, request: Request) -> Metadata:
    predictor = served.predictor
    forwarder = request.app.state.forwarder
    return Metadata(
        name=served.spec.name,
        digest=served.digest,
        input_schema=list(served.spec.input_schema),
        unknown_categories=served.unknown.snapshot(),
        scoring=None
        if predictor is None
        else Scoring(path=predictor.path, detail=predictor.path_detail),
        shadow=None if forwarder is None else forwarder.config,
    )


@probes.get("/metrics", response_class=Response)
def metrics(served: ServedDep) -> Response:
    """Prometheus text format: requests, errors and latency per route; records per predict."""
    return Response(served.metrics.render(), media_type=served.metrics.content_type)


def predict_router(spec: ModelSpec) -> APIRouter:
    """POST /predict, with its request body validated against `spec.input_schema`.

    The body is read and validated by hand (pydantic-core straight from the bytes into plain
    dicts), and the answer rendered with orjson: FastAPI's body handling costs more per request
    than scoring does once requests are batched. The OpenAPI document still describes both.
    """
    body_schema = inline_schema(request_model(spec).model_json_schema())
    router = APIRouter()

    @router.post(
        "/predict",
        response_model=PredictResponse,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }
        },
        responses={
            413: {"description": "Request body too large"},
            422: {"description": "A record does not match the schema"},
            503: {"description": "Model not loaded, or the inference log cannot be written"},
        },
    )
    async def predict(request: Request) -> Response:
        """Score 1 to 1000 records; 503 if the inference log cannot be written.

        (Served by `PredictLane` in front of FastAPI; this route documents it, and answers
        the same when the lane is not installed.)"""
        served: ServedModel = request.app.state.served
        request_id = request.headers.get("x-request-id") or new_request_id()
        served.batcher.receiving += 1
        try:
            raw = await request.body()
            records = served.validate(raw)
        finally:
            served.batcher.receiving -= 1
        return Response(
            await served.answer(request_id, records),
            media_type="application/json",
            headers={"X-Request-ID": request_id},
            background=forward_after(request, raw, request_id),
        )

    return router
