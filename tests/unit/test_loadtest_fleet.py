"""The commands and ECS requests of a distributed Locust run, checked without starting one."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fearless.loadtest import fleet_task
from fearless.loadtest.ecs_fleet import EcsFleetTasks, private_ip, stopped_reason
from fearless.loadtest.fleet import LocalFleet, LocalLocust, LocustFleet
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
TRAFFIC_URL = "s3://artifacts/loadgen/credit-1/run/traffic.jsonl"
REPORTS_URL = "s3://artifacts/loadgen/credit-1/run/reports"


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


def _locust_part(command: list[str]) -> list[str]:
    """The Locust command the task entrypoint runs (after its `--`)."""
    return command[command.index("--") + 1 :]


def test_ecs_master_request_carries_the_same_environment_as_a_local_run():
    request = TASKS.master_request(
        LocustFleet(4), "http://c.ns:8080", LOAD, TRAFFIC_URL, REPORTS_URL
    )
    (override,) = request["overrides"]["containerOverrides"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env["FEARLESS_TRAFFIC"] == TASKS.traffic_path
    assert (env["FEARLESS_PROFILE"], env["FEARLESS_USERS"]) == ("spike", "40")
    assert env["FEARLESS_LATENCY_PATH"] == f"{TASKS.report_prefix}_latency.json"
    assert env["PYTHONPATH"] == "/opt/fearless"  # the locustfile imports simulations.*
    locust = _locust_part(override["command"])
    assert locust[0] == "python" and "--master" in locust
    assert _flag(locust, "-f") == "/opt/fearless/simulations/locustfile.py"
    assert _flag(locust, "--expect-workers") == "4"
    assert _flag(locust, "--json-file") == TASKS.report_prefix
    assert request["count"] == 1 and request["launchType"] == "FARGATE"
    assert request["taskDefinition"] == "fearless-loadgen:3"
    assert {"key": "fearless:role", "value": "loadgen-master"} in request["tags"]
    assert {"key": "fearless:release-id", "value": "credit-1"} in request["tags"]


def test_ecs_master_fetches_the_traffic_and_uploads_its_reports_through_the_entrypoint():
    request = TASKS.master_request(
        LocustFleet(4), "http://c.ns:8080", LOAD, TRAFFIC_URL, REPORTS_URL
    )
    command = request["overrides"]["containerOverrides"][0]["command"]
    entry = command[: command.index("--")]
    assert entry[:4] == ["python", "-m", "fearless.loadtest.fleet_task", "master"]
    assert (_flag(entry, "--traffic"), _flag(entry, "--reports")) == (TRAFFIC_URL, REPORTS_URL)
    assert _flag(entry, "--report-prefix") == TASKS.report_prefix


def test_ecs_workers_point_at_the_master_in_batches_of_ten():
    requests = TASKS.worker_requests(LocustFleet(23), "10.0.1.7", LOAD, TRAFFIC_URL)
    assert [r["count"] for r in requests] == [10, 10, 3]
    command = requests[0]["overrides"]["containerOverrides"][0]["command"]
    assert command[:4] == ["python", "-m", "fearless.loadtest.fleet_task", "worker"]
    assert _flag(command, "--traffic") == TRAFFIC_URL and "--reports" not in command
    locust = _locust_part(command)
    assert "--worker" in locust and _flag(locust, "--master-host") == "10.0.1.7"
    assert {"key": "fearless:role", "value": "loadgen-worker"} in requests[0]["tags"]
    assert TASKS.worker_requests(LocustFleet(10), "10.0.1.7", LOAD, "s3://b/t")[0]["count"] == 10
    assert len(TASKS.worker_requests(LocustFleet(10), "10.0.1.7", LOAD, "s3://b/t")) == 1


ENI = {
    "type": "ElasticNetworkInterface",
    "details": [
        {"name": "subnetId", "value": "subnet-1"},
        {"name": "privateIPv4Address", "value": "10.0.1.7"},
    ],
}


def test_a_task_ip_is_read_from_its_network_interface():
    assert private_ip({"attachments": [ENI]}) == "10.0.1.7"
    assert private_ip({"attachments": [{"type": "ElasticNetworkInterface", "details": []}]}) is None
    assert private_ip({}) is None


EXITED = "Essential container in task exited"


@pytest.mark.parametrize(
    ("containers", "reason", "expected"),
    [
        ([{"name": "locust", "exitCode": 0}], EXITED, None),
        ([{"name": "locust", "exitCode": 1}], EXITED, f"exited with code 1 ({EXITED})"),
        ([{"name": "locust"}], "CannotPull", "stopped before Locust ran: CannotPull"),
        ([{"name": "sidecar", "exitCode": 0}], "", "stopped before Locust ran: no reason given"),
    ],
)  # fmt: skip
def test_a_stopped_master_ended_well_only_when_its_container_exited_with_zero(
    containers, reason, expected
):
    task = {"containers": containers, "stoppedReason": reason}
    assert stopped_reason(task, "locust") == expected


@pytest.mark.parametrize(
    "args",
    [
        ["master", "--traffic", "s3://b/t", "--", "python", "-m", "locust"],  # no --reports
        ["worker", "--traffic", "s3://b/t"],  # no Locust command
        ["driver", "--traffic", "s3://b/t", "--", "python"],
    ],
)
def test_the_task_entrypoint_refuses_an_incomplete_command(args, monkeypatch, capsys):
    monkeypatch.setenv("FEARLESS_TRAFFIC", "/tmp/t.jsonl")
    with pytest.raises(SystemExit) as exited:
        fleet_task.main(args)
    assert exited.value.code == 2 and "usage:" in capsys.readouterr().err


def test_the_local_generator_is_the_runner(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "fearless.loadtest.fleet.run_load_test",
        lambda *args, **kwargs: calls.append((args, kwargs)) or "result",
    )
    assert LocalLocust(processes=-1).run("http://a", LOAD, Path("t"), Path("o")) == "result"
    assert calls == [(("http://a", LOAD, Path("t"), Path("o")), {"processes": -1})]
