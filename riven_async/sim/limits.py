"""Exact sliding-window rate limits for the simulated upstreams."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from riven_async.config import parse_window
from riven_async.core.clock import Clock

_SECONDS_PER_DAY = 86400.0
_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` requests in any ``span_s`` seconds of the sims' clock."""

    limit: int
    span_s: float

    @classmethod
    def parse(cls, text: str) -> Window:
        """Read ``"250/60s"`` with the same grammar as the daemon's ``rate_limits``."""
        limit, span_s = parse_window(text)
        return cls(limit, span_s)

    def __str__(self) -> str:
        for unit, size in (("d", _SECONDS_PER_DAY), ("h", _SECONDS_PER_HOUR)):
            if self.span_s >= size and self.span_s % size == 0:
                return f"{self.limit}/{self.span_s / size:g}{unit}"
        return f"{self.limit}/{self.span_s:g}s"


def parse_windows(texts: Iterable[str]) -> tuple[Window, ...]:
    """Parse every window text; raise ValueError naming the bad one."""
    return tuple(Window.parse(text) for text in texts)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one request may pass, and if not, which window refused it and for how long."""

    allowed: bool
    retry_after_s: float = 0.0
    window: Window | None = None

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, at least 1, as ``Retry-After`` carries them."""
        return str(max(1, math.ceil(self.retry_after_s)))


@dataclass(frozen=True, slots=True)
class WindowState:
    """One window's occupancy at an instant (for ``/_sim/stats``)."""

    window: Window
    in_window: int


class RateLimiter:
    """Every window holds at every instant: a request passes only if no window is full.

    ``count_refused`` makes refused requests occupy the windows too, as Real-Debrid documents
    ("refused requests still count"), so a client that keeps hammering stays blocked.
    Time comes from the sims' clock, so a scaled or manual clock scales the windows as well.
    """

    def __init__(
        self, windows: Sequence[Window], clock: Clock, *, count_refused: bool = False
    ) -> None:
        self._clock = clock
        self.count_refused = count_refused
        self._windows: tuple[Window, ...] = ()
        self._stamps: list[deque[float]] = []
        self.admitted = 0
        self.violations = 0
        self.set_windows(windows)

    @property
    def windows(self) -> tuple[Window, ...]:
        return self._windows

    def set_windows(self, windows: Sequence[Window]) -> None:
        """Replace the limits; occupancy starts empty, counters keep counting."""
        self._windows = tuple(windows)
        self._stamps = [deque() for _ in self._windows]

    def admit(self) -> Verdict:
        """Decide for one request arriving now, and count it."""
        now = self._clock.monotonic()
        full = False
        for window, stamps in zip(self._windows, self._stamps, strict=True):
            horizon = now - window.span_s
            while stamps and stamps[0] <= horizon:
                stamps.popleft()
            full = full or len(stamps) >= window.limit
        if not full:
            self.admitted += 1
            for stamps in self._stamps:
                stamps.append(now)
            return Verdict(True)
        self.violations += 1
        if self.count_refused:
            # Appended before the wait is computed: the refusal itself occupies a slot.
            for stamps in self._stamps:
                stamps.append(now)
        refused_by: Window | None = None
        retry_after = 0.0
        for window, stamps in zip(self._windows, self._stamps, strict=True):
            if len(stamps) >= window.limit:
                # A slot frees once enough of the oldest entries have left the window.
                wait = stamps[len(stamps) - window.limit] + window.span_s - now
                if refused_by is None or wait > retry_after:
                    refused_by, retry_after = window, wait
        return Verdict(False, max(retry_after, 0.0), refused_by)

    def state(self) -> list[WindowState]:
        """Occupancy of every window now."""
        now = self._clock.monotonic()
        return [
            WindowState(window, sum(1 for stamp in stamps if stamp > now - window.span_s))
            for window, stamps in zip(self._windows, self._stamps, strict=True)
        ]
