"""The re-scrape schedule: fast phases for fresh requests and new episodes, then a backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from riven_async.config import ScrapingSection
from riven_async.pipeline.scrape_schedule import ScrapeSchedule

T0 = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=400)
MIN, HOUR = 60.0, 3600.0


def _walk(schedule: ScrapeSchedule, start: datetime, count: int, **times: datetime) -> list[float]:
    """The delays a job sees when every run happens exactly when it was scheduled."""
    delays, now = [], start
    for _ in range(count):
        delay = schedule.delay_s(now=now, **times)
        delays.append(delay)
        now += timedelta(seconds=delay)
    return delays


def test_defaults_match_the_config_section() -> None:
    assert ScrapeSchedule.from_section(ScrapingSection()) == ScrapeSchedule()


def test_just_aired_episode_every_5_min_for_hours_then_30m_2h_6h_capped_at_24h() -> None:
    schedule = ScrapeSchedule()
    delays = _walk(schedule, T0, 56, requested_at=LONG_AGO, aired_at=T0, wanted_since=T0)
    assert delays[:48] == [5 * MIN] * 48  # 4 hours
    assert delays[48:] == [30 * MIN, 2 * HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR, 24 * HOUR,
                           24 * HOUR, 24 * HOUR]


def test_fresh_request_every_5_min_then_the_backoff() -> None:
    schedule = ScrapeSchedule()
    old_movie = T0 - timedelta(days=300)
    delays = _walk(schedule, T0, 15, requested_at=T0, aired_at=old_movie, wanted_since=T0)
    assert delays[:12] == [5 * MIN] * 12  # the first hour
    assert delays[12:] == [30 * MIN, 2 * HOUR, 6 * HOUR]


def test_others_start_at_30_min_from_when_they_began_waiting() -> None:
    schedule = ScrapeSchedule()
    # A retried item: requested and aired long ago, waiting again since now.
    delays = _walk(schedule, T0, 5, requested_at=LONG_AGO, aired_at=LONG_AGO, wanted_since=T0)
    assert delays == [30 * MIN, 2 * HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR]


def test_an_item_waiting_for_weeks_is_scraped_daily() -> None:
    schedule = ScrapeSchedule()
    waited = T0 - timedelta(days=20)
    assert schedule.delay_s(now=T0, requested_at=waited, wanted_since=waited) == 24 * HOUR


def test_a_late_run_moves_on_to_the_step_its_age_is_at() -> None:
    schedule = ScrapeSchedule()
    # Two hours and a half into the backoff: past 30 min + 2 h, so the 6 h step.
    now = T0 + timedelta(hours=2.5)
    assert schedule.delay_s(now=now, requested_at=LONG_AGO, wanted_since=T0) == 6 * HOUR


def test_everything_is_configurable() -> None:
    section = ScrapingSection(
        fresh_request_s=60, fresh_request_window_s=600, just_aired_s=120,
        just_aired_window_s=1200, others_s=600, backoff_s=[300, 900, 3600], max_backoff_s=5000,
    )
    schedule = ScrapeSchedule.from_section(section)
    assert schedule.backoff_steps() == (600, 900, 3600)
    delays = _walk(schedule, T0, 14, requested_at=LONG_AGO, aired_at=T0, wanted_since=T0)
    assert delays == [120.0] * 10 + [600, 900, 3600, 5000]
    assert schedule.delay_s(now=T0, requested_at=T0, wanted_since=T0) == 60


def test_config_rejects_a_shrinking_backoff() -> None:
    with pytest.raises(ValueError, match="must not get shorter"):
        ScrapingSection(backoff_s=[7200, 1800])


_delays = st.floats(min_value=1, max_value=100_000, allow_nan=False)
_windows = st.floats(min_value=0, max_value=200_000, allow_nan=False)


@st.composite
def _schedules(draw: st.DrawFn) -> ScrapeSchedule:
    backoff = sorted(draw(st.lists(_delays, min_size=1, max_size=5)))
    return ScrapeSchedule(
        fresh_request_s=draw(_delays), fresh_request_window_s=draw(_windows),
        just_aired_s=draw(_delays), just_aired_window_s=draw(_windows),
        others_s=draw(_delays), backoff_s=tuple(backoff), max_backoff_s=draw(_delays),
    )


_offsets = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(_schedules(), _offsets, _offsets, st.one_of(st.none(), _offsets))
def test_delay_is_always_one_of_the_configured_delays_or_the_cap(
    schedule: ScrapeSchedule, requested: float, waiting: float, aired: float | None
) -> None:
    now = T0
    delay = schedule.delay_s(
        now=now, requested_at=now - timedelta(seconds=abs(requested)),
        wanted_since=now - timedelta(seconds=abs(waiting)),
        aired_at=None if aired is None else now - timedelta(seconds=aired),
    )
    allowed = {schedule.fresh_request_s, schedule.just_aired_s, schedule.max_backoff_s,
               *schedule.backoff_steps()}
    assert delay > 0
    assert delay in allowed or (delay < schedule.max_backoff_s and any(
        delay == step * 2**k for step in schedule.backoff_steps() for k in range(1, 64)))
    assert delay <= max(schedule.max_backoff_s, schedule.fresh_request_s, schedule.just_aired_s)


@settings(max_examples=200, deadline=None)
@given(_schedules(), st.lists(st.floats(min_value=0, max_value=1e7), min_size=2, max_size=2))
def test_backoff_never_shrinks_as_an_item_waits_longer(
    schedule: ScrapeSchedule, ages: list[float]
) -> None:
    shorter, longer = sorted(ages)
    assert schedule.backoff_delay_s(shorter) <= schedule.backoff_delay_s(longer)


@settings(max_examples=100, deadline=None)
@given(_schedules())
def test_runs_on_time_walk_the_steps_one_by_one_then_double_to_the_cap(
    schedule: ScrapeSchedule,
) -> None:
    delays = _walk(schedule, T0, 12, requested_at=LONG_AGO, wanted_since=T0)
    expected = list(schedule.backoff_steps())
    while len(expected) < 12:
        expected.append(min(expected[-1] * 2, schedule.max_backoff_s))
    assert delays == pytest.approx(expected[:12])


@settings(max_examples=100, deadline=None)
@given(_schedules(), st.floats(min_value=0, max_value=1, exclude_max=True))
def test_inside_the_just_aired_window_the_fast_delay_applies(
    schedule: ScrapeSchedule, fraction: float
) -> None:
    aired = T0 - timedelta(seconds=schedule.just_aired_window_s * fraction)
    if aired + timedelta(seconds=schedule.just_aired_window_s) <= T0:
        return  # a zero-length window
    delay = schedule.delay_s(now=T0, requested_at=LONG_AGO, aired_at=aired, wanted_since=aired)
    assert delay == schedule.just_aired_s
