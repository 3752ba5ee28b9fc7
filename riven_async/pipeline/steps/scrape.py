"""The SCRAPE step: every scraper at once for a movie or an episode, ranked, stored.

An episode whose season still needs releases for all its aired episodes first gets the
season's packs searched, once per season (a per-season lock plus the season row's
``scraped_at`` as a recent-scrape marker): the packs and singles found are ranked against
every episode that needs them and stored for each; only episodes left without a release
are then searched one by one. Nothing acceptable found: the job runs again per
``ScrapeSchedule``; scrapers that failed, sent a notice or were rate-limited are asked
again sooner, alone (the others already answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from riven_async import config
from riven_async.db.releases import SeasonEntry
from riven_async.domain.media import MediaItem, MediaKind
from riven_async.domain.queue import Job, JobKind, NewJob
from riven_async.domain.releases import Release, ScrapedRelease as StoredRelease, normalize_infohash
from riven_async.domain.states import State
from riven_async.errors import RivenError
from riven_async.pipeline import ranking
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.scrape_schedule import ScrapeSchedule
from riven_async.pipeline.steps.base import DONE, Deferred, Step, StepResult
from riven_async.services.scrapers import ScrapedRelease, ScrapeQuery
from riven_async.services.scrapers.fanout import (
    FanoutResult,
    OutcomeStatus,
    ScrapeFanout,
    ScraperHealth,
    ScraperOutcome,
    build_scrapers,
)
from riven_async.web.metrics import Labeled, Section

log = logging.getLogger(__name__)

# Scraped for the first time (indexed), or again after a crash before the job completed.
SCRAPE_STATES = frozenset({State.INDEXED, State.SCRAPED})
# Already on its way or done: a scrape looks for something better (an upgrade).
UPGRADE_STATES = frozenset({State.DOWNLOADED, State.LINKED, State.COMPLETED})
# Aired episodes in these states already have what they need from a scrape.
_HANDLED_STATES = frozenset({State.SCRAPED, State.DOWNLOADED, State.LINKED, State.COMPLETED})
_ANSWERED = frozenset({OutcomeStatus.OK, OutcomeStatus.SOFT_FAILURE})
_NOT_ASKED = frozenset({OutcomeStatus.UNSUPPORTED, OutcomeStatus.OVER_BUDGET})
MAX_PARTIAL_RETRIES = 100_000
MIN_RETRY_S = 1.0
SEASON_LOCK = "scrape-season"


class ScrapeError(RivenError):
    """The item cannot be scraped: no scraper can search for it, or none answered."""


@dataclass(frozen=True, slots=True)
class _Subject:
    """The item being scraped, its movie or show, and what to ask and rank against."""

    item: MediaItem
    root: MediaItem
    query: ScrapeQuery
    target: ranking.Target
    season: tuple[SeasonEntry, ...] = ()

    @property
    def is_episode(self) -> bool:
        return self.item.kind is MediaKind.EPISODE


@dataclass(frozen=True, slots=True)
class _PartialRetry:
    """Scrapers to ask again alone before the item's next full scrape at ``full_at``."""

    only: frozenset[str]
    full_at: datetime


