"""The embedded default platform: a local Prefect server (SQLite, or PostgreSQL run from the
state dir) and process workers.

All run as background processes recorded under the state dir, so `fearless server down`
stops exactly what `up` started, plus any production service and test environment left.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from fearless.platform import postgres, processes
from fearless.platform.hosts import allowed_hosts
from fearless.platform.prefect_env import prefect_env, use_server
from fearless.platform.preload import PRELOADS
from fearless.platform.work_pools import CLIENT_RETRY_ENV
from fearless.settings import PROJECT_ROOT, Settings

SERVER = "prefect-server"
WORKER = "prefect-worker"
# Restarts any model's production front (nginx) that dies while it should run.
FRONTS = "production-fronts"
PRELOADED = [f"preload-{kind}" for kind in PRELOADS]


LEASES_ON_DISK = "prefect.server.concurrency.lease_storage.filesystem"
SLOT_RETRY_MAX_S = 5


def worker_names(count: int) -> list[str]:
    """The handles of `count` workers: the first keeps the name a single worker always had."""
    return [WORKER] + [f"{WORKER}-{n}" for n in range(2, count + 1)]


def postgres_root(settings: Settings) -> Path:
    return settings.state_dir / "postgres"


def database_env(settings: Settings) -> dict[str, str]:
    """Where the server keeps its data: Prefect's SQLite file by default; with `database`
    postgres, the cluster of the state dir, started here if it is not running."""
    if settings.database != "postgres":
        return {}
    cluster = postgres.start_postgres(postgres_root(settings))
    return {"PREFECT_SERVER_DATABASE_CONNECTION_URL": cluster.url}


def server_only_env(settings: Settings) -> dict[str, str]:
    """What only the server is started with: cross-origin requests from its own UI alone, and
    CSRF tokens required on every change (Prefect's defaults are CORS `*` and CSRF off, so any
    web page the developer opened could resume a release). Prefect's clients fetch a token by
    themselves. PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS, when set, says which origins instead
    (a proxy's, when the server is shared)."""
    loopback = {settings.ui_url}
    if settings.server_host in ("127.0.0.1", "localhost", "0.0.0.0"):
        loopback |= {f"http://{h}:{settings.server_port}" for h in ("127.0.0.1", "localhost")}
    origins = os.environ.get("PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS") or ",".join(
        sorted(loopback)
    )
    return {
        "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS": origins,
        "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
        # Concurrency leases (the load-test and promotion slots) in files under PREFECT_HOME,
        # not in the server's memory: a server that restarts while a release holds a slot
        # knows the lease it is asked to renew, and a lost holder's slot still expires.
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASES_ON_DISK,
        # A release refused a slot asks again after the server's Retry-After: up to 30 s by
        # default, so a slot freed after a 2-s load test stayed idle while every waiter slept
        # (the storm bench: a build waited 127 s behind one release). At most 5 s here.
        "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": str(SLOT_RETRY_MAX_S),
    }


def _handle_file(settings: Settings, name: str) -> Path:
    return settings.paths.processes / f"{name}.json"


def _read_handle(settings: Settings, name: str) -> processes.ProcessHandle | None:
    path = _handle_file(settings, name)
    if not path.is_file():
        return None
    handle = processes.ProcessHandle.model_validate_json(path.read_text())
    return handle if processes.is_alive(handle) else None


def _start(
    settings: Settings, name: str, argv: list[str], env: dict[str, str] | None = None
) -> processes.ProcessHandle:
    env = {**prefect_env(settings), **(env or {})}
    handle = processes.spawn(
        argv, settings.paths.processes / f"{name}.log", env=env, cwd=PROJECT_ROOT
    )
    _handle_file(settings, name).write_text(handle.model_dump_json())
    return handle


def server_healthy(settings: Settings) -> bool:
    try:
        return httpx.get(f"{settings.api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def server_up(settings: Settings, timeout_s: float = 120.0) -> dict[str, str]:
    """Start the server and worker unless already running; return what is running."""
    settings.paths.processes.mkdir(parents=True, exist_ok=True)
    for kind, modules in PRELOADS.items():
        if _read_handle(settings, f"preload-{kind}") is None:
            sock = settings.paths.processes / f"preload-{kind}.sock"
            imports = [arg for module in modules for arg in ("--import", module)]
            _start(
                settings,
                f"preload-{kind}",
                [
                    sys.executable,
                    "-m",
                    "fearless.platform.preload",
                    "--socket",
                    str(sock),
                    *imports,
                ],
            )
    if _read_handle(settings, FRONTS) is None:
        fronts = settings.paths.production / "fronts"
        _start(
            settings,
            FRONTS,
            [
                *(sys.executable, "-m", "fearless.production.fronts", "--root", str(fronts)),
                *("--preload", str(settings.paths.processes)),
            ],
        )
    prefect = [sys.executable, "-m", "prefect"]
    if not server_healthy(settings):
        handle = _read_handle(settings, SERVER) or _start(
            settings,
            SERVER,
            [
                *(sys.executable, "-m", "fearless.platform.api_server"),
                *("--host", settings.server_host, "--port", str(settings.server_port)),
                *("--runs", str(settings.paths.runs)),
                *(arg for host in allowed_hosts(settings) for arg in ("--allowed-host", host)),
            ],
            {**server_only_env(settings), **database_env(settings)},
        )
        processes.wait_until_ready(f"{settings.api_url}/health", handle, timeout_s)
    pool_type = ensure_work_pool(settings)
    for index, name in enumerate(worker_names(settings.workers), start=1):
        if _read_handle(settings, name) is not None:
            continue
        _start(
            settings,
            name,
            [
                *prefect,
                "worker",
                "start",
                "--pool",
                settings.work_pool,
                "--type",
                pool_type,
                "--name",
                f"fearless-{settings.work_pool}" + (f"-{index}" if index > 1 else ""),
                "--install-policy",
                "never",
            ],
            CLIENT_RETRY_ENV,
        )
        resume_lost_runs(settings)
    return server_status(settings)


def resume_lost_runs(settings: Settings) -> list[str]:
    """A worker starts where none ran: the runs the last one started may have died with it.
    Marked Crashed now, they are resumed by the cleanup automation at once, instead of after
    their heartbeats have been silent for minutes (fearless.release.recovery)."""
    from prefect.client.orchestration import get_client

    from fearless.platform.orphans import crash_orphaned_runs
    from fearless.platform.work_pools import kind_for

    if not kind_for(settings).shares_host:  # an ECS task outlives any worker: not ours to judge
        return []
    with get_client(sync_client=True) as client:
        return crash_orphaned_runs(client, settings.work_pool)


def ensure_work_pool(settings: Settings) -> str:
    """Create or update the settings' pool as its backend's kind needs; its Prefect type."""
    use_server(settings)
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from fearless.platform import work_pools

    # The server just started is the one to ask, whatever this process's client points at.
    with (
        temporary_settings({PREFECT_API_URL: settings.api_url}),
        get_client(sync_client=True) as client,
    ):
        work_pools.ensure_work_pool(client, settings)
    return work_pools.kind_for(settings).type


def server_status(settings: Settings) -> dict[str, str]:
    status = {"api": settings.api_url, "ui": settings.ui_url}
    status["server"] = "healthy" if server_healthy(settings) else "down"
    cluster = postgres.running_postgres(postgres_root(settings))
    status["database"] = cluster.describe() if cluster else "sqlite"
    workers = [h for name in _worker_handles(settings) if (h := _read_handle(settings, name))]
    pids = ", ".join(str(w.pid) for w in workers)
    status["workers"] = f"{len(workers)} running (pid {pids})" if workers else "down"
    for name in (*PRELOADED, FRONTS):
        status[name] = "running" if _read_handle(settings, name) else "down"
    return status


def server_down(settings: Settings, services=None) -> list[str]:
    """Stop the worker, the server, and every local model API Fearless started."""
    stopped = []
    if services is not None:
        for env in services.environments.list():
            services.environments.teardown(env.release_id)
            stopped.append(f"environment {env.release_id}/{env.role}")
        stopped += [f"production {m}" for m in services.production.stop_all()]
    for name in (FRONTS, *_worker_handles(settings), SERVER, *PRELOADED):
        handle = _read_handle(settings, name)
        if handle is not None and processes.stop(handle, grace_s=15):
            stopped.append(name)
        _handle_file(settings, name).unlink(missing_ok=True)
        (settings.paths.processes / f"{name}.sock").unlink(missing_ok=True)
    if postgres.stop_postgres(postgres_root(settings)):
        stopped.append("postgres")
    return stopped


def _worker_handles(settings: Settings) -> list[str]:
    """Every worker `up` recorded, however many it was asked for."""
    found = {p.stem for p in settings.paths.processes.glob(f"{WORKER}*.json")}
    return sorted(found | {WORKER}, key=lambda n: (len(n), n))
