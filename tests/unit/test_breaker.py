"""The circuit breaker's states: closed, open, half-open with a single probe."""

from __future__ import annotations

import pytest

from riven_async.core.breaker import BreakerState, CircuitBreaker, CircuitOpen
from riven_async.core.clock import ManualClock


def make(failures: int = 3, reset_s: float = 30.0) -> tuple[CircuitBreaker, ManualClock]:
    clock = ManualClock()
    return CircuitBreaker(failures=failures, reset_s=reset_s, clock=clock, name="rd"), clock


def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.failure(breaker.admit())


def test_opens_after_consecutive_failures_only() -> None:
    breaker, _ = make(failures=3)
    trip(breaker, 2)
    breaker.success(breaker.admit())  # resets the count
    trip(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    trip(breaker, 1)
    assert breaker.stats().state is BreakerState.OPEN
    assert breaker.stats().opened_total == 1


def test_open_breaker_fails_fast_with_time_to_next_probe() -> None:
    breaker, clock = make(reset_s=30.0)
    trip(breaker, 3)
    clock.advance(10.0)
    with pytest.raises(CircuitOpen, match=r"rd: circuit open, next probe in 20\.0s") as caught:
        breaker.admit()
    assert caught.value.retry_in_s == 20.0
    with pytest.raises(CircuitOpen):
        breaker.check()
    assert breaker.stats().retry_in_s == 20.0


def test_half_open_admits_exactly_one_probe() -> None:
    breaker, clock = make()
    trip(breaker, 3)
    clock.advance(30.0)
    assert breaker.state is BreakerState.HALF_OPEN
    probe = breaker.admit()
    assert probe.probe
    for _ in range(10):
        with pytest.raises(CircuitOpen):
            breaker.admit()


def test_successful_probe_closes() -> None:
    breaker, clock = make()
    trip(breaker, 3)
    clock.advance(30.0)
    breaker.success(breaker.admit())
    assert breaker.state is BreakerState.CLOSED
    assert breaker.stats().consecutive_failures == 0
    assert not breaker.admit().probe


def test_failed_probe_reopens_for_another_interval() -> None:
    breaker, clock = make(reset_s=30.0)
    trip(breaker, 3)
    clock.advance(30.0)
    breaker.failure(breaker.admit())
    assert breaker.state is BreakerState.OPEN
    clock.advance(29.0)
    with pytest.raises(CircuitOpen):
        breaker.admit()
    clock.advance(1.0)
    assert breaker.admit().probe
    assert breaker.stats().opened_total == 1  # still the same outage


def test_abandoned_probe_lets_the_next_caller_probe() -> None:
    breaker, clock = make()
    trip(breaker, 3)
    clock.advance(30.0)
    breaker.abandon(breaker.admit())
    assert breaker.admit().probe


def test_late_results_of_calls_from_before_the_outage_do_not_move_an_open_breaker() -> None:
    breaker, clock = make()
    early = [breaker.admit() for _ in range(5)]
    for ticket in early[:3]:
        breaker.failure(ticket)
    assert breaker.state is BreakerState.OPEN
    breaker.success(early[3])
    breaker.failure(early[4])
    assert breaker.state is BreakerState.OPEN
    clock.advance(15.0)
    with pytest.raises(CircuitOpen, match=r"15\.0s"):
        breaker.admit()  # the late failure did not extend the interval either


def test_an_outage_costs_one_probe_per_interval() -> None:
    breaker, clock = make(failures=5, reset_s=30.0)
    sent = 0
    for second in range(600):  # ten minutes of a caller trying every 100 ms
        for _ in range(10):
            try:
                ticket = breaker.admit()
            except CircuitOpen:
                continue
            sent += 1
            breaker.failure(ticket)
            clock.advance(0.0)
        clock.set_elapsed(second + 1.0)
    assert sent == 5 + 600 // 30 - 1  # 5 to open, then one probe every 30 s


@pytest.mark.parametrize(("failures", "reset_s"), [(0, 1.0), (1, 0.0)])
def test_rejects_bad_settings(failures: int, reset_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(failures=failures, reset_s=reset_s, clock=ManualClock())


def test_repr_names_the_state() -> None:
    breaker, _ = make()
    assert repr(breaker) == "<CircuitBreaker rd closed>"