class ScrapeStep:
    """Runs SCRAPE jobs; see the module docstring."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        section = runtime.settings.scraping
        self.health = ScraperHealth(
            alpha=section.health_alpha, recovery_s=section.health_recovery_s,
            clock=runtime.clock,
        )
        self._fanout_section: config.ScrapingSection | None = None
        self._fanout: ScrapeFanout | None = None
        self._ranker: ranking.Ranker | None = None
        self._partials: dict[int, _PartialRetry] = {}
        self.counts: Counter[str] = Counter()

    @property
    def kind(self) -> JobKind:
        return JobKind.SCRAPE

    def fanout(self) -> ScrapeFanout:
        """The fan-out for the ``[scraping]`` settings in force (rebuilt after a reload)."""
        section = self._runtime.settings.scraping
        if self._fanout is None or self._fanout_section != section:
            self._fanout = _build_fanout(self._runtime, section, self.health)
            self._fanout_section = section
        return self._fanout

    def ranker(self) -> ranking.Ranker:
        """The ranker for the ``[ranking]`` profile in force (rebuilt after a reload)."""
        profile = self._runtime.settings.ranking
        if self._ranker is None or self._ranker.profile != profile:
            self._ranker = ranking.Ranker(profile)
        return self._ranker

    async def warm_up(self) -> None:
        """The scrapers' start-up work (Torznab caps); never raises."""
        await self.fanout().start()

    async def run(self, job: Job) -> StepResult:
        if job.item_id is None:
            raise ScrapeError(f"scrape job {job.id} names no item")
        item = await self._runtime.repos.catalog.get(job.item_id)
        if item is None:
            return DONE  # deleted meanwhile
        if item.kind not in (MediaKind.MOVIE, MediaKind.EPISODE):
            raise ScrapeError(f"item {item.id} is a {item.kind}; only movies and episodes")
        if item.state not in SCRAPE_STATES | UPGRADE_STATES:
            log.info(
                "item %d is %s: nothing to scrape", item.id, item.state,
                extra={"action": "scrape_skip", "item_id": item.id, "state": str(item.state)},
            )
            return DONE
        subject = await self._subject(item)
        upgrade = item.state in UPGRADE_STATES
        if subject.is_episode and not upgrade and await self._covered_by_season(subject):
            best = await self._best(item.id)
            if best is not None:
                return await self._found(subject, best)
        return await self._scrape_item(subject, upgrade=upgrade)

    # -- one item -------------------------------------------------------------------------

    async def _scrape_item(self, subject: _Subject, *, upgrade: bool) -> StepResult:
        repos, item = self._runtime.repos, subject.item
        now = self._runtime.clock.now()
        partial = self._partials.pop(item.id, None)
        if partial is not None and now >= partial.full_at:
            partial = None
        blacklisted = {e.infohash for e in await repos.releases.blacklist_for([item.id])}
        result = await self.fanout().scrape(
            subject.query, only=partial.only if partial is not None else None
        )
        ranked = await self.ranker().rank_async(
            subject.target, _candidates(result.releases, blacklisted)
        )
        before = await self._best(item.id) if upgrade else None
        if ranked:
            await repos.releases.insert_many(_stored(item.id, ranked, result.releases))
        await repos.items.record_scrapes([item.id])
        if upgrade:
            return await self._upgrade(subject, ranked, before)
        best = await self._best(item.id)
        if best is not None:
            return await self._found(subject, best)
        if partial is None:
            self._check_answered(result, now)
        return self._not_found(subject, result, now, partial)

    async def _found(self, subject: _Subject, best: Release) -> StepResult:
        item = subject.item
        moved = await self._runtime.repos.items.set_state_many([item.id], State.SCRAPED)
        if not moved and item.state is not State.SCRAPED:
            log.info(
                "item %d changed state during its scrape; no download queued", item.id,
                extra={"action": "scrape_moved", "item_id": item.id},
            )
            return DONE
        self.counts["found"] += 1
        return StepResult(then=[_download_job(subject, best)])

    async def _upgrade(
        self, subject: _Subject, ranked: Sequence[ranking.RankedRelease], before: Release | None
    ) -> StepResult:
        item = subject.item
        if not ranked or (
            before is not None
            and (ranked[0].rank <= before.rank or ranked[0].infohash == before.infohash)
        ):
            self.counts["upgrade_none"] += 1
            return DONE
        moved = await self._runtime.repos.items.set_state_many([item.id], State.SCRAPED)
        if not moved:
            return DONE
        best = await self._best(item.id)
        if best is None:
            return DONE
        self.counts["upgrade_found"] += 1
        return StepResult(then=[_download_job(subject, best, upgrade=True)])

    def _not_found(
        self, subject: _Subject, result: FanoutResult, now: datetime,
        partial: _PartialRetry | None,
    ) -> StepResult:
        item, section = subject.item, self._runtime.settings.scraping
        if partial is not None:
            full_at = partial.full_at
        else:
            full_at = ScrapeSchedule.from_section(section).next_at(
                now=now, requested_at=subject.root.created_at, aired_at=item.aired_at,
                wanted_since=item.state_changed_at,
            )
        again_at = full_at
        # Between two full scrapes a failed or noticed scraper gets one early retry (a
        # lasting notice, like Comet's "unable to get metadata", is not asked every few
        # minutes); a rate-limited one is asked whenever its pause ends.
        retry = [
            o for o in result.outcomes
            if o.needs_retry and (partial is None or _paused(o))
        ]
        if retry:
            wait = min(o.retry_after_s or section.partial_retry_s for o in retry)
            part_at = now + timedelta(seconds=max(MIN_RETRY_S, wait))
            if part_at < full_at:
                self._remember(item.id, _PartialRetry(frozenset(o.scraper for o in retry),
                                                      full_at))
                again_at = part_at
        self.counts["not_found"] += 1
        log.info(
            "nothing acceptable for %s; again at %s", subject.query.describe(),
            again_at.isoformat(),
            extra={"action": "scrape_none", "item_id": item.id,
                   "retry": [o.scraper for o in retry]},
        )
        return StepResult(again_at=again_at)

    def _check_answered(self, result: FanoutResult, now: datetime) -> None:
        """``Deferred`` if every scraper asked was paused or failed (an outage: the item waits,
        it does not use up its attempts before the breakers open); ``ScrapeError`` if no
        scraper can search for it at all (a configuration problem)."""
        outcomes = result.outcomes
        if any(_answered(o) for o in outcomes):
            return
        asked = [o for o in outcomes if o.status not in _NOT_ASKED]
        query = result.query.describe()
        if not asked:
            self.counts["unsearchable"] += 1
            raise ScrapeError(f"no enabled scraper can search for {query}")
        if all(_paused(o) for o in asked):
            self.counts["deferred"] += 1
            hints = [o.retry_after_s for o in asked if o.retry_after_s]
            wait = min(hints) if hints else self._runtime.settings.scraping.partial_retry_s
            raise Deferred(
                now + timedelta(seconds=max(MIN_RETRY_S, wait)),
                f"every scraper is rate-limited or paused for {query}",
            )
        self.counts["failed"] += 1
        reasons = "; ".join(f"{o.scraper}: {o.status} {o.reason or ''}".strip() for o in asked)
        raise Deferred(
            now + timedelta(seconds=self._runtime.settings.scraping.partial_retry_s),
            f"no scraper answered for {query}: {reasons}",
        )

    def _remember(self, item_id: int, partial: _PartialRetry) -> None:
        if len(self._partials) >= MAX_PARTIAL_RETRIES:
            # Oldest first (insertion order); a forgotten one just gets a full scrape.
            self._partials.pop(next(iter(self._partials)))
        self._partials[item_id] = partial

    # -- season packs ---------------------------------------------------------------------

    async def _covered_by_season(self, subject: _Subject) -> bool:
        """Whether the episode has releases now, after its season's packs were searched."""
        mine = _entry(subject.season, subject.item.id)
        if mine is not None and mine.releases > 0:
            return True
        section = self._runtime.settings.scraping
        now = self._runtime.clock.now()
        if not section.season_packs or _pack_wanted(subject.season, now, section) is not None:
            return False
        show_id, number = subject.root.id, subject.item.season_number
        assert number is not None
        async with self._runtime.locks((SEASON_LOCK, show_id, number)):
            # Another episode's job may have searched the packs while this one waited.
            season = await self._runtime.repos.releases.season_status(show_id, number)
            mine = _entry(season, subject.item.id)
            if mine is not None and mine.releases > 0:
                return True
            why_not = _pack_wanted(season, self._runtime.clock.now(), section)
            if why_not is not None:
                self.counts[f"season_pack_{why_not}"] += 1
                return False
            covered = await self._scrape_season(subject, season)
        return subject.item.id in covered

    async def _scrape_season(
        self, subject: _Subject, season: Sequence[SeasonEntry]
    ) -> set[int]:
        """Search the season's packs once; store what fits each episode; those covered."""
        repos, show = self._runtime.repos, subject.root
        number = subject.item.season_number
        assert number is not None
        query = ScrapeQuery.for_season(
            number, imdb_id=show.ids.imdb, tmdb_id=show.ids.tmdb, tvdb_id=show.ids.tvdb,
            title=show.title, year=show.year,
        )
        now = self._runtime.clock.now()
        result = await self.fanout().scrape(query)
        if not any(_answered(o) for o in result.outcomes):
            asked = [o for o in result.outcomes if o.status not in _NOT_ASKED]
            if asked and all(_paused(o) for o in asked):
                # No marker: the packs are searched once the scrapers accept requests again.
                self._check_answered(result, now)
        episodes = [e for e in season if e.episode_number is not None]
        needing = _needing(episodes, now)
        blacklist = await repos.releases.blacklist_for(e.item_id for e in needing)
        banned = {(b.item_id, b.infohash) for b in blacklist}
        ranker = self.ranker()
        rows: list[StoredRelease] = []
        covered: set[int] = set()
        for entry in needing:
            assert entry.episode_number is not None
            target = ranking.Target.for_episode(
                show.title, number, entry.episode_number, year=show.year,
                episode_count=len(episodes),
            )
            skip = {h for item_id, h in banned if item_id == entry.item_id}
            ranked = await ranker.rank_async(target, _candidates(result.releases, skip))
            if ranked:
                covered.add(entry.item_id)
                rows.extend(_stored(entry.item_id, ranked, result.releases))
        if rows:
            await repos.releases.insert_many(rows)
        marker = [e.item_id for e in season if e.episode_number is None]
        await repos.items.record_scrapes([*marker, *sorted(covered)])
        self.counts["season_pack_scrapes"] += 1
        self.counts["season_pack_episodes_covered"] += len(covered)
        log.info(
            "season search %s: %d releases, %d of %d episodes covered",
            query.describe(), len(result.releases), len(covered), len(needing),
            extra={"action": "scrape_season", "show_id": show.id, "season": number,
                   "covered": len(covered), "needing": len(needing)},
        )
        return covered

    # -- helpers --------------------------------------------------------------------------

    async def _subject(self, item: MediaItem) -> _Subject:
        if item.kind is MediaKind.MOVIE:
            query = ScrapeQuery.for_movie(
                imdb_id=item.ids.imdb, tmdb_id=item.ids.tmdb, title=item.title, year=item.year
            )
            return _Subject(item, item, query, ranking.Target.for_movie(item.title, item.year))
        season, episode = item.season_number, item.episode_number
        if item.show_id is None or season is None or episode is None:
            raise ScrapeError(f"episode {item.id} has no show, season or episode number")
        repos = self._runtime.repos
        show = await repos.catalog.get(item.show_id)
        if show is None:
            raise ScrapeError(f"episode {item.id}: show {item.show_id} is gone")
        entries = await repos.releases.season_status(show.id, season)
        count = sum(1 for e in entries if e.episode_number is not None) or None
        try:
            query = ScrapeQuery.for_episode(
                season, episode, imdb_id=show.ids.imdb, tmdb_id=show.ids.tmdb,
                tvdb_id=show.ids.tvdb, title=show.title, year=show.year,
            )
            target = ranking.Target.for_episode(
                show.title, season, episode, year=show.year, episode_count=count
            )
        except ValueError as exc:
            raise ScrapeError(f"episode {item.id} cannot be searched: {exc}") from None
        return _Subject(item, show, query, target, tuple(entries))

    async def _best(self, item_id: int) -> Release | None:
        found = await self._runtime.repos.releases.best_for_items([item_id], 1)
        best = found.get(item_id)
        return best[0] if best else None

    async def metrics_section(self) -> Section:
        """The ``scrapers`` metrics: each scraper's health, and what scrapes came to."""
        by_scraper: dict[str, Any] = {}
        for name, stats in self.health.stats().items():
            by_scraper[name] = {
                "latency_ewma_s": stats.latency_ewma_s,
                "success_ewma": stats.success_ewma,
                "samples": stats.samples,
                "score": round(stats.score, 6),
                "last_failure": stats.last_failure,
                "outcomes": Labeled("outcome", dict(stats.outcomes)),
            }
        cache = self.ranker().cache_stats()
        return {
            "by_scraper": Labeled("scraper", by_scraper),
            "scrapes": dict(sorted(self.counts.items())),
            "partial_retries_pending": len(self._partials),
            "parse_cache": {"hits": cache.hits, "misses": cache.misses,
                            "entries": cache.entries},
        }


