"""Status rules over a sliding window (hub.monitor.status): pure logic, no Kafka."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.monitor.status import PartitionSample, Rules, Sample, Status, StatusTracker, evaluate, worst

RULES = Rules(window=60.0, stall_after=15.0)


def sample(ts: float, *parts: tuple[int, int, float | None]) -> Sample:
    """A sample of partitions given as (position, lag, waiting_since), numbered from 0."""
    return Sample(ts, {i: PartitionSample(pos, lag, since) for i, (pos, lag, since) in enumerate(parts)})


def feed(tracker: StatusTracker, samples: list[Sample]) -> list[Status]:
    return [tracker.add(s).status for s in samples]


def test_idle_subscription_is_ok_with_zero_lag_forever() -> None:
    tracker = StatusTracker(RULES)
    verdicts = [tracker.add(sample(t, (42, 0, None))) for t in range(0, 600, 5)]
    assert {v.status for v in verdicts} == {Status.OK}
    assert verdicts[-1].reason == "idle"
    assert verdicts[-1].stuck_seconds == 0.0


def test_never_consumed_empty_topic_is_ok() -> None:
    assert StatusTracker(RULES).add(sample(0, (0, 0, None), (0, 0, None))).status is Status.OK


def test_first_sample_proves_nothing_even_with_old_waiting_records() -> None:
    assert StatusTracker(RULES).add(sample(100, (10, 3, 99.5))).status is Status.OK
    assert StatusTracker(RULES).add(sample(1000, (10, 3, 1.0))).status is Status.OK


def test_first_sample_without_any_age_information_is_ok() -> None:
    verdict = StatusTracker(RULES).add(sample(100, (10, 3, None)))
    assert verdict.status is Status.OK


def test_stopped_consumer_goes_ok_then_stall_then_stop() -> None:
    tracker = StatusTracker(RULES)
    statuses = feed(tracker, [sample(t, (10, 0, None)) for t in range(0, 30, 5)])
    assert set(statuses) == {Status.OK}
    # The consumer stops; records arrive at t=30 and wait.
    waiting = [sample(t, (10, 5, 30.0)) for t in range(30, 120, 5)]
    statuses = feed(tracker, waiting)
    first_stall = statuses.index(Status.STALL)
    first_stop = statuses.index(Status.STOP)
    assert set(statuses[:first_stall]) == {Status.OK}
    assert set(statuses[first_stall:first_stop]) == {Status.STALL}
    assert set(statuses[first_stop:]) == {Status.STOP}
    # thresholds: STALL once 15 s without progress, STOP after more than the 60 s window
    assert waiting[first_stall].ts - 30 >= 15
    assert waiting[first_stop].ts - 30 > 60
    assert waiting[first_stop - 1].ts - 30 <= 60


def test_stall_and_stop_reasons_name_partition_and_records() -> None:
    tracker = StatusTracker(RULES)
    tracker.add(sample(0, (10, 5, 0.0)))
    stall = tracker.add(sample(20, (10, 5, 0.0)))
    assert stall.status is Status.STALL
    assert "partition 0" in stall.reason
    assert "5 records waiting" in stall.reason
    assert stall.stuck_seconds == 20
    stop = tracker.add(sample(70, (10, 5, 0.0)))
    assert stop.status is Status.STOP
    assert "no progress for 70 s" in stop.reason


def test_restarted_consumer_is_ok_again() -> None:
    tracker = StatusTracker(RULES)
    feed(tracker, [sample(t, (10, 5, 0.0)) for t in range(0, 100, 10)])
    assert tracker.add(sample(100, (10, 5, 0.0))).status is Status.STOP
    assert tracker.add(sample(105, (13, 2, 101.0))).status is Status.OK
    assert tracker.add(sample(110, (15, 0, None))).status is Status.OK


def test_progress_resets_the_stuck_clock_even_with_old_records() -> None:
    tracker = StatusTracker(RULES)
    # A backlog appended long ago is being worked through: the position moves at every sample.
    statuses = feed(tracker, [sample(1000 + t, (100 + t * 10, 500 - t * 10, 0.0)) for t in range(0, 30, 5)])
    assert set(statuses) == {Status.OK}


def test_stuck_clock_starts_at_the_last_move_not_at_the_old_record() -> None:
    tracker = StatusTracker(RULES)
    tracker.add(sample(1000, (100, 50, 0.0)))
    tracker.add(sample(1005, (110, 40, 0.0)))  # moved at 1005
    verdict = tracker.add(sample(1010, (110, 40, 0.0)))
    assert verdict.status is Status.OK
    assert verdict.stuck_seconds == 0.0
    assert tracker.add(sample(1025, (110, 40, 0.0))).status is Status.STALL
    assert tracker.add(sample(1066, (110, 40, 0.0))).status is Status.STOP


def test_dead_consumer_with_an_old_backlog_is_stop_at_the_second_look() -> None:
    # No history: the waiting record's age is the best estimate of how long nothing moved.
    tracker = StatusTracker(RULES)
    assert tracker.add(sample(1000, (0, 20, 100.0))).status is Status.OK
    verdict = tracker.add(sample(1001, (0, 20, 100.0)))
    assert verdict.status is Status.STOP
    assert verdict.stuck_seconds == 901


def test_consumer_moving_between_every_two_samples_is_never_stuck() -> None:
    tracker = StatusTracker(RULES)
    statuses = feed(tracker, [sample(float(t), (t, 5, 0.0)) for t in range(0, 200, 10)])
    assert set(statuses) == {Status.OK}


def test_lag_growing_while_moving_is_warn() -> None:
    tracker = StatusTracker(RULES)
    statuses = feed(tracker, [sample(t, (100 + t, 10 + t, float(t))) for t in range(4)])
    assert statuses[:2] == [Status.OK, Status.OK]  # fewer than 3 samples: not yet a trend
    assert statuses[2:] == [Status.WARN, Status.WARN]


def test_lag_growing_then_shrinking_is_ok() -> None:
    tracker = StatusTracker(RULES)
    statuses = feed(tracker, [sample(t, (100 + t, lag, float(t))) for t, lag in enumerate([5, 8, 12, 9])])
    assert statuses[-1] is Status.OK


def test_lag_growing_with_a_plateau_is_warn() -> None:
    tracker = StatusTracker(RULES)
    statuses = feed(tracker, [sample(t, (100 + t, lag, float(t))) for t, lag in enumerate([5, 8, 8, 9])])
    assert statuses[-2:] == [Status.WARN, Status.WARN]


def test_constant_lag_while_moving_is_ok() -> None:
    tracker = StatusTracker(RULES)
    statuses = feed(tracker, [sample(t, (100 + t, 7, float(t))) for t in range(10)])
    assert set(statuses) == {Status.OK}


def test_rewind_is_reported_while_in_the_window() -> None:
    tracker = StatusTracker(RULES)
    tracker.add(sample(0, (100, 0, None)))
    verdict = tracker.add(sample(5, (40, 60, 0.0)))
    assert verdict.status is Status.REWIND
    assert "from 100 to 40" in verdict.reason
    assert tracker.add(sample(30, (100, 0, None))).status is Status.REWIND
    # once the step back has left the window, the consumer is judged as usual
    assert tracker.add(sample(70, (100, 0, None))).status is Status.OK


def test_one_stuck_partition_makes_the_subscription_stall() -> None:
    tracker = StatusTracker(RULES)
    verdicts = [tracker.add(sample(t, (7, 3, 0.0), (100 + t, 1, float(t)))) for t in range(0, 25, 5)]
    assert verdicts[-1].status is Status.STALL
    assert "partition 0" in verdicts[-1].reason


def test_worst_partition_wins() -> None:
    tracker = StatusTracker(RULES)
    tracker.add(sample(0, (7, 3, 0.0), (5, 2, 50.0)))
    verdict = tracker.add(sample(80, (7, 3, 0.0), (5, 2, 50.0)))
    assert verdict.status is Status.STOP
    assert "partition 0" in verdict.reason


def test_window_keeps_one_baseline_sample() -> None:
    tracker = StatusTracker(Rules(window=10.0))
    for t in range(100):
        tracker.add(sample(float(t), (t, 0, None)))
    assert len(tracker.samples) == 11
    assert tracker.samples[0].ts == 89.0


def test_vanished_partition_is_forgotten() -> None:
    tracker = StatusTracker(RULES)
    tracker.add(sample(0, (1, 0, None), (1, 0, None)))
    verdict = tracker.add(Sample(5, {0: PartitionSample(1, 0)}))
    assert verdict.status is Status.OK


def test_samples_must_come_in_order() -> None:
    tracker = StatusTracker(RULES)
    tracker.add(sample(10, (1, 0, None)))
    with pytest.raises(ValueError, match="time order"):
        tracker.add(sample(9, (1, 0, None)))


def test_default_stall_after_is_a_quarter_window() -> None:
    assert Rules(window=8.0).stall_seconds == 2.0
    assert Rules(window=8.0, stall_after=0.5).stall_seconds == 0.5


@pytest.mark.parametrize(("window", "stall"), [(0.0, None), (-1.0, None), (10.0, 11.0), (10.0, -1.0)])
def test_rules_reject_nonsense(window: float, stall: float | None) -> None:
    with pytest.raises(ValueError, match=r"window|stall_after"):
        Rules(window=window, stall_after=stall)


def test_evaluate_without_samples_is_ok() -> None:
    assert evaluate([], RULES, {}).status is Status.OK


def test_clock_skew_never_gives_negative_stuck_time() -> None:
    tracker = StatusTracker(RULES)
    tracker.add(sample(100, (1, 4, 130.0)))  # record stamped in the future
    verdict = tracker.add(sample(101, (1, 4, 130.0)))
    assert verdict.status is Status.OK
    assert verdict.stuck_seconds == 0.0


def test_worst_orders_by_severity() -> None:
    assert worst([]) is Status.OK
    assert worst([Status.OK, Status.WARN]) is Status.WARN
    assert worst([Status.REWIND, Status.WARN]) is Status.REWIND
    assert worst([Status.STALL, Status.REWIND]) is Status.STALL
    assert worst([Status.STALL, Status.STOP, Status.OK]) is Status.STOP


def test_lag_growing_without_moving_is_not_warn() -> None:
    tracker = StatusTracker(RULES)
    statuses = feed(tracker, [sample(t, (100, lag, 0.5)) for t, lag in enumerate([1, 2, 3, 4])])
    assert Status.WARN not in statuses


_STEP = st.tuples(
    st.integers(min_value=1, max_value=20),  # seconds since the previous sample
    st.booleans(),  # the position moves
    st.integers(min_value=0, max_value=3),  # records waiting (mostly none or few)
    st.booleans(),  # the move is a rewind
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=60))
def test_idle_shortcut_gives_the_verdicts_of_the_full_rules(steps: list[tuple[int, bool, int, bool]]) -> None:
    """A window that stayed idle skips the evaluation; every verdict must still be the one the rules give."""
    fast, full = StatusTracker(RULES), StatusTracker(RULES)
    ts, position = 0.0, 100
    for gap, moves, lag, rewind in steps:
        ts += gap
        if moves:
            position += -5 if rewind else 1
        s = sample(ts, (position, lag, ts - 1 if lag else None))
        expected = full._add(s, full.samples[-1] if full.samples else None)  # never the shortcut
        got = fast.add(s)
        assert (got.status, got.reason, got.stuck_seconds) == (
            expected.status,
            expected.reason,
            expected.stuck_seconds,
        )
        assert [(x.ts, dict(x.partitions)) for x in fast.samples] == [
            (x.ts, dict(x.partitions)) for x in full.samples
        ]


def test_idle_shortcut_returns_the_same_verdict_and_leaves_on_the_first_change() -> None:
    tracker = StatusTracker(RULES)
    first = [tracker.add(sample(t, (42, 0, None))) for t in range(0, 20, 5)][-1]
    assert first.reason == "idle"
    assert tracker.add(sample(25, (42, 0, None))) is first  # nothing evaluated, nothing allocated
    assert tracker.add(sample(30, (42, 2, 29.0))).reason == "2 records waiting"
    statuses = feed(tracker, [sample(t, (42, 2, 29.0)) for t in range(35, 120, 5)])
    assert statuses.index(Status.STALL) < statuses.index(Status.STOP)
