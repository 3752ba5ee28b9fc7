"""The database-backed ``/metrics`` sections: ``pipeline`` and ``detection``, each cached.

Each section is a few index-served aggregates on one pooled connection, and is cached for
``CACHE_TTL_S``: however many scrapers poll ``/metrics``, the database sees at most one
refresh of each section per TTL (concurrent callers share the refresh in flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from riven_async.db.stats import StatsRepo
from riven_async.domain.media import MediaKind, ShowStatus
from riven_async.domain.queue import JobKind
from riven_async.domain.states import ACTIVE_STATES, State
from riven_async.web.metrics import Labeled, MetricsRegistry, Section, SectionProvider

CACHE_TTL_S = 1.5
NEW_EPISODES_WINDOW_S = 86400.0
UNINDEXED = "unindexed"
_ACTIVE = sorted(ACTIVE_STATES, key=list(State).index)


class CachedSection:
    """A section provider that refreshes at most once per ``ttl_s``; callers share a refresh.

    A failed refresh is not cached (the next call tries again), and a caller that gives up
    (the registry's timeout) does not cancel the refresh the others wait for.
    """

    def __init__(
        self,
        provide: SectionProvider,
        ttl_s: float = CACHE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provide = provide
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._value: Section | None = None
        self._at = 0.0
        self._refresh: asyncio.Task[Section] | None = None
        self.refreshes = 0

    async def __call__(self) -> Section:
        if self._value is not None and self._monotonic() - self._at < self._ttl_s:
            return self._value
        if self._refresh is None:
            self._refresh = asyncio.create_task(self._load(), name="metrics-refresh")
            self._refresh.add_done_callback(_consume_exception)
        return await asyncio.shield(self._refresh)

    async def _load(self) -> Section:
        try:
            value = await self._provide()
            self._value, self._at = value, self._monotonic()
            self.refreshes += 1
            return value
        finally:
            self._refresh = None


def _consume_exception(task: asyncio.Task[Section]) -> None:
    # Callers that timed out no longer await it; its error must not be reported unread.
    if not task.cancelled():
        task.exception()


def pipeline_section(pool: asyncpg.Pool, stats: StatsRepo) -> SectionProvider:
    """Items by kind and state, age of the oldest item per active state, jobs per kind."""

    async def provide() -> Section:
        async with pool.acquire() as conn:
            on_conn = stats.bound_to(conn)
            counts = await on_conn.state_counts()
            oldest = await on_conn.oldest_in_states(ACTIVE_STATES)
            jobs = await on_conn.job_counts()
        now = datetime.now(UTC)  # state_changed_at is the server's now(), not the daemon clock
        return {
            "items": Labeled("kind", {
                kind: Labeled("state", {state: counts.get(kind, {}).get(state, 0)
                                        for state in State})
                for kind in MediaKind
            }),
            "items_total": sum(n for by_state in counts.values() for n in by_state.values()),
            "oldest_age_s": Labeled("state", {
                state: _age_s(now, oldest.get(state)) for state in _ACTIVE
            }),
            "jobs": Labeled("kind", {
                kind: {
                    "due": c.due, "scheduled": c.scheduled, "running": c.running,
                    "failed": c.failed,
                }
                for kind in JobKind
                if (c := jobs.get(kind)) is not None
            }),
        }

    return provide


def detection_section(pool: asyncpg.Pool, stats: StatsRepo) -> SectionProvider:
    """Shows by status, checks due now / within the hour / within the day, new episodes."""

    async def provide() -> Section:
        async with pool.acquire() as conn:
            on_conn = stats.bound_to(conn)
            shows = await on_conn.shows_by_status()
            due = await on_conn.checks_due()
            new_episodes = await on_conn.new_episodes(NEW_EPISODES_WINDOW_S)
        by_status = {status.value: shows.get(status, 0) for status in ShowStatus}
        by_status[UNINDEXED] = shows.get(None, 0)
        return {
            "shows": Labeled("status", by_status),
            "checks_due": {"now": due.now, "next_hour": due.hour, "next_day": due.day},
            "new_episodes_24h": new_episodes,
        }

    return provide


def register_pipeline_metrics(
    registry: MetricsRegistry, pool: asyncpg.Pool, stats: StatsRepo, ttl_s: float = CACHE_TTL_S
) -> tuple[CachedSection, CachedSection]:
    """Add the ``pipeline`` and ``detection`` sections, each cached for ``ttl_s``."""
    pipeline = CachedSection(pipeline_section(pool, stats), ttl_s)
    detection = CachedSection(detection_section(pool, stats), ttl_s)
    registry.register("pipeline", pipeline)
    registry.register("detection", detection)
    return pipeline, detection


def _age_s(now: datetime, since: datetime | None) -> float:
    # An empty state reports 0, so an alert on "oldest > N s" needs no special case.
    if since is None:
        return 0.0
    return round(max(0.0, (now - since).total_seconds()), 3)
