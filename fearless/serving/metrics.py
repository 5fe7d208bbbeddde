"""Prometheus metrics of the model API: requests, errors and latency per route, the size of
each predict call (how much micro-batching is saving) and forwards to a shadow."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
UNMATCHED = "<unmatched>"


class Metrics:
    """One registry per app, so several apps in one process (tests) keep separate counts."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fearless_http_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "fearless_http_errors",
            "HTTP requests answered with a 4xx or 5xx status, by route and status code.",
            ["route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fearless_http_request_duration_seconds",
            "Time from request to the end of the response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_records = Histogram(
            "fearless_predict_batch_records",
            "Records per predict call (several requests share one call under load).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.records = Counter(
            "fearless_predicted_records", "Records scored by the model.", registry=self.registry
        )
        self.shadow_forwards = Counter(
            "fearless_shadow_forwards",
            "Answered prediction requests forwarded to the shadow model API, by outcome "
            "(see fearless.serving.forwarding).",
            ["outcome"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe(self, route: str, code: int, seconds: float) -> None:
        label = str(code)
        self.requests.labels(route, label).inc()
        if code >= 400:
            self.errors.labels(route, label).inc()
        self.latency.labels(route).observe(seconds)


class MetricsMiddleware:
    """Pure ASGI (no per-request task or body copy): times each HTTP request and counts it
    under its route template, so `/v2/models/{name}/infer` is one series whatever the name."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def send_and_note(message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", UNMATCHED)
            self.metrics.observe(path, code, time.perf_counter() - started)
