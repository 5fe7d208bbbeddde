"""The one model a process serves: scoring, logging and the HTTP errors of both."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from fearless.serving.batching import BatchOptions, Job, MicroBatcher, ScoringError
from fearless.serving.body_limit import DEFAULT_MAX_BODY_BYTES
from fearless.serving.inference_log import SEGMENT_BYTES, InferenceLog
from fearless.serving.metrics import Metrics
from fearless.serving.predictor import Predictor
from fearless.serving.records import UnknownCategories, records_adapter
from fearless.spec import ModelSpec

REFERENCE_SAMPLE_ROWS = 500
LOG_RETRY_AFTER_S = 5  # what a 503 for an unwritable log tells clients to wait


@dataclass(frozen=True)
class ServingOptions:
    """Limits and batching of one model API; the defaults suit the example model."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    batch: BatchOptions = field(default_factory=BatchOptions)
    trust_pickle: bool = False
    fast_path: bool = True
    log_segment_bytes: int = SEGMENT_BYTES


@dataclass
class ServedModel:
    """Everything the routes need, kept on `app.state.served`."""

    spec: ModelSpec
    digest: str
    model_path: Path
    reference_path: Path | None
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

    def ready(self) -> bool:
        """Loaded, and its inference log takes rows (a full disk makes it not ready)."""
        return self.predictor is not None and (self.log is None or self.log.writable())

    def load(self) -> Predictor:
        """The model, on its fast path when that answers as the model does on the reference
        sample (see `fearless.serving.fastpath`)."""
        predictor = Predictor.load(
            self.model_path,
            self.spec.input_schema,
            trust_pickle=self.options.trust_pickle,
            trusted_types=self.spec.trusted_types,
        )
        if self.options.fast_path:
            predictor.use_fast_path(self.reference_sample())
        else:
            predictor.path_detail = "turned off"
        return predictor

    def reference_sample(self) -> list[dict[str, Any]]:
        """Up to REFERENCE_SAMPLE_ROWS reference records as the API would receive them;
        none when there is no readable reference data."""
        from fearless.bundles.bundle import BundleError, read_reference

        if self.reference_path is None:
            return []
        try:
            frame = read_reference(self.spec, self.reference_path).head(REFERENCE_SAMPLE_ROWS)
            body = self.records.validate_python({"records": frame.to_dict("records")})
        except (BundleError, ValidationError):
            return []
        return self.complete(body["records"])

    def complete(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records in schema order, a left-out nullable column as None."""
        if not self.nullable:
            return records
        columns = self.spec.column_names
        return [{c: record.get(c) for c in columns} for record in records]

    def score(self, jobs: list[Job]) -> list[list[dict[str, Any]]]:
        """Score and log several requests with one predict call and one log write (the
        batcher calls it on the event loop); the outputs of each job, in order."""
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

    def validate(self, raw: bytes) -> list[dict[str, Any]]:
        """The records of a POST /predict body (pydantic-core straight from the bytes into
        plain dicts); RequestValidationError naming the field, as FastAPI would raise it."""
        try:
            body = self.records.validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(_body_errors(exc)) from None
        return self.complete(body["records"])

    async def answer(self, request_id: str, records: list[dict[str, Any]]) -> bytes:
        """The JSON answer of POST /predict for validated records (see `predict`)."""
        outputs = await self.predict(request_id, records)
        answer = {"model": self.spec.name, "digest": self.digest, "predictions": outputs}
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

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
                headers={"Retry-After": str(LOG_RETRY_AFTER_S)},
            ) from exc


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors located as FastAPI locates them (under "body")."""
    errors = exc.errors(include_url=False)
    for error in errors:
        error["loc"] = ("body", *error["loc"])
        if error["type"] == "json_invalid":
            error.pop("input", None)  # the raw bytes: not JSON-renderable
    return errors


async def get_served(request: Request) -> ServedModel:
    """Async, so FastAPI calls it on the event loop instead of in a worker thread."""
    return request.app.state.served


ServedDep = Annotated[ServedModel, Depends(get_served)]
