"""The TTL cache: per-namespace TTLs on a clock, never-cache, bypass, stale-while-revalidate."""

from __future__ import annotations

import asyncio
import logging

import pytest

from riven_async.core.cache import CacheState, TtlCache
from riven_async.core.clock import ManualClock

TTLS = {"movie": 21600.0, "tv": 7200.0, "configuration": 86400.0}


class Loader:
    """Counts calls and returns ``value:<n>``; can be told to fail or to wait."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("upstream down")
        return f"value:{self.calls}"


def make(stale_s: float = 3600.0, max_entries: int = 10_000) -> tuple[TtlCache[str], ManualClock]:
    clock = ManualClock()
    return TtlCache(clock=clock, ttls=TTLS, stale_s=stale_s, max_entries=max_entries), clock


async def test_fresh_within_ttl_then_stale_then_gone() -> None:
    cache, clock = make(stale_s=600.0)
    await cache.set("tv", "1396", "show")
    clock.advance(7199.0)
    assert await cache.get("tv", "1396") == ("show", CacheState.FRESH)
    clock.advance(1.0)
    assert await cache.get("tv", "1396") == ("show", CacheState.STALE)
    clock.advance(600.0)
    assert await cache.get("tv", "1396") is None
    assert cache.stats().entries == 0
    await cache.aclose()


async def test_each_namespace_has_its_own_ttl() -> None:
    cache, clock = make(stale_s=0.0)
    for ns in TTLS:
        await cache.set(ns, "1", ns)
    clock.advance(7200.0)
    assert await cache.get("tv", "1") is None
    assert await cache.get("movie", "1") == ("movie", CacheState.FRESH)
    clock.advance(21600.0 - 7200.0)
    assert await cache.get("movie", "1") is None
    assert await cache.get("configuration", "1") == ("configuration", CacheState.FRESH)
    await cache.aclose()


async def test_same_key_in_two_namespaces_does_not_collide() -> None:
    cache, _ = make()
    await cache.set("movie", "603", "a movie")
    await cache.set("tv", "603", "a show")
    assert await cache.get("movie", "603") == ("a movie", CacheState.FRESH)
    assert await cache.get("tv", "603") == ("a show", CacheState.FRESH)
    await cache.aclose()


async def test_no_namespace_or_an_unknown_one_is_never_cached() -> None:
    cache, _ = make()
    load = Loader()
    assert await cache.fetch(None, "live", load) == ("value:1", CacheState.UNCACHED)
    assert await cache.fetch(None, "live", load) == ("value:2", CacheState.UNCACHED)
    assert await cache.fetch("availability", "x", load) == ("value:3", CacheState.UNCACHED)
    assert await cache.fetch("availability", "x", load) == ("value:4", CacheState.UNCACHED)
    await cache.set("availability", "x", "nope")
    assert await cache.get("availability", "x") is None
    assert cache.stats().entries == 0
    await cache.aclose()


async def test_fetch_hits_until_the_ttl() -> None:
    cache, clock = make(stale_s=0.0)
    load = Loader()
    assert await cache.fetch("movie", "1", load) == ("value:1", CacheState.MISS)
    clock.advance(21599.0)
    assert await cache.fetch("movie", "1", load) == ("value:1", CacheState.FRESH)
    clock.advance(1.0)
    assert await cache.fetch("movie", "1", load) == ("value:2", CacheState.MISS)
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (1, 2)
    await cache.aclose()


async def test_bypass_always_loads_and_stores_the_fresh_value() -> None:
    cache, _ = make()
    load = Loader()
    await cache.fetch("movie", "1", load)
    assert await cache.fetch("movie", "1", load, bypass=True) == ("value:2", CacheState.BYPASS)
    assert await cache.fetch("movie", "1", load) == ("value:2", CacheState.FRESH)
    assert cache.stats().bypassed == 1
    await cache.aclose()


async def test_store_if_keeps_unwanted_values_out() -> None:
    cache, _ = make()
    load = Loader()
    await cache.fetch("movie", "1", load, store_if=lambda v: v.endswith("9"))
    assert await cache.get("movie", "1") is None
    await cache.aclose()


async def test_stale_hit_returns_at_once_and_starts_exactly_one_refresh() -> None:
    cache, clock = make(stale_s=3600.0)
    load = Loader()
    await cache.fetch("tv", "1396", load)
    clock.advance(7200.0 + 1.0)
    load.gate = asyncio.Event()
    results = await asyncio.gather(*(cache.fetch("tv", "1396", load) for _ in range(50)))
    assert results == [("value:1", CacheState.STALE)] * 50
    await asyncio.sleep(0)
    assert load.calls == 2  # one background refresh for fifty stale hits
    load.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert await cache.get("tv", "1396") == ("value:2", CacheState.FRESH)
    stats = cache.stats()
    assert (stats.stale_hits, stats.refreshes) == (50, 1)
    await cache.aclose()


async def test_a_failed_refresh_keeps_serving_stale_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache, clock = make(stale_s=3600.0)
    load = Loader()
    await cache.fetch("tv", "1", load)
    clock.advance(7300.0)
    load.fail = True
    with caplog.at_level(logging.WARNING):
        assert await cache.fetch("tv", "1", load) == ("value:1", CacheState.STALE)
        for _ in range(5):
            await asyncio.sleep(0)
    assert cache.stats().refresh_failures == 1
    assert any(r.__dict__.get("action") == "cache_refresh_failed" for r in caplog.records)
    # The next stale hit tries again (one at a time).
    load.fail = False
    assert await cache.fetch("tv", "1", load) == ("value:1", CacheState.STALE)
    for _ in range(5):
        await asyncio.sleep(0)
    assert await cache.get("tv", "1") == ("value:3", CacheState.FRESH)
    await cache.aclose()


async def test_past_the_stale_window_is_a_miss_that_waits_for_the_load() -> None:
    cache, clock = make(stale_s=60.0)
    load = Loader()
    await cache.fetch("tv", "1", load)
    clock.advance(7200.0 + 60.0)
    assert await cache.fetch("tv", "1", load) == ("value:2", CacheState.MISS)
    await cache.aclose()


async def test_expired_entries_are_swept_on_writes() -> None:
    cache, clock = make(stale_s=0.0)
    for i in range(1000):
        await cache.set("tv", str(i), "x")
    clock.advance(7200.0)
    await cache.set("movie", "new", "y")
    assert cache.stats().entries == 1
    await cache.aclose()


async def test_size_is_bounded_and_the_soonest_to_expire_go_first() -> None:
    cache, clock = make(max_entries=100)
    for i in range(100):
        await cache.set("tv", str(i), "short")  # expire first
    clock.advance(1.0)
    for i in range(100):
        await cache.set("movie", str(i), "long")
    stats = cache.stats()
    assert stats.entries == 100
    assert stats.evictions == 100
    assert await cache.get("tv", "99") is None
    assert await cache.get("movie", "0") is not None
    await cache.aclose()


async def test_rewriting_one_hot_key_does_not_grow_memory() -> None:
    cache, clock = make()
    for _ in range(10_000):
        clock.advance(0.01)
        await cache.set("tv", "hot", "x")
    assert cache.stats().entries == 1
    assert len(cache._heap) <= 2 * 1 + 65
    await cache.aclose()


async def test_close_cancels_background_refreshes() -> None:
    cache, clock = make()
    load = Loader()
    await cache.fetch("tv", "1", load)
    clock.advance(7201.0)
    load.gate = asyncio.Event()  # the refresh hangs
    await cache.fetch("tv", "1", load)
    await asyncio.sleep(0)
    await cache.aclose()
    assert cache.stats().entries == 0


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="stale_s"):
        TtlCache[str](clock=ManualClock(), ttls={}, stale_s=-1.0)
    with pytest.raises(ValueError, match="max_entries"):
        TtlCache[str](clock=ManualClock(), ttls={}, max_entries=0)
