import pytest

from simulations.replay import ReplayClock, batch_offsets


def slots(clock: ReplayClock, n: int) -> list[tuple[int, float]]:
    return [clock.next() for _ in range(n)]


def test_slots_come_in_recorded_order_at_their_offsets():
    clock = ReplayClock([10.0, 10.5, 12.0])
    assert slots(clock, 3) == [(0, 0.0), (1, 0.5), (2, 2.0)]


def test_after_the_log_it_starts_again_one_mean_gap_later():
    clock = ReplayClock([0.0, 1.0, 2.0])
    assert slots(clock, 5)[3:] == [(0, 3.0), (1, 4.0)]


def test_speed_compresses_time():
    assert slots(ReplayClock([0.0, 1.0, 3.0], speed=2.0), 3) == [(0, 0.0), (1, 0.5), (2, 1.5)]


def test_a_burst_of_simultaneous_records_is_due_at_once():
    assert [due for _, due in slots(ReplayClock([0.0, 0.0, 0.0]), 4)] == [0.0, 0.0, 0.0, 1.0]


def test_batches_take_the_offset_of_their_first_record():
    assert batch_offsets([0.0, 1.0, 2.0, 3.0, 4.0], 2) == [0.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("offsets", "speed", "message"),
    [([], 1.0, "at least one"), ([0.0], 0.0, "positive"), ([1.0, 0.5], 1.0, "order")],
)
def test_bad_replays_are_refused(offsets, speed, message):
    with pytest.raises(ValueError, match=message):
        ReplayClock(offsets, speed)
