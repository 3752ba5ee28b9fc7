"""Fault switchboard: what goes wrong with a simulated upstream, and when."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict, Unpack

from riven_async.core.clock import Clock


class FaultKind(StrEnum):
    """The faults a sim can inject; ``latency`` combines with any of the others."""

    LATENCY = "latency"
    OUTAGE = "outage"
    RESET = "reset"
    TIMEOUT = "timeout"
    ERROR = "error"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Outage:
    """A window of the sims' clock during which the upstream answers 503."""

    start: datetime
    end: datetime

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to inject. Rates are probabilities per request; latencies are real seconds.

    ``paths`` limits every fault except outages to requests whose path starts with one of
    the prefixes; ``budget`` switches the plan off after that many faulted requests.
    """

    latency_s: float = 0.0
    jitter_s: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    timeout_rate: float = 0.0
    hang_s: float = 30.0
    malformed_rate: float = 0.0
    reset_rate: float = 0.0
    outages: tuple[Outage, ...] = ()
    paths: tuple[str, ...] = ()
    budget: int | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "timeout_rate", "malformed_rate", "reset_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate!r}")
        if self.latency_s < 0 or self.jitter_s < 0 or self.hang_s < 0:
            raise ValueError("latency_s, jitter_s and hang_s must not be negative")
        if not 500 <= self.error_status <= 599:
            raise ValueError(f"error_status must be a 5xx status, not {self.error_status!r}")
        if self.budget is not None and self.budget < 0:
            raise ValueError("budget must not be negative")

    def to_json(self) -> dict[str, Any]:
        """The plan as the control endpoint shows it."""
        data = dataclasses.asdict(self)
        data["outages"] = [
            {"start": o.start.isoformat(), "end": o.end.isoformat()} for o in self.outages
        ]
        data["paths"] = list(self.paths)
        return data


class FaultChanges(TypedDict, total=False):
    """Keyword arguments accepted by ``FaultSwitchboard.set``."""

    latency_s: float
    jitter_s: float
    error_rate: float
    error_status: int
    timeout_rate: float
    hang_s: float
    malformed_rate: float
    reset_rate: float
    outages: tuple[Outage, ...]
    paths: tuple[str, ...]
    budget: int | None


_FLOAT_KEYS = frozenset(
    {
        "latency_s",
        "jitter_s",
        "error_rate",
        "timeout_rate",
        "hang_s",
        "malformed_rate",
        "reset_rate",
    }
)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do to one request."""

    kind: FaultKind | None = None
    latency_s: float = 0.0
    error_status: int = 500
    hang_s: float = 0.0
    retry_after_s: float = 0.0


class FaultSwitchboard:
    """Holds one sim's fault plan and rolls the dice for each request (seeded, reproducible)."""

    def __init__(self, clock: Clock, seed: int = 0) -> None:
        self._clock = clock
        self._rng = random.Random(f"faults:{seed}")
        self._plan = FaultPlan()
        self.injected: Counter[str] = Counter()

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def set(self, **changes: Unpack[FaultChanges]) -> FaultPlan:
        """Change some settings and keep the others."""
        self._plan = dataclasses.replace(self._plan, **changes)
        return self._plan

    def replace(self, plan: FaultPlan) -> None:
        self._plan = plan

    def clear(self) -> None:
        """No faults at all (outage windows included)."""
        self._plan = FaultPlan()

    def outage(self, duration_s: float, start: datetime | None = None) -> Outage:
        """Add a 503 window of ``duration_s`` seconds of the sims' clock, from now by default."""
        begin = start or self._clock.now()
        window = Outage(begin, begin + timedelta(seconds=duration_s))
        self._plan = dataclasses.replace(self._plan, outages=(*self._plan.outages, window))
        return window

    def apply_json(self, data: Any) -> FaultPlan:
        """Apply a control-endpoint body: a partial plan; ``outage_s`` adds a window from now."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        changes: dict[str, Any] = {}
        outage_s: float | None = None
        for key, value in data.items():
            if key in _FLOAT_KEYS:
                changes[key] = _number(key, value)
            elif key == "error_status":
                changes[key] = int(_number(key, value))
            elif key == "budget":
                changes[key] = None if value is None else int(_number(key, value))
            elif key == "paths":
                if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                    raise ValueError("paths must be a list of path prefixes")
                changes[key] = tuple(value)
            elif key == "outages":
                changes[key] = tuple(_outage(item) for item in _as_list(key, value))
            elif key == "outage_s":
                outage_s = _number(key, value)
            else:
                raise ValueError(f"unknown fault setting {key!r}")
        plan = dataclasses.replace(self._plan, **changes)
        self._plan = plan
        if outage_s is not None:
            self.outage(outage_s)
        return self._plan

    def decide(self, path: str) -> FaultDecision:
        """Pick the fault (if any) for one request to ``path`` arriving now."""
        plan = self._plan
        now = self._clock.now()
        for window in plan.outages:
            if window.covers(now):
                self.injected[FaultKind.OUTAGE.value] += 1
                return FaultDecision(
                    FaultKind.OUTAGE, retry_after_s=(window.end - now).total_seconds()
                )
        if plan.paths and not path.startswith(plan.paths):
            return FaultDecision()
        if plan.budget == 0:
            return FaultDecision()
        latency = plan.latency_s + (self._rng.uniform(0, plan.jitter_s) if plan.jitter_s else 0)
        kind = self._roll(plan)
        if latency > 0:
            self.injected[FaultKind.LATENCY.value] += 1
        if kind is not None:
            self.injected[kind.value] += 1
        if plan.budget is not None and (kind is not None or latency > 0):
            remaining = plan.budget - 1
            self._plan = (
                dataclasses.replace(plan, budget=remaining)
                if remaining
                else FaultPlan(outages=plan.outages)
            )
        return FaultDecision(kind, latency, plan.error_status, plan.hang_s)

    def _roll(self, plan: FaultPlan) -> FaultKind | None:
        roll = self._rng.random()
        for kind, rate in (
            (FaultKind.RESET, plan.reset_rate),
            (FaultKind.TIMEOUT, plan.timeout_rate),
            (FaultKind.ERROR, plan.error_rate),
            (FaultKind.MALFORMED, plan.malformed_rate),
        ):
            if roll < rate:
                return kind
            roll -= rate
        return None


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    return float(value)


def _as_list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list")
    return value


def _outage(item: Any) -> Outage:
    if not isinstance(item, dict) or not {"start", "end"} <= item.keys():
        raise ValueError("each outage needs 'start' and 'end' (ISO-8601)")
    start = datetime.fromisoformat(str(item["start"]))
    end = datetime.fromisoformat(str(item["end"]))
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("outage times must carry a timezone")
    return Outage(start, end)