def _build_fanout(
    runtime: Runtime, section: config.ScrapingSection, health: ScraperHealth
) -> ScrapeFanout:
    torznab = section.torznab
    scrapers = build_scrapers(
        runtime.upstreams,
        torznab_indexers=torznab.indexers,
        torznab_feed_path=torznab.feed_path,
        torznab_movie_categories=torznab.movie_categories,
        torznab_tv_categories=torznab.tv_categories,
        torznab_search_limit=torznab.search_limit,
        torznab_max_link_fetches=torznab.max_link_fetches,
        torznab_link_origins=torznab.link_origins,
        torznab_torrent_max_bytes=torznab.torrent_max_bytes,
        stremio_notice_pause_s=section.notice_pause_s,
    )
    names = {s.name for s in scrapers}
    # A timeout for a scraper that is switched off is kept for when it is switched on.
    timeouts = {name: t for name, t in section.timeouts_s.items() if name in names}
    return ScrapeFanout(
        scrapers, timeout_s=section.timeout_s, timeouts_s=timeouts,
        budget=section.budget or None, health=health,
    )


def _pack_wanted(
    season: Sequence[SeasonEntry], now: datetime, section: config.ScrapingSection
) -> str | None:
    """None when the season's packs should be searched now, else why not."""
    marker = next((e for e in season if e.episode_number is None), None)
    if marker is None:
        return "no_season_row"
    if marker.scraped_at is not None and (
        (now - marker.scraped_at).total_seconds() < section.season_pack_rescrape_s
    ):
        return "recent"
    aired = [e for e in season if e.episode_number is not None and _aired(e, now)]
    if any(e.releases > 0 or e.state in _HANDLED_STATES for e in aired):
        return "partly_handled"
    if len(_needing(aired, now)) < section.season_pack_min_episodes:
        return "too_few_episodes"
    return None


