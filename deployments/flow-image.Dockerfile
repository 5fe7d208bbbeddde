# The flow image: this project with its locked environment at /opt/fearless, which the ECS work
# pool's flow-run tasks and the load generator's Locust tasks run (infra/README.md, step 6).
# Build it from the project's root, where .dockerignore leaves out the local state:
#
#   docker build -f deployments/flow-image.Dockerfile -t <repository>:<tag> .
#
# The same Python as a bundle's image (fearless/bundles/image.py BASE_IMAGE), the same extras
# as `make install`, no dev group. tests/unit/test_flow_image.py holds it to those and to the
# settings (FEARLESS_AWS_FLOW_PROJECT_DIR), and checkov to its checks.
FROM python:3.11.7-slim-bookworm
# checkov:skip=CKV_DOCKER_2: a flow run is a batch task that ECS watches by its exit, no server to probe
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
# git: a release's source pack; openssh-client: ssh-keygen checks signed approval decisions.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 fearless
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 \
    PATH=/opt/fearless/.venv/bin:$PATH
WORKDIR /opt/fearless
# The locked dependencies first, in a layer of their own that a change to the code reuses.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --extra fast-trees --extra mlflow --extra boosters
COPY . .
# A flow run keeps its state in the project's .fearless (FEARLESS_STATE_DIR is the machine's own,
# never passed to a task): the user must be able to write it.
RUN uv sync --frozen --no-dev --extra fast-trees --extra mlflow --extra boosters \
 && mkdir -p /opt/fearless/.fearless \
 && chown 10001:10001 /opt/fearless/.fearless
USER 10001
# The load generator's tasks mount a volume here (their root filesystem is read-only): a VOLUME
# path's volume takes the image's mode, /tmp's 1777, so the user can write it.
VOLUME ["/tmp"]
