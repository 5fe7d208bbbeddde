"""A process is known by its pid and its start time counted after boot, not by the wall clock."""

from __future__ import annotations

import sys

import psutil
import psutil._pslinux
import pytest

from fearless.platform import processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def sleeper(tmp_path):
    handle = processes.spawn(["sleep", "60"], tmp_path / "sleep.log")
    yield handle
    processes.stop(handle, grace_s=1)


def test_a_live_process_stays_alive_when_the_wall_clock_is_stepped(sleeper, monkeypatch):
    """Linux derives the boot time from the wall clock, so create_time moves when it is stepped."""
    booted = psutil._pslinux.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: booted + 7.0)
    assert abs(psutil.Process(sleeper.pid).create_time() - sleeper.create_time) > 6
    assert processes.is_alive(sleeper)


def test_a_reused_pid_is_not_the_process_it_replaced(sleeper):
    earlier = sleeper.model_copy(update={"start_ticks": sleeper.start_ticks - 1})
    assert processes.is_alive(sleeper)
    assert not processes.is_alive(earlier)
    assert processes.started_when(psutil.Process(sleeper.pid), earlier) == 1


def test_an_older_record_without_ticks_is_judged_by_its_create_time(sleeper):
    older = sleeper.model_copy(update={"start_ticks": None})
    assert processes.is_alive(older)
    assert not processes.is_alive(older.model_copy(update={"create_time": older.create_time - 5}))


def test_a_stopped_process_is_not_alive(sleeper):
    assert processes.stop(sleeper, grace_s=1)
    assert not processes.is_alive(sleeper)


def test_start_ticks_reads_past_a_command_name_with_spaces_and_parentheses(tmp_path):
    line = "77 (a b) c) S 1 77 77 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0"
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "stat").write_text(line)
    assert processes.start_ticks_of(77, proc_root=tmp_path) == 123456
    assert processes.start_ticks_of(78, proc_root=tmp_path) is None


def test_start_ticks_match_what_the_kernel_reports(sleeper):
    ticks_per_s = psutil._pslinux.CLOCK_TICKS
    since_boot = psutil.Process(sleeper.pid)._proc.create_time(monotonic=True)
    assert sleeper.start_ticks == round(since_boot * ticks_per_s)