def _paused(outcome: ScraperOutcome) -> bool:
    """Rate-limited or breaker open: a 429, or a notice that paused the client (MediaFusion)."""
    return outcome.status is OutcomeStatus.DEFERRED or (
        outcome.status is OutcomeStatus.SOFT_FAILURE and bool(outcome.retry_after_s)
    )


def _answered(outcome: ScraperOutcome) -> bool:
    return outcome.status in _ANSWERED and not _paused(outcome)


def _aired(entry: SeasonEntry, now: datetime) -> bool:
    return entry.state is not State.UNRELEASED and (entry.aired_at is None
                                                    or entry.aired_at <= now)


def _needing(episodes: Iterable[SeasonEntry], now: datetime) -> list[SeasonEntry]:
    """Aired episodes waiting for their first release."""
    return [
        e for e in episodes
        if e.episode_number is not None and e.episode_number >= 1 and _aired(e, now)
        and e.state is State.INDEXED and e.releases == 0
    ]


def _entry(season: Sequence[SeasonEntry], item_id: int) -> SeasonEntry | None:
    return next((e for e in season if e.item_id == item_id), None)


def _candidates(
    releases: Iterable[ScrapedRelease], blacklisted: Collection[str]
) -> list[ranking.Candidate]:
    return [
        ranking.Candidate(
            infohash=r.infohash, raw_title=r.raw_title, size_bytes=r.size_bytes,
            seeders=r.seeders, source=r.source, cached_hint=r.cached_hint,
        )
        for r in releases
        if r.infohash not in blacklisted
    ]


