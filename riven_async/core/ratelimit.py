"""Exact sliding-window rate limiter: every configured window holds at every instant."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from riven_async.core.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` requests may start in any interval of ``seconds`` length."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"window limit must be >= 1, got {self.limit}")
        if not self.seconds > 0:
            raise ValueError(f"window length must be > 0 s, got {self.seconds}")

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds:g}s"


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """How much of one window the requests of the last ``seconds`` use right now."""

    limit: int
    seconds: float
    used: int


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A snapshot for the metrics endpoint."""

    waiters: int
    in_flight: int
    admitted: int
    refunded: int
    paused_for_s: float
    windows: tuple[WindowUsage, ...]


class Slot:
    """One admitted request: when it started and (``hold="done"``) when it finished."""

    __slots__ = ("done", "started")

    def __init__(self, started: float, done: float) -> None:
        self.started = started
        self.done = done  # +inf while in flight under hold="done"

    def __repr__(self) -> str:
        return f"<Slot started={self.started:.3f} done={self.done:.3f}>"


class _Ring:
    """The last ``limit`` admitted requests of one window, oldest first."""

    __slots__ = ("limit", "seconds", "slots")

    def __init__(self, window: Window, guard_s: float) -> None:
        self.limit = window.limit
        self.seconds = window.seconds + guard_s
        self.slots: deque[Slot] = deque(maxlen=window.limit)

    def free_at(self) -> float:
        """Earliest time a new request may start as far as this window is concerned."""
        if len(self.slots) < self.limit:
            return float("-inf")
        return self.slots[0].done + self.seconds

    def used(self, now: float) -> int:
        # In admission order, so ``done`` is not monotone under hold="done": count them all.
        return sum(1 for slot in self.slots if now < slot.done + self.seconds)


Hold = Literal["start", "done"]


