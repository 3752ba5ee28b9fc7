"""A rig for the INDEX step and the detection loops: TMDB and TVMaze sims on a manual
clock, a real database, the daemon's runtime, and a tiny stand-in for the stage worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from riven_async.config import LiveSettings, Settings
from riven_async.core.clock import ManualClock
from riven_async.core.locks import KeyedLock
from riven_async.db.notify import Listener
from riven_async.db.repos import Repos
from riven_async.domain.intents import ExternalIds, RequestMedia
from riven_async.domain.media import ItemId, MediaItem, MediaKind
from riven_async.domain.queue import Job, JobKind, NewJob, new_boot_id
from riven_async.pipeline.runtime import Runtime
from riven_async.pipeline.steps import index
from riven_async.pipeline.steps.base import Deferred, Step
from riven_async.sim.fragment import config_values
from riven_async.sim.server import SimCluster, SimHandle, SimSettings, run_sims
from riven_async.sim.shows import Show
from riven_async.upstreams import UpstreamClients
from riven_async.web.metrics import MetricsRegistry
from tests.conftest import SettingsFactory

ROOMY_LIMITS: Mapping[str, Sequence[str]] = {"tmdb": ["100000/1s"], "tvmaze": ["100000/10s"]}


@dataclass
class Rig:
    """Everything a test drives: sims, clock, runtime, the INDEX step and its outcomes."""

    sims: SimCluster
    clock: ManualClock
    runtime: Runtime
    step: Step
    deferred: list[Deferred] = field(default_factory=list)
    follow_ups: list[NewJob] = field(default_factory=list)

    @property
    def repos(self) -> Repos:
        return self.runtime.repos

    def mark(self) -> tuple[int, int]:
        return self.sims.tmdb.log.total, self.sims.tvmaze.log.total

    def tmdb_paths(self, mark: tuple[int, int] = (0, 0)) -> list[str]:
        return _paths(self.sims.tmdb, mark[0])

    def tvmaze_paths(self, mark: tuple[int, int] = (0, 0)) -> list[str]:
        return _paths(self.sims.tvmaze, mark[1])

    def at(self, epoch_s: float) -> None:
        """Move the shared clock to ``epoch_s`` (never backwards)."""
        start = self.sims.catalog.origin.timestamp()
        self.clock.set_elapsed(epoch_s - start)

    async def request(
        self, show_or_movie: Any, *, kind: MediaKind = MediaKind.SHOW,
        seasons: tuple[int, ...] | None = None, ids: ExternalIds | None = None,
    ) -> ItemId:
        """Request a title as intake does (an item plus an INDEX job); its item id."""
        chosen = ids or ExternalIds(tmdb=show_or_movie.tmdb_id)
        [outcome] = await self.repos.items.request_many([RequestMedia(
            kind="show" if kind is MediaKind.SHOW else "movie", ids=chosen, title=None,
            year=None, seasons=seasons, source="test")])
        # Production stamps requests with the same clock the daemon runs on.
        await self.runtime.pool.execute("UPDATE requests SET received_at = $1 WHERE item_id = $2",
                                        self.clock.now(), outcome.item_id)
        await self.repos.jobs.enqueue_many([NewJob(JobKind.INDEX, outcome.item_id)])
        return outcome.item_id

    async def run_jobs(self, kind: JobKind = JobKind.INDEX) -> list[Job]:
        """Claim and run every due job of ``kind`` (only INDEX has a step here)."""
        ran: list[Job] = []
        while jobs := await self.repos.jobs.claim(kind, limit=20):
            for job in jobs:
                await self.run(job)
                ran.append(job)
        return ran

    async def run(self, job: Job) -> None:
        """What the stage worker does with one claimed job."""
        try:
            result = await self.step.run(job)
        except Deferred as deferral:
            self.deferred.append(deferral)
            await self.repos.jobs.snooze(job, deferral.until)
            return
        self.follow_ups.extend(result.then)
        if result.again_at is not None:
            await self.repos.jobs.snooze(job, result.again_at)
        else:
            await self.repos.jobs.complete(job, result.then)

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[None]:
        """Run INDEX jobs as they come (polling in real time) while the block runs."""

        async def work() -> None:
            while True:
                await self.run_jobs()
                await asyncio.sleep(0.01)

        task = asyncio.create_task(work())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def item(self, item_id: int) -> MediaItem:
        found = await self.repos.catalog.get(item_id)
        assert found is not None
        return found

    async def show_item(self, show: Show) -> MediaItem:
        [found] = await self.repos.catalog.find_roots(MediaKind.SHOW,
                                                      ExternalIds(tmdb=show.tmdb_id))
        return found

    async def episodes(self, show_id: int) -> dict[tuple[int, int], MediaItem]:
        tree = await self.repos.catalog.tree(show_id, releases_per_item=0)
        assert tree is not None
        return {(n.item.season_number or 0, n.item.episode_number or 0): n.item
                for n in tree.episodes()}

    async def scrape_jobs(self) -> list[Job]:
        rows = await self.runtime.pool.fetch("SELECT id FROM items")
        jobs = await self.repos.jobs.for_items([r["id"] for r in rows])
        return [j for j in jobs if j.kind is JobKind.SCRAPE]


def _paths(handle: SimHandle[Any], since: int) -> list[str]:
    return [r.path for r in handle.log.since(since)]


def rig_settings(make_settings: SettingsFactory, db_dsn: str, sims: SimCluster,
                 **sections: dict[str, Any]) -> Settings:
    upstreams = config_values(sims)["upstreams"]
    chosen = {name: (table if name in ("tmdb", "tvmaze") else {"enabled": False})
              for name, table in upstreams.items()}
    return make_settings(database={"url": db_dsn}, upstreams=chosen, **sections)


@asynccontextmanager
async def pipeline_rig(
    make_settings: SettingsFactory,
    db_pool: asyncpg.Pool,
    db_dsn: str,
    clock: ManualClock,
    tmp_path: Path,
    *,
    shows: int = 80,
    movies: int = 40,
    settings: Callable[[SimCluster], Settings] | None = None,
    **sections: dict[str, Any],
) -> AsyncIterator[Rig]:
    """Sims on ``clock``, the runtime the composition root would build, the INDEX step."""
    sim_settings = SimSettings(shows=shows, movies=movies, mount_dir=tmp_path / "mount",
                               infringing_ratio=0.0, rate_limits=dict(ROOMY_LIMITS))
    async with run_sims(sim_settings, clock) as sims, AsyncExitStack() as stack:
        chosen = (settings(sims) if settings is not None
                  else rig_settings(make_settings, db_dsn, sims, **sections))
        upstreams = UpstreamClients.from_settings(chosen, clock=clock)
        stack.push_async_callback(upstreams.aclose)
        boot_id = new_boot_id()
        listener = Listener(lambda: asyncpg.connect(db_dsn))
        runtime = Runtime(
            live=LiveSettings(chosen), clock=clock, pool=db_pool,
            repos=Repos.on(db_pool, clock, boot_id), upstreams=upstreams, locks=KeyedLock(),
            metrics=MetricsRegistry(), listener=listener, boot_id=boot_id,
        )
        await runtime.repos.jobs.register()
        stop = asyncio.Event()
        listening = asyncio.create_task(listener.run(stop))
        try:
            step = await index.build(runtime, stack)
            yield Rig(sims, clock, runtime, step)
        finally:
            stop.set()
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening


async def eventually(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Poll an async or plain predicate (real time) until it is truthy; its value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
