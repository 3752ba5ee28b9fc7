"""How many times something happened in the last while (429s in the last hour).

Counts fall into fixed buckets (a minute each by default), so memory is bounded by the
span, not by the number of events, and a count costs one addition.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RecentCount:
    """Events in the last ``span_s`` seconds, to within one bucket."""

    def __init__(self, span_s: float = 3600.0, bucket_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if span_s <= 0 or bucket_s <= 0 or bucket_s > span_s:
            raise ValueError("need 0 < bucket_s <= span_s")
        self._bucket_s = bucket_s
        self._buckets_kept = int(span_s // bucket_s)
        self._clock = clock
        # (bucket number, count), oldest first; at most ``_buckets_kept`` entries.
        self._buckets: deque[list[int]] = deque()

    def add(self, n: int = 1) -> None:
        """Count ``n`` events now."""
        bucket = int(self._clock() // self._bucket_s)
        if self._buckets and self._buckets[-1][0] == bucket:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([bucket, n])
        self._expire(bucket)

    def total(self) -> int:
        """Events counted in the last ``span_s`` (the current bucket included)."""
        self._expire(int(self._clock() // self._bucket_s))
        return sum(count for _, count in self._buckets)

    def _expire(self, bucket: int) -> None:
        oldest = bucket - self._buckets_kept + 1
        while self._buckets and self._buckets[0][0] < oldest:
            self._buckets.popleft()
