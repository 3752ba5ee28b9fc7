"""The INDEX step: read a movie or a show from TMDB (air times from TVMaze), store its whole
tree in one call, schedule its next check and queue scrapes for what has been released.

A job's item is a requested movie or show (from intake) or a show or movie due for a check
(``ScheduleRepo.enqueue_due_checks``). A payload ``{"seasons": [n, ...]}`` forces those
seasons to be read (a webhook's hint). Replaying a job writes nothing twice: the tree
upsert skips unchanged rows, and scrapes are queued only for released items that have no
live scrape job.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from riven_async.config import IndexerSection
from riven_async.core.breaker import BreakerState
from riven_async.core.http import HttpClient
from riven_async.db.items import StoredRequest
from riven_async.db.repos import Repos
from riven_async.db.schedule import Reschedule
from riven_async.domain.media import ItemId, MediaItem, MediaKind
from riven_async.domain.queue import Job, JobKind, NewJob
from riven_async.domain.states import State
from riven_async.errors import (
    ConfigError,
    RateLimited,
    UpstreamError,
    UpstreamUnavailable,
)
from riven_async.pipeline import scheduler
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps.base import DONE, Deferred, Step, StepResult
from riven_async.services.indexers.records import AirTimeSource, IndexedShow
from riven_async.services.indexers.tmdb import TmdbIndexer
from riven_async.services.indexers.tvmaze import AirTimeRule, TvmazeClient

log = logging.getLogger(__name__)

# An upstream paused for longer than this (a 429's Retry-After) defers the job instead of
# holding a worker while the limiter waits.
PAUSE_DEFER_S = 5.0
# How long a job waits when an upstream is unreachable and says nothing about when to retry.
UNAVAILABLE_DEFER_S = 60.0
_EXACT_SOURCES = frozenset({AirTimeSource.EXACT, AirTimeSource.SCHEDULE})


@dataclass(frozen=True, slots=True)
class RequestScope:
    """What the requests of a title ask for: some seasons (None: all) and since when."""

    seasons: frozenset[int] | None
    requested_at: datetime | None

    @classmethod
    def of(cls, requests: Sequence[StoredRequest]) -> RequestScope:
        """No request, or one for the whole show, means every season."""
        latest = max((r.received_at for r in requests), default=None)
        if not requests or any(r.requested_seasons is None for r in requests):
            return cls(None, latest)
        wanted = frozenset(s for r in requests for s in r.requested_seasons or ())
        return cls(wanted, latest)


def indexer_from_settings(
    section: IndexerSection, tmdb: HttpClient, tvmaze: HttpClient | None, runtime: Runtime
) -> TmdbIndexer:
    """The TMDB indexer ``[indexer]`` describes, with TVMaze when it is enabled."""
    maze = TvmazeClient(tvmaze) if tvmaze is not None and section.tvmaze_enabled else None
    return TmdbIndexer(
        tmdb,
        tvmaze=maze,
        clock=runtime.clock,
        air_times=AirTimeRule(fallback_time=time.fromisoformat(section.fallback_air_time)),
        hiatus_after_s=section.hiatus_after_s,
        settle_s=section.settle_s,
        include_specials=section.include_specials,
        language=section.language or None,
        release_regions=section.release_regions,
        release_estimate_s=section.release_estimate_s,
    )


def upstream_deferral(clients: Sequence[HttpClient], now: datetime) -> Deferred | None:
    """A deferral while an upstream is paused (429) or its breaker is open, else None."""
    for client in clients:
        breaker = client.breaker.stats()
        if breaker.state is BreakerState.OPEN:
            return Deferred(now + timedelta(seconds=max(1.0, breaker.retry_in_s)),
                            f"{client.name}: circuit open")
        paused_s = client.limiter.paused_for()
        if paused_s > PAUSE_DEFER_S:
            return Deferred(now + timedelta(seconds=paused_s), f"{client.name}: paused")
    return None


def deferral_for(exc: UpstreamError, now: datetime) -> Deferred | None:
    """The deferral an upstream error means (rate limited, unreachable), or None: a failure."""
    if isinstance(exc, RateLimited):
        wait_s = exc.retry_after_s
    elif isinstance(exc, UpstreamUnavailable):
        wait_s = exc.retry_after_s if exc.retry_after_s is not None else UNAVAILABLE_DEFER_S
    else:
        return None
    return Deferred(now + timedelta(seconds=max(1.0, wait_s)), str(exc))


def next_air_exact(show: IndexedShow) -> bool:
    """Whether the next episode's air time is the broadcast time, not the fallback."""
    if show.next_air_at is None:
        return True
    candidates = [show.next_episode] if show.next_episode is not None else []
    candidates += [e for s in show.seasons for e in s.episodes]
    for episode in candidates:
        if episode.air_at == show.next_air_at:
            return episode.air_source in _EXACT_SOURCES
    return False


