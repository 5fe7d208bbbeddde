"""The model API: one model per process, loaded once, every answer logged before it is sent."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig

from fearless.serving.body_limit import BodyLimitMiddleware
from fearless.serving.forwarding import Forwarder, ShadowConfig
from fearless.serving.inference_log import InferenceLog
from fearless.serving.lane import PredictLane, validation_detail
from fearless.serving.metrics import Metrics, MetricsMiddleware
from fearless.serving.oip import oip_router
from fearless.serving.records import UnknownCategories
from fearless.serving.routes import predict_router, probes
from fearless.serving.served import ServedModel, ServingOptions
from fearless.spec import ModelSpec

__all__ = ["ServingOptions", "create_app"]


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(
        {"detail": validation_detail(exc)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


def telemetry_config(environ: Mapping[str, str]) -> TelemetryConfig | None:
    """FastAPI's own OpenTelemetry as FastAPI sets it (None) where the environment configures
    OpenTelemetry (an `OTEL_*` variable, as `opentelemetry-instrument` and collectors' sidecars
    set); off otherwise. Left on, FastAPI checked on every request that no provider was
    configured, each check a lookup in the environment: 5% of the model API's CPU a request,
    for spans nobody collects. The API's own metrics are at /metrics either way."""
    if any(name.startswith("OTEL_") or name == "FASTAPI_OTEL_AUTO_CONFIGURE" for name in environ):
        return None
    return {"tracing": False, "metrics": False, "logs": False}


@asynccontextmanager
async def _load_model(app: FastAPI) -> AsyncIterator[None]:
    served: ServedModel = app.state.served
    forwarder: Forwarder | None = app.state.forwarder
    predictor = served.load()
    # The model and the app are long-lived: keep them out of the garbage collector's passes,
    # which otherwise walk them all and pause every request in flight (p99).
    gc.collect()
    gc.freeze()
    await served.batcher.start()
    served.predictor = predictor
    if forwarder is not None:
        forwarder.open()
    try:
        yield
    finally:
        served.predictor = None
        if forwarder is not None:
            await forwarder.close()
        await served.batcher.stop()
        if served.log is not None:
            served.log.close()  # its last segment compacted, so a last shipping pass sends it
        for stopped in app.state.after_stop:
            stopped()


def create_app(
    spec: ModelSpec,
    model_path: Path,
    digest: str,
    log_dir: Path | None,
    options: ServingOptions | None = None,
    reference_path: Path | None = None,
    shadow: ShadowConfig | None = None,
    after_stop: Sequence[Callable[[], object]] = (),
) -> FastAPI:
    """The API for one model; the model file is loaded at startup, not per request.

    With `log_dir`, every scored record is appended to the inference log under it. The
    reference data (default: `spec.reference_data` beside the model file) is the sample the
    model's fast path is checked on before it is used. With `shadow`, a sample of the
    predictions answered is forwarded there (`fearless.serving.forwarding`). `after_stop` runs
    once the app has stopped serving and closed its log, inside the server's shutdown: uvicorn
    re-raises the SIGTERM it shut down on, so code after `uvicorn.run` never runs then.
    """
    model_path = Path(model_path)
    options = options or ServingOptions()
    app = FastAPI(
        title=f"{spec.name} model API",
        version=digest,
        lifespan=_load_model,
        telemetry=telemetry_config(os.environ),
    )
    served = ServedModel(
        spec=spec,
        digest=digest,
        model_path=model_path,
        reference_path=reference_path or model_path.parent / spec.reference_data,
        log=InferenceLog(
            log_dir,
            spec.name,
            digest,
            schema=spec.input_schema,
            segment_bytes=options.log_segment_bytes,
        )
        if log_dir is not None
        else None,
        unknown=UnknownCategories(spec),
        options=options,
        metrics=Metrics(),
    )
    app.state.served = served
    app.state.after_stop = list(after_stop)
    app.state.forwarder = forwarder = (
        Forwarder(shadow, served.metrics.shadow_forwards) if shadow is not None else None
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(probes)
    app.include_router(predict_router(spec))
    app.include_router(oip_router(spec))
    app.add_middleware(PredictLane, served=served, forwarder=forwarder)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=options.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=served.metrics)
    return app
