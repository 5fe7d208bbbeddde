"""The container image spec of a bundle: what the model API runs in on a container platform."""

from __future__ import annotations

from fearless.spec import ModelSpec

BASE_IMAGE = "python:3.11.7-slim-bookworm"


def dockerfile_for(spec: ModelSpec) -> str:
    """A Dockerfile that serves this bundle: pinned base, non-root user, healthcheck."""
    return f"""\
FROM {BASE_IMAGE}
LABEL org.opencontainers.image.title="fearless-{spec.name}"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 model
WORKDIR /bundle
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt fearless
COPY . .
USER model
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \\
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ready')"
CMD ["python", "-m", "fearless.serving", "--bundle", "/bundle", "--host", "0.0.0.0", "--port", "8080"]
"""
