"""Many releases at once: the pool's limit, several workers, PostgreSQL's programs and URL, and
what `fearless status` says of a release that waits."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from fearless.commands.status import PoolLoad, release_line, why_waiting
from fearless.platform.postgres import Postgres, PostgresError, as_owner, postgres_bin
from fearless.platform.server import worker_names
from fearless.platform.work_pools import flow_run_env, pool_limit_change
from fearless.release.listing import ReleaseRun
from fearless.settings import Settings


def test_the_pool_limit_changes_only_when_asked():
    assert pool_limit_change(None, None) == {}  # not asked: leave the pool as it is
    assert pool_limit_change(3, None) == {}
    assert pool_limit_change(None, 2) == {"concurrency_limit": 2}
    assert pool_limit_change(2, 2) == {}
    assert pool_limit_change(2, 0) == {"concurrency_limit": None}  # 0 lifts it
    assert pool_limit_change(None, 0) == {}


def test_scale_settings_are_checked_and_stay_on_this_machine(tmp_path):
    with pytest.raises(ValidationError, match="database"):
        Settings(database="mysql")
    with pytest.raises(ValidationError, match="workers"):
        Settings(workers=0)
    with pytest.raises(ValidationError, match="pool_concurrency"):
        Settings(pool_concurrency=-1)
    env = flow_run_env(Settings(database="postgres", workers=3, pool_concurrency=2))
    assert not {"FEARLESS_DATABASE", "FEARLESS_WORKERS", "FEARLESS_POOL_CONCURRENCY"} & set(env)


def test_the_first_worker_keeps_its_name():
    assert worker_names(1) == ["prefect-worker"]
    assert worker_names(3) == ["prefect-worker", "prefect-worker-2", "prefect-worker-3"]


def test_postgres_programs_come_from_the_newest_debian_version(tmp_path: Path):
    for version in ("13", "15", "9"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "pg_ctl").write_text("")
    (tmp_path / "15" / "bin" / "initdb").write_text("")
    assert postgres_bin("pg_ctl", tmp_path) == tmp_path / "15" / "bin" / "pg_ctl"
    with pytest.raises(PostgresError, match="no_such_program is not installed.*make system-deps"):
        postgres_bin("no_such_program", tmp_path)


def test_postgres_url_and_owner():
    cluster = Postgres(Path("/state/postgres"), 5433, "s3cret")
    assert cluster.url == "postgresql+asyncpg://prefect:s3cret@127.0.0.1:5433/prefect"
    argv = as_owner(["pg_ctl", "status"])
    assert argv[-2:] == ["pg_ctl", "status"]
    assert (argv[:4] == ["runuser", "-u", "postgres", "--"]) == (argv != ["pg_ctl", "status"])


def _run(name: str, state_type: str, state_name: str) -> ReleaseRun:
    return ReleaseRun(
        id=uuid4(),
        name=name,
        state_type=state_type,
        state_name=state_name,
        pool="fearless-local",
        queue=f"release-{name}",
    )


def test_status_says_why_a_release_waits():
    late = _run("credit-2", "SCHEDULED", "Late")
    full = PoolLoad("fearless-local", 1, ["credit-1"])
    line = release_line(late, {}, full)
    assert "Late" in line
    assert line.endswith("waiting: pool fearless-local runs 1 at once, all taken (credit-1)")
    room = PoolLoad("fearless-local", 2, ["credit-1"])
    assert why_waiting(late, room) == "waiting for a worker to take it from queue release-credit-2"
    assert why_waiting(late, PoolLoad("fearless-local", None, ["a", "b"])).startswith(
        "waiting for a worker"
    )
    running = _run("credit-1", "RUNNING", "Running")
    assert "waiting" not in release_line(running, {}, full)
