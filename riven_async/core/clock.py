"""Clocks: real time, scaled time (sims, demo, benchmarks) and a manual clock for tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What time it is and how to wait; every time-based rule takes one."""

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (same scale as ``sleep``)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Time that runs ``speed`` times faster than real time from ``start``.

    Two processes built with the same ``start``, ``anchor`` (a real unix time) and ``speed``
    agree on the time without talking to each other: that is how the daemon follows the
    simulated upstreams' clock in the demo and the benchmarks.
    """

    def __init__(self, start: datetime, speed: float, anchor: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.start = start
        self.speed = speed
        self.anchor = time.time() if anchor is None else anchor
        self._mono_anchor = time.monotonic() - (time.time() - self.anchor)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self.speed)

    def monotonic(self) -> float:
        return (time.monotonic() - self._mono_anchor) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """A clock that moves only when told to; sleepers wake in deadline order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._seq), fut))
        await fut

    def next_deadline(self) -> float | None:
        """The earliest pending sleeper's wake time, or None."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        self.set_elapsed(self._elapsed + seconds)

    def set_elapsed(self, elapsed: float) -> None:
        """Move time to ``elapsed`` seconds after the start (never backwards)."""
        self._elapsed = max(self._elapsed, elapsed)
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def run_until_idle(self, limit_s: float = float("inf")) -> None:
        """Jump from deadline to deadline until nothing sleeps (or ``limit_s`` is reached)."""
        end = self._elapsed + limit_s
        while True:
            for _ in range(5):
                await asyncio.sleep(0)
            deadline = self.next_deadline()
            if deadline is None or deadline > end:
                self.set_elapsed(min(end, self._elapsed) if deadline is None else end)
                return
            self.set_elapsed(deadline)


async def wait_event(event: asyncio.Event, clock: Clock, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` of ``clock`` time pass; True when woken."""
    if event.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(max(0.0, seconds)))
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waiter):
            task.cancel()
        await asyncio.gather(sleeper, waiter, return_exceptions=True)
    return event.is_set()