class SlidingWindowLimiter:
    """Admit requests so that no window ever sees more than its limit of starts.

    A request admitted at ``t`` counts in a window of length ``T`` during ``[t, t + T)``:
    the new start is allowed when, for every window, fewer than ``limit`` earlier starts
    lie in ``(t - T, t]``. Each window keeps only its last ``limit`` requests, so memory
    is bounded by the limits, and the check is exact: there is no burst allowance on top
    of the limit, before or after an idle spell (unlike a token or leaky bucket, whose
    full bucket plus its refill lets through almost twice the limit in one window).

    ``hold="done"`` makes a request occupy its windows from admission until ``release``
    (its response is in) plus ``T``: a request is admitted only when the one ``limit``
    places before it *finished* at least ``T`` ago. The upstream receives each request
    at some instant between its admission and its response, so then no window of the
    upstream's own clock can see more than ``limit`` arrivals, whatever the network
    latency and its jitter (cold connections, TLS handshakes). Exact on admission
    instants alone (``hold="start"``) is not enough at saturation: a request admitted
    exactly ``T`` after an earlier one that was delayed in transit arrives less than
    ``T`` after it. The price is one response time per window length.

    Waiters are admitted strictly in arrival order, in batches: one timer wakes the
    queue when the head may go, and admits every waiter the windows allow at that
    instant. A cancelled waiter leaves the queue; one cancelled after admission but
    before it ran hands its slot back.

    ``guard_s`` lengthens every window by a fixed margin.
    """

    def __init__(
        self,
        windows: Iterable[Window | tuple[int, float]],
        clock: Clock,
        *,
        hold: Hold = "start",
        guard_s: float = 0.0,
        name: str = "",
    ) -> None:
        if guard_s < 0:
            raise ValueError("guard_s must be >= 0")
        if hold not in ("start", "done"):
            raise ValueError(f"hold must be 'start' or 'done', not {hold!r}")
        parsed = tuple(
            w if isinstance(w, Window) else Window(int(w[0]), float(w[1])) for w in windows
        )
        self.windows = parsed
        self.name = name
        self.hold: Hold = hold
        self._clock = clock
        self._rings = tuple(_Ring(w, guard_s) for w in parsed)
        self._queue: deque[asyncio.Future[Slot]] = deque()
        self._queued = 0
        self._in_flight = 0
        self._paused_until = float("-inf")
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = float("inf")
        self._admitted = 0
        self._refunded = 0
        self._closed = False

    def __repr__(self) -> str:
        windows = ", ".join(str(w) for w in self.windows) or "unlimited"
        return (
            f"<SlidingWindowLimiter {self.name or '?'} [{windows}] hold={self.hold} "
            f"waiters={self._queued}>"
        )

    async def acquire(self) -> Slot:
        """Wait for a place in every window; ``slot.started`` is the admission time.

        Under ``hold="done"`` the caller must ``release(slot)`` once the response is in
        (or ``refund(slot)`` if the request was never sent), in a ``finally``.
        """
        if self._closed:
            raise RuntimeError(f"limiter {self.name!r} is closed")
        now = self._clock.monotonic()
        if self._queued == 0 and now >= self._free_at():
            return self._record(now)
        fut: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._queue.append(fut)
        self._queued += 1
        self._dispatch()
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.cancelled():
                # Still queued: it no longer counts, and the queue skips it.
                self._queued -= 1
            elif fut.exception() is None:
                # Admitted in the same instant it was cancelled: the request never starts.
                self.refund(fut.result())
            raise

    def release(self, slot: Slot) -> None:
        """The request's response is in (or it failed): under hold="done" its clock starts."""
        if slot.done == float("inf"):
            slot.done = max(slot.started, self._clock.monotonic())
            self._in_flight -= 1
            self._dispatch()

    def refund(self, slot: Slot) -> None:
        """Hand back a slot whose request was never sent (admitted, then abandoned)."""
        if slot.done == float("inf"):
            self._in_flight -= 1
        slot.done = slot.started
        for ring in self._rings:
            # Not there any more only if pushed out after its window had passed.
            with contextlib.suppress(ValueError):
                ring.slots.remove(slot)
        self._refunded += 1
        self._dispatch()

    def pause(self, seconds: float) -> None:
        """Hold every request (queued or new) for ``seconds`` from now, e.g. after a 429."""
        until = self._clock.monotonic() + seconds
        if seconds > 0 and until > self._paused_until:
            self._paused_until = until
            log.info(
                "%s: pausing every request for %.1fs",
                self.name or "limiter",
                seconds,
                extra={"action": "limiter_pause", "service": self.name, "seconds": seconds},
            )

    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock.monotonic())

    def stats(self) -> LimiterStats:
        now = self._clock.monotonic()
        return LimiterStats(
            waiters=self._queued,
            in_flight=self._in_flight,
            admitted=self._admitted,
            refunded=self._refunded,
            paused_for_s=max(0.0, self._paused_until - now),
            windows=tuple(
                WindowUsage(w.limit, w.seconds, ring.used(now))
                for w, ring in zip(self.windows, self._rings, strict=True)
            ),
        )

    async def aclose(self) -> None:
        """Stop the timer and fail every waiter; later ``acquire`` calls raise."""
        self._closed = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
        while self._queue:
            fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(RuntimeError(f"limiter {self.name!r} closed"))
        self._queued = 0

    def _free_at(self) -> float:
        free = self._paused_until
        for ring in self._rings:
            at = ring.free_at()
            if at > free:
                free = at
        return free

    def _record(self, now: float) -> Slot:
        if self.hold == "done":
            slot = Slot(now, float("inf"))
            self._in_flight += 1
        else:
            slot = Slot(now, now)
        for ring in self._rings:
            ring.slots.append(slot)
        self._admitted += 1
        return slot

    def _dispatch(self) -> None:
        """Admit every head-of-queue waiter the windows allow now; arm a timer for the rest."""
        now = self._clock.monotonic()
        queue = self._queue
        while queue:
            head = queue[0]
            if not head.done():
                free = self._free_at()
                if now < free:
                    self._arm(free)
                    return
            del queue[0]
            if head.done():
                continue
            self._queued -= 1
            head.set_result(self._record(now))
        self._disarm()

    def _arm(self, at: float) -> None:
        if self._closed or at == float("inf"):
            return  # waiting for a release, which dispatches again
        if self._timer is not None and not self._timer.done() and self._timer_at <= at:
            return
        self._disarm()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().create_task(
            self._wake_at(at), name=f"limiter:{self.name}"
        )

    def _disarm(self) -> None:
        timer, self._timer = self._timer, None
        self._timer_at = float("inf")
        if timer is not None and not timer.done() and timer is not asyncio.current_task():
            timer.cancel()

    async def _wake_at(self, at: float) -> None:
        # Loop timers may fire a hair early; sleep again until the clock agrees.
        while (delay := at - self._clock.monotonic()) > 0:
            await self._clock.sleep(delay)
        self._timer = None
        self._timer_at = float("inf")
        self._dispatch()
