"""Circuit breaker: after consecutive failures, one probe per interval instead of a storm."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from riven_async.core.clock import Clock

log = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    """Raised by ``admit`` while the breaker refuses calls; ``retry_in_s`` until a probe."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        super().__init__(f"{name}: circuit open, next probe in {retry_in_s:.1f}s")
        self.retry_in_s = retry_in_s


@dataclass(frozen=True, slots=True)
class Ticket:
    """One admitted call; ``probe`` is true for the single half-open trial call."""

    probe: bool
    generation: int


@dataclass(frozen=True, slots=True)
class BreakerStats:
    state: BreakerState
    consecutive_failures: int
    opened_total: int
    retry_in_s: float


class CircuitBreaker:
    """Closed → (``failures`` consecutive failures) → open → (``reset_s``) → half-open.

    Half-open admits exactly one probe; every other call fails fast with ``CircuitOpen``.
    The probe's success closes the breaker; its failure opens it for another ``reset_s``;
    a probe abandoned without a verdict (cancelled, or an answer that says nothing about
    health) frees the probe slot for the next caller. Results of calls admitted before
    the breaker opened do not move an open breaker: only the probe decides.
    """

    def __init__(self, *, failures: int, reset_s: float, clock: Clock, name: str = "") -> None:
        if failures < 1:
            raise ValueError("failures must be >= 1")
        if reset_s <= 0:
            raise ValueError("reset_s must be > 0")
        self.name = name
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._generation = 0  # bumped on every open, so stale tickets are recognised
        self._opened_total = 0

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name or '?'} {self.state.value}>"

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._retry_in() <= 0:
            return BreakerState.HALF_OPEN
        return self._state

    def check(self) -> None:
        """Raise ``CircuitOpen`` if a call would be refused now, without taking a ticket."""
        if self._state is BreakerState.CLOSED:
            return
        if self._probing or self._retry_in() > 0:
            raise CircuitOpen(self.name, max(self._retry_in(), 0.0))

    def admit(self) -> Ticket:
        """Take a ticket for one call, or raise ``CircuitOpen``."""
        if self._state is BreakerState.CLOSED:
            return Ticket(probe=False, generation=self._generation)
        self.check()
        self._state = BreakerState.HALF_OPEN
        self._probing = True
        log.info(
            "%s: circuit half-open, sending one probe",
            self.name,
            extra={"action": "breaker_probe", "service": self.name},
        )
        return Ticket(probe=True, generation=self._generation)

    def success(self, ticket: Ticket) -> None:
        """The upstream answered sensibly."""
        if ticket.probe:
            self._probing = False
            self._close()
        elif self._state is BreakerState.CLOSED:
            self._failures = 0

    def failure(self, ticket: Ticket) -> None:
        """The upstream failed (connection error, timeout, 5xx)."""
        if ticket.probe:
            self._probing = False
            self._open()
        elif self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self._threshold:
                self._open()

    def abandon(self, ticket: Ticket) -> None:
        """The call ended without a verdict; a probe's slot goes to the next caller."""
        if ticket.probe and ticket.generation == self._generation:
            self._probing = False

    def stats(self) -> BreakerStats:
        state = self.state
        return BreakerStats(
            state=state,
            consecutive_failures=self._failures,
            opened_total=self._opened_total,
            retry_in_s=max(0.0, self._retry_in()) if state is BreakerState.OPEN else 0.0,
        )

    def _retry_in(self) -> float:
        return self._opened_at + self._reset_s - self._clock.monotonic()

    def _open(self) -> None:
        was = self._state
        self._state = BreakerState.OPEN
        self._opened_at = self._clock.monotonic()
        self._generation += 1
        if was is BreakerState.CLOSED:
            self._opened_total += 1
            log.warning(
                "%s: circuit opened after %d consecutive failures; probing every %.1fs",
                self.name,
                self._failures,
                self._reset_s,
                extra={"action": "breaker_open", "service": self.name},
            )

    def _close(self) -> None:
        if self._state is not BreakerState.CLOSED:
            log.info(
                "%s: circuit closed, upstream answering again",
                self.name,
                extra={"action": "breaker_close", "service": self.name},
            )
        self._state = BreakerState.CLOSED
        self._failures = 0
