"""The sliding-window limiter: the invariant, FIFO, cancellation, pauses, and no lost throughput."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from aiolimiter import AsyncLimiter
from hypothesis import HealthCheck, given, settings, strategies as st

from riven_async.core.clock import ManualClock, SystemClock
from riven_async.core.ratelimit import SlidingWindowLimiter, Window

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def max_in_any_window(starts: Sequence[float], window: Window) -> int:
    """Most starts inside any half-open interval ``[a, a + seconds)``."""
    ordered = sorted(starts)
    best = 0
    lo = 0
    for hi, start in enumerate(ordered):
        # ordered[lo] is outside the window ending at ``start`` iff start >= ordered[lo] + T.
        while start >= ordered[lo] + window.seconds:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def reference_schedule(windows: Sequence[Window], arrivals: Sequence[float]) -> list[float]:
    """FIFO greedy: each request starts at the first instant every window has room."""
    starts: list[float] = []
    previous = float("-inf")
    for arrival in arrivals:
        at = max(arrival, previous)
        for w in windows:
            if len(starts) >= w.limit:
                at = max(at, starts[-w.limit] + w.seconds)
        starts.append(at)
        previous = at
    return starts


async def started_at(limiter: SlidingWindowLimiter) -> float:
    return (await limiter.acquire()).started


async def advance_to(clock: ManualClock, at: float) -> None:
    await clock.run_until_idle(max(0.0, at - clock.monotonic()))
    clock.set_elapsed(at)
    for _ in range(5):
        await asyncio.sleep(0)


windows_st = st.lists(
    st.builds(
        Window,
        limit=st.integers(1, 8),
        seconds=st.floats(0.05, 20.0, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=3,
)
arrivals_st = st.lists(
    st.tuples(
        st.floats(0.0, 6.0, allow_nan=False, allow_infinity=False),  # gap before the group
        st.integers(1, 12),  # how many callers arrive together
    ),
    min_size=1,
    max_size=25,
)


@PROPERTY_SETTINGS
@given(windows=windows_st, groups=arrivals_st)
def test_every_window_holds_and_no_request_waits_needlessly(
    windows: list[Window], groups: list[tuple[float, int]]
) -> None:
    async def scenario() -> tuple[list[float], list[float]]:
        clock = ManualClock()
        limiter = SlidingWindowLimiter(windows, clock)
        arrivals: list[float] = []
        starts: dict[int, float] = {}

        async def caller(index: int) -> None:
            starts[index] = (await limiter.acquire()).started
            assert starts[index] == clock.monotonic()

        tasks = []
        at = 0.0
        for gap, count in groups:
            at += gap
            await advance_to(clock, at)
            for _ in range(count):
                tasks.append(asyncio.create_task(caller(len(arrivals))))
                arrivals.append(at)
            await asyncio.sleep(0)
        await clock.run_until_idle()
        await asyncio.gather(*tasks)
        await limiter.aclose()
        return arrivals, [starts[i] for i in range(len(arrivals))]

    arrivals, starts = asyncio.run(scenario())
    for w in windows:
        assert max_in_any_window(starts, w) <= w.limit
    # Work-conserving and FIFO: exactly the optimal greedy schedule, in arrival order.
    assert starts == pytest.approx(reference_schedule(windows, arrivals), abs=1e-9)
    assert starts == sorted(starts)


@PROPERTY_SETTINGS
@given(
    windows=windows_st,
    groups=arrivals_st,
    cancel_after=st.lists(st.one_of(st.none(), st.floats(0.0, 8.0)), min_size=1, max_size=40),
)
def test_cancelled_waiters_never_break_the_windows_or_leak_slots(
    windows: list[Window], groups: list[tuple[float, int]], cancel_after: list[float | None]
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        limiter = SlidingWindowLimiter(windows, clock)
        starts: list[float] = []
        finished: list[bool] = []

        async def caller() -> None:
            started = (await limiter.acquire()).started
            starts.append(started)
            finished.append(True)

        async def cancel_later(task: asyncio.Task[None], after: float) -> None:
            await clock.sleep(after)
            task.cancel()

        tasks: list[asyncio.Task[None]] = []
        cancellers: list[asyncio.Task[None]] = []
        at = 0.0
        for gap, count in groups:
            at += gap
            await advance_to(clock, at)
            for _ in range(count):
                task = asyncio.create_task(caller())
                delay = cancel_after[len(tasks) % len(cancel_after)]
                if delay is not None:
                    cancellers.append(asyncio.create_task(cancel_later(task, delay)))
                tasks.append(task)
            await asyncio.sleep(0)
        await clock.run_until_idle()
        results = await asyncio.gather(*tasks, *cancellers, return_exceptions=True)
        # Every caller either started or was cancelled: nobody is stuck behind a ghost.
        for task in tasks:
            assert task.done()
        assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
        assert len(finished) == len(starts)
        for w in windows:
            assert max_in_any_window(starts, w) <= w.limit
        # The limiter's own view matches the requests that really started.
        now = clock.monotonic()
        for usage in limiter.stats().windows:
            assert usage.used == sum(1 for s in starts if now < s + usage.seconds)
        assert limiter.stats().waiters == 0
        await limiter.aclose()

    asyncio.run(scenario())


def max_overlapping(spans: Sequence[tuple[float, float]], window: Window) -> int:
    """Most requests an upstream could see in one window if each arrives anywhere in its span.

    A set can land inside one ``[x, x + T)`` iff every span reaches it; the tightest ``x``
    is the earliest end among them, so try each span's end.
    """
    best = 0
    for _, end in spans:
        best = max(best, sum(1 for s, d in spans if d >= end and s < end + window.seconds))
    return best


def reference_done_schedule(
    windows: Sequence[Window], arrivals: Sequence[float], durations: Sequence[float]
) -> list[tuple[float, float]]:
    """FIFO greedy when a request holds its place until it is done."""
    spans: list[tuple[float, float]] = []
    previous = float("-inf")
    for arrival, duration in zip(arrivals, durations, strict=True):
        at = max(arrival, previous)
        for w in windows:
            if len(spans) >= w.limit:
                at = max(at, spans[-w.limit][1] + w.seconds)
        spans.append((at, at + duration))
        previous = at
    return spans


@PROPERTY_SETTINGS
@given(
    windows=windows_st,
    groups=arrivals_st,
    durations=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=20),
)
def test_hold_done_keeps_every_window_whatever_the_transit_time(
    windows: list[Window], groups: list[tuple[float, int]], durations: list[float]
) -> None:
    async def scenario() -> tuple[list[float], list[float], list[tuple[float, float]]]:
        clock = ManualClock()
        limiter = SlidingWindowLimiter(windows, clock, hold="done")
        arrivals: list[float] = []
        needed: list[float] = []
        spans: dict[int, tuple[float, float]] = {}

        async def caller(index: int, duration: float) -> None:
            slot = await limiter.acquire()
            try:
                await clock.sleep(duration)  # the request is on the wire
            finally:
                limiter.release(slot)
            spans[index] = (slot.started, clock.monotonic())

        tasks = []
        at = 0.0
        for gap, count in groups:
            at += gap
            await advance_to(clock, at)
            for _ in range(count):
                duration = durations[len(arrivals) % len(durations)]
                tasks.append(asyncio.create_task(caller(len(arrivals), duration)))
                arrivals.append(at)
                needed.append(duration)
            await asyncio.sleep(0)
        await clock.run_until_idle()
        await asyncio.gather(*tasks)
        assert limiter.stats().in_flight == 0
        await limiter.aclose()
        return arrivals, needed, [spans[i] for i in range(len(arrivals))]

    arrivals, needed, spans = asyncio.run(scenario())
    for w in windows:
        assert max_overlapping(spans, w) <= w.limit
    expected = reference_done_schedule(windows, arrivals, needed)
    assert [s for s, _ in spans] == pytest.approx([s for s, _ in expected], abs=1e-9)


async def test_hold_done_waits_for_the_response_then_the_window() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(1, 10.0)], clock, hold="done")
    slot = await limiter.acquire()
    nxt = asyncio.create_task(started_at(limiter))
    await advance_to(clock, 100.0)
    assert not nxt.done()  # the first is still in flight: its window has not begun
    assert limiter.stats().in_flight == 1
    assert limiter.stats().windows[0].used == 1
    limiter.release(slot)
    limiter.release(slot)  # idempotent
    await clock.run_until_idle()
    assert await nxt == 110.0
    assert limiter.stats().in_flight == 1
    await limiter.aclose()


async def test_hold_done_refund_of_an_unsent_request_frees_the_place_at_once() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(1, 10.0)], clock, hold="done")
    slot = await limiter.acquire()
    nxt = asyncio.create_task(started_at(limiter))
    await asyncio.sleep(0)
    limiter.refund(slot)
    assert await nxt == 0.0
    assert limiter.stats().in_flight == 1
    await limiter.aclose()


def test_unknown_hold_is_rejected() -> None:
    with pytest.raises(ValueError, match="hold"):
        SlidingWindowLimiter([(1, 1.0)], ManualClock(), hold="end")  # type: ignore[arg-type]


async def test_first_requests_pass_at_once_then_wait_for_the_oldest_to_leave() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(3, 10.0)], clock)
    assert [(await limiter.acquire()).started for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.advance(4.0)
    task = asyncio.create_task(started_at(limiter))
    await clock.run_until_idle()
    assert await task == 10.0


async def test_several_windows_are_all_held() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([Window(12, 1.0), Window(600, 60.0)], clock)
    starts: list[float] = []

    async def caller() -> None:
        for _ in range(40):
            starts.append((await limiter.acquire()).started)

    tasks = [asyncio.create_task(caller()) for _ in range(50)]
    await clock.run_until_idle(limit_s=180.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert max_in_any_window(starts, Window(12, 1.0)) == 12
    assert max_in_any_window(starts, Window(600, 60.0)) == 600
    # 12/s for 50 s fills the minute; then nothing until the first start is 60 s old.
    assert starts[599] < 50.0
    assert starts[600] == 60.0
    await limiter.aclose()


async def test_waiters_are_served_in_arrival_order() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(1, 1.0)], clock)
    order: list[int] = []

    async def caller(index: int) -> None:
        await limiter.acquire()
        order.append(index)

    tasks = []
    for index in range(20):
        tasks.append(asyncio.create_task(caller(index)))
        await asyncio.sleep(0)
    await clock.run_until_idle()
    await asyncio.gather(*tasks)
    assert order == list(range(20))
    await limiter.aclose()


async def test_a_newcomer_never_jumps_the_queue_even_when_a_slot_is_free() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(2, 10.0)], clock)
    await limiter.acquire()
    await limiter.acquire()
    waiting = asyncio.create_task(started_at(limiter))
    await asyncio.sleep(0)
    clock.set_elapsed(10.0)  # both slots free now, but the timer task has not run yet
    late = asyncio.create_task(started_at(limiter))
    done, _ = await asyncio.wait([waiting, late], return_when=asyncio.FIRST_COMPLETED)
    assert waiting in done
    await clock.run_until_idle()
    assert await waiting == 10.0
    assert await late == 10.0
    await limiter.aclose()


async def test_a_cancelled_waiter_frees_its_place() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(1, 5.0)], clock)
    await limiter.acquire()
    first = asyncio.create_task(started_at(limiter))
    second = asyncio.create_task(started_at(limiter))
    await asyncio.sleep(0)
    assert limiter.stats().waiters == 2
    first.cancel()
    await asyncio.sleep(0)
    assert limiter.stats().waiters == 1
    await clock.run_until_idle()
    assert await second == 5.0
    assert first.cancelled()
    await limiter.aclose()


async def test_a_waiter_cancelled_right_after_admission_hands_its_slot_back() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(1, 5.0)], clock)
    first = await limiter.acquire()
    admitted = asyncio.create_task(started_at(limiter))
    follower = asyncio.create_task(started_at(limiter))
    await asyncio.sleep(0)
    clock.set_elapsed(1.0)
    # The refund admits ``admitted`` synchronously; cancel it before it ever runs again.
    limiter.refund(first)
    assert limiter.stats().waiters == 1
    admitted.cancel()
    await clock.run_until_idle()
    assert admitted.cancelled()
    assert await follower == 1.0  # got the handed-back slot at once, not at 6.0
    assert limiter.stats().refunded == 2
    await limiter.aclose()


async def test_refund_gives_back_an_unused_slot() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(1, 60.0)], clock)
    slot = await limiter.acquire()
    limiter.refund(slot)
    assert (await limiter.acquire()).started == 0.0
    await limiter.aclose()


async def test_pause_holds_everyone_including_newcomers() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(100, 1.0)], clock)
    await limiter.acquire()
    limiter.pause(30.0)
    assert limiter.stats().paused_for_s == 30.0
    tasks = [asyncio.create_task(started_at(limiter)) for _ in range(5)]
    await clock.run_until_idle()
    assert [await t for t in tasks] == [30.0] * 5
    assert limiter.paused_for() == 0.0
    # A shorter pause never cuts a longer one short.
    limiter.pause(10.0)
    limiter.pause(2.0)
    assert limiter.paused_for() == 10.0
    await limiter.aclose()


async def test_unlimited_limiter_never_waits() -> None:
    limiter = SlidingWindowLimiter([], ManualClock())
    for _ in range(1000):
        await limiter.acquire()
    assert limiter.stats().admitted == 1000
    await limiter.aclose()


async def test_memory_is_bounded_by_the_limits() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(5, 1.0), (50, 60.0)], clock)
    for i in range(10_000):
        clock.set_elapsed(i * 10.0)
        await limiter.acquire()
    usage = limiter.stats().windows
    assert [u.used for u in usage] == [1, 6]
    assert "waiters=0" in repr(limiter)
    await limiter.aclose()


async def test_usage_counts_only_the_current_window() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(10, 10.0)], clock)
    for _ in range(4):
        await limiter.acquire()
    clock.advance(5.0)
    await limiter.acquire()
    assert limiter.stats().windows[0].used == 5
    clock.advance(5.0)
    assert limiter.stats().windows[0].used == 1
    await limiter.aclose()


async def test_guard_lengthens_every_window() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(1, 1.0)], clock, guard_s=0.25)
    await limiter.acquire()
    task = asyncio.create_task(started_at(limiter))
    await clock.run_until_idle()
    assert await task == 1.25
    await limiter.aclose()


async def test_closed_limiter_fails_waiters_and_refuses_new_ones() -> None:
    clock = ManualClock()
    limiter = SlidingWindowLimiter([(1, 60.0)], clock, name="rd")
    await limiter.acquire()
    waiter = asyncio.create_task(started_at(limiter))
    await asyncio.sleep(0)
    await limiter.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await waiter
    with pytest.raises(RuntimeError, match="closed"):
        await limiter.acquire()


@pytest.mark.parametrize(("limit", "seconds"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_invalid_windows_are_rejected(limit: int, seconds: float) -> None:
    with pytest.raises(ValueError, match="window"):
        Window(limit, seconds)


def test_negative_guard_is_rejected() -> None:
    with pytest.raises(ValueError, match="guard_s"):
        SlidingWindowLimiter([(1, 1.0)], ManualClock(), guard_s=-1.0)


async def test_real_clock_holds_a_short_window() -> None:
    limiter = SlidingWindowLimiter([(5, 0.1)], SystemClock())
    starts: list[float] = []

    async def caller() -> None:
        for _ in range(5):
            await limiter.acquire()
            starts.append(time.monotonic())

    await asyncio.gather(*(caller() for _ in range(4)))
    assert max_in_any_window(starts, Window(5, 0.1)) <= 5
    assert starts[-1] - starts[0] >= 0.3
    await limiter.aclose()


async def test_aiolimiter_bucket_lets_nearly_twice_the_limit_through_one_window() -> None:
    """Why the daemon does not use aiolimiter: the full bucket plus its refill overshoots.

    ``AsyncLimiter(L, T)`` admits a burst of ``L`` and then refills at ``L / T``, so the
    window that starts with the burst sees close to ``2 L`` requests. (Only the degenerate
    ``AsyncLimiter(1, T / L)`` holds the window, and it throws away every burst.)
    """
    limit, seconds = 10, 0.2
    bucket = AsyncLimiter(limit, seconds)
    starts: list[float] = []
    deadline = time.monotonic() + seconds * 1.5
    while time.monotonic() < deadline:
        async with bucket:
            starts.append(time.monotonic())
    assert max_in_any_window(starts, Window(limit, seconds)) >= int(1.8 * limit)

    ours = SlidingWindowLimiter([(limit, seconds)], SystemClock())
    mine: list[float] = []
    deadline = time.monotonic() + seconds * 1.5
    while time.monotonic() < deadline:
        await ours.acquire()
        mine.append(time.monotonic())
    assert max_in_any_window(mine, Window(limit, seconds)) <= limit
    await ours.aclose()
