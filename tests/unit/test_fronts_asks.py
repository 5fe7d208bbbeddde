"""How a process asks the fronts' supervisor to start a front: one JSON line each way over a
Unix socket in the fronts' folder, and nobody to ask where the supervisor has no socket."""

from __future__ import annotations

import threading
import time

import pytest

from fearless.platform import processes
from fearless.platform.processes import ProcessHandle
from fearless.production.front import FrontError
from fearless.production.fronts import (
    SUPERVISOR_SOCKET,
    _answer_asks,
    _listen_for_asks,
    ask_supervisor,
)
from fearless.production.local import LocalProductionService, ProductionInstance

STARTED = ProcessHandle(pid=4242, create_time=1.5, log_path="/x/nginx.out")


class SupervisorFronts:
    """What `_answer_asks` needs of `Fronts`: starts `credit`, refuses anything else."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def reap_exited(self) -> None:
        pass

    def start_asked(self, model: str) -> ProcessHandle:
        self.asked.append(model)
        if model != "credit":
            raise FrontError(f"no front for {model}")
        return STARTED


def test_the_supervisor_starts_what_it_is_asked_and_says_why_it_could_not(tmp_path):
    asks = _listen_for_asks(tmp_path / SUPERVISOR_SOCKET)
    fronts = SupervisorFronts()
    answering = threading.Thread(target=_answer_asks, args=(fronts, asks, time.monotonic() + 1.5))
    answering.start()
    try:
        assert ask_supervisor(tmp_path, "credit", timeout_s=5) == STARTED
        with pytest.raises(FrontError, match="no front for churn"):
            ask_supervisor(tmp_path, "churn", timeout_s=5)
    finally:
        answering.join()
        asks.close()
    assert fronts.asked == ["credit", "churn"]
    assert (tmp_path / SUPERVISOR_SOCKET).stat().st_mode & 0o777 == 0o600


def test_without_a_supervisor_nobody_is_asked(tmp_path):
    assert ask_supervisor(tmp_path, "credit", timeout_s=1) is None  # no socket
    (tmp_path / SUPERVISOR_SOCKET).touch()  # left by a supervisor that died
    assert ask_supervisor(tmp_path, "credit", timeout_s=1) is None


def test_a_folder_too_deep_for_a_unix_socket_leaves_the_supervisor_running(tmp_path, capsys):
    deep = tmp_path / ("d" * 120)
    asks = _listen_for_asks(deep / SUPERVISOR_SOCKET)
    try:
        assert asks.getsockname() == ""
        _answer_asks(SupervisorFronts(), asks, time.monotonic() + 0.2)  # waits, answers none
    finally:
        asks.close()
    assert "fronts are started by whoever needs one" in capsys.readouterr().out
    assert ask_supervisor(deep, "credit", timeout_s=1) is None


def test_the_supervisors_round_passes_over_a_model_another_process_holds(tmp_path):
    # A stop holds the model's lock until the supervisor has reaped the front's nginx master;
    # a supervisor waiting for that lock reaped nothing, and the stop waited out its grace.
    service = LocalProductionService(tmp_path / "production", tmp_path / "inference")
    dead = processes.spawn(["true"], tmp_path / "true.log")
    while processes.is_alive(dead):
        time.sleep(0.01)
    service.root.mkdir(parents=True)
    (service.root / "credit.json").write_text(
        ProductionInstance(
            model="credit", digest="sha256:" + "0" * 64, url="http://127.0.0.1:9",
            handle=dead, upstream="http://127.0.0.1:9", slot="blue",
            bundle_path=str(tmp_path / "no-bundle"),
        ).model_dump_json()
    )  # fmt: skip
    done: list[dict[str, str]] = []
    with service.fronts.locked("credit"):
        rounding = threading.Thread(target=lambda: done.append(service.keep_up()), daemon=True)
        rounding.start()
        rounding.join(timeout=30)  # a supervisor that waits for the lock is still here
        assert not rounding.is_alive() and done == [{}]
    # Once the lock is free, the next round does try to start it again.
    assert "could not restart" in service.keep_up()["credit"]
