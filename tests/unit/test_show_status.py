"""TMDB show statuses map to ours: every status, the hiatus rule, and its edges."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings, strategies as st

from riven_async.domain.media import ShowStatus
from riven_async.services.indexers.status import (
    DEFAULT_HIATUS_AFTER_S,
    ENDED_TMDB_STATUSES,
    ONGOING_TMDB_STATUSES,
    show_status,
)

NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
RUNNING = ("Returning Series", "In Production", "Planned", "Pilot")
ENDED = ("Ended", "Canceled")

moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
hiatus_spans = st.floats(min_value=60.0, max_value=400 * 86_400.0)


@pytest.mark.parametrize(
    ("tmdb_status", "next_announced", "last_aired_days_ago", "expected"),
    [
        ("Returning Series", True, 1, ShowStatus.ONGOING),
        ("Returning Series", False, 10, ShowStatus.ONGOING),
        ("Returning Series", False, 200, ShowStatus.HIATUS),
        ("Returning Series", True, 200, ShowStatus.ONGOING),
        ("In Production", False, None, ShowStatus.ONGOING),
        ("In Production", False, 400, ShowStatus.HIATUS),
        ("Planned", False, None, ShowStatus.ONGOING),
        ("Planned", True, None, ShowStatus.ONGOING),
        ("Pilot", False, 5, ShowStatus.ONGOING),
        ("Pilot", False, 91, ShowStatus.HIATUS),
        ("Ended", False, 3000, ShowStatus.ENDED),
        ("Ended", False, 1, ShowStatus.ENDED),
        ("Canceled", False, 30, ShowStatus.ENDED),
        ("Canceled", True, 900, ShowStatus.ONGOING),  # revived before TMDB noticed
        ("Cancelled", False, 30, ShowStatus.ENDED),
        (None, True, 1, ShowStatus.UNKNOWN),
        ("", False, None, ShowStatus.UNKNOWN),
        ("Rumored", False, None, ShowStatus.UNKNOWN),
    ],
)
def test_every_tmdb_status_maps_to_ours(
    tmdb_status: str | None,
    next_announced: bool,
    last_aired_days_ago: int | None,
    expected: ShowStatus,
) -> None:
    last = None if last_aired_days_ago is None else NOW - timedelta(days=last_aired_days_ago)
    status = show_status(tmdb_status, next_announced=next_announced, last_aired_at=last, now=NOW)
    assert status is expected


@settings(max_examples=300, deadline=None)
@given(
    tmdb_status=st.sampled_from(RUNNING),
    last=st.none() | moments,
    now=moments,
    hiatus_after_s=hiatus_spans,
)
def test_a_running_show_with_nothing_announced_is_on_hiatus_exactly_past_the_break(
    tmdb_status: str, last: datetime | None, now: datetime, hiatus_after_s: float
) -> None:
    status = show_status(
        tmdb_status,
        next_announced=False,
        last_aired_at=last,
        now=now,
        hiatus_after_s=hiatus_after_s,
    )
    on_break = last is not None and (now - last).total_seconds() > hiatus_after_s
    assert status is (ShowStatus.HIATUS if on_break else ShowStatus.ONGOING)


@settings(max_examples=200, deadline=None)
@given(
    tmdb_status=st.sampled_from(RUNNING + ENDED),
    last=st.none() | moments,
    now=moments,
    hiatus_after_s=hiatus_spans,
)
def test_an_announced_next_episode_always_means_ongoing(
    tmdb_status: str, last: datetime | None, now: datetime, hiatus_after_s: float
) -> None:
    status = show_status(
        tmdb_status, next_announced=True, last_aired_at=last, now=now, hiatus_after_s=hiatus_after_s
    )
    assert status is ShowStatus.ONGOING


@settings(max_examples=200, deadline=None)
@given(tmdb_status=st.sampled_from(ENDED), last=st.none() | moments, now=moments)
def test_ended_and_canceled_without_a_next_episode_are_ended_whenever_they_last_aired(
    tmdb_status: str, last: datetime | None, now: datetime
) -> None:
    status = show_status(tmdb_status, next_announced=False, last_aired_at=last, now=now)
    assert status is ShowStatus.ENDED


@settings(max_examples=200, deadline=None)
@given(tmdb_status=st.text(max_size=30), next_announced=st.booleans(), last=st.none() | moments)
def test_statuses_we_do_not_know_are_unknown(
    tmdb_status: str, next_announced: bool, last: datetime | None
) -> None:
    assume(tmdb_status.strip().casefold() not in ONGOING_TMDB_STATUSES | ENDED_TMDB_STATUSES)
    status = show_status(tmdb_status, next_announced=next_announced, last_aired_at=last, now=NOW)
    assert status is ShowStatus.UNKNOWN


@settings(max_examples=100, deadline=None)
@given(
    tmdb_status=st.sampled_from(RUNNING + ENDED),
    spelling=st.sampled_from([str.upper, str.lower, str.title, lambda s: f"  {s}\t"]),
    next_announced=st.booleans(),
)
def test_case_and_surrounding_blanks_do_not_matter(
    tmdb_status: str, spelling: Callable[[str], str], next_announced: bool
) -> None:
    last = NOW - timedelta(days=120)
    exact = show_status(tmdb_status, next_announced=next_announced, last_aired_at=last, now=NOW)
    respelled = show_status(
        spelling(tmdb_status), next_announced=next_announced, last_aired_at=last, now=NOW
    )
    assert respelled is exact


@settings(max_examples=200, deadline=None)
@given(
    tmdb_status=st.sampled_from(RUNNING),
    last=moments,
    steps=st.lists(st.floats(min_value=0.0, max_value=60 * 86_400.0), min_size=1, max_size=12),
)
def test_time_only_moves_a_quiet_show_from_ongoing_to_hiatus_never_back(
    tmdb_status: str, last: datetime, steps: list[float]
) -> None:
    now = last
    seen: list[ShowStatus] = []
    for step in steps:
        now += timedelta(seconds=step)
        seen.append(show_status(tmdb_status, next_announced=False, last_aired_at=last, now=now))
    assert seen == sorted(seen, key=lambda s: s is ShowStatus.HIATUS)


def test_the_break_is_strictly_longer_than_the_configured_span() -> None:
    last = NOW - timedelta(seconds=DEFAULT_HIATUS_AFTER_S)
    assert show_status("Returning Series", next_announced=False, last_aired_at=last, now=NOW) is (
        ShowStatus.ONGOING
    )
    earlier = last - timedelta(microseconds=1)
    assert show_status(
        "Returning Series", next_announced=False, last_aired_at=earlier, now=NOW
    ) is (ShowStatus.HIATUS)
    assert show_status(
        "Returning Series",
        next_announced=False,
        last_aired_at=NOW - timedelta(days=20),
        now=NOW,
        hiatus_after_s=14 * 86_400.0,
    ) is (ShowStatus.HIATUS)


def test_a_last_air_time_in_the_future_is_not_a_break() -> None:
    tomorrow = NOW + timedelta(days=1)
    status = show_status("Returning Series", next_announced=False, last_aired_at=tomorrow, now=NOW)
    assert status is ShowStatus.ONGOING


@pytest.mark.parametrize("hiatus_after_s", [0.0, -1.0])
def test_a_break_must_be_positive(hiatus_after_s: float) -> None:
    with pytest.raises(ValueError, match="hiatus_after_s"):
        show_status(
            "Ended",
            next_announced=False,
            last_aired_at=None,
            now=NOW,
            hiatus_after_s=hiatus_after_s,
        )