def _season_hint(payload: Mapping[str, Any] | None) -> tuple[int, ...]:
    raw = payload.get("seasons") if payload else None
    if not isinstance(raw, list | tuple):
        return ()
    return tuple(n for n in raw if isinstance(n, int) and not isinstance(n, bool) and n >= 0)


class IndexStep:
    """Runs INDEX jobs (see the module docstring)."""

    def __init__(self, runtime: Runtime, indexer: TmdbIndexer,
                 clients: Sequence[HttpClient]) -> None:
        self._runtime = runtime
        self._indexer = indexer
        self._clients = tuple(clients)

    @property
    def kind(self) -> JobKind:
        return JobKind.INDEX

    async def run(self, job: Job) -> StepResult:
        runtime = self._runtime
        if job.item_id is None:
            return DONE
        item = await runtime.repos.catalog.get(job.item_id)
        if item is None or not item.kind.is_root or item.state is State.PAUSED:
            return DONE
        deferral = upstream_deferral(self._clients, runtime.clock.now())
        if deferral is not None:
            raise deferral
        try:
            if item.kind is MediaKind.SHOW:
                return await self._show(item, _season_hint(job.payload))
            return await self._movie(item)
        except UpstreamError as exc:
            deferral = deferral_for(exc, runtime.clock.now())
            if deferral is None:
                raise
            log.info("index of item %d deferred: %s", item.id, deferral.reason,
                     extra={"action": "index_deferred", "item_id": item.id})
            raise deferral from exc

    async def _scope(self, item: MediaItem) -> RequestScope:
        scope = RequestScope.of(await self._runtime.repos.items.requests_for([item.id]))
        if scope.requested_at is not None and scope.requested_at > self._runtime.clock.now():
            # Requests are stamped by the database's clock: on a scaled clock (demo, sims)
            # that may lie ahead, and "requested in the future" must not count as fresh.
            return RequestScope(scope.seasons, None)
        return scope

    async def _tmdb_id(self, item: MediaItem) -> int:
        if item.ids.tmdb is not None:
            return item.ids.tmdb
        found = await self._indexer.resolve(item.ids, item.kind, title=item.title or None,
                                            year=item.year)
        if found.kind is not item.kind:
            raise ValueError(f"item {item.id} is a {item.kind} but its ids name a {found.kind}")
        return int(found.tmdb_id)

    async def _show(self, item: MediaItem, hint: Collection[int]) -> StepResult:
        runtime = self._runtime
        tmdb_id = await self._tmdb_id(item)
        scope = await self._scope(item)
        checked_before = item.schedule is not None and item.schedule.status_checked_at is not None
        known = (await runtime.repos.trees.season_fingerprints(item.id)
                 if checked_before else None)
        show = await self._indexer.show(
            tmdb_id, known_seasons=known, seasons=hint, fresh=checked_before,
            tvmaze_id=item.ids.tvmaze, only_seasons=scope.seasons,
        )
        now = runtime.clock.now()
        policy = scheduler.SchedulePolicy.from_section(runtime.settings.detection)
        facts = scheduler.ShowFacts(
            status=show.status, next_air_at=show.next_air_at, next_air_exact=next_air_exact(show),
            last_air_at=show.last_air_at, requested_at=scope.requested_at,
        )
        check = scheduler.next_show_check(facts, now, policy)
        tree = show.to_tree(check.at)
        async with runtime.locks(("show", tmdb_id)), runtime.pool.acquire() as conn, \
                conn.transaction():
            repos = runtime.repos.bound_to(conn)
            kept = await repos.trees.adopt_identity(item.id, MediaKind.SHOW, tree)
            if kept is None:
                return DONE
            [stored] = await repos.trees.upsert_show_trees([tree])
            result = await self._finish(repos, item, stored.show_id, check, policy)
        log.info(
            "indexed show %s (item %d): %s, %d new and %d changed rows, next check %s (%s)",
            show.title, stored.show_id, show.status, stored.children_inserted,
            stored.children_updated, check.at.isoformat(), check.reason,
            extra={"action": "index", "item_id": stored.show_id, "tmdb_id": tmdb_id,
                   "inserted": stored.children_inserted, "reason": check.reason,
                   "released": len(result.then)},
        )
        return result

    async def _movie(self, item: MediaItem) -> StepResult:
        runtime = self._runtime
        tmdb_id = await self._tmdb_id(item)
        scope = await self._scope(item)
        checked_before = item.schedule is not None and item.schedule.status_checked_at is not None
        movie = await self._indexer.movie(tmdb_id, fresh=checked_before)
        now = runtime.clock.now()
        policy = scheduler.SchedulePolicy.from_section(runtime.settings.detection)
        check = scheduler.next_movie_check(
            scheduler.MovieFacts(movie.released_at, scope.requested_at), now, policy)
        record = movie.to_record(check.at)
        async with runtime.locks(("movie", tmdb_id)), runtime.pool.acquire() as conn, \
                conn.transaction():
            repos = runtime.repos.bound_to(conn)
            kept = await repos.trees.adopt_identity(item.id, MediaKind.MOVIE, record)
            if kept is None:
                return DONE
            [stored] = await repos.trees.upsert_movies([record])
            result = await self._finish(repos, item, stored.item_id, check, policy)
        log.info(
            "indexed movie %s (item %d): released %s, next check %s (%s)",
            movie.title, stored.item_id,
            movie.released_at.isoformat() if movie.released_at else "unknown",
            check.at.isoformat(), check.reason,
            extra={"action": "index", "item_id": stored.item_id, "tmdb_id": tmdb_id,
                   "reason": check.reason, "released": len(result.then)},
        )
        return result

    async def _finish(
        self, repos: Repos, item: MediaItem, root_id: ItemId, check: scheduler.NextCheck,
        policy: scheduler.SchedulePolicy,
    ) -> StepResult:
        """Schedule, release what aired and say which scrapes to queue (in the transaction)."""
        await repos.schedule.reschedule_many([Reschedule(root_id, check.at, check.priority)])
        released = await repos.schedule.release_roots([root_id], policy.release_delay_s)
        if item.kind is MediaKind.SHOW:
            await repos.items.refresh_parent_states([root_id])
        scrapes = [NewJob(kind=JobKind.SCRAPE, item_id=i) for i in released]
        if root_id != item.id and scrapes:
            # The job's item was merged into another row (deleted with this job): the
            # worker cannot queue follow-ups for it, so they go in with this transaction.
            await repos.jobs.enqueue_many(scrapes)
            return DONE
        return StepResult(then=scrapes)


async def build(runtime: Runtime, stack: AsyncExitStack) -> Step:
    """The INDEX step on the daemon's TMDB (and TVMaze) clients."""
    section = runtime.settings.indexer
    tmdb = runtime.upstreams.get("tmdb")
    if tmdb is None:
        raise ConfigError(runtime.live.path or "<config>", "must be enabled: shows and movies "
                          "are indexed from TMDB", key="upstreams.tmdb.enabled")
    maze = runtime.upstreams.get("tvmaze") if section.tvmaze_enabled else None
    clients = [tmdb] if maze is None else [tmdb, maze]
    return IndexStep(runtime, indexer_from_settings(section, tmdb, maze, runtime), clients)

