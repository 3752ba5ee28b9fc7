"""Backoff with full jitter and Retry-After in both formats."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings, strategies as st

from riven_async.core.retry import (
    Backoff,
    DoublingBackoff,
    is_idempotent,
    is_retryable_status,
    parse_retry_after,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    base=st.floats(0.01, 5.0),
    cap=st.floats(0.01, 120.0),
    attempt=st.integers(0, 10_000),
    seed=st.integers(0, 2**32),
)
def test_full_jitter_stays_between_zero_and_the_capped_exponential(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    backoff = Backoff(base, cap)
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt, 62))


def test_ceiling_doubles_until_the_cap() -> None:
    backoff = Backoff(0.5, 5.0)
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_actually_spreads_the_delays() -> None:
    rng = random.Random(7)
    delays = [Backoff(1.0, 60.0).delay(3, rng) for _ in range(500)]
    assert min(delays) < 1.0
    assert max(delays) > 7.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_backoff_rejects_non_positive_values(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Backoff(base, cap)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_delta_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_http_date_imf_fixdate() -> None:
    value = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert value.endswith("GMT")
    assert parse_retry_after(value, NOW) == 90.0


def test_retry_after_obsolete_date_formats() -> None:
    assert parse_retry_after("Sunday, 01-Mar-26 12:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Sun Mar  1 12:01:00 2026", NOW) == 60.0


def test_retry_after_in_the_past_means_now() -> None:
    value = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(value, NOW) == 0.0


def test_retry_after_garbage_date_is_ignored() -> None:
    assert parse_retry_after("Mon, 99 Foo 2026 25:61:00 GMT", NOW) is None


@pytest.mark.parametrize(
    ("status", "retry"),
    [(429, True), (500, True), (502, True), (503, True), (504, True), (522, True),
     (501, False), (505, False), (400, False), (401, False), (404, False), (200, False)],
)  # fmt: skip
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


def test_idempotent_methods() -> None:
    assert is_idempotent("get")
    assert is_idempotent("DELETE")
    assert not is_idempotent("POST")
    assert not is_idempotent("PATCH")


def test_doubling_backoff_doubles_to_its_cap_within_the_jitter_and_resets() -> None:
    backoff = DoublingBackoff(1.0, 8.0, rng=random.Random(3))
    waits = [backoff.next_s() for _ in range(6)]
    for wait_s, nominal in zip(waits, [1, 2, 4, 8, 8, 8], strict=True):
        assert 0.8 * nominal <= wait_s <= 1.2 * nominal
    backoff.reset()
    assert 0.8 <= backoff.next_s() <= 1.2
