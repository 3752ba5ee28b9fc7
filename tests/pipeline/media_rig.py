"""A rig for the DOWNLOAD, LINK and SCAN steps: debrid and media-server sims with a mount,
a real database, the daemon's runtime on a manual clock, and the stage worker's outcome
handling for claimed jobs (the tests claim through ``runtime.repos.jobs``)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from riven_async.config import LiveSettings, Settings, load_settings_from_dict
from riven_async.core.clock import ManualClock
from riven_async.core.locks import KeyedLock
from riven_async.db import rows as db_rows
from riven_async.db.notify import Listener
from riven_async.db.repos import Repos
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import (
    EpisodeRecord,
    ItemId,
    MediaItem,
    SeasonRecord,
    ShowStatus,
    ShowTree,
)
from riven_async.domain.queue import Job, JobKind, NewJob, new_boot_id
from riven_async.domain.releases import (
    Download,
    LibraryEntry,
    ScrapedRelease,
    normalize_infohash,
)
from riven_async.domain.states import State
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps import download, link, scan
from riven_async.pipeline.steps.base import Deferred, Step, StepResult
from riven_async.sim.fragment import config_values
from riven_async.sim.movies import Movie
from riven_async.sim.releases import Release as SimRelease
from riven_async.sim.server import SimCluster, SimSettings, run_sims
from riven_async.sim.shows import Show
from riven_async.sim.world import LibraryLayout
from riven_async.upstreams import UpstreamClients
from riven_async.web.metrics import MetricsRegistry
from tests.conftest import TEST_API_KEY
from tests.services.debrid_fixtures import advancing

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DEBRIDS = ("realdebrid", "torbox", "alldebrid")
SERVERS = ("plex", "jellyfin", "emby")
MOUNT_LAG_S = 3600.0  # beyond ``advancing``'s horizon: the mount moves only when told
ADD_PATHS: Mapping[str, str] = {"realdebrid": "/torrents/addMagnet",
                                "torbox": "/torrents/createtorrent",
                                "alldebrid": "/magnet/upload"}
FAST_POLICY: Mapping[str, Any] = {"max_retries": 1, "backoff_base_s": 0.01,
                                  "backoff_max_s": 0.1, "timeout_s": 5.0}


@dataclass
class Outcome:
    """What the stage worker would have done with one claimed job."""

    job: Job
    result: StepResult | None = None
    deferred: Deferred | None = None
    error: BaseException | None = None


@dataclass
class MediaRig:
    """Sims, the runtime, the three steps, and helpers to seed items and run their jobs."""

    sims: SimCluster
    clock: ManualClock
    runtime: Runtime
    download: download.DownloadStep
    link: link.LinkStep
    scan: scan.ScanStep
    library_root: Path
    mount_root: Path
    expected_violations: dict[str, int] = field(default_factory=dict)
    # Steps of other kinds a test adds (the SCRAPE step, for the whole way).
    others: dict[JobKind, Step] = field(default_factory=dict)

    @property
    def repos(self) -> Repos:
        return self.runtime.repos

    def step(self, kind: JobKind) -> Step:
        steps: dict[JobKind, Step] = {JobKind.DOWNLOAD: self.download, JobKind.LINK: self.link,
                                      JobKind.SCAN: self.scan, **self.others}
        return steps[kind]

    # -- running jobs as the stage worker does ----------------------------------------

    async def run_job(self, job: Job) -> Outcome:
        """Run one claimed job and write its outcome (complete, snooze or fail)."""
        jobs = self.repos.jobs
        try:
            result = await self.step(job.kind).run(job)
        except Deferred as deferred:
            await jobs.snooze(job, deferred.until)
            return Outcome(job, deferred=deferred)
        except Exception as exc:
            await jobs.fail(job, f"{type(exc).__name__}: {exc}",
                            retry_at=self.clock.now() + timedelta(seconds=30))
            return Outcome(job, error=exc)
        if result.again_at is not None:
            if result.then:
                await jobs.enqueue_many(result.then)
            await jobs.snooze(job, result.again_at)
        else:
            await jobs.complete(job, result.then)
        return Outcome(job, result=result)

    async def run_due(self, kind: JobKind, *, concurrently: bool = False) -> list[Outcome]:
        """Claim every due job of ``kind`` once and run them (one by one, or all at once)."""
        claimed = await self.repos.jobs.claim(kind, limit=100)
        if concurrently:
            return list(await asyncio.gather(*(self.run_job(j) for j in claimed)))
        return [await self.run_job(job) for job in claimed]

    async def queued(self, kind: JobKind) -> list[Job]:
        """Queued (not running, not failed) jobs of ``kind``, oldest first."""
        records = await self.runtime.pool.fetch(
            "SELECT * FROM jobs WHERE kind = $1 AND status = 'queued' ORDER BY id", kind.value)
        return [db_rows.job(r) for r in records]

    async def advance(self, seconds: float) -> None:
        """Move the shared clock on (jobs due later become due; the mount may catch up)."""
        self.clock.advance(seconds)
        await self.sims.mount.flush()

    async def mount_catches_up(self) -> None:
        await self.advance(self.sims.mount.lag_s)

    # -- seeding items ----------------------------------------------------------------

    async def add_movie(
        self, movie: Movie, releases: Sequence[SimRelease], *, marked: Collection[str] = (),
        title: str | None = None,
    ) -> ItemId:
        """The movie as a scraped item with ``releases`` (best first) and its DOWNLOAD job."""
        [outcome] = await self.repos.items.request_many([RequestMedia(
            kind="movie", ids=ExternalIds(tmdb=movie.tmdb_id, imdb=movie.imdb_id),
            title=title or movie.title, year=movie.year, seasons=None, source="test")])
        item_id = outcome.item_id
        await self.repos.items.set_state_many([item_id], State.INDEXED)
        await self.store(item_id, releases, marked=marked)
        await self.repos.items.set_state_many([item_id], State.SCRAPED)
        await self.repos.jobs.enqueue_many([NewJob(
            JobKind.DOWNLOAD, item_id=item_id,
            payload={"infohash": releases[0].infohash, "pack": False})])
        return item_id

    async def add_season(
        self, show: Show, season: int, pack: SimRelease, *, queue: bool = True
    ) -> dict[int, ItemId]:
        """The show's season with ``pack`` stored for every aired episode, each scraped with
        a DOWNLOAD job (as the scrape step leaves a season whose pack it found)."""
        now = self.sims.world.now()
        episodes = tuple(EpisodeRecord(e.number, e.name, e.air_at)
                         for e in show.episodes(season, now))
        tree = ShowTree(
            ids=ExternalIds(tmdb=show.tmdb_id, tvdb=show.tvdb_id, imdb=show.imdb_id),
            title=show.title, next_check_at=now + timedelta(days=1), status=ShowStatus.ENDED,
            year=show.year, seasons=(SeasonRecord(season, f"Season {season}", episodes),),
        )
        [result] = await self.repos.trees.upsert_show_trees([tree])
        read = await self.repos.catalog.tree(result.show_id, releases_per_item=0)
        assert read is not None
        ids = {n.item.episode_number or 0: n.item.id for n in read.episodes(season)
               if n.item.aired_at is not None and n.item.aired_at <= now}
        await self.repos.items.set_state_many(list(ids.values()), State.INDEXED)
        for item_id in ids.values():
            await self.store(item_id, [pack])
        await self.repos.items.set_state_many(list(ids.values()), State.SCRAPED)
        if queue:
            await self.repos.jobs.enqueue_many([
                NewJob(JobKind.DOWNLOAD, item_id=i, payload={
                    "infohash": pack.infohash, "pack": True, "show_id": result.show_id,
                    "season": season})
                for i in ids.values()])
        return ids

    async def store(
        self, item_id: int, releases: Sequence[SimRelease], *, marked: Collection[str] = ()
    ) -> None:
        """Store ``releases`` for the item, best first; ``marked`` hashes carry ``[RD+]``."""
        await self.repos.releases.insert_many([
            ScrapedRelease(item_id=item_id, infohash=normalize_infohash(r.infohash),
                           raw_title=r.title, rank=1000 - i, scraper="torrentio", size_bytes=r.size,
                           seeders=r.seeders,
                           cached_on=("realdebrid",) if r.infohash in marked else ())
            for i, r in enumerate(releases)])

    # -- reading ----------------------------------------------------------------------

    async def item(self, item_id: int) -> MediaItem:
        found = await self.repos.catalog.get(item_id)
        assert found is not None
        return found

    async def states(self, item_ids: Sequence[int]) -> set[State]:
        return {i.state for i in await self.repos.catalog.get_many(item_ids)}

    async def downloads(self, item_id: int) -> list[Download]:
        return await self.repos.downloads.for_items([item_id])

    async def entries(self, item_ids: Sequence[int]) -> list[LibraryEntry]:
        return await self.repos.library.for_items(item_ids)

    def add_calls(self, name: str) -> int:
        """Accepted add requests a debrid sim saw (any hash)."""
        path = ADD_PATHS[name]
        return sum(1 for r in self.sims[name].requests if r.path.endswith(path)
                   and r.status is not None and r.status < 300)

    def check_violations(self) -> None:
        found = {h.name: h.violations for h in self.sims.handles() if h.violations}
        assert found == self.expected_violations, f"limit violations: {found}"


def media_settings(
    sims: SimCluster, dsn: str, *, debrids: Sequence[str] = DEBRIDS,
    servers: Sequence[str] = SERVERS, scrapers: Sequence[str] = (),
    **sections: Mapping[str, Any],
) -> Settings:
    """The daemon's settings for the sims: the chosen debrids, servers and scrapers only."""
    values = copy.deepcopy(config_values(sims))
    for name, table in values["upstreams"].items():
        if name in debrids or name in servers or name in scrapers:
            table.update(FAST_POLICY)
        else:
            table["enabled"] = False
    values["upstreams"]["plex"]["cache_ttl_s"] = {"sections": 300.0}
    values["debrid"] = {"services": list(debrids)}
    values["mediaservers"] = {"servers": list(servers)}
    for name, override in sections.items():
        values[name] = {**values.get(name, {}), **override}
    values["server"] = {"port": 0, "api_key": TEST_API_KEY}
    values["database"] = {"url": dsn}
    return load_settings_from_dict(values)


