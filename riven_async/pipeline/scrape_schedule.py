"""When to scrape an item again after nothing acceptable was found (pure rules, no I/O).

Two fast phases, then a backoff:

- a fresh request is scraped again every ``fresh_request_s`` during its first
  ``fresh_request_window_s`` (measured from the request);
- an episode (or movie) that just came out, every ``just_aired_s`` during its first
  ``just_aired_window_s`` (measured from its air time): releases appear then;
- after that, and from the start for anything else, after ``others_s``, then after each of
  the ``backoff_s`` steps longer than it, then doubling the last step, capped at
  ``max_backoff_s``.

The backoff step is chosen by how long the item has been in the backoff, not by counting
misses, so a restart, a replayed job or a late worker never resets or skips it: a job run
on time walks the steps one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from riven_async import config

# Enough doublings to reach any cap from any positive step.
_MAX_DOUBLINGS = 64
# Run times are stored to the microsecond: a run that lands a hair before a step's end
# (rounding) counts as at its end, so it moves on instead of repeating the step.
_SLACK_S = 0.001


@dataclass(frozen=True, slots=True)
class ScrapeSchedule:
    """The re-scrape rules; ``from_section`` reads them from ``[scraping]``."""

    fresh_request_s: float = 300.0
    fresh_request_window_s: float = 3600.0
    just_aired_s: float = 300.0
    just_aired_window_s: float = 14400.0
    others_s: float = 1800.0
    backoff_s: tuple[float, ...] = (1800.0, 7200.0, 21600.0)
    max_backoff_s: float = 86400.0

    def __post_init__(self) -> None:
        delays = (self.fresh_request_s, self.just_aired_s, self.others_s, *self.backoff_s)
        if min(delays) <= 0 or self.max_backoff_s <= 0:
            raise ValueError("every delay must be > 0")
        if self.fresh_request_window_s < 0 or self.just_aired_window_s < 0:
            raise ValueError("windows must be >= 0")

    @classmethod
    def from_section(cls, section: config.ScrapingSection) -> ScrapeSchedule:
        return cls(
            fresh_request_s=section.fresh_request_s,
            fresh_request_window_s=section.fresh_request_window_s,
            just_aired_s=section.just_aired_s,
            just_aired_window_s=section.just_aired_window_s,
            others_s=section.others_s,
            backoff_s=tuple(section.backoff_s),
            max_backoff_s=section.max_backoff_s,
        )

    def backoff_steps(self) -> tuple[float, ...]:
        """The listed backoff delays: ``others_s``, then the longer ``backoff_s`` (capped)."""
        steps = [self.others_s, *(s for s in self.backoff_s if s > self.others_s)]
        return tuple(min(s, self.max_backoff_s) for s in steps)

    def backoff_delay_s(self, in_backoff_s: float) -> float:
        """The delay of the step an item ``in_backoff_s`` seconds into the backoff is at."""
        elapsed = 0.0
        step = 0.0
        age = in_backoff_s + _SLACK_S
        for step in self.backoff_steps():
            if age < elapsed + step:
                return step
            elapsed += step
        for _ in range(_MAX_DOUBLINGS):
            step = min(step * 2, self.max_backoff_s)
            if step >= self.max_backoff_s or age < elapsed + step:
                return step
            elapsed += step
        return self.max_backoff_s

    def delay_s(
        self, *, now: datetime, requested_at: datetime, aired_at: datetime | None = None,
        wanted_since: datetime | None = None,
    ) -> float:
        """Seconds until the next scrape of an item whose scrape at ``now`` found nothing.

        ``requested_at`` is when the item was asked for, ``aired_at`` when it came out
        (None: unknown), ``wanted_since`` when it started waiting for a release (entered
        its current state; None: the request). The backoff starts when the last fast
        phase that applies ends, or at ``wanted_since`` if that is later.
        """
        fresh_until = requested_at + timedelta(seconds=self.fresh_request_window_s)
        fast: list[float] = []
        if now < fresh_until:
            fast.append(self.fresh_request_s)
        starts = [fresh_until, wanted_since or requested_at]
        if aired_at is not None:
            aired_until = aired_at + timedelta(seconds=self.just_aired_window_s)
            if now < aired_until:
                fast.append(self.just_aired_s)
            starts.append(aired_until)
        if fast:
            return min(fast)
        return self.backoff_delay_s(max(0.0, (now - max(starts)).total_seconds()))

    def next_at(
        self, *, now: datetime, requested_at: datetime, aired_at: datetime | None = None,
        wanted_since: datetime | None = None,
    ) -> datetime:
        """``now`` plus ``delay_s``."""
        delay = self.delay_s(
            now=now, requested_at=requested_at, aired_at=aired_at, wanted_since=wanted_since
        )
        return now + timedelta(seconds=delay)
