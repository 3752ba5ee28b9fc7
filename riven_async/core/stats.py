"""Small statistics helpers shared by every metrics producer: percentiles over a window."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class LatencyWindow:
    """The last ``keep`` durations (seconds); memory is bounded whatever the traffic."""

    __slots__ = ("_samples", "count")

    def __init__(self, keep: int = 2048) -> None:
        self._samples: deque[float] = deque(maxlen=keep)
        self.count = 0

    def add(self, seconds: float) -> None:
        """Record one duration."""
        self._samples.append(seconds)
        self.count += 1

    def percentiles_ms(self) -> dict[str, float]:
        """p50/p95/p99 in milliseconds over the kept samples."""
        ordered = sorted(self._samples)
        return {f"p{p}_ms": round(percentile(ordered, p) * 1000, 3) for p in (50, 95, 99)}
