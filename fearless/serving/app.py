"""The model API: one model per process, loaded once, every answer logged before it is sent."""

import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from fearless.serving.batching import BatchOptions, Job, MicroBatcher, ScoringError
from fearless.serving.body_limit import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from fearless.serving.inference_log import InferenceLog
from fearless.serving.metrics import Metrics, MetricsMiddleware
from fearless.serving.openapi import inline_schema
from fearless.serving.predictor import Predictor
from fearless.serving.records import UnknownCategories, records_adapter, request_model
from fearless.spec import Column, ModelSpec


@dataclass(frozen=True)
class ServingOptions:
    """Limits and batching of one model API; the defaults suit the example model."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    batch: BatchOptions = field(default_factory=BatchOptions)
    trust_pickle: bool = True


@dataclass
class ServedModel:
    """Everything the routes need, kept on `app.state.served`."""

    spec: ModelSpec
    digest: str
    model_path: Path
    log: InferenceLog | None
    unknown: UnknownCategories
    options: ServingOptions
    metrics: Metrics
    predictor: Predictor | None = None
    records: TypeAdapter = field(init=False)
    nullable: list[str] = field(init=False)
    batcher: MicroBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.records = records_adapter(self.spec)
        self.nullable = [c.name for c in self.spec.input_schema if c.nullable]
        self.batcher = MicroBatcher(self.score, self.options.batch)

    def complete(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records in schema order, a left-out nullable column as None."""
        if not self.nullable:
            return records
        columns = self.spec.column_names
        return [{c: record.get(c) for c in columns} for record in records]

    def score(self, jobs: list[Job]) -> list[list[dict[str, Any]]]:
        """Score and log several requests with one predict call and one log write (this runs
        in the batcher's thread); the outputs of each job, in order."""
        records = [record for job in jobs for record in job.records]
        started = time.perf_counter()
        try:
            outputs = self.predictor.predict(records)
        except Exception as exc:
            raise ScoringError(f"the model cannot score these records ({exc})") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        self.unknown.observe(records)
        self.metrics.batch_records.observe(len(records))
        self.metrics.records.inc(len(records))
        per_job, at = [], 0
        for job in jobs:
            per_job.append(outputs[at : at + len(job.records)])
            at += len(job.records)
        if self.log is not None:
            entries = [(j.request_id, j.records, out) for j, out in zip(jobs, per_job, strict=True)]
            self.log.append_batch(entries, latency_ms)
        return per_job

    async def predict(self, request_id: str, records: list[dict[str, Any]]) -> list[dict]:
        """Score validated records (batched with concurrent requests); HTTP errors for a model
        that is not loaded (503), records it cannot score (422), an unwritable log (503)."""
        if self.predictor is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "model not loaded yet")
        try:
            return await self.batcher.submit(request_id, records)
        except ScoringError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        except OSError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"prediction not served: cannot write the inference log ({exc})",
            ) from exc


class Prediction(BaseModel):
    prediction: str | int | float | bool
    score: float | None


class PredictResponse(BaseModel):
    model: str
    digest: str
    predictions: list[Prediction]


class Metadata(BaseModel):
    name: str
    digest: str
    input_schema: list[Column] = Field(serialization_alias="schema")
    unknown_categories: dict[str, int] = Field(
        description="Records seen per category column with a value outside the spec's values."
    )


def get_served(request: Request) -> ServedModel:
    return request.app.state.served


ServedDep = Annotated[ServedModel, Depends(get_served)]

probes = APIRouter()


@probes.get("/health")
def health() -> dict[str, str]:
    """The process is up (says nothing about the model)."""
    return {"status": "ok"}


@probes.get("/ready")
def ready(served: ServedDep) -> JSONResponse:
    """200 once the model is loaded and requests can be scored, 503 before."""
    loaded = served.predictor is not None
    code = status.HTTP_200_OK if loaded else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse({"ready": loaded}, status_code=code)


@probes.get("/metadata")
def metadata(served: ServedDep) -> Metadata:
    return Metadata(
        name=served.spec.name,
        digest=served.digest,
        input_schema=list(served.spec.input_schema),
        unknown_categories=served.unknown.snapshot(),
    )


@probes.get("/metrics", response_class=Response)
def metrics(served: ServedDep) -> Response:
    """Prometheus text format: requests, errors and latency per route; records per predict."""
    return Response(served.metrics.render(), media_type=served.metrics.content_type)


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors located as FastAPI locates them (under "body")."""
    errors = exc.errors(include_url=False)
    for error in errors:
        error["loc"] = ("body", *error["loc"])
        if error["type"] == "json_invalid":
            error.pop("input", None)  # the raw bytes: not JSON-renderable
    return errors


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
    async def predict(request: Request, served: ServedDep) -> Response:
        """Score 1 to 1000 records; 503 if the inference log cannot be written."""
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        served.batcher.receiving += 1
        try:
            raw = await request.body()
            try:
                body = served.records.validate_json(raw)
            except ValidationError as exc:
                raise RequestValidationError(_body_errors(exc)) from None
        finally:
            served.batcher.receiving -= 1
        outputs = await served.predict(request_id, served.complete(body["records"]))
        answer = {"model": spec.name, "digest": served.digest, "predictions": outputs}
        return Response(
            orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY),
            media_type="application/json",
            headers={"X-Request-ID": request_id},
        )

    return router


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with NaN/inf inputs echoed as strings: JSON has no NaN, and an error
    that cannot be rendered would turn a client's mistake into a 500."""
    detail = _finite(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


@asynccontextmanager
async def _load_model(app: FastAPI) -> AsyncIterator[None]:
    served: ServedModel = app.state.served
    predictor = Predictor.load(
        served.model_path, served.spec.column_names, trust_pickle=served.options.trust_pickle
    )
    await served.batcher.start()
    served.predictor = predictor
    try:
        yield
    finally:
        served.predictor = None
        await served.batcher.stop()


def create_app(
    spec: ModelSpec,
    model_path: Path,
    digest: str,
    log_dir: Path | None,
    options: ServingOptions | None = None,
) -> FastAPI:
    """The API for one model; the model file is loaded at startup, not per request.

    With `log_dir`, every scored record is appended to the inference log under it.
    """
    from fearless.serving.oip import oip_router

    options = options or ServingOptions()
    app = FastAPI(title=f"{spec.name} model API", version=digest, lifespan=_load_model)
    served = ServedModel(
        spec=spec,
        digest=digest,
        model_path=Path(model_path),
        log=InferenceLog(log_dir, spec.name, digest) if log_dir is not None else None,
        unknown=UnknownCategories(spec),
        options=options,
        metrics=Metrics(),
    )
    app.state.served = served
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(probes)
    app.include_router(predict_router(spec))
    app.include_router(oip_router(spec))
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=options.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=served.metrics)
    return app
