"""Load profiles as data tables: each profile is a list of stages a Locust shape walks through.

In the open model a stage sets the request rate (users only cap what is in flight); in the
closed model it sets the users, each sending as fast as answered.

Kept free of Locust imports (importing locust monkey-patches the whole process), so the
profile math can be unit-tested and the runner can read it without starting a load test.
The `LoadTestShape` that plays these tables lives in `locustfile.py`, where Locust finds it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from fearless.spec import LoadProfile

STEP_COUNT = 4
RAMP_STEPS = 20
PROFILES = ("steady", "ramp", "spike", "step", "soak")
OPEN_SPAWN_RATE = 10_000.0
SPIKE_BASE_SHARE = 0.1
SPIKE_WINDOW = (0.4, 0.6)  # the spike occupies this share of the run


@dataclass(frozen=True)
class Stage:
    """Until `end_s` seconds into the run: hold `users` (reached at `spawn_rate` users/s) and,
    in the open model, send `rate` requests/s between them (None: as fast as answered)."""

    end_s: float
    users: int
    spawn_rate: float
    rate: float | None = None


def _levels(p: LoadProfile) -> list[tuple[float, float]]:
    """(end as a share of the run, load as a share of full) for each stage of the profile."""
    if p.profile == "ramp":
        # The closed model climbs users linearly (one stage, see `_closed`); the open model
        # climbs the rate in one-second (or finer) steps to full at the end.
        steps = max(1, min(RAMP_STEPS, p.duration_s))
        return [((i + 1) / steps, (i + 1) / steps) for i in range(steps)]
    if p.profile == "spike":
        start, end = SPIKE_WINDOW
        return [(start, SPIKE_BASE_SHARE), (end, 1.0), (1.0, SPIKE_BASE_SHARE)]
    if p.profile == "step":
        steps = min(STEP_COUNT, p.duration_s)
        return [((i + 1) / steps, (i + 1) / steps) for i in range(steps)]
    # steady, and soak: a steady load held long enough to surface leaks and slow
    # degradation; its length comes from `duration_s`.
    return [(1.0, 1.0)]


def _closed(p: LoadProfile) -> list[Stage]:
    users = p.concurrency
    if p.profile == "ramp":
        return [Stage(p.duration_s, users, min(p.spawn_rate, users / p.duration_s))]
    if p.profile == "step":
        steps = min(STEP_COUNT, users, p.duration_s)
        levels = [((i + 1) / steps, (i + 1) / steps) for i in range(steps)]
    else:
        levels = _levels(p)
    return [
        Stage(p.duration_s * end, max(1, math.ceil(users * share)), p.spawn_rate)
        for end, share in levels
    ]


def _open(p: LoadProfile) -> list[Stage]:
    # All users start at once: each keeps a schedule from the start of the run, so one that
    # started late would only owe requests.
    users, rate = p.concurrency, p.target_rate
    spawn = min(OPEN_SPAWN_RATE, users * 100.0)
    return [Stage(p.duration_s * end, users, spawn, rate * share) for end, share in _levels(p)]


def stages_for(profile: LoadProfile) -> list[Stage]:
    """The stage table for a load profile; stages are ordered and the last ends at duration_s."""
    return _closed(profile) if profile.target_rate is None else _open(profile)


def stage_at(stages: list[Stage], run_time_s: float) -> Stage | None:
    """The stage in force `run_time_s` into the run, or None once the table is done."""
    for stage in stages:
        if run_time_s < stage.end_s:
            return stage
    return None


def next_due(stages: list[Stage], after_s: float, share: float = 1.0) -> float:
    """When one open-model user's next request is due: `share` of a request's worth of its
    rate (`rate / users`) after `after_s`, walking through the stages, so a user waiting out a
    slow stage still joins a spike on time and every stage gets its rate. Past the table the
    last stage's pace goes on (the test is ending)."""
    for stage in stages:
        if after_s < stage.end_s:
            pace = stage.rate / stage.users  # requests/s of one user
            needed_s = share / pace
            if after_s + needed_s <= stage.end_s:
                return after_s + needed_s
            share -= (stage.end_s - after_s) * pace
            after_s = stage.end_s
    last = stages[-1]
    return max(after_s, last.end_s) + share * last.users / last.rate


def expected_requests(stages: list[Stage]) -> float | None:
    """How many requests the open model's table sends in all; None in the closed model."""
    if any(stage.rate is None for stage in stages):
        return None
    starts = [0.0, *(stage.end_s for stage in stages[:-1])]
    return sum(
        stage.rate * (stage.end_s - start) for stage, start in zip(stages, starts, strict=True)
    )


def profile_from_env(env: dict[str, str] | None = None) -> LoadProfile:
    """The profile `fearless.loadtest.runner.locust_env` wrote; unset ones take the defaults."""
    env = os.environ if env is None else env
    fields = {
        "mode": "FEARLESS_MODE",
        "rate": "FEARLESS_RATE",
        "profile": "FEARLESS_PROFILE",
        "users": "FEARLESS_USERS",
        "spawn_rate": "FEARLESS_SPAWN_RATE",
        "duration_s": "FEARLESS_DURATION_S",
        "batch_size": "FEARLESS_BATCH_SIZE",
    }
    return LoadProfile.model_validate({f: env[var] for f, var in fields.items() if var in env})
