"""The model API: one model per process, loaded once, every answer logged before it is sent."""

# No `from __future__ import annotations` here: the /predict body type is built at runtime
# from the spec, and FastAPI must see it as a class, not as a string to look up.

import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from fearless.serving.inference_log import InferenceLog
from fearless.serving.predictor import Predictor
from fearless.serving.records import UnknownCategories, request_model
from fearless.spec import Column, ModelSpec


@dataclass
class ServedModel:
    """Everything the routes need, kept on `app.state.served`."""

    spec: ModelSpec
    digest: str
    model_path: Path
    log: InferenceLog | None
    unknown: UnknownCategories
    predictor: Predictor | None = None


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


def get_predictor(served: ServedDep) -> Predictor:
    if served.predictor is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "model not loaded yet")
    return served.predictor


def get_request_id(x_request_id: Annotated[str | None, Header()] = None) -> str:
    return x_request_id or uuid.uuid4().hex


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
RequestIdDep = Annotated[str, Depends(get_request_id)]

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


def predict_router(spec: ModelSpec) -> APIRouter:
    """POST /predict, with its request body validated against `spec.input_schema`."""
    PredictRequest = request_model(spec)
    router = APIRouter()

    @router.post("/predict")
    def predict(
        body: PredictRequest,
        served: ServedDep,
        predictor: PredictorDep,
        request_id: RequestIdDep,
        response: Response,
    ) -> PredictResponse:
        """Score 1 to 1000 records; 503 if the inference log cannot be written."""
        records = [record.model_dump(by_alias=True) for record in body.records]
        started = time.perf_counter()
        outputs = predictor.predict(records)
        latency_ms = (time.perf_counter() - started) * 1000
        served.unknown.observe(records)
        if served.log is not None:
            try:
                served.log.append(request_id, records, outputs, latency_ms)
            except OSError as exc:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    f"prediction not served: cannot write the inference log ({exc})",
                ) from exc
        response.headers["X-Request-ID"] = request_id
        return PredictResponse(model=spec.name, digest=served.digest, predictions=outputs)

    return router


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
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
    served.predictor = Predictor.load(served.model_path, served.spec.column_names)
    yield


def create_app(spec: ModelSpec, model_path: Path, digest: str, log_dir: Path | None) -> FastAPI:
    """The API for one model; the model file is loaded at startup, not per request.

    With `log_dir`, every scored record is appended to the inference log under it.
    """
    app = FastAPI(title=f"{spec.name} model API", version=digest, lifespan=_load_model)
    app.state.served = ServedModel(
        spec=spec,
        digest=digest,
        model_path=Path(model_path),
        log=InferenceLog(log_dir, spec.name, digest) if log_dir is not None else None,
        unknown=UnknownCategories(spec),
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(probes)
    app.include_router(predict_router(spec))
    return app
