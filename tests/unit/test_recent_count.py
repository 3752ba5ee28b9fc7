"""RecentCount: events in the last hour, to within a bucket, in bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from riven_async.core.recent import RecentCount


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=200)
@given(st.lists(st.tuples(st.floats(0, 500, allow_nan=False), st.integers(1, 5)),
                max_size=60))
def test_the_count_is_every_event_of_the_span_to_within_one_bucket(
    steps: list[tuple[float, int]],
) -> None:
    clock = FakeTime()
    recent = RecentCount(span_s=3600.0, bucket_s=60.0, clock=clock)
    events: list[tuple[float, int]] = []
    for advance, n in steps:
        clock.now += advance
        recent.add(n)
        events.append((clock.now, n))
    total = recent.total()
    # Every event of the last 59 minutes is counted; none older than 60 minutes is.
    assert total >= sum(n for at, n in events if at > clock.now - 3540.0)
    assert total <= sum(n for at, n in events if at > clock.now - 3600.0 - 60.0)
    assert len(recent._buckets) <= 60


def test_an_hour_later_nothing_is_left() -> None:
    clock = FakeTime()
    recent = RecentCount(clock=clock)
    recent.add(7)
    assert recent.total() == 7
    clock.now += 3600.0
    assert recent.total() == 0


def test_a_bucket_wider_than_the_span_is_refused() -> None:
    with pytest.raises(ValueError, match="bucket_s"):
        RecentCount(span_s=60.0, bucket_s=120.0)
