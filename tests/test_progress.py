"""Time left, as the round and epoch log lines say it."""

from __future__ import annotations

from fedrec.progress import duration, time_left


def test_time_left_is_the_mean_pace_times_what_remains():
    assert time_left(3 * 83.0, 3, 10) == "~10 min left"
    assert time_left(20.0, 2, 5) == "~30 s left"


def test_time_left_is_capped_by_the_wall_time_budget_and_silent_when_done():
    assert time_left(600.0, 1, 10, at_most=120.0) == "~2 min left"
    assert time_left(50.0, 5, 5) == "" and time_left(0.0, 0, 5) == ""


def test_durations_read_in_the_unit_people_use():
    assert [duration(s) for s in (45, 600, 7300)] == ["45 s", "10 min", "2 h 02 min"]
