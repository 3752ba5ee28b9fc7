"""Event-loop lag: how late a short sleep wakes up, the symptom of blocking calls."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from riven_async.core.stats import percentile


class LoopLagMonitor:
    """Sample the loop's wake-up delay every ``interval_s``; keep the last ``keep`` samples."""

    def __init__(self, interval_s: float = 0.25, keep: int = 1200) -> None:
        self.interval_s = interval_s
        self._samples: deque[float] = deque(maxlen=keep)
        self.healthy = asyncio.Event()

    async def run(self) -> None:
        """Measure forever; ``healthy`` is set while the last lag was under 5 s."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, time.monotonic() - started - self.interval_s)
            self._samples.append(lag)
            if lag < 5.0:
                self.healthy.set()
            else:
                self.healthy.clear()

    def snapshot(self) -> dict[str, float]:
        """Lag percentiles in milliseconds over the kept samples."""
        samples = sorted(self._samples)
        return {
            "p50_ms": round(percentile(samples, 50) * 1000, 3),
            "p99_ms": round(percentile(samples, 99) * 1000, 3),
            "max_ms": round((samples[-1] if samples else 0.0) * 1000, 3),
        }
