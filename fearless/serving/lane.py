"""POST /predict straight from ASGI, in front of FastAPI.

FastAPI's per-request machinery (routing, dependency solving, exit stacks, exception
middleware) costs more than scoring a request does once requests are batched, so the lane
answers POST /predict itself, with the same validation, errors and answer as the documented
route in `routes` (both call `ServedModel.validate` and `ServedModel.answer`, and both forward
an answered request to a shadow, if any). It sits inside the body-limit and metrics
middleware, so 413s and metrics are the same either way.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

from fastapi import HTTPException, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError

from fearless.serving.forwarding import Forwarder
from fearless.serving.routes import new_request_id
from fearless.serving.served import ServedModel

ROUTE = SimpleNamespace(path="/predict")  # what the metrics middleware labels requests by


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def validation_detail(exc: RequestValidationError) -> Any:
    """FastAPI's 422 detail, with NaN/inf inputs echoed as strings: JSON has no NaN, and an
    error that cannot be rendered would turn a client's mistake into a 500."""
    return _finite(jsonable_encoder(exc.errors()))


class PredictLane:
    """Pure ASGI: POST /predict answered here; everything else passed on to the app."""

    def __init__(self, app, served: ServedModel, forwarder: Forwarder | None = None) -> None:
        self.app = app
        self.served = served
        self.forwarder = forwarder

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        request_id = _header(scope, b"x-request-id") or new_request_id()
        served = self.served
        extra: list[tuple[bytes, bytes]] = []
        try:
            served.batcher.receiving += 1
            try:
                raw = await _body(receive)
                if raw is None:
                    return  # the client went away
                records = served.validate(raw)
            finally:
                served.batcher.receiving -= 1
            code, body = 200, await served.answer(request_id, records)
        except RequestValidationError as exc:
            code = status.HTTP_422_UNPROCESSABLE_CONTENT
            body = _json({"detail": validation_detail(exc)})
        except HTTPException as exc:
            code, body = exc.status_code, _json({"detail": exc.detail})
            extra = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode("latin-1", "replace")),
            *extra,
        ]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if self.forwarder is not None and code == 200:
            await self.forwarder.forward(scope, raw, request_id)


def _json(content: Any) -> bytes:
    """An error body as Starlette's JSONResponse renders it (orjson refuses ints over 64 bits,
    which a client's bad input may hold)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _body(receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
