"""When each show and movie is checked next: pure rules over a clock, and routine budgets.

No I/O here. The index step feeds the rules what it just learned (status, next and last
air time, whether the next time is exact, when the title was requested) and stores the
answer with one set-based update; the check loop asks the budgets how many routine checks
may start now. The rules pick the earliest of several candidates:

- the next episode's air time plus the release delay (and, when only its date is known,
  a check ``inexact_lead_s`` before the assumed time, to learn the real one);
- an air time that passed while the upstream still lists it as next: its data is missing,
  so re-check at growing intervals (the time since it was due, clamped);
- an ongoing show with nothing announced: one week after its last episode, the slot where
  an unannounced weekly episode would air;
- a title requested within ``fresh_request_window_s``: every ``fresh_request_interval_s``;
- the routine interval of the show's status (ongoing, hiatus, ended) as a safety net.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Literal

from riven_async.config import DetectionSection
from riven_async.core.clock import Clock
from riven_async.domain.media import ShowStatus

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
# A routine budget may be spent this far ahead: a short burst, never half a day at once.
BUDGET_BURST_S = 900.0
# What "no limit" means for a number of routine checks (no budget charges them anything).
UNLIMITED_CHECKS = 1_000_000
# Tokens short of a goal by less than this count as there: waiting "exactly long enough"
# must not leave a float rounding error behind (a wait too small to move a clock).
TOKEN_SLACK = 1e-6

Reason = Literal[
    "routine", "fresh_request", "air_time", "inexact_air_time", "aired_data_missing",
    "weekly_slot", "release_date",
]


class CheckPriority(IntEnum):
    """Order among checks due at once (``items.check_priority``); higher goes first.

    Only ``ROUTINE`` checks are held back by the daily budgets. ``FORCED`` equals
    ``db.schedule.FORCED_PRIORITY``, what a webhook or the API asks for by default.
    """

    ROUTINE = 0
    FRESH = 1
    CHANGED = 2
    AIRED = 3
    FORCED = 4


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """The intervals of ``[detection]`` the rules use (seconds)."""

    release_delay_s: float = 900.0
    ongoing_interval_s: float = WEEK_S
    hiatus_interval_s: float = 2 * WEEK_S
    ended_interval_s: float = 30 * DAY_S
    fresh_request_interval_s: float = 3600.0
    fresh_request_window_s: float = DAY_S
    missing_recheck_min_s: float = 1800.0
    missing_recheck_max_s: float = DAY_S
    inexact_lead_s: float = 12 * 3600.0

    def __post_init__(self) -> None:
        intervals = (self.ongoing_interval_s, self.hiatus_interval_s, self.ended_interval_s,
                     self.fresh_request_interval_s, self.missing_recheck_min_s)
        if min(intervals) <= 0:
            raise ValueError("check intervals must be positive")
        if self.missing_recheck_max_s < self.missing_recheck_min_s:
            raise ValueError("missing_recheck_max_s must not be below missing_recheck_min_s")
        if min(self.release_delay_s, self.fresh_request_window_s, self.inexact_lead_s) < 0:
            raise ValueError("delays and windows must not be negative")

    @classmethod
    def from_section(cls, section: DetectionSection) -> SchedulePolicy:
        return cls(
            release_delay_s=section.release_delay_s,
            ongoing_interval_s=section.ongoing_interval_s,
            hiatus_interval_s=section.hiatus_interval_s,
            ended_interval_s=section.ended_interval_s,
            fresh_request_interval_s=section.fresh_request_interval_s,
            fresh_request_window_s=section.fresh_request_window_s,
            missing_recheck_min_s=section.missing_recheck_min_s,
            missing_recheck_max_s=section.missing_recheck_max_s,
            inexact_lead_s=section.inexact_lead_s,
        )

    def routine_interval_s(self, status: ShowStatus) -> float:
        """The safety-net interval of a show with nothing announced."""
        if status is ShowStatus.ENDED:
            return self.ended_interval_s
        if status is ShowStatus.HIATUS:
            return self.hiatus_interval_s
        return self.ongoing_interval_s


@dataclass(frozen=True, slots=True)
class ShowFacts:
    """What one index of a show found that the rules need.

    ``next_air_at`` is the next episode's air time as the upstream lists it now (it may
    have passed: the upstream has not caught up); ``next_air_exact`` is false when that
    time is the configured fallback on a known date, not the broadcast time.
    """

    status: ShowStatus
    next_air_at: datetime | None = None
    next_air_exact: bool = True
    last_air_at: datetime | None = None
    requested_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MovieFacts:
    """What one index of a movie found: when releases worth grabbing can exist."""

    released_at: datetime | None
    requested_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NextCheck:
    """When to check again, its priority then, and which rule chose it."""

    at: datetime
    priority: CheckPriority
    reason: Reason


def _earliest(candidates: list[NextCheck]) -> NextCheck:
    # Equal times: the more urgent reason wins, so its priority is the one stored.
    return min(candidates, key=lambda c: (c.at, -c.priority))


def _after(at: datetime, seconds: float) -> datetime:
    return at + timedelta(seconds=seconds)


def _fresh(requested_at: datetime | None, checked_at: datetime,
           policy: SchedulePolicy) -> NextCheck | None:
    if requested_at is None:
        return None
    if (checked_at - requested_at).total_seconds() >= policy.fresh_request_window_s:
        return None
    return NextCheck(_after(checked_at, policy.fresh_request_interval_s), CheckPriority.FRESH,
                     "fresh_request")


def next_show_check(facts: ShowFacts, checked_at: datetime, policy: SchedulePolicy) -> NextCheck:
    """The next check of a show indexed at ``checked_at`` (always after ``checked_at``)."""
    candidates = [NextCheck(_after(checked_at, policy.routine_interval_s(facts.status)),
                            CheckPriority.ROUTINE, "routine")]
    fresh = _fresh(facts.requested_at, checked_at, policy)
    if fresh is not None:
        candidates.append(fresh)
    if facts.next_air_at is not None:
        due = _after(facts.next_air_at, policy.release_delay_s)
        if due > checked_at:
            candidates.append(NextCheck(due, CheckPriority.AIRED, "air_time"))
            lead = _after(facts.next_air_at, -policy.inexact_lead_s)
            if not facts.next_air_exact and lead > checked_at:
                candidates.append(NextCheck(lead, CheckPriority.AIRED, "inexact_air_time"))
        else:
            # Listed as next although its time passed: the upstream lags. Each re-check
            # waits as long as the data has been missing (doubling), within the bounds.
            late_s = (checked_at - due).total_seconds()
            wait_s = min(max(late_s, policy.missing_recheck_min_s), policy.missing_recheck_max_s)
            candidates.append(NextCheck(_after(checked_at, wait_s), CheckPriority.AIRED,
                                        "aired_data_missing"))
    elif facts.status is ShowStatus.ONGOING and facts.last_air_at is not None:
        slot = _after(facts.last_air_at, WEEK_S + policy.release_delay_s)
        if slot > checked_at:
            candidates.append(NextCheck(slot, CheckPriority.AIRED, "weekly_slot"))
    return _earliest(candidates)


def next_movie_check(facts: MovieFacts, checked_at: datetime,
                     policy: SchedulePolicy) -> NextCheck:
    """The next check of a movie indexed at ``checked_at``.

    Unreleased: weekly (dates move), and once more when its release date comes; released:
    the ended interval. Fresh requests are checked hourly like shows.
    """
    released = facts.released_at is not None and facts.released_at <= checked_at
    interval = policy.ended_interval_s if released else policy.ongoing_interval_s
    candidates = [NextCheck(_after(checked_at, interval), CheckPriority.ROUTINE, "routine")]
    fresh = _fresh(facts.requested_at, checked_at, policy)
    if fresh is not None:
        candidates.append(fresh)
    if facts.released_at is not None and not released:
        candidates.append(NextCheck(facts.released_at, CheckPriority.AIRED, "release_date"))
    return _earliest(candidates)


class Scheduler:
    """The rules of one policy on one clock."""

    def __init__(self, policy: SchedulePolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock

    def for_show(self, facts: ShowFacts, checked_at: datetime | None = None) -> NextCheck:
        return next_show_check(facts, checked_at or self._clock.now(), self.policy)

    def for_movie(self, facts: MovieFacts, checked_at: datetime | None = None) -> NextCheck:
        return next_movie_check(facts, checked_at or self._clock.now(), self.policy)


class CallBudget:
    """A daily call budget spread evenly over the day.

    Tokens accrue at ``per_day / 86400`` a second up to ``burst_s`` worth of them (one at
    least); spending may drive the level below zero, and spending waits until it recovers.
    """

    def __init__(self, per_day: float, clock: Clock, burst_s: float = BUDGET_BURST_S) -> None:
        if per_day <= 0 or burst_s <= 0:
            raise ValueError("per_day and burst_s must be positive")
        self.per_day = per_day
        self._rate = per_day / DAY_S
        self.cap = max(1.0, self._rate * burst_s)
        self._clock = clock
        self._tokens = self.cap
        self._at = clock.monotonic()

    def level(self) -> float:
        """Tokens available now (negative after overspending)."""
        now = self._clock.monotonic()
        self._tokens = min(self.cap, self._tokens + (now - self._at) * self._rate)
        self._at = now
        return self._tokens

    def spend(self, calls: float) -> None:
        self._tokens = self.level() - calls

    def seconds_until(self, tokens: float = 1.0) -> float:
        """How long until ``tokens`` (at most a full budget) are available (0 when they are)."""
        missing = min(tokens, self.cap) - self.level()
        return 0.0 if missing <= TOKEN_SLACK else missing / self._rate


class RoutineBudget:
    """Per-upstream daily call budgets for routine checks.

    A routine check is charged its expected calls per upstream (``cost_per_check``) when
    it is admitted. Urgent checks and the change feeds spend nothing from these budgets:
    they are never held back, and the safety net of routine checks never starves behind
    them (the rate limiter holds the hard limits of every call).
    """

    def __init__(self, budgets: Mapping[str, CallBudget],
                 cost_per_check: Mapping[str, float]) -> None:
        if not budgets:
            raise ValueError("at least one budget is needed")
        self._budgets = dict(budgets)
        self._cost = {name: max(0.0, cost_per_check.get(name, 0.0)) for name in budgets}

    def _charged(self) -> list[tuple[CallBudget, float]]:
        return [(self._budgets[name], cost) for name, cost in self._cost.items() if cost > 0]

    def allowance(self) -> int:
        """How many routine checks may start now."""
        allowed: int | None = None
        for budget, cost in self._charged():
            level = budget.level()
            # A check costing more than a full budget holds is let through on a full one.
            if level < min(cost, budget.cap) - TOKEN_SLACK:
                return 0
            fits = max(1, int((level + TOKEN_SLACK) // cost))
            allowed = fits if allowed is None else min(allowed, fits)
        return UNLIMITED_CHECKS if allowed is None else allowed

    def admit(self, checks: int) -> None:
        """Charge ``checks`` routine checks' expected calls."""
        for budget, cost in self._charged():
            budget.spend(checks * cost)

    def seconds_until_allowed(self) -> float:
        """How long until at least one routine check may start."""
        return max((budget.seconds_until(cost) for budget, cost in self._charged()),
                   default=0.0)
