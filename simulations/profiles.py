"""Load profiles as data tables: each profile is a list of stages a Locust shape walks through.

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
SPIKE_BASE_SHARE = 0.1
SPIKE_WINDOW = (0.4, 0.6)  # the spike occupies this share of the run


@dataclass(frozen=True)
class Stage:
    """Hold `users` (reached at `spawn_rate` users/s) until `end_s` seconds into the run."""

    end_s: float
    users: int
    spawn_rate: float


def _steady(p: LoadProfile) -> list[Stage]:
    return [Stage(p.duration_s, p.users, p.spawn_rate)]


def _ramp(p: LoadProfile) -> list[Stage]:
    # One stage whose spawn rate makes Locust climb linearly to `users` at the very end;
    # the profile's spawn rate stays a ceiling.
    return [Stage(p.duration_s, p.users, min(p.spawn_rate, p.users / p.duration_s))]


def _spike(p: LoadProfile) -> list[Stage]:
    base = max(1, math.ceil(p.users * SPIKE_BASE_SHARE))
    start, end = (p.duration_s * share for share in SPIKE_WINDOW)
    return [
        Stage(start, base, p.spawn_rate),
        Stage(end, p.users, p.spawn_rate),
        Stage(p.duration_s, base, p.spawn_rate),
    ]


def _step(p: LoadProfile) -> list[Stage]:
    steps = min(STEP_COUNT, p.users, p.duration_s)
    return [
        Stage(p.duration_s * (i + 1) / steps, math.ceil(p.users * (i + 1) / steps), p.spawn_rate)
        for i in range(steps)
    ]


# A soak is a steady load held long enough to surface leaks and slow degradation:
# the same table as steady, the length comes from `duration_s`.
PROFILES = {"steady": _steady, "ramp": _ramp, "spike": _spike, "step": _step, "soak": _steady}


def stages_for(profile: LoadProfile) -> list[Stage]:
    """The stage table for a load profile; stages are ordered and the last ends at duration_s."""
    return PROFILES[profile.profile](profile)


def stage_at(stages: list[Stage], run_time_s: float) -> Stage | None:
    """The stage in force `run_time_s` into the run, or None once the table is done."""
    for stage in stages:
        if run_time_s < stage.end_s:
            return stage
    return None


def profile_from_env(env: dict[str, str] | None = None) -> LoadProfile:
    """The profile `fearless.loadtest.runner.locust_env` wrote; unset ones take the defaults."""
    env = os.environ if env is None else env
    fields = {
        "profile": "FEARLESS_PROFILE",
        "users": "FEARLESS_USERS",
        "spawn_rate": "FEARLESS_SPAWN_RATE",
        "duration_s": "FEARLESS_DURATION_S",
        "batch_size": "FEARLESS_BATCH_SIZE",
    }
    return LoadProfile.model_validate({f: env[var] for f, var in fields.items() if var in env})