@asynccontextmanager
async def media_rig(
    db_pool: asyncpg.Pool, db_dsn: str, tmp_path: Path, *, shows: int = 30, movies: int = 30,
    mount_lag_s: float = MOUNT_LAG_S, debrids: Sequence[str] = DEBRIDS,
    servers: Sequence[str] = SERVERS, scrapers: Sequence[str] = (),
    **sections: Mapping[str, Any],
) -> AsyncIterator[MediaRig]:
    """Sims on a manual clock that jumps over short sleeps, the runtime and the steps.

    No sim may see a limit violation the test did not expect (checked on exit).
    """
    clock = ManualClock(START)
    library_root = tmp_path / "library"
    mount_root = tmp_path / "mount"
    sim_settings = SimSettings(
        shows=shows, movies=movies, mount_dir=mount_root, mount_lag_s=mount_lag_s,
        infringing_ratio=0.0, library=LibraryLayout(root=str(library_root)),
    )
    async with run_sims(sim_settings, clock) as sims, AsyncExitStack() as stack:
        settings = media_settings(sims, db_dsn, debrids=debrids, servers=servers,
                                  scrapers=scrapers, **sections)
        upstreams = UpstreamClients.from_settings(settings, clock=clock)
        stack.push_async_callback(upstreams.aclose)
        boot_id = new_boot_id()
        runtime = Runtime(
            live=LiveSettings(settings), clock=clock, pool=db_pool,
            repos=Repos.on(db_pool, clock, boot_id), upstreams=upstreams, locks=KeyedLock(),
            metrics=MetricsRegistry(), listener=Listener(lambda: asyncpg.connect(db_dsn)),
            boot_id=boot_id,
        )
        await runtime.repos.jobs.register()
        steps = [await factory.build(runtime, stack) for factory in (download, link, scan)]
        assert isinstance(steps[0], download.DownloadStep)
        assert isinstance(steps[1], link.LinkStep)
        assert isinstance(steps[2], scan.ScanStep)
        rig = MediaRig(sims, clock, runtime, steps[0], steps[1], steps[2], library_root,
                       mount_root)
        await stack.enter_async_context(advancing(clock))
        yield rig
        rig.check_violations()


