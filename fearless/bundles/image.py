"""The container image of a bundle: what the model API runs in on a container platform.

The Dockerfile is part of the bundle (so its digest covers it) and expects a build context
laid out as `bundle/` (the bundle's files) and `wheels/` (the fearless wheel it was built
with); `write_build_context` lays one out.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from fearless.spec import ModelSpec

BASE_IMAGE = "python:3.11.7-slim-bookworm"
USER_ID = 10001
PORT = 8080
# Where a model API on a container platform writes its inference log before shipping it. The
# image creates it owned by USER_ID and declares it a VOLUME: on Fargate a bind mount at a
# VOLUME path takes the image's owner and contents (otherwise it is root's, mode 0755), and task
# definitions mount one there because their root filesystem is read-only. /tmp likewise.
LOG_DIR = "/var/lib/fearless/inference"
VOLUMES = ("/tmp", LOG_DIR)


class ImageError(RuntimeError):
    """An image cannot be built or pushed here; the message says what is missing."""


def fearless_wheel_name(version: str | None = None) -> str:
    return f"fearless-{version or metadata.version('fearless')}-py3-none-any.whl"


def dockerfile_for(spec: ModelSpec) -> str:
    """A Dockerfile that serves this bundle: pinned base, non-root user, healthcheck, and the
    writable volumes a read-only root filesystem needs, owned by that user."""
    wheel = fearless_wheel_name()
    volumes = ", ".join(f'"{v}"' for v in VOLUMES)
    return f"""\
FROM {BASE_IMAGE}
LABEL org.opencontainers.image.title="fearless-{spec.name}"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid {USER_ID} model \\
 && mkdir -p {LOG_DIR} \\
 && chown {USER_ID}:{USER_ID} {LOG_DIR}
WORKDIR /bundle
COPY bundle/requirements.txt wheels/{wheel} /tmp/install/
RUN pip install --no-cache-dir -r /tmp/install/requirements.txt \\
 && pip install --no-cache-dir --no-deps /tmp/install/{wheel} \\
 && rm -rf /tmp/install
COPY bundle/ /bundle/
USER {USER_ID}
VOLUME [{volumes}]
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["python", "-m", "fearless.bundles.health"]
CMD ["python", "-m", "fearless.serving", "--bundle", "/bundle", "--host", "0.0.0.0", "--port", "{PORT}"]
"""


def write_build_context(bundle_path: Path, into: Path, project_root: Path) -> Path:
    """Lay out `into` as the bundle's Dockerfile expects: the Dockerfile, `bundle/` and the
    fearless wheel (built from `project_root` with uv) in `wheels/`. Returns `into`."""
    if into.exists():
        shutil.rmtree(into)
    shutil.copytree(bundle_path, into / "bundle")
    shutil.copyfile(bundle_path / "Dockerfile", into / "Dockerfile")
    uv = shutil.which("uv")
    if uv is None:
        raise ImageError(
            f"uv is not on PATH: it builds the fearless wheel the image installs ({into})"
        )
    built = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(into / "wheels"), str(project_root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        raise ImageError(f"building the fearless wheel failed:\n{built.stderr[-2000:]}")
    return into


def docker_available(docker: str = "docker") -> str | None:
    """None when a Docker daemon answers; otherwise what is missing, in words."""
    exe = shutil.which(docker)
    if exe is None:
        return f"no '{docker}' command on PATH"
    try:
        info = subprocess.run(
            [exe, "info"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "the Docker daemon did not answer 'docker info' within 20 s"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker daemon answers 'docker info' ({reason})"
    return None


def build_image(context: Path, tag: str, docker: str = "docker") -> None:
    _run([docker, "build", "--tag", tag, str(context)], f"docker build of {tag}")


def push_image(tag: str, docker: str = "docker") -> None:
    _run([docker, "push", tag], f"docker push of {tag}")


def docker_login(endpoint: str, username: str, password: str, docker: str = "docker") -> None:
    done = subprocess.run(
        [docker, "login", "--username", username, "--password-stdin", endpoint],
        input=password,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ImageError(f"docker login to {endpoint} failed: {done.stderr.strip()}")


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, check=False)
    if done.returncode != 0:
        raise ImageError(f"{what} failed (exit {done.returncode})")
