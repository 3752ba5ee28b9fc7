"""The scheduler's rules and the routine budgets, for every status and edge of issue 6."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from riven_async.core.clock import ManualClock
from riven_async.db.schedule import FORCED_PRIORITY
from riven_async.domain.media import ShowStatus
from riven_async.pipeline.scheduler import (
    DAY_S,
    UNLIMITED_CHECKS,
    WEEK_S,
    CallBudget,
    CheckPriority,
    MovieFacts,
    RoutineBudget,
    SchedulePolicy,
    Scheduler,
    ShowFacts,
    next_movie_check,
    next_show_check,
)
from riven_async.services.indexers import status as show_statuses
from riven_async.services.indexers.records import AirTimeSource
from riven_async.services.indexers.tvmaze import AirTimeRule

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
POLICY = SchedulePolicy()
DELAY = timedelta(seconds=POLICY.release_delay_s)

statuses = st.sampled_from(list(ShowStatus))
offsets = st.floats(min_value=-90 * DAY_S, max_value=90 * DAY_S, allow_nan=False)
maybe_offsets = st.none() | offsets


def _at(offset_s: float | None) -> datetime | None:
    return None if offset_s is None else NOW + timedelta(seconds=offset_s)


@settings(max_examples=300, deadline=None)
@given(statuses, maybe_offsets, st.booleans(), maybe_offsets, maybe_offsets)
def test_the_next_check_is_in_the_future_and_never_later_than_the_safety_net(
    status: ShowStatus, next_s: float | None, exact: bool, last_s: float | None,
    requested_s: float | None,
) -> None:
    facts = ShowFacts(status, _at(next_s), exact, _at(last_s), _at(requested_s))
    check = next_show_check(facts, NOW, POLICY)
    assert check.at > NOW
    assert check.at <= NOW + timedelta(seconds=POLICY.routine_interval_s(status))
    if check.reason == "routine":
        assert check.priority is CheckPriority.ROUTINE


def test_no_next_episode_waits_the_status_interval() -> None:
    expected = {
        ShowStatus.ONGOING: WEEK_S, ShowStatus.UNKNOWN: WEEK_S,
        ShowStatus.HIATUS: 2 * WEEK_S, ShowStatus.ENDED: 30 * DAY_S,
    }
    for status, interval in expected.items():
        check = next_show_check(ShowFacts(status), NOW, POLICY)
        assert (check.at, check.priority, check.reason) == (
            NOW + timedelta(seconds=interval), CheckPriority.ROUTINE, "routine")


@settings(max_examples=200, deadline=None)
@given(statuses, st.floats(min_value=60, max_value=6 * DAY_S))
def test_a_known_next_episode_is_checked_at_its_air_time_plus_the_delay(
    status: ShowStatus, ahead_s: float
) -> None:
    air = NOW + timedelta(seconds=ahead_s)
    check = next_show_check(ShowFacts(status, next_air_at=air), NOW, POLICY)
    assert (check.at, check.priority, check.reason) == (air + DELAY, CheckPriority.AIRED,
                                                        "air_time")


def test_a_far_next_episode_leaves_the_routine_check_first() -> None:
    air = NOW + timedelta(days=40)
    check = next_show_check(ShowFacts(ShowStatus.ONGOING, next_air_at=air), NOW, POLICY)
    assert (check.at, check.reason) == (NOW + timedelta(weeks=1), "routine")


def test_a_next_episode_without_time_is_checked_before_its_assumed_time_too() -> None:
    # TMDB gave a date only and TVMaze has no match: the time is the fallback, so the
    # show is checked half a day before, to learn the real time, then at time + delay.
    air = NOW + timedelta(days=2)
    first = next_show_check(ShowFacts(ShowStatus.ONGOING, air, next_air_exact=False), NOW, POLICY)
    assert (first.at, first.reason) == (air - timedelta(hours=12), "inexact_air_time")
    later = air - timedelta(hours=6)
    second = next_show_check(ShowFacts(ShowStatus.ONGOING, air, next_air_exact=False), later,
                             POLICY)
    assert (second.at, second.reason) == (air + DELAY, "air_time")
    exact = next_show_check(ShowFacts(ShowStatus.ONGOING, air, next_air_exact=True), NOW, POLICY)
    assert exact.reason == "air_time"


def test_a_time_zone_without_tvmaze_comes_from_the_network_country() -> None:
    # No TVMaze: the date at the fallback local time in the country's prime-time zone.
    rule = AirTimeRule(fallback_time=time(21, 0))
    zone = rule.zone(None, ["GB"])
    assert zone is not None
    assert zone.key == "Europe/London"
    summer, winter = date(2026, 7, 1), date(2026, 1, 15)
    at, source = rule.air_time(summer, None, zone)
    assert (at, source) == (datetime(2026, 7, 1, 20, 0, tzinfo=UTC), AirTimeSource.FALLBACK)
    at, _ = rule.air_time(winter, None, zone)
    assert at == datetime(2026, 1, 15, 21, 0, tzinfo=UTC)
    check = next_show_check(
        ShowFacts(ShowStatus.ONGOING, at, next_air_exact=source is AirTimeSource.EXACT),
        at - timedelta(days=3), POLICY)
    assert check.reason == "inexact_air_time"
    # No zone at all: UTC.
    at, source = rule.air_time(winter, None, rule.zone(None, ["XX"]))
    assert (at, source) == (datetime(2026, 1, 15, 21, 0, tzinfo=UTC), AirTimeSource.UTC)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=20 * DAY_S), st.floats(min_value=0, max_value=DAY_S))
def test_missing_data_after_air_time_is_rechecked_at_growing_intervals(
    late_s: float, step_s: float
) -> None:
    air = NOW - DELAY - timedelta(seconds=late_s)
    facts = ShowFacts(ShowStatus.ONGOING, next_air_at=air)
    first = next_show_check(facts, NOW, POLICY)
    wait = (first.at - NOW).total_seconds()
    assert first.reason == "aired_data_missing"
    assert first.priority is CheckPriority.AIRED
    assert POLICY.missing_recheck_min_s <= wait <= POLICY.missing_recheck_max_s
    later = next_show_check(facts, NOW + timedelta(seconds=step_s), POLICY)
    # Never shorter the longer the data has been missing.
    assert (later.at - NOW - timedelta(seconds=step_s)).total_seconds() >= wait - 1e-6


def test_missing_data_waits_double_each_time() -> None:
    air = NOW - DELAY
    facts = ShowFacts(ShowStatus.ONGOING, next_air_at=air)
    at, waits = NOW + timedelta(seconds=POLICY.missing_recheck_min_s), []
    for _ in range(8):
        check = next_show_check(facts, at, POLICY)
        waits.append((check.at - at).total_seconds())
        at = check.at
    assert waits[:5] == [1800 * 2**i for i in range(5)]
    assert waits[-1] == POLICY.missing_recheck_max_s


def test_an_ongoing_show_is_checked_in_its_weekly_slot_after_the_last_episode() -> None:
    last = NOW - timedelta(days=2)
    check = next_show_check(ShowFacts(ShowStatus.ONGOING, last_air_at=last), NOW, POLICY)
    assert (check.at, check.reason) == (last + timedelta(weeks=1) + DELAY, "weekly_slot")
    # Once the slot passed with nothing new, the routine interval takes over.
    after = next_show_check(ShowFacts(ShowStatus.ONGOING, last_air_at=last), check.at, POLICY)
    assert after.reason == "routine"
    # A hiatus show has no weekly slot.
    hiatus = next_show_check(ShowFacts(ShowStatus.HIATUS, last_air_at=last), NOW, POLICY)
    assert hiatus.reason == "routine"


@settings(max_examples=200, deadline=None)
@given(statuses, st.floats(min_value=0, max_value=3 * DAY_S))
def test_a_fresh_request_is_checked_hourly_for_a_day(status: ShowStatus, age_s: float) -> None:
    requested = NOW - timedelta(seconds=age_s)
    check = next_show_check(ShowFacts(status, requested_at=requested), NOW, POLICY)
    if age_s < DAY_S:
        assert (check.at, check.priority) == (NOW + timedelta(hours=1), CheckPriority.FRESH)
    else:
        assert check.reason == "routine"


def test_a_canceled_show_revived_follows_its_new_episode() -> None:
    # TMDB still says Canceled but lists a next episode: ongoing, checked at the air time.
    air = NOW + timedelta(days=3)
    status = show_statuses.show_status("Canceled", next_announced=True,
                                       last_aired_at=NOW - timedelta(days=800), now=NOW)
    assert status is ShowStatus.ONGOING
    check = next_show_check(ShowFacts(status, next_air_at=air), NOW, POLICY)
    assert (check.at, check.reason) == (air + DELAY, "air_time")
    ended = show_statuses.show_status("Canceled", next_announced=False, last_aired_at=None,
                                      now=NOW)
    assert next_show_check(ShowFacts(ended), NOW, POLICY).at == NOW + timedelta(days=30)


def test_a_webhook_forced_check_outranks_every_rule() -> None:
    assert FORCED_PRIORITY == CheckPriority.FORCED
    assert max(CheckPriority) is CheckPriority.FORCED
    order = [CheckPriority.AIRED, CheckPriority.CHANGED, CheckPriority.FRESH,
             CheckPriority.ROUTINE]
    assert order == sorted(order, reverse=True)


def test_equal_times_keep_the_more_urgent_priority() -> None:
    requested = NOW
    air = NOW + timedelta(hours=1) - DELAY
    check = next_show_check(ShowFacts(ShowStatus.ONGOING, air, requested_at=requested), NOW,
                            POLICY)
    assert (check.at, check.priority) == (NOW + timedelta(hours=1), CheckPriority.AIRED)


def test_movies_are_checked_on_their_release_date_then_rarely() -> None:
    soon = NOW + timedelta(days=3)
    check = next_movie_check(MovieFacts(soon), NOW, POLICY)
    assert (check.at, check.priority, check.reason) == (soon, CheckPriority.AIRED,
                                                        "release_date")
    far = next_movie_check(MovieFacts(NOW + timedelta(days=60)), NOW, POLICY)
    assert far.at == NOW + timedelta(weeks=1)
    out = next_movie_check(MovieFacts(NOW - timedelta(days=1)), NOW, POLICY)
    assert out.at == NOW + timedelta(days=30)
    unknown = next_movie_check(MovieFacts(None, requested_at=NOW), NOW, POLICY)
    assert (unknown.at, unknown.reason) == (NOW + timedelta(hours=1), "fresh_request")


def test_the_scheduler_reads_its_clock() -> None:
    clock = ManualClock(NOW)
    scheduler = Scheduler(POLICY, clock)
    clock.advance(3600)
    check = scheduler.for_show(ShowFacts(ShowStatus.ENDED))
    assert check.at == NOW + timedelta(hours=1, days=30)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=10, max_value=50_000),
       st.lists(st.tuples(st.floats(min_value=0, max_value=7200), st.integers(0, 500)),
                min_size=1, max_size=60))
def test_a_budget_admits_no_more_than_its_daily_rate_plus_one_burst(
    per_day: float, steps: list[tuple[float, int]]
) -> None:
    clock = ManualClock(NOW)
    budget = RoutineBudget({"tmdb": CallBudget(per_day, clock)}, {"tmdb": 1.0})
    admitted = 0
    for wait_s, wanted in steps:
        clock.advance(wait_s)
        take = min(wanted, budget.allowance())
        budget.admit(take)
        admitted += take
    elapsed = clock.monotonic()
    burst = max(1.0, per_day * 900 / DAY_S)
    assert admitted <= burst + per_day * elapsed / DAY_S + 1e-6


def test_a_budget_spreads_a_backlog_evenly_over_the_day() -> None:
    clock = ManualClock(NOW)
    budget = RoutineBudget({"tmdb": CallBudget(2400, clock)}, {"tmdb": 1.0})
    per_hour = []
    for _ in range(24):
        taken = 0
        for _ in range(60):
            clock.advance(60)
            take = budget.allowance()
            budget.admit(take)
            taken += take
        per_hour.append(taken)
    # The first hour also spends the initial burst (15 minutes' worth).
    assert 100 + 25 - 2 <= per_hour[0] <= 100 + 25
    assert all(99 <= n <= 101 for n in per_hour[1:])


def test_only_routine_checks_spend_the_budget_each_at_its_expected_cost() -> None:
    clock = ManualClock(NOW)
    budget = RoutineBudget({"tmdb": CallBudget(8640, clock), "tvmaze": CallBudget(864, clock)},
                           {"tmdb": 1.5, "tvmaze": 0.5})
    # 15 minutes of each: 90 TMDB calls (60 checks), 9 TVMaze calls (18 checks).
    assert budget.allowance() == 18
    budget.admit(18)
    assert budget.allowance() == 0
    wait_s = budget.seconds_until_allowed()
    assert wait_s == pytest.approx(0.5 / (864 / DAY_S))  # TVMaze's half call refills first
    clock.advance(wait_s)
    assert budget.allowance() == 1


def test_an_upstream_a_routine_check_does_not_call_never_holds_it_back() -> None:
    clock = ManualClock(NOW)
    budget = RoutineBudget({"tmdb": CallBudget(86.4, clock), "tvmaze": CallBudget(1, clock)},
                           {"tmdb": 1.0})
    assert budget.allowance() == 1
    budget.admit(1)
    assert budget.allowance() == 0
    assert budget.seconds_until_allowed() == pytest.approx(1000.0)
    assert RoutineBudget({"tmdb": CallBudget(1, clock)}, {}).allowance() == UNLIMITED_CHECKS


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=1, max_value=5_000), st.floats(min_value=0.5, max_value=20),
       st.floats(min_value=60, max_value=6 * 3600))
def test_a_check_costing_more_than_a_full_budget_still_runs_at_the_daily_rate(
    per_day: float, cost: float, horizon_s: float
) -> None:
    clock = ManualClock(NOW)
    budget = RoutineBudget({"tmdb": CallBudget(per_day, clock)}, {"tmdb": cost})
    admitted = 0
    while clock.monotonic() < horizon_s:
        if (take := budget.allowance()) >= 1:
            budget.admit(take)
            admitted += take
            continue
        wait_s = budget.seconds_until_allowed()
        assert wait_s > 0  # never a busy loop
        clock.advance(wait_s)
    cap = max(1.0, per_day * 900 / DAY_S)
    # Never starved, never more than the daily rate plus one full budget (and one check).
    assert admitted >= 1
    assert (admitted - 1) * cost <= cap + per_day * clock.monotonic() / DAY_S + 1e-6