def _stored(
    item_id: int, ranked: Iterable[ranking.RankedRelease], found: Sequence[ScrapedRelease]
) -> list[StoredRelease]:
    by_hash: Mapping[str, ScrapedRelease] = {r.infohash: r for r in found}
    rows = []
    for release in ranked:
        scraped = by_hash.get(release.infohash)
        cached_on = scraped.cached_on if scraped is not None else ()
        if not cached_on and release.cached_hint:
            cached_on = ("debrid",)  # a cached marker that names no service
        rows.append(StoredRelease(
            item_id=item_id, infohash=normalize_infohash(release.infohash),
            raw_title=release.raw_title, rank=release.rank, scraper=release.source,
            parsed=release.parsed, size_bytes=release.size_bytes, seeders=release.seeders,
            cached_on=cached_on,
        ))
    return rows


def _download_job(subject: _Subject, best: Release, *, upgrade: bool = False) -> NewJob:
    """The DOWNLOAD follow-up; its payload says whether the best release is a pack."""
    payload: dict[str, Any] = {
        "infohash": best.infohash,
        "pack": ranking.summary_is_pack(best.parsed),
    }
    if subject.is_episode:
        payload["show_id"] = subject.root.id
        payload["season"] = subject.item.season_number
    if upgrade:
        payload["upgrade"] = True
    return NewJob(JobKind.DOWNLOAD, item_id=subject.item.id, payload=payload)


async def build(runtime: Runtime, stack: AsyncExitStack) -> Step:
    """The SCRAPE step; its scrapers' start-up work runs in the background."""
    step = ScrapeStep(runtime)
    runtime.metrics.register("scrapers", step.metrics_section)
    warm_up = asyncio.create_task(step.warm_up(), name="scrapers-warm-up")

    async def stop_warm_up() -> None:
        warm_up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await warm_up

    stack.push_async_callback(stop_warm_up)
    return step
