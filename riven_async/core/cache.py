"""TTL cache for static upstream data (aiocache memory backend), with stale-while-revalidate."""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiocache import SimpleMemoryCache

from riven_async.core.clock import Clock

log = logging.getLogger(__name__)

V = TypeVar("V")
_SEP = "\x1f"  # cannot appear in a namespace name, so keys never collide across namespaces


class CacheState(enum.StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    MISS = "miss"
    BYPASS = "bypass"
    UNCACHED = "uncached"


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    stale_hits: int
    misses: int
    bypassed: int
    refreshes: int
    refresh_failures: int
    evictions: int
    entries: int


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    fresh_until: float
    stale_until: float


class TtlCache(Generic[V]):
    """Per-namespace TTLs on a ``Clock``; past its TTL an entry may be served stale.

    ``ttls`` maps a namespace (``"movie"``, ``"tv"``) to seconds; a namespace without a
    positive TTL is never cached, so live data cannot end up here by accident. After the
    TTL an entry is still served for ``stale_s`` seconds while exactly one background
    refresh per key replaces it. Expiry follows the clock, not the loop's real time (so
    fake and scaled clocks work): expired entries are swept on writes, and at most
    ``max_entries`` are kept (the ones closest to expiry go first).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        ttls: Mapping[str, float],
        stale_s: float = 0.0,
        max_entries: int = 10_000,
        name: str = "",
    ) -> None:
        if stale_s < 0:
            raise ValueError("stale_s must be >= 0")
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.name = name
        self._clock = clock
        self._ttls = {ns: float(s) for ns, s in ttls.items() if s > 0}
        self._stale_s = stale_s
        self._max_entries = max_entries
        self._backend = SimpleMemoryCache(timeout=None)
        self._expiry: dict[str, float] = {}  # key -> stale_until of its current entry
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._hits = self._stale_hits = self._misses = self._bypassed = 0
        self._refreshes = self._refresh_failures = self._evictions = 0

    def __repr__(self) -> str:
        return f"<TtlCache {self.name or '?'} entries={len(self._expiry)}>"

    def ttl_for(self, namespace: str) -> float | None:
        return self._ttls.get(namespace)

    async def get(self, namespace: str, key: str) -> tuple[V, CacheState] | None:
        """The entry and whether it is fresh or stale, or None (missing or expired)."""
        full = self._key(namespace, key)
        entry: _Entry[V] | None = await self._backend.get(full)
        if entry is None:
            return None
        now = self._clock.monotonic()
        if now < entry.fresh_until:
            return entry.value, CacheState.FRESH
        if now < entry.stale_until:
            return entry.value, CacheState.STALE
        await self._drop(full)
        return None

    async def set(self, namespace: str, key: str, value: V) -> None:
        ttl = self._ttls.get(namespace)
        if ttl is None:
            return
        now = self._clock.monotonic()
        full = self._key(namespace, key)
        entry = _Entry(value, now + ttl, now + ttl + self._stale_s)
        await self._backend.set(full, entry)
        self._expiry[full] = entry.stale_until
        heapq.heappush(self._heap, (entry.stale_until, next(self._seq), full))
        await self._sweep(now)

    async def invalidate(self, namespace: str, key: str) -> None:
        await self._drop(self._key(namespace, key))

    async def clear(self) -> None:
        await self._backend.clear()
        self._expiry.clear()
        self._heap.clear()

    async def fetch(
        self,
        namespace: str | None,
        key: str,
        load: Callable[[], Awaitable[V]],
        *,
        bypass: bool = False,
        store_if: Callable[[V], bool] | None = None,
    ) -> tuple[V, CacheState]:
        """Serve ``key`` from the cache or ``load()`` it; see the class docstring."""
        if namespace is None or namespace not in self._ttls:
            return await load(), CacheState.UNCACHED
        if not bypass:
            found = await self.get(namespace, key)
            if found is not None:
                value, state = found
                if state is CacheState.FRESH:
                    self._hits += 1
                else:
                    self._stale_hits += 1
                    self._refresh_in_background(namespace, key, load, store_if)
                return value, state
            self._misses += 1
        else:
            self._bypassed += 1
        value = await load()
        if store_if is None or store_if(value):
            await self.set(namespace, key, value)
        return value, CacheState.BYPASS if bypass else CacheState.MISS

    def stats(self) -> CacheStats:
        return CacheStats(
            hits=self._hits,
            stale_hits=self._stale_hits,
            misses=self._misses,
            bypassed=self._bypassed,
            refreshes=self._refreshes,
            refresh_failures=self._refresh_failures,
            evictions=self._evictions,
            entries=len(self._expiry),
        )

    async def aclose(self) -> None:
        """Cancel background refreshes and drop every entry."""
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.clear()
        await self._backend.close()

    def _refresh_in_background(
        self,
        namespace: str,
        key: str,
        load: Callable[[], Awaitable[V]],
        store_if: Callable[[V], bool] | None,
    ) -> None:
        full = self._key(namespace, key)
        if full in self._refreshing:
            return
        task = asyncio.get_running_loop().create_task(
            self._refresh(namespace, key, load, store_if), name=f"cache-refresh:{self.name}"
        )
        self._refreshing[full] = task
        task.add_done_callback(lambda _: self._refreshing.pop(full, None))

    async def _refresh(
        self,
        namespace: str,
        key: str,
        load: Callable[[], Awaitable[V]],
        store_if: Callable[[V], bool] | None,
    ) -> None:
        self._refreshes += 1
        try:
            value = await load()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stale entry keeps serving; the next hit retries
            self._refresh_failures += 1
            log.warning(
                "%s: background refresh of a %s entry failed: %s",
                self.name,
                namespace,
                exc,
                extra={"action": "cache_refresh_failed", "service": self.name, "ns": namespace},
            )
            return
        if store_if is None or store_if(value):
            await self.set(namespace, key, value)

    @staticmethod
    def _key(namespace: str, key: str) -> str:
        return f"{namespace}{_SEP}{key}"

    async def _drop(self, full: str) -> None:
        await self._backend.delete(full)
        self._expiry.pop(full, None)

    async def _sweep(self, now: float) -> None:
        heap = self._heap
        while heap and (heap[0][0] <= now or len(self._expiry) > self._max_entries):
            stale_until, _, full = heapq.heappop(heap)
            if self._expiry.get(full) != stale_until:
                continue  # superseded by a newer write of the same key
            if stale_until > now:
                self._evictions += 1
            await self._drop(full)
        # Rewrites of hot keys leave dead heap records behind; rebuild before they pile up.
        if len(heap) > 2 * len(self._expiry) + 64:
            self._heap = [(until, next(self._seq), k) for k, until in self._expiry.items()]
            heapq.heapify(self._heap)
