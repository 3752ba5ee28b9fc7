"""Retry policy: exponential backoff with full jitter, and ``Retry-After`` parsing."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# 5xx that say "try again later"; 501/505/511 are permanent answers, not outages.
RETRYABLE_5XX = frozenset({500, 502, 503, 504, 507, 508, 520, 521, 522, 523, 524, 525, 527, 530})
# Statuses where the server refused the request outright: safe to resend even a POST.
REFUSED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: attempt ``n`` waits ``U(0, min(max, base * 2**n))``."""

    base_s: float = 0.5
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.max_s <= 0:
            raise ValueError("backoff base_s and max_s must be positive")

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt ``attempt`` (0-based) may draw."""
        # Cap the exponent so huge attempt numbers cannot overflow the float.
        return min(self.max_s, self.base_s * 2.0 ** min(attempt, 62))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A random delay in ``[0, ceiling(attempt)]`` (full jitter, AWS architecture blog)."""
        draw = (rng or random).random()
        return draw * self.ceiling(attempt)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date).

    Returns ``None`` when the header is absent or unparsable; a date in the past gives 0.
    Fractional seconds are accepted although RFC 9110 only allows integers, because
    some upstreams send them.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or inf
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or asctime: HTTP dates are always UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def is_retryable_status(status: int) -> bool:
    """Whether a response status is worth another attempt (429 and transient 5xx)."""
    return status == 429 or status in RETRYABLE_5XX


def is_idempotent(method: str) -> bool:
    return method.upper() in IDEMPOTENT_METHODS


class DoublingBackoff:
    """Waits while something is away (the database): ``min_s``, doubling up to ``max_s``,
    each drawn within +-20% so loops that failed together do not retry together; ``reset``
    after a success."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if min_s <= 0 or max_s < min_s:
            raise ValueError("backoff needs 0 < min_s <= max_s")
        self._min_s = min_s
        self._max_s = max_s
        self._next_s = min_s
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._next_s = self._min_s

    def next_s(self) -> float:
        """The next wait; the one after it is twice as long (up to ``max_s``)."""
        wait_s = self._next_s * self._rng.uniform(0.8, 1.2)
        self._next_s = min(self._max_s, self._next_s * 2)
        return wait_s
