"""The commands and ECS requests of a distributed Locust run, checked without starting one."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fearless.loadtest.fleet import EcsFleetTasks, LocalFleet, LocalLocust, LocustFleet
from fearless.loadtest.runner import LOCUSTFILE
from fearless.spec import LoadProfile

LOAD = LoadProfile(profile="spike", users=40, spawn_rate=20, duration_s=60, batch_size=4)
TASKS = EcsFleetTasks(
    cluster="fearless",
    task_definition="fearless-loadgen:3",
    subnets=["subnet-1"],
    security_groups=["sg-1"],
    tags={"fearless:release-id": "credit-1"},
)


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_master_is_headless_waits_for_its_workers_and_keeps_the_reports():
    argv = LocustFleet(3, master_port=6000).master_argv("http://api:8080", "/tmp/r/locust")
    assert "--master" in argv and "--headless" in argv and "--worker" not in argv
    assert _flag(argv, "--expect-workers") == "3"
    assert _flag(argv, "--master-bind-port") == "6000"
    assert _flag(argv, "--expect-workers-max-wait") == "60"
    assert _flag(argv, "--host") == "http://api:8080"
    assert _flag(argv, "--json-file") == "/tmp/r/locust"
    assert _flag(argv, "-f") == str(LOCUSTFILE)


def test_worker_connects_to_the_master_with_the_same_locustfile():
    fleet = LocustFleet(2, master_host="10.0.1.7", master_port=6000)
    argv = fleet.worker_argv()
    assert "--worker" in argv and "--headless" not in argv and "--host" not in argv
    assert (_flag(argv, "--master-host"), _flag(argv, "--master-port")) == ("10.0.1.7", "6000")
    assert _flag(argv, "-f") == _flag(fleet.master_argv("http://x", "/r"), "-f")


@pytest.mark.parametrize(("workers", "port"), [(0, 5557), (1, 70000)])
def test_an_impossible_fleet_is_refused(workers, port):
    with pytest.raises(ValueError, match="at least one worker|not a TCP port"):
        LocustFleet(workers, master_port=port)


def test_local_fleet_starts_its_workers_then_becomes_the_master():
    base = ["python", "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", "http://a"]
    shell, flag, script = LocalFleet(workers=2).command(base)
    assert (shell, flag) == ("/bin/sh", "-c")
    *workers, master = script.split(" & ")
    assert len(workers) == 2 and all("--worker" in w for w in workers)
    master_argv = shlex.split(master.removeprefix("exec "))
    assert master.startswith("exec ") and master_argv[: len(base)] == base
    port = _flag(master_argv, "--master-bind-port")
    assert all(_flag(shlex.split(w), "--master-port") == port for w in workers)
    assert _flag(master_argv, "--master-bind-host") == "127.0.0.1"
    assert LocalFleet(workers=2).cores == 2


def test_ecs_master_request_carries_the_same_environment_as_a_local_run():
    request = TASKS.master_request(LocustFleet(4), "http://c.ns:8080", LOAD, "/data/traffic.jsonl")
    (override,) = request["overrides"]["containerOverrides"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env["FEARLESS_TRAFFIC"] == "/data/traffic.jsonl"
    assert (env["FEARLESS_PROFILE"], env["FEARLESS_USERS"]) == ("spike", "40")
    assert override["command"][0] == "python"
    assert _flag(override["command"], "-f") == "/opt/fearless/simulations/locustfile.py"
    assert _flag(override["command"], "--expect-workers") == "4"
    assert request["count"] == 1 and request["launchType"] == "FARGATE"
    assert {"key": "fearless:role", "value": "loadgen-master"} in request["tags"]
    assert {"key": "fearless:release-id", "value": "credit-1"} in request["tags"]


def test_ecs_workers_point_at_the_master_in_batches_of_ten():
    requests = TASKS.worker_requests(LocustFleet(23), "10.0.1.7", LOAD, "/data/traffic.jsonl")
    assert [r["count"] for r in requests] == [10, 10, 3]
    command = requests[0]["overrides"]["containerOverrides"][0]["command"]
    assert "--worker" in command and _flag(command, "--master-host") == "10.0.1.7"
    assert TASKS.worker_requests(LocustFleet(10), "10.0.1.7", LOAD, "/t")[0]["count"] == 10
    assert len(TASKS.worker_requests(LocustFleet(10), "10.0.1.7", LOAD, "/t")) == 1


def test_the_local_generator_is_the_runner(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "fearless.loadtest.fleet.run_load_test",
        lambda *args, **kwargs: calls.append((args, kwargs)) or "result",
    )
    assert LocalLocust(processes=-1).run("http://a", LOAD, Path("t"), Path("o")) == "result"
    assert calls == [(("http://a", LOAD, Path("t"), Path("o")), {"processes": -1})]
