import pytest
from pydantic import ValidationError

from fearless.loadtest.runner import locust_env
from fearless.spec import LoadProfile
from simulations.profiles import (
    PROFILES,
    Stage,
    expected_requests,
    next_due,
    profile_from_env,
    stage_at,
    stages_for,
)


def profile(**fields) -> LoadProfile:
    """A closed-model profile: users that send as fast as they are answered."""
    return LoadProfile(
        **{"mode": "closed", "users": 20, "spawn_rate": 5, "duration_s": 60, **fields}
    )


def rate(**fields) -> LoadProfile:
    """An open-model profile: 100 requests/s at full load."""
    return LoadProfile(**{"rate": 100, "duration_s": 60, **fields})


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_open_profile_ends_at_duration_and_peaks_at_the_rate(name):
    stages = stages_for(rate(profile=name))
    assert stages[-1].end_s == 60
    assert [s.end_s for s in stages] == sorted(s.end_s for s in stages)
    assert max(s.rate for s in stages) == 100
    assert {(s.users, s.spawn_rate) for s in stages} == {(100, 10_000)}  # all start at once


def test_the_open_model_is_the_default_and_sizes_its_users_from_the_rate():
    assert LoadProfile().target_rate == 50 and LoadProfile().concurrency == 50
    assert rate(users=8).concurrency == 8 and rate(rate=1).concurrency == 4
    assert profile().target_rate is None and LoadProfile(mode="closed").concurrency == 10
    with pytest.raises(ValidationError, match="'rate' is for the open model"):
        LoadProfile(mode="closed", rate=10)


def test_open_profiles_send_their_rate_times_its_time():
    assert expected_requests(stages_for(rate())) == 6000
    assert expected_requests(stages_for(rate(profile="soak"))) == 6000
    # spike: 10% of the rate, then full from 40% to 60% of the run, then 10% again
    assert expected_requests(stages_for(rate(profile="spike"))) == pytest.approx(
        10 * 24 + 100 * 12 + 10 * 24
    )
    assert expected_requests(stages_for(rate(profile="step"))) == pytest.approx(
        15 * (25 + 50 + 75 + 100)
    )
    assert expected_requests(stages_for(rate(profile="ramp"))) == pytest.approx(
        3 * sum(100 * (i + 1) / 20 for i in range(20))
    )
    assert expected_requests(stages_for(profile())) is None  # the closed model asks no rate


def test_an_open_spike_goes_from_a_tenth_of_the_rate_to_all_of_it_and_back():
    assert [(s.end_s, s.rate) for s in stages_for(rate(profile="spike"))] == [
        (24, 10), (36, 100), (60, 10)
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_ends_at_duration_and_peaks_at_users(name):
    stages = stages_for(profile(profile=name))
    assert stages[-1].end_s == 60
    assert [s.end_s for s in stages] == sorted(s.end_s for s in stages)
    assert max(s.users for s in stages) == 20
    assert all(s.users >= 1 and s.spawn_rate > 0 for s in stages)


def test_steady_and_soak_hold_users_for_the_duration():
    expected = [Stage(60, 20, 5)]
    assert stages_for(profile(profile="steady")) == expected
    assert stages_for(profile(profile="soak")) == expected


def test_ramp_climbs_linearly_to_users_at_the_end():
    assert stages_for(profile(profile="ramp")) == [Stage(60, 20, 20 / 60)]


def test_ramp_never_spawns_faster_than_asked():
    assert stages_for(profile(profile="ramp", spawn_rate=0.1))[0].spawn_rate == 0.1


def test_spike_goes_from_a_base_to_users_and_back():
    assert stages_for(profile(profile="spike")) == [
        Stage(24, 2, 5),
        Stage(36, 20, 5),
        Stage(60, 2, 5),
    ]


def test_step_climbs_in_equal_steps():
    assert stages_for(profile(profile="step")) == [
        Stage(15, 5, 5),
        Stage(30, 10, 5),
        Stage(45, 15, 5),
        Stage(60, 20, 5),
    ]


def test_step_with_fewer_users_than_steps_has_one_step_per_user():
    assert [s.users for s in stages_for(profile(profile="step", users=2))] == [1, 2]


def test_stage_at_walks_the_table_then_stops():
    stages = stages_for(profile(profile="step"))
    assert stage_at(stages, 0).users == 5
    assert stage_at(stages, 15).users == 10
    assert stage_at(stages, 59.9).users == 20
    assert stage_at(stages, 60) is None


@pytest.mark.parametrize(
    "load",
    [
        profile(profile="spike", spawn_rate=2.5, batch_size=8),
        rate(profile="ramp", rate=250.5, batch_size=4),
        LoadProfile(),
    ],
)
def test_profile_survives_the_trip_through_the_environment(load, tmp_path):
    assert profile_from_env(locust_env(load, tmp_path / "t.jsonl")) == load


@pytest.mark.parametrize(
    "fields",
    [
        {"profile": "tsunami"},
        {"users": 0},
        {"spawn_rate": 0},
        {"duration_s": 0},
        {"batch_size": 0},
        {"users": 10_001},
    ],
)
def test_invalid_profiles_are_rejected(fields):
    with pytest.raises(ValidationError):
        LoadProfile(**fields)


def test_invalid_environment_is_rejected():
    with pytest.raises(ValidationError):
        profile_from_env({"FEARLESS_USERS": "many"})


def test_a_user_waiting_out_a_slow_stage_joins_the_spike_on_time():
    # 4 users, spike of a 3 s run: 5 req/s (one request per user each 0.8 s) until 1.2 s,
    # then 50 req/s (each 0.08 s) until 1.8 s. A user last sent at 1.1 s does not sleep
    # 0.8 s through the spike: its 0.1 s at the slow pace is an eighth of a request.
    stages = stages_for(rate(profile="spike", rate=50, users=4, duration_s=3))
    assert next_due(stages, 1.1) == pytest.approx(1.2 + 0.875 * 0.08)
    assert next_due(stages, 0.0, share=0.5) == pytest.approx(0.4)


def test_following_the_schedule_sends_what_the_table_asks():
    stages = stages_for(rate(profile="spike", rate=50, users=4, duration_s=3))
    sent = 0
    for phase in (0.0, 0.25, 0.5, 0.75):  # four users, spread phases
        due = next_due(stages, 0.0, share=phase) if phase else 0.0
        while due < 3.0:
            sent, due = sent + 1, next_due(stages, due)
    assert sent == pytest.approx(expected_requests(stages), abs=4)
