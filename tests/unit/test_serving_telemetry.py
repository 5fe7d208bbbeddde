"""FastAPI's own OpenTelemetry is on exactly where the environment configures OpenTelemetry."""

from fearless.serving.app import telemetry_config


def test_fastapi_telemetry_is_off_unless_the_environment_configures_opentelemetry():
    off = telemetry_config({"PATH": "/usr/bin", "FEARLESS_STATE_DIR": "/tmp/x"})
    assert off == {"tracing": False, "metrics": False, "logs": False}
    assert telemetry_config({"OTEL_SERVICE_NAME": "credit"}) is None  # FastAPI's defaults
    assert telemetry_config({"FASTAPI_OTEL_AUTO_CONFIGURE": "true"}) is None
