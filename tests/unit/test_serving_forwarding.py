"""Forwarding to a shadow model API: which requests go, the settings, and what is counted
(a stand-in shadow behind httpx's MockTransport, a hand-moved clock)."""

from __future__ import annotations

import asyncio
import hashlib
import math

import httpx
import pytest

from fearless.serving.forwarding import (
    BACKOFF_S,
    MAX_IN_FLIGHT,
    Forwarder,
    ShadowConfig,
    sampled,
    shadow_config,
)
from fearless.serving.metrics import Metrics

SHADOW = "http://credit-shadow.fearless.internal:8080"
IDS = [f"request-{n}" for n in range(1000)]


def position(request_id: str) -> float:
    """Where an id falls in [0, 1), worked out as an operator would from the docstring."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def test_an_id_is_sampled_when_its_position_is_below_the_fraction():
    for request_id in IDS[:100]:
        at = position(request_id)
        assert not sampled(request_id, math.nextafter(at, 0))
        assert sampled(request_id, math.nextafter(at, 1))
        assert [sampled(request_id, f) for f in (0.1, 0.5, 0.9)] == [
            at < f for f in (0.1, 0.5, 0.9)
        ]


def test_none_all_or_the_fraction_of_one_process_ids_are_sampled():
    """The ids this API makes share a prefix and differ in a counter; they still spread."""
    made = [f"5f0c3a9e12b4-{n:x}" for n in range(1, 20_001)]

    assert not any(sampled(request_id, 0) for request_id in made)
    assert all(sampled(request_id, 1) for request_id in made)
    for fraction in (0.1, 0.5, 0.9):
        kept = sum(sampled(request_id, fraction) for request_id in made) / len(made)
        assert kept == pytest.approx(fraction, abs=0.015)


@pytest.mark.parametrize("environ", [{}, {"FEARLESS_SHADOW_URL": ""}, {"FEARLESS_SHADOW_URL": " "}])
def test_without_a_url_nothing_is_forwarded(environ):
    assert shadow_config(environ) is None


@pytest.mark.parametrize(
    ("sample", "fraction"), [(None, 1.0), ("", 1.0), ("0", 0.0), ("0.25", 0.25), ("1", 1.0)]
)
def test_the_sample_defaults_to_every_request(sample, fraction):
    environ = {"FEARLESS_SHADOW_URL": SHADOW}
    if sample is not None:
        environ["FEARLESS_SHADOW_SAMPLE"] = sample

    assert shadow_config(environ) == ShadowConfig(SHADOW, fraction)


@pytest.mark.parametrize(
    "url", [SHADOW, "https://shadow", "http://10.0.3.7:8080", "http://[::1]:8080", "http://h/v1"]
)
def test_http_and_https_base_urls_are_taken(url):
    assert shadow_config({"FEARLESS_SHADOW_URL": url}).url == url


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FEARLESS_SHADOW_URL", "ftp://x"),
        ("FEARLESS_SHADOW_URL", "credit-shadow:8080"),
        ("FEARLESS_SHADOW_URL", "http://"),
        ("FEARLESS_SHADOW_URL", "http://shadow:port"),
        ("FEARLESS_SHADOW_URL", "http://shadow:99999"),
        ("FEARLESS_SHADOW_URL", "http://shadow:0"),
        ("FEARLESS_SHADOW_URL", "http://shadow/?q=1"),
        ("FEARLESS_SHADOW_URL", "http://cr edit"),
        ("FEARLESS_SHADOW_SAMPLE", "2"),
        ("FEARLESS_SHADOW_SAMPLE", "-0.1"),
        ("FEARLESS_SHADOW_SAMPLE", "abc"),
        ("FEARLESS_SHADOW_SAMPLE", "nan"),
        ("FEARLESS_SHADOW_SAMPLE", "50%"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable_and_value(variable, value):
    environ = {"FEARLESS_SHADOW_URL": SHADOW, variable: value}

    with pytest.raises(ValueError) as refused:
        shadow_config(environ)

    assert f"{variable}={value!r}" in str(refused.value)


class Shadow:
    """A stand-in shadow: records what reaches it; answers `status`, raises `error`, or holds
    every request until `release` is set."""

    def __init__(self, status: int = 200, error: Exception | None = None, hold: bool = False):
        self.status, self.error, self.hold = status, error, hold
        self.requests: list[httpx.Request] = []
        self.reached, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.reached.set()
        if self.error is not None:
            raise self.error
        if self.hold:
            await self.release.wait()
        return httpx.Response(self.status, json={})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scope(*headers: tuple[bytes, bytes], path: str = "/predict") -> dict:
    return {"path": path, "headers": [(b"host", b"127.0.0.1:8000"), *headers]}


JSON = (b"content-type", b"application/json")


async def forwarding(shadow: Shadow, sample: float = 1.0, clock=None):
    metrics = Metrics()
    forwarder = Forwarder(
        ShadowConfig(SHADOW, sample),
        metrics.shadow_forwards,
        transport=httpx.MockTransport(shadow),
        clock=clock or Clock(),
    )
    forwarder.open()
    return forwarder, metrics


async def settle(forwarder: Forwarder) -> None:
    await asyncio.gather(*forwarder.in_flight)


def counted(metrics: Metrics) -> dict[str, float]:
    value = metrics.registry.get_sample_value
    outcomes = ("sent", "failed", "dropped", "skipped")
    return {o: value("fearless_shadow_forwards_total", {"outcome": o}) for o in outcomes}


def test_the_same_body_and_id_go_to_the_same_path_marked_as_forwarded():
    async def run():
        shadow = Shadow()
        forwarder, metrics = await forwarding(shadow)
        length = (b"inference-header-content-length", b"12")
        await forwarder.forward(scope(JSON, (b"x-request-id", b"client-1")), b'{"a":1}', "client-1")
        await forwarder.forward(scope(JSON, length, path="/v2/models/credit/infer"), b"{}", "r-2")
        await settle(forwarder)
        await forwarder.close()
        return shadow, metrics

    shadow, metrics = asyncio.run(run())

    first, second = shadow.requests
    assert (first.method, str(first.url)) == ("POST", f"{SHADOW}/predict")
    assert first.content == b'{"a":1}'
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-request-id"] == "client-1"
    assert first.headers["x-fearless-shadow"] == "1"
    assert first.headers["host"] == "credit-shadow.fearless.internal:8080"
    assert str(second.url) == f"{SHADOW}/v2/models/credit/infer"
    assert second.headers["inference-header-content-length"] == "12"
    assert second.headers["x-request-id"] == "r-2"
    assert counted(metrics) == {"sent": 2, "failed": 0, "dropped": 0, "skipped": 0}


def test_a_forwarded_or_unsampled_request_is_not_forwarded_nor_counted():
    chosen = [r for r in IDS if sampled(r, 0.5)][:3]
    left_out = [r for r in IDS if not sampled(r, 0.5)][:3]

    async def run():
        shadow = Shadow()
        forwarder, metrics = await forwarding(shadow, sample=0.5)
        for request_id in chosen:
            await forwarder.forward(scope(JSON, (b"x-fearless-shadow", b"1")), b"{}", request_id)
        for request_id in left_out + chosen:
            await forwarder.forward(scope(JSON), b"{}", request_id)
        await settle(forwarder)
        await forwarder.close()
        return shadow, metrics

    shadow, metrics = asyncio.run(run())

    assert [r.headers["x-request-id"] for r in shadow.requests] == chosen
    assert counted(metrics)["sent"] == 3


@pytest.mark.parametrize(
    "shadow", [Shadow(status=503), Shadow(error=httpx.ReadTimeout("no answer within 2 s"))]
)
def test_an_error_answer_or_none_is_counted_failed_and_the_next_request_still_goes(shadow):
    async def run():
        forwarder, metrics = await forwarding(shadow)
        for request_id in ("a", "b"):
            await forwarder.forward(scope(JSON), b"{}", request_id)
            await settle(forwarder)
        await forwarder.close()
        return shadow, metrics

    shadow, metrics = asyncio.run(run())

    assert len(shadow.requests) == 2
    assert counted(metrics) == {"sent": 0, "failed": 2, "dropped": 0, "skipped": 0}


def test_an_unreachable_shadow_is_not_tried_again_for_a_while():
    clock = Clock()

    async def run():
        shadow = Shadow(error=httpx.ConnectError("connection refused"))
        forwarder, metrics = await forwarding(shadow, clock=clock)

        async def request(n: int) -> None:
            await forwarder.forward(scope(JSON), b"{}", f"r-{n}")
            await settle(forwarder)

        await request(1)
        clock.now += BACKOFF_S - 0.001
        await request(2)
        await request(3)
        clock.now += 0.001
        await request(4)  # tried again: still unreachable
        await request(5)
        await forwarder.close()
        return shadow, metrics

    shadow, metrics = asyncio.run(run())

    assert [r.headers["x-request-id"] for r in shadow.requests] == ["r-1", "r-4"]
    assert counted(metrics) == {"sent": 0, "failed": 2, "dropped": 0, "skipped": 3}


def test_beyond_the_limit_in_flight_a_forward_is_dropped_not_queued():
    async def run():
        shadow = Shadow(hold=True)
        forwarder, metrics = await forwarding(shadow)
        for n in range(MAX_IN_FLIGHT + 3):
            await forwarder.forward(scope(JSON), b"{}", f"r-{n}")
        shadow.release.set()
        await settle(forwarder)
        await forwarder.forward(scope(JSON), b"{}", "after")  # room again
        await settle(forwarder)
        await forwarder.close()
        return shadow, metrics

    shadow, metrics = asyncio.run(run())

    assert len(shadow.requests) == MAX_IN_FLIGHT + 1
    assert counted(metrics) == {"sent": MAX_IN_FLIGHT + 1, "failed": 0, "dropped": 3, "skipped": 0}


def test_closing_cancels_the_forwards_still_under_way():
    async def run():
        shadow = Shadow(hold=True)
        forwarder, metrics = await forwarding(shadow)
        await forwarder.forward(scope(JSON), b"{}", "held")
        await asyncio.wait_for(shadow.reached.wait(), timeout=30)
        [held] = forwarder.in_flight
        await forwarder.close()
        return held.cancelled(), set(forwarder.in_flight), forwarder.client, metrics

    cancelled, in_flight, client, metrics = asyncio.run(run())

    assert cancelled and not in_flight and client is None
    assert counted(metrics) == {"sent": 0, "failed": 0, "dropped": 0, "skipped": 0}


def test_production_revisions_set_the_variables_the_model_api_reads():
    """The ECS backend and the model API may not import each other (layers), so each spells
    the two names; a rename on one side alone would silently turn shadowing off."""
    from fearless.environments.ecs import config
    from fearless.serving import forwarding

    assert config.SHADOW_URL_VARIABLE == forwarding.URL_VARIABLE
    assert config.SHADOW_SAMPLE_VARIABLE == forwarding.SAMPLE_VARIABLE