# -- picking sim titles -----------------------------------------------------------------


def cached_movie(
    sims: SimCluster, cached_on: Mapping[str, bool], *, skip: Sequence[int] = ()
) -> tuple[Movie, SimRelease]:
    """A movie and one of its releases (seeded, single video) cached as asked."""
    now = sims.clock.now()
    for movie in sims.catalog.movies():
        if movie.tmdb_id in skip:
            continue
        for release in sims.catalog.movie_releases(movie, now):
            if release.seeders == 0 or not any(f.is_video for f in release.files):
                continue
            states = {s: sims.world.is_cached(s, release.infohash, now) for s in cached_on}
            if states == dict(cached_on):
                return movie, release
    raise AssertionError(f"no movie release with {dict(cached_on)}")


def movie_releases(
    sims: SimCluster, movie: Movie, cached_on: Mapping[str, bool]
) -> list[SimRelease]:
    """The movie's seeded releases cached as asked."""
    now = sims.clock.now()
    return [r for r in sims.catalog.movie_releases(movie, now)
            if r.seeders > 0 and {s: sims.world.is_cached(s, r.infohash, now)
                                  for s in cached_on} == dict(cached_on)]


def cached_season(
    sims: SimCluster, cached_on: Mapping[str, bool], *, min_episodes: int = 4
) -> tuple[Show, int, SimRelease]:
    """A show, a fully aired season and a pack of all its episodes, cached as asked."""
    now = sims.clock.now()
    for show in sims.catalog.shows():
        for plan in show.seasons:
            if plan.number == 0:
                continue
            aired = [(plan.number, e.number) for e in show.episodes(plan.number, now)
                     if e.air_at <= now]
            if len(aired) < min_episodes:
                continue
            for release in sims.catalog.season_releases(show, plan.number, now):
                if release.seeders == 0 or tuple(release.episodes) != tuple(aired):
                    continue
                states = {s: sims.world.is_cached(s, release.infohash, now) for s in cached_on}
                if states == dict(cached_on):
                    return show, plan.number, release
    raise AssertionError(f"no season pack with {dict(cached_on)}")


def replace_windows(rig: MediaRig, name: str, limit: int) -> None:
    """Tighten a sim's first rate window to ``limit`` requests."""
    handle = rig.sims[name]
    handle.limiter.set_windows([dataclasses.replace(handle.limiter.windows[0], limit=limit)])


@dataclass(frozen=True, slots=True)
class OnDisk:
    """What the file system says about a library link (read synchronously: tests only)."""

    is_symlink: bool
    points_at: Path | None
    resolves_to_file: bool
    resolved: Path


def on_disk(link: str | Path) -> OnDisk:
    path = Path(link)
    is_symlink = path.is_symlink()
    return OnDisk(is_symlink, Path(os.readlink(path)) if is_symlink else None,
                  path.resolve().is_file(), path.resolve())
